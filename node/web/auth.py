"""Who is asking: an account (session cookie or bearer token), a verified visitor
(visitor cookie or ``pv_`` bearer token, node.visitors), or a guest; and rate limits on
sign-up and log-in.

``optional_account``/``require_account`` are for what only accounts do (rooms of their
own, follows, keys); ``optional_person``/``require_person`` for what anyone in a room
does (watch, raise a hand, speak, moderate by role), visitors included.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from starlette.requests import HTTPConnection
from starlette.responses import Response

from node.accounts import Account
from node.errors import NotFound, RateLimited, Unauthorized
from node.fediverse.visitors import Visitors
from node.store.accounts import AccountDirectory
from node.visitors import Person, Visitor, is_visitor_token

SESSION_COOKIE = "parley_session"
VISITOR_COOKIE = "parley_visitor"
COOKIE_MAX_AGE = 60 * 60 * 24 * 180


def optional_account(conn: HTTPConnection) -> Account | None:
    """The signed-in account, or None for a guest.

    A bad or revoked bearer token is a 401 rather than a silent downgrade to guest, so API
    clients notice. A stale cookie is different: the browser cannot drop it by itself, and
    its owner should still be able to listen as a guest, so it counts as no cookie.
    """
    accounts: AccountDirectory = conn.app.state.accounts
    header = conn.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        if is_visitor_token(token.strip()):
            return None  # a visitor, not an account (optional_visitor tells who)
        account, session_id = accounts.resolve_token(token.strip())
    else:
        cookie = conn.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            account, session_id = accounts.resolve_token(cookie)
        except Unauthorized:
            return None
    conn.scope.setdefault("state", {})["session_id"] = session_id
    return account


def _bearer(conn: HTTPConnection) -> str | None:
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def optional_visitor(conn: HTTPConnection) -> Visitor | None:
    """The verified visitor asking (``pv_`` bearer token or visitor cookie), or None. A
    bad bearer token is a 401; a stale cookie counts as none (as for accounts)."""
    visitors: Visitors = conn.app.state.visitors
    token = _bearer(conn)
    if token is not None:
        return visitors.visitor(token) if is_visitor_token(token) else None
    cookie = conn.cookies.get(VISITOR_COOKIE)
    if not cookie:
        return None
    try:
        return visitors.visitor(cookie)
    except (Unauthorized, NotFound):
        return None


def optional_person(conn: HTTPConnection) -> Person | None:
    """Who acts in a room: the signed-in account, else a verified visitor, else None."""
    token = _bearer(conn)
    if token is not None and is_visitor_token(token):
        return optional_visitor(conn)
    return optional_account(conn) or optional_visitor(conn)


def require_person(conn: HTTPConnection) -> Person:
    person = optional_person(conn)
    if person is None:
        raise Unauthorized("sign in, or join with your fediverse account")
    return person


def require_account(conn: HTTPConnection) -> Account:
    account = optional_account(conn)
    if account is None:
        raise Unauthorized("sign in first")
    return account


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def set_visitor_cookie(response: Response, token: str, *, secure: bool, max_age: int) -> None:
    # No Domain attribute: a host-only cookie, sent to this node and nowhere else.
    response.set_cookie(
        VISITOR_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


def clear_visitor_cookie(response: Response) -> None:
    response.delete_cookie(VISITOR_COOKIE, path="/")


class AttemptLimiter:
    """Sliding window of attempts per client address (sign-up, log-in)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._attempts: dict[str, deque[float]] = {}

    def check(self, key: str) -> None:
        now = self._clock()
        window = self._attempts.setdefault(key, deque())
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self.per_minute:
            raise RateLimited(60 - (now - window[0]))
        window.append(now)
        if len(self._attempts) > 10_000:
            # Bound memory under a spray of addresses: forget idle windows.
            for k in [k for k, w in self._attempts.items() if not w or now - w[-1] > 60]:
                del self._attempts[k]
