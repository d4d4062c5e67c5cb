"""Who the client is, and how often it may make the node fetch from outside.

The client's address is the socket's peer, or what a ``[node] trusted_proxies`` proxy
says in X-Forwarded-For (uvicorn's proxy-headers middleware applies that setting before
a request reaches the app, see ``node.__main__``); every rate limit keys on it.

A follow, a "join from your server" look-up, a search by a handle of another server and
opening a remote room each cost the node outgoing requests (WebFinger, actor, room JSON,
a relay connection) on someone's behalf, so they are limited per account and per client
address: ``[federation] fetch_rate_per_minute``.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from node.accounts import Account
from node.web.auth import AttemptLimiter


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


class FetchLimiter:
    """Outgoing look-ups made for a user: one window per account, one per address."""

    def __init__(self, per_minute: int) -> None:
        self._by_account = AttemptLimiter(per_minute)
        self._by_address = AttemptLimiter(per_minute)

    def check(self, conn: HTTPConnection, account: Account | None) -> None:
        """Count one look-up; RateLimited (429) when either window is full."""
        self._by_address.check(client_address(conn))
        if account is not None:
            self._by_account.check(str(account.id))
