"""Visitors in SQLite (tables ``visitor_codes``, ``visitor_sessions``,
``visitor_profiles``; node.visitors says what a visitor is).

A code row is one direct message the node sent: the send limits count these rows (per
handle, per server, per client address, in ``SEND_WINDOW_S``), so they hold across a
restart and nothing is sent beyond them. Rows older than a day are deleted as new ones
come. Every method is synchronous: the node's one event loop never interleaves two of
them, and a redeemed code is marked used by a conditional update besides.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from node.errors import Forbidden, NotFound, RateLimited, Unauthorized
from node.visitors import (
    CODE_TTL_S,
    MAX_CODE_ATTEMPTS,
    REPORT_PAUSE_S,
    SEND_WINDOW_S,
    SendLimits,
    code_hash,
    code_matches,
    new_code,
    new_token,
    token_hash,
)

KEEP_CODES_S = 86400.0
LAST_USED_GRANULARITY_S = 60.0


@dataclass(frozen=True, slots=True)
class CodeRequest:
    """A code the node sent (its row, without the code's hash)."""

    id: str
    handle: str
    server: str
    actor: str
    display_name: str
    icon: str | None
    room_id: str
    created_at: float
    expires_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CodeRequest:
        return cls(
            id=row["id"],
            handle=row["handle"],
            server=row["server"],
            actor=row["actor"],
            display_name=row["display_name"],
            icon=row["icon"],
            room_id=row["room_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )


@dataclass(frozen=True, slots=True)
class VisitorSession:
    id: str
    handle: str
    created_at: float
    last_used_at: float
    expires_at: float
    user_agent: str


@dataclass(frozen=True, slots=True)
class Profile:
    handle: str
    actor: str
    display_name: str
    has_avatar: bool


class VisitorStore:
    def __init__(
        self, db: sqlite_utils.Database, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._clock = clock

    # -- codes --------------------------------------------------------------------------

    def _count(self, column: str, value: str, since: float) -> tuple[int, float]:
        row = self._db.execute(
            f"select count(*), min(created_at) from visitor_codes "  # noqa: S608 - fixed names
            f"where {column} = ? and created_at > ?",
            [value, since],
        ).fetchone()
        return int(row[0]), float(row[1] or since)

    def check_limits(self, limits: SendLimits, *, handle: str, server: str, client: str) -> None:
        """RateLimited when one more message would pass a limit; Forbidden while the
        handle's owner asked for a pause ("it was not me")."""
        now = self._clock()
        reported = self._db.execute(
            "select max(reported_at) from visitor_codes where handle = ? and reported_at > ?",
            [handle, now - REPORT_PAUSE_S],
        ).fetchone()[0]
        if reported is not None:
            raise Forbidden(f"{handle} asked not to be sent codes for a while; try again tomorrow")
        since = now - SEND_WINDOW_S
        for column, value, limit in (
            ("handle", handle, limits.per_handle),
            ("server", server, limits.per_server),
            ("client", client, limits.per_address),
        ):
            count, oldest = self._count(column, value, since)
            if count >= limit:
                raise RateLimited(max(1.0, oldest + SEND_WINDOW_S - now))

    def issue(
        self,
        limits: SendLimits,
        *,
        handle: str,
        server: str,
        actor: str,
        display_name: str,
        icon: str | None,
        client: str,
        room_id: str,
    ) -> tuple[CodeRequest, str]:
        """A new code for ``handle`` (the limits checked again, then counted): the row
        and the code itself, which is never stored."""
        self.check_limits(limits, handle=handle, server=server, client=client)
        now = self._clock()
        self._db.execute("delete from visitor_codes where created_at < ?", [now - KEEP_CODES_S])
        code = new_code()
        row = {
            "id": secrets.token_urlsafe(16),
            "handle": handle,
            "server": server,
            "actor": actor,
            "display_name": display_name,
            "icon": icon,
            "client": client,
            "room_id": room_id,
            "code_hash": code_hash(code),
            "created_at": now,
            "expires_at": now + CODE_TTL_S,
            "attempts": 0,
            "used_at": None,
            "reported_at": None,
        }
        self._db.table("visitor_codes").insert(row)
        return CodeRequest.from_row(row), code

    def _code_row(self, request_id: str) -> dict[str, Any]:
        rows = list(self._db.table("visitor_codes").rows_where("id = ?", [request_id], limit=1))
        if not rows:
            raise NotFound("no such code request; ask for a new code")
        return rows[0]

    def redeem(self, request_id: str, code: str) -> CodeRequest:
        """The request a code proves, marked used. Unauthorized for a wrong, expired,
        used, burned (too many wrong tries) or reported code."""
        row = self._code_row(request_id)
        now = self._clock()
        if row["used_at"] is not None:
            raise Unauthorized("this code was already used; ask for a new one", field="code")
        if row["reported_at"] is not None:
            raise Unauthorized("this code was reported as not asked for", field="code")
        if now >= row["expires_at"]:
            raise Unauthorized("this code has expired; ask for a new one", field="code")
        if row["attempts"] >= MAX_CODE_ATTEMPTS:
            raise Unauthorized("too many wrong codes; ask for a new one", field="code")
        if not code_matches(row["code_hash"], code):
            self._db.execute(
                "update visitor_codes set attempts = attempts + 1 where id = ?", [request_id]
            )
            left = MAX_CODE_ATTEMPTS - row["attempts"] - 1
            raise Unauthorized(
                f"wrong code ({left} tries left)" if left else "wrong code; ask for a new one",
                field="code",
            )
        cursor = self._db.execute(
            "update visitor_codes set used_at = ? where id = ? and used_at is null",
            [now, request_id],
        )
        if cursor.rowcount != 1:
            raise Unauthorized("this code was already used; ask for a new one", field="code")
        return CodeRequest.from_row(row)

    def report(self, request_id: str) -> CodeRequest:
        """ "It was not me": the code stops working and the handle gets no code for a
        day (REPORT_PAUSE_S)."""
        row = self._code_row(request_id)
        self._db.execute(
            "update visitor_codes set reported_at = ? where id = ? and reported_at is null",
            [self._clock(), request_id],
        )
        return CodeRequest.from_row(row)

    def reports(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "select handle, server, client, room_id, created_at, reported_at "
            "from visitor_codes where reported_at is not null "
            "order by reported_at desc limit ?",
            [limit],
        ).fetchall()
        keys = ("handle", "server", "client", "room", "created_at", "reported_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def sent_count(self, handle: str) -> int:
        row = self._db.execute(
            "select count(*) from visitor_codes where handle = ?", [handle]
        ).fetchone()
        return int(row[0])

    # -- sessions -----------------------------------------------------------------------

    def open_session(self, handle: str, *, lifetime_s: float, user_agent: str = "") -> str:
        token = new_token()
        now = self._clock()
        self._db.execute("delete from visitor_sessions where expires_at <= ?", [now])
        self._db.table("visitor_sessions").insert(
            {
                "id": secrets.token_hex(8),
                "token_hash": token_hash(token),
                "handle": handle,
                "user_agent": user_agent[:200],
                "created_at": now,
                "last_used_at": now,
                "expires_at": now + lifetime_s,
            }
        )
        return token

    def resolve(self, token: str) -> VisitorSession:
        rows = list(
            self._db.table("visitor_sessions").rows_where(
                "token_hash = ?", [token_hash(token)], limit=1
            )
        )
        now = self._clock()
        if not rows or rows[0]["expires_at"] <= now:
            raise Unauthorized("unknown, expired or revoked visitor session")
        row = rows[0]
        if now - row["last_used_at"] > LAST_USED_GRANULARITY_S:
            self._db.table("visitor_sessions").update(row["id"], {"last_used_at": now})
        return VisitorSession(
            row["id"],
            row["handle"],
            row["created_at"],
            row["last_used_at"],
            row["expires_at"],
            row["user_agent"],
        )

    def revoke(self, session_id: str) -> None:
        self._db.execute("delete from visitor_sessions where id = ?", [session_id])

    def revoke_all(self, handle: str) -> int:
        cursor = self._db.execute("delete from visitor_sessions where handle = ?", [handle])
        return int(cursor.rowcount)

    # -- profiles -----------------------------------------------------------------------

    def save_profile(self, handle: str, actor: str, display_name: str) -> None:
        self._db.execute(
            "insert into visitor_profiles (handle, actor, display_name, updated_at) "
            "values (?, ?, ?, ?) on conflict (handle) do update set actor = excluded.actor, "
            "display_name = excluded.display_name, updated_at = excluded.updated_at",
            [handle, actor, display_name, self._clock()],
        )

    def save_avatar(self, handle: str, image: bytes | None, media_type: str | None) -> None:
        self._db.execute(
            "update visitor_profiles set avatar = ?, avatar_type = ? where handle = ?",
            [image, media_type, handle],
        )

    def profile(self, handle: str) -> Profile:
        row = self._db.execute(
            "select handle, actor, display_name, avatar is not null "
            "from visitor_profiles where handle = ?",
            [handle],
        ).fetchone()
        if row is None:
            raise NotFound(f"no visitor {handle}")
        return Profile(row[0], row[1], row[2], bool(row[3]))

    def avatar(self, handle: str) -> tuple[bytes, str]:
        row = self._db.execute(
            "select avatar, avatar_type from visitor_profiles where handle = ?", [handle]
        ).fetchone()
        if row is None or row[0] is None:
            raise NotFound(f"no avatar for {handle}")
        return bytes(row[0]), str(row[1])
