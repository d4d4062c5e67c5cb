"""The node's SQLite database (sqlite-utils, WAL mode) and its schema.

One file under the data dir, created on first start. Schema changes are additive
(`create(..., if_not_exists=True)` plus columns added by `ensure_schema`), so an old data
dir keeps working after an upgrade.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

DB_FILENAME = "parley.db"


def open_database(data_dir: str | Path) -> sqlite_utils.Database:
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    # check_same_thread=False: the node runs on one event loop thread, but start-up and
    # CLI commands may open it from another thread; sqlite serialises access itself.
    conn = sqlite3.connect(path / DB_FILENAME, check_same_thread=False, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.enable_wal()
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    ensure_schema(db)
    return db


def ensure_schema(db: sqlite_utils.Database) -> None:
    from node.fediverse import ensure_federation_schema

    ensure_federation_schema(db)
    db.table("accounts").create(
        {
            "id": int,
            "username": str,
            "password_hash": str,
            "display_name": str,
            "bio": str,
            "is_admin": int,
            "status": str,  # active | pending
            "private_key_pem": str,
            "public_key_pem": str,
            "created_at": float,
        },
        pk="id",
        not_null={"username", "password_hash", "status"},
        defaults={"display_name": "", "bio": "", "is_admin": 0, "status": "active"},
        if_not_exists=True,
    )
    db.table("accounts").create_index(["username"], unique=True, if_not_exists=True)
    db.table("sessions").create(
        {
            "id": str,
            "account_id": int,
            "token_hash": str,
            "user_agent": str,
            "created_at": float,
            "last_used_at": float,
        },
        pk="id",
        foreign_keys=[("account_id", "accounts", "id")],
        if_not_exists=True,
    )
    db.table("sessions").create_index(["token_hash"], unique=True, if_not_exists=True)
    db.table("rooms").create(
        {
            "id": str,
            "host_id": int,
            "title": str,
            "description": str,
            "visibility": str,  # public | unlisted
            "state": str,  # scheduled | live | ended
            "created_at": float,
            "started_at": float,
            "ended_at": float,
        },
        pk="id",
        foreign_keys=[("host_id", "accounts", "id")],
        if_not_exists=True,
    )
    db.table("room_blocks").create(
        {"room_id": str, "account_id": int, "created_at": float},
        pk=("room_id", "account_id"),
        if_not_exists=True,
    )
    # --- issue 9: publish keys (WHIP-only credentials for OBS and other encoders). -------
    # Scoped and revocable: one account, optionally one room; only the key's SHA-256 is
    # kept (node.publish_keys). A later change turns this file into versioned migrations.
    db.table("publish_keys").create(
        {
            "id": str,
            "account_id": int,
            "key_hash": str,
            "room_id": str,  # null: any room the account may speak in
            "label": str,
            "created_at": float,
            "last_used_at": float,
        },
        pk="id",
        foreign_keys=[("account_id", "accounts", "id")],
        not_null={"account_id", "key_hash", "created_at"},
        defaults={"label": ""},
        if_not_exists=True,
    )
    db.table("publish_keys").create_index(["key_hash"], unique=True, if_not_exists=True)
