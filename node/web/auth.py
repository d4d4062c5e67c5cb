"""Who is asking: session cookie or bearer token; and rate limits on sign-up and log-in."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from starlette.requests import HTTPConnection
from starlette.responses import Response

from node.accounts import Account
from node.errors import RateLimited, Unauthorized
from node.store.accounts import AccountDirectory

SESSION_COOKIE = "parley_session"
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
