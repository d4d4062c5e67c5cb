"""Accounts: who they are, what makes a valid one, and how passwords and tokens are kept.

Passwords are hashed with argon2id (argon2-cffi's defaults follow RFC 9106's recommended
profile). A session token is 32 random bytes shown to the client once; only its SHA-256 is
stored, so a leaked database does not leak live sessions. Storage: node.store.accounts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from node.errors import InvalidInput

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


def text_field(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters")
    return value


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password[:MAX_PASSWORD])


def check_password(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password[:MAX_PASSWORD]))
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return bool(_hasher.check_needs_rehash(password_hash))
