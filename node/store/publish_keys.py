"""The publish_keys table (node.publish_keys says what a publish key is)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import sqlite_utils

from node.accounts import Account
from node.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from node.publish_keys import MAX_KEYS_PER_ACCOUNT, MAX_LABEL, PublishKey, key_hash, new_key
from node.store.accounts import AccountDirectory


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
        key = new_key()
        row = {
            "id": secrets.token_hex(8),
            "account_id": account.id,
            "key_hash": key_hash(key),
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
            self._db.table("publish_keys").rows_where("key_hash = ?", [key_hash(key)], limit=1)
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
