"""Accounts and their sessions in SQLite (tables ``accounts`` and ``sessions``).

A session token is shown to the client once; only its SHA-256 is stored. Each account gets
an RSA keypair at creation: federation signs its activities with it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import sqlite_utils

from federation.keys import generate_keypair
from node.accounts import (
    MAX_BIO,
    MAX_DISPLAY_NAME,
    Account,
    SessionInfo,
    check_password,
    hash_password,
    password_needs_rehash,
    text_field,
    token_hash,
    validate_password,
    validate_password_field,
    validate_username,
)
from node.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from node.store.text_search import contains_pattern


class AccountDirectory:
    """Accounts and sessions stored in the node's database."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def create(
        self,
        username: Any,
        password: Any,
        *,
        display_name: Any = "",
        is_admin: bool = False,
        pending: bool = False,
    ) -> Account:
        username = validate_username(username)
        password = validate_password(password)
        display_name = text_field("display_name", display_name or "", MAX_DISPLAY_NAME)
        if self._find_row(username) is not None:
            raise Conflict(f"the username {username} is taken", field="username")
        keys = generate_keypair()
        table = self._db.table("accounts")
        table.insert(
            {
                "username": username,
                "password_hash": hash_password(password),
                "display_name": display_name,
                "bio": "",
                "is_admin": int(is_admin),
                "status": "pending" if pending else "active",
                "private_key_pem": keys.private_pem,
                "public_key_pem": keys.public_pem,
                "created_at": time.time(),
            }
        )
        return self.get(username)

    def _find_row(self, username: str) -> dict[str, Any] | None:
        rows = list(self._db.table("accounts").rows_where("username = ?", [username], limit=1))
        return rows[0] if rows else None

    def get(self, username: str) -> Account:
        row = self._find_row(username.lower())
        if row is None:
            raise NotFound(f"no account {username}")
        return Account.from_row(row)

    def get_by_id(self, account_id: int) -> Account:
        rows = list(self._db.table("accounts").rows_where("id = ?", [account_id], limit=1))
        if not rows:
            raise NotFound(f"no account #{account_id}")
        return Account.from_row(rows[0])

    def private_key_pem(self, account_id: int) -> str:
        row = self._db.table("accounts").get(account_id)
        return str(row["private_key_pem"])

    def count(self) -> int:
        return int(self._db.table("accounts").count_where("status = 'active'"))

    def authenticate(self, username: Any, password: Any) -> Account:
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidInput("username", "username and password must be strings", status=400)
        row = self._find_row(username.strip().lower())
        if row is None:
            # Spend the same time as a real check so response time does not reveal
            # which usernames exist.
            hash_password(password)
            raise Unauthorized("wrong username or password")
        if not check_password(row["password_hash"], password):
            raise Unauthorized("wrong username or password")
        if row["status"] != "active":
            raise Forbidden("this account is waiting for an administrator's approval")
        if password_needs_rehash(row["password_hash"]):
            rehashed = {"password_hash": hash_password(password)}
            self._db.table("accounts").update(row["id"], rehashed)
        return Account.from_row(row)

    def update_profile(self, account: Account, changes: dict[str, Any]) -> Account:
        values: dict[str, str] = {}
        for key, value in changes.items():
            if key == "display_name":
                values[key] = text_field(key, value, MAX_DISPLAY_NAME)
            elif key == "bio":
                values[key] = text_field(key, value, MAX_BIO)
            else:
                raise InvalidInput(key, "unknown field")
        if values:
            self._db.table("accounts").update(account.id, values)
        return self.get_by_id(account.id)

    def change_password(self, account: Account, current: Any, new: Any) -> None:
        """Replace the password after checking the current one (a stolen session alone
        must not be enough to lock the owner out)."""
        if not isinstance(current, str) or not current:
            raise InvalidInput("current_password", "enter your current password")
        new = validate_password_field("new_password", new)
        row = self._db.table("accounts").get(account.id)
        if not check_password(row["password_hash"], current):
            raise InvalidInput("current_password", "is not your current password")
        self._db.table("accounts").update(account.id, {"password_hash": hash_password(new)})

    def search(self, text: str, limit: int = 20) -> list[Account]:
        """Active accounts whose username or display name contains ``text`` (any case),
        exact and prefix matches of the username first."""
        needle = text.strip().lower().lstrip("@")
        if not needle:
            return []
        pattern = contains_pattern(needle)
        rows = self._db.query(
            "select * from accounts where status = 'active' and (username like :p escape '\\' "
            "or lower(display_name) like :p escape '\\') order by (username = :n) desc, "
            "(username like :start escape '\\') desc, username limit :limit",
            {"p": pattern, "n": needle, "start": pattern[1:], "limit": limit},
        )
        return [Account.from_row(row) for row in rows]

    def approve(self, username: str) -> Account:
        account = self.get(username)
        self._db.table("accounts").update(account.id, {"status": "active"})
        return self.get_by_id(account.id)

    def pending(self) -> list[Account]:
        rows = self._db.table("accounts").rows_where("status = 'pending'", order_by="created_at")
        return [Account.from_row(row) for row in rows]

    # Sessions ------------------------------------------------------------------------

    def open_session(self, account: Account, *, user_agent: str = "") -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        self._db.table("sessions").insert(
            {
                "id": secrets.token_hex(8),
                "account_id": account.id,
                "token_hash": token_hash(token),
                "user_agent": user_agent[:200],
                "created_at": now,
                "last_used_at": now,
            }
        )
        return token

    def resolve_token(self, token: str) -> tuple[Account, str]:
        """The account and session id a bearer token belongs to, or Unauthorized."""
        rows = list(
            self._db.table("sessions").rows_where("token_hash = ?", [token_hash(token)], limit=1)
        )
        if not rows:
            raise Unauthorized("unknown or revoked session")
        session = rows[0]
        account = self.get_by_id(session["account_id"])
        if account.status != "active":
            raise Unauthorized("account is not active")
        now = time.time()
        # Touch at most once a minute: a write per request would serialise the node on disk.
        if now - session["last_used_at"] > 60:
            self._db.table("sessions").update(session["id"], {"last_used_at": now})
        return account, session["id"]

    def sessions(self, account: Account) -> list[SessionInfo]:
        return [
            SessionInfo(r["id"], r["created_at"], r["last_used_at"], r["user_agent"] or "")
            for r in self._db.table("sessions").rows_where(
                "account_id = ?", [account.id], order_by="created_at"
            )
        ]

    def revoke_other_sessions(self, account: Account, keep: str | None) -> int:
        """Sign out everywhere but session ``keep``; the number of sessions revoked."""
        cursor = self._db.execute(
            "delete from sessions where account_id = ? and id is not ?", [account.id, keep]
        )
        return int(cursor.rowcount)

    def revoke_session(self, account: Account, session_id: str) -> None:
        rows = list(
            self._db.table("sessions").rows_where(
                "id = ? and account_id = ?", [session_id, account.id], limit=1
            )
        )
        if not rows:
            raise NotFound("no such session")
        self._db.table("sessions").delete(session_id)
