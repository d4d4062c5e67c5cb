"""Publish keys: a credential that can only publish audio (WHIP), for OBS and the like.

An encoder's stream key sits in a settings file and is pasted into screens that get
shared, so it must not be a whole account session. A publish key belongs to one account,
optionally to one room, is shown once, stored as its SHA-256 only, and is revoked on its
own. It authenticates ``POST {whip_url}`` (and the ``DELETE`` of the session it opened)
and nothing else: every other endpoint answers 401 to it, as to any unknown token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from node.accounts import Account, AccountDirectory
from node.errors import Forbidden, InvalidInput, NotFound, Unauthorized

KEY_PREFIX = "pk_"
"""Publish keys start with this, so a bearer token tells which kind it is."""
MAX_LABEL = 64
MAX_KEYS_PER_ACCOUNT = 20


@dataclass(frozen=True, slots=True)
class PublishKey:
    id: str
    account_id: int
    room_id: str | None
    label: str
    created_at: float
    last_used_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room_id,
            "label": self.label,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PublishKey:
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            room_id=row["room_id"],
            label=row["label"] or "",
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
        )


def is_publish_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class PublishKeys:
    def __init__(self, db: sqlite_utils.Database, accounts: AccountDirectory) -> None:
        self._db = db
        self._accounts = accounts

    def create(
        self, account: Account, *, room_id: Any = None, label: Any = ""
    ) -> tuple[PublishKey, str]:
        """A new key; the key itself is returned here once and never again."""
        if room_id is not None and not (isinstance(room_id, str) and room_id):
            raise InvalidInput("room", "must be a room id")
        if not isinstance(label, str) or len(label.strip()) > MAX_LABEL:
            raise InvalidInput("label", f"a string of at most {MAX_LABEL} characters")
        if len(self.list(account)) >= MAX_KEYS_PER_ACCOUNT:
            raise Forbidden(f"at most {MAX_KEYS_PER_ACCOUNT} publish keys; revoke one first")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": secrets.token_hex(8),
            "account_id": account.id,
            "key_hash": _hash(key),
            "room_id": room_id,
            "label": label.strip(),
            "created_at": time.time(),
            "last_used_at": None,
        }
        self._db.table("publish_keys").insert(row)
        return PublishKey.from_row(row), key

    def list(self, account: Account) -> list[PublishKey]:
        rows = self._db.table("publish_keys").rows_where(
            "account_id = ?", [account.id], order_by="created_at"
        )
        return [PublishKey.from_row(r) for r in rows]

    def revoke(self, account: Account, key_id: str) -> None:
        cursor = self._db.execute(
            "delete from publish_keys where id = ? and account_id = ?", [key_id, account.id]
        )
        if cursor.rowcount == 0:
            raise NotFound("no such publish key")

    def authenticate(self, key: str, room_id: str) -> Account:
        """The account a key publishes as in ``room_id``: Unauthorized for an unknown or
        revoked key (or an inactive account), Forbidden for a key of another room."""
        rows = list(
            self._db.table("publish_keys").rows_where("key_hash = ?", [_hash(key)], limit=1)
        )
        if not rows:
            raise Unauthorized("unknown or revoked publish key")
        found = PublishKey.from_row(rows[0])
        account = self._accounts.get_by_id(found.account_id)
        if account.status != "active":
            raise Unauthorized("account is not active")
        if found.room_id is not None and found.room_id != room_id:
            raise Forbidden("this publish key is for another room")
        self._db.table("publish_keys").update(found.id, {"last_used_at": time.time()})
        return account
