"""Accounts and their sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults follow RFC 9106's recommended
profile). A session token is 32 random bytes shown to the client once; only its SHA-256 is
stored, so a leaked database does not leak live sessions. Each account gets an RSA keypair
at creation: federation signs its activities with it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from federation.keys import generate_keypair
from node.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized

USERNAME_RE = re.compile(r"^[a-z0-9_]{1,30}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
MAX_DISPLAY_NAME = 64
MAX_BIO = 500

_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    display_name: str
    bio: str
    is_admin: bool
    status: str
    public_key_pem: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Account:
        return cls(
            id=row["id"],
            username=row["username"],
            display_name=row["display_name"] or row["username"],
            bio=row["bio"] or "",
            is_admin=bool(row["is_admin"]),
            status=row["status"],
            public_key_pem=row["public_key_pem"],
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    created_at: float
    last_used_at: float
    user_agent: str


def validate_username(username: Any) -> str:
    if not isinstance(username, str):
        raise InvalidInput("username", "must be a string")
    username = username.strip().lower()
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput("username", "1-30 characters: lowercase letters, digits, underscore")
    return username


def validate_password(password: Any) -> str:
    return validate_password_field("password", password)


def validate_password_field(field: str, password: Any) -> str:
    if not isinstance(password, str):
        raise InvalidInput(field, "must be a string")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(field, f"must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return password


def _text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters")
    return value


def like_escape(text: str) -> str:
    """``text`` with SQL LIKE's wildcards escaped (for ``escape '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
        display_name = _text("display_name", display_name or "", MAX_DISPLAY_NAME)
        if self._find_row(username) is not None:
            raise Conflict(f"the username {username} is taken", field="username")
        keys = generate_keypair()
        table = self._db.table("accounts")
        table.insert(
            {
                "username": username,
                "password_hash": _hasher.hash(password),
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
            _hasher.hash(password[:MAX_PASSWORD])
            raise Unauthorized("wrong username or password")
        try:
            _hasher.verify(row["password_hash"], password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            raise Unauthorized("wrong username or password") from None
        if row["status"] != "active":
            raise Forbidden("this account is waiting for an administrator's approval")
        if _hasher.check_needs_rehash(row["password_hash"]):
            self._db.table("accounts").update(row["id"], {"password_hash": _hasher.hash(password)})
        return Account.from_row(row)

    def update_profile(self, account: Account, changes: dict[str, Any]) -> Account:
        values: dict[str, str] = {}
        for key, value in changes.items():
            if key == "display_name":
                values[key] = _text(key, value, MAX_DISPLAY_NAME)
            elif key == "bio":
                values[key] = _text(key, value, MAX_BIO)
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
        try:
            _hasher.verify(row["password_hash"], current[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            raise InvalidInput("current_password", "is not your current password") from None
        self._db.table("accounts").update(account.id, {"password_hash": _hasher.hash(new)})

    def search(self, text: str, limit: int = 20) -> list[Account]:
        """Active accounts whose username or display name contains ``text`` (any case),
        exact and prefix matches of the username first."""
        needle = text.strip().lower().lstrip("@")
        if not needle:
            return []
        pattern = "%" + like_escape(needle) + "%"
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
                "token_hash": _token_hash(token),
                "user_agent": user_agent[:200],
                "created_at": now,
                "last_used_at": now,
            }
        )
        return token

    def resolve_token(self, token: str) -> tuple[Account, str]:
        """The account and session id a bearer token belongs to, or Unauthorized."""
        rows = list(
            self._db.table("sessions").rows_where("token_hash = ?", [_token_hash(token)], limit=1)
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
