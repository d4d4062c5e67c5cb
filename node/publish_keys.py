"""Publish keys: a credential that can only publish audio (WHIP), for OBS and the like.

An encoder's stream key sits in a settings file and is pasted into screens that get
shared, so it must not be a whole account session. A publish key belongs to one account,
optionally to one room, is shown once, stored as its SHA-256 only, and is revoked on its
own. It authenticates ``POST {whip_url}`` (and the ``DELETE`` of the session it opened)
and nothing else: every other endpoint answers 401 to it, as to any unknown token.
Stored by node.store.publish_keys.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

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


def key_hash(key: str) -> str:
    """What is stored of a key: its SHA-256 (the key itself is shown once)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)
