"""Our users' notifications (``notifications``): newest first, read or not."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlite_utils


class NotificationStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def add(
        self, account_id: int, kind: str, data: dict[str, Any], dedupe: str | None
    ) -> dict[str, Any] | None:
        """The stored notification, or None when one with the same ``dedupe`` exists."""
        now = time.time()
        cursor = self._db.execute(
            "insert or ignore into notifications (account_id, kind, data, dedupe, created_at) "
            "values (?, ?, ?, ?, ?)",
            [account_id, kind, json.dumps(data), dedupe, now],
        )
        if cursor.rowcount == 0:
            return None
        return {
            "id": int(cursor.lastrowid or 0),
            "kind": kind,
            "data": data,
            "created_at": now,
            "read": False,
        }

    def page(
        self, account_id: int, *, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        sql = "select id, kind, data, created_at, read_at from notifications where account_id = ?"
        params: list[Any] = [account_id]
        if before is not None:
            sql += " and id < ?"
            params.append(before)
        rows = self._db.execute(sql + " order by id desc limit ?", [*params, limit]).fetchall()
        return [
            {
                "id": r[0],
                "kind": r[1],
                "data": json.loads(r[2]),
                "created_at": r[3],
                "read": r[4] is not None,
            }
            for r in rows
        ]

    def unread(self, account_id: int) -> int:
        row = self._db.execute(
            "select count(*) from notifications where account_id = ? and read_at is null",
            [account_id],
        ).fetchone()
        return int(row[0])

    def mark_read(self, account_id: int, ids: list[int] | None, up_to: int | None) -> int:
        sql = "update notifications set read_at = ? where account_id = ? and read_at is null"
        params: list[Any] = [time.time(), account_id]
        if ids is not None:
            sql += f" and id in ({', '.join('?' for _ in ids)})" if ids else " and 0"
            params.extend(ids)
        elif up_to is not None:
            sql += " and id <= ?"
            params.append(up_to)
        return int(self._db.execute(sql, params).rowcount)

    # -- whom a room concerns (rows of node.store.federation's tables) ---------------------

    def following_here(self, actor: str, base_url: str) -> list[str]:
        """Usernames of our accounts that follow ``actor`` (here or elsewhere)."""
        prefix = f"{base_url}/users/"
        rows = self._db.execute(
            "select local_actor from fed_following where remote_actor = ? and state = 'accepted'",
            [actor],
        ).fetchall()
        found = {r[0][len(prefix) :] for r in rows if str(r[0]).startswith(prefix)}
        # A follow between two accounts of this node is also a follower row of the
        # followed account (the web client's local follows): count it once.
        rows = self._db.execute(
            "select remote_actor from fed_followers where local_actor = ? and state = 'accepted'",
            [actor],
        ).fetchall()
        found |= {r[0][len(prefix) :] for r in rows if str(r[0]).startswith(prefix)}
        return sorted(name for name in found if name and "/" not in name)

    def account_ids(self, usernames: list[str]) -> dict[str, int]:
        if not usernames:
            return {}
        marks = ", ".join("?" for _ in usernames)
        rows = self._db.execute(
            f"select username, id from accounts where status = 'active' and username in ({marks})",
            usernames,
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def display_name(self, actor: str) -> str:
        row = self._db.execute(
            "select preferred_username, doc from fed_actors where id = ?", [actor]
        ).fetchone()
        if row is None:
            return actor.rstrip("/").rsplit("/", 1)[-1]
        return str(row[0])
