"""Personal blocks and mutes (table ``personal_blocks``).

A user **blocks** an account: its rooms are hidden from them, and it cannot join or raise
a hand in rooms they host. A user **mutes** an account's room announcements: its live
rooms are no longer listed for them. Targets are named as this node names members: our
users bare (``alice``), everyone else ``user@host[:port]``.
"""

from __future__ import annotations

import enum
import re
import time
from typing import Any

import sqlite_utils

from node.accounts import Account
from node.errors import InvalidInput, NotFound

MAX_PER_ACCOUNT = 1000
_NAME = re.compile(r"^[a-z0-9_]{1,30}(@[a-z0-9.\-]+(:\d{1,5})?|@\[[0-9a-f:.]+\](:\d{1,5})?)?$")


class Shun(enum.StrEnum):
    BLOCK = "block"
    MUTE = "mute"


def member_name(value: Any, own_host: str) -> str:
    """``alice``, ``@alice``, ``alice@host`` or ``@alice@host`` -> the name rooms use
    (bare for our users)."""
    if not isinstance(value, str):
        raise InvalidInput("handle", "must be a handle like alice@example.org")
    text = value.strip().lower().lstrip("@")
    if not _NAME.match(text):
        raise InvalidInput("handle", "must be a handle like alice@example.org")
    user, _, host = text.partition("@")
    return user if host in ("", own_host.lower()) else text


class PersonalBlocks:
    def __init__(self, db: sqlite_utils.Database, own_host: str) -> None:
        self._db = db
        self.own_host = own_host

    def add(self, account: Account, kind: Shun, target: Any) -> str:
        name = member_name(target, self.own_host)
        if name == account.username:
            raise InvalidInput("handle", f"you cannot {kind.value} yourself")
        count = self._db.execute(
            "select count(*) from personal_blocks where account_id = ? and kind = ?",
            [account.id, kind.value],
        ).fetchone()[0]
        if count >= MAX_PER_ACCOUNT:
            raise InvalidInput("handle", f"at most {MAX_PER_ACCOUNT} {kind.value}s")
        self._db.execute(
            "insert or ignore into personal_blocks (account_id, kind, target, created_at) "
            "values (?, ?, ?, ?)",
            [account.id, kind.value, name, time.time()],
        )
        return name

    def add_for(self, username: str, name: str) -> None:
        """Our user ``username`` blocks ``name`` (a member name): the host blocked them
        in a room. LookupError if there is no such user here."""
        row = self._db.execute("select id from accounts where username = ?", [username])
        found = row.fetchone()
        if found is None:
            raise LookupError(username)
        self._db.execute(
            "insert or ignore into personal_blocks (account_id, kind, target, created_at) "
            "values (?, 'block', ?, ?)",
            [found[0], name, time.time()],
        )

    def remove(self, account: Account, kind: Shun, target: Any) -> str:
        name = member_name(target, self.own_host)
        cursor = self._db.execute(
            "delete from personal_blocks where account_id = ? and kind = ? and target = ?",
            [account.id, kind.value, name],
        )
        if cursor.rowcount == 0:
            raise NotFound(f"you did not {kind.value} {name}")
        return name

    def list(self, account: Account, kind: Shun) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "select target, created_at from personal_blocks where account_id = ? and kind = ? "
            "order by created_at desc",
            [account.id, kind.value],
        ).fetchall()
        return [{"handle": r[0], "created_at": r[1]} for r in rows]

    def targets(self, account_id: int, *kinds: Shun) -> set[str]:
        marks = ", ".join("?" for _ in kinds)
        rows = self._db.execute(
            f"select target from personal_blocks where account_id = ? and kind in ({marks})",
            [account_id, *(k.value for k in kinds)],
        ).fetchall()
        return {r[0] for r in rows}

    def blocks(self, username: str, name: str) -> bool:
        """Has our user ``username`` blocked ``name`` (a member name)?"""
        row = self._db.execute(
            "select 1 from personal_blocks b join accounts a on a.id = b.account_id "
            "where a.username = ? and b.kind = 'block' and b.target = ?",
            [username, name],
        ).fetchone()
        return row is not None
