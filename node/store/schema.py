"""Every table of the node's database: one ordered list of migrations, oldest first.

``MIGRATIONS`` is the schema's whole history. node.store.migrate applies the ones a
database has not had yet, in order, each exactly once, all in one transaction, at
start-up (and by ``python -m node migrate``); the database records which it has had
(sqlite-utils' ``_sqlite_migrations`` table). A database that records a migration this
code does not know is newer than the code: the node refuses to start on it.

Migration 1 is the schema release 0.1 created; migration 2 the publish keys added after
it. Both say ``if not exists``: databases made before migrations existed (release 0.1,
and main before this list) already have some of their tables, and take the rest. Every
later migration runs exactly once on a known shape, so it says what it means
(``create table``, ``alter table ... add column``) and fails loudly otherwise.

Adding a table or a column (docs/ARCHITECTURE.md, "Where to add things"):

1. Append a ``Migration`` with the next number and a short name to ``MIGRATIONS``:
   SQL strings, or a Python step ``def step(db: sqlite_utils.Database) -> None`` for
   what SQL alone cannot do (rebuild a table with ``db[name].transform(...)``, fill a new
   column from old ones). Never edit or renumber a migration that is on main: nodes have
   already run it.
2. Write the store class in node/store/ that reads and writes it.
3. tests/test_store_upgrade.py must stay green: the release-0.1 databases upgrade to
   your schema with every row kept; check your new table or column there if it changes
   old rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils

Step = str | Callable[[sqlite_utils.Database], None]
"""One SQL statement, or a Python step given the database (inside the transaction)."""


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    steps: tuple[Step, ...]

    @property
    def key(self) -> str:
        """What the database records: ``0002_publish_keys``."""
        return f"{self.number:04d}_{self.name}"


RELEASE_0_1: tuple[str, ...] = (
    # -- accounts and their sessions (node.store.accounts)
    """create table if not exists "accounts" (
       "id" INTEGER PRIMARY KEY,
       "username" TEXT NOT NULL,
       "password_hash" TEXT NOT NULL,
       "display_name" TEXT DEFAULT '',
       "bio" TEXT DEFAULT '',
       "is_admin" INTEGER DEFAULT 0,
       "status" TEXT NOT NULL DEFAULT 'active',
       "private_key_pem" TEXT,
       "public_key_pem" TEXT,
       "created_at" REAL)""",
    """create unique index if not exists "idx_accounts_username" on "accounts" ("username")""",
    """create table if not exists "sessions" (
       "id" TEXT PRIMARY KEY,
       "account_id" INTEGER REFERENCES "accounts"("id"),
       "token_hash" TEXT,
       "user_agent" TEXT,
       "created_at" REAL,
       "last_used_at" REAL)""",
    """create unique index if not exists "idx_sessions_token_hash"
       on "sessions" ("token_hash")""",
    # -- rooms (node.store.rooms)
    """create table if not exists "rooms" (
       "id" TEXT PRIMARY KEY,
       "host_id" INTEGER REFERENCES "accounts"("id"),
       "title" TEXT,
       "description" TEXT,
       "visibility" TEXT,
       "state" TEXT,
       "created_at" REAL,
       "started_at" REAL,
       "ended_at" REAL)""",
    """create table if not exists "room_blocks" (
       "room_id" TEXT,
       "account_id" INTEGER,
       "created_at" REAL,
       PRIMARY KEY ("room_id", "account_id"))""",
    # -- federation (node.store.federation, node.store.actors)
    "create table if not exists fed_instance (name text primary key, value text not null)",
    """create table if not exists fed_followers (
       local_actor text not null, remote_actor text not null, follow_id text not null,
       state text not null, created_at real not null,
       primary key (local_actor, remote_actor))""",
    "create index if not exists fed_followers_remote on fed_followers (remote_actor)",
    """create table if not exists fed_following (
       local_actor text not null, remote_actor text not null, follow_id text not null,
       state text not null, created_at real not null,
       primary key (local_actor, remote_actor))""",
    "create index if not exists fed_following_remote on fed_following (remote_actor)",
    "create index if not exists fed_following_follow on fed_following (follow_id)",
    """create table if not exists fed_actors (
       id text primary key, key_id text not null, inbox text not null,
       preferred_username text not null, doc text not null, fetched_at real not null)""",
    "create index if not exists fed_actors_key on fed_actors (key_id)",
    "create index if not exists fed_actors_inbox on fed_actors (inbox)",
    """create table if not exists fed_inbox (
       id integer primary key autoincrement, activity_id text not null unique,
       payload text not null, state text not null default 'pending', error text,
       receipts integer not null default 1, received_at real not null,
       processed_at real)""",
    "create index if not exists fed_inbox_state on fed_inbox (state, id)",
    """create table if not exists fed_deliveries (
       id integer primary key autoincrement, activity_json text not null,
       inbox_url text not null, signing_actor text not null,
       state text not null default 'queued', tries integer not null default 0,
       next_try real not null, last_error text, created_at real not null,
       updated_at real not null)""",
    "create index if not exists fed_deliveries_due on fed_deliveries (state, next_try)",
    """create table if not exists fed_outbox (
       id integer primary key autoincrement, activity_id text not null unique,
       actor text not null, activity text not null, published_at real not null)""",
    "create index if not exists fed_outbox_actor on fed_outbox (actor, id)",
    """create table if not exists fed_remote_rooms (
       id text primary key, url text not null, state text not null, title text not null,
       host text not null, note_id text not null, listen_url text, whep_url text,
       speakers text not null, updated_at real not null)""",
    "create index if not exists fed_remote_rooms_note on fed_remote_rooms (note_id)",
    """create table if not exists fed_room_notes (
       room_id text primary key, note_id text not null, actor text not null,
       published_at real not null, state text not null)""",
    # -- rooms carried across nodes (node.store.relaying)
    """create table if not exists relay_rooms (
       id text primary key, origin text not null, upstream text not null,
       epoch integer not null, succession text not null, room text not null,
       promoted integer not null default 0, updated_at real not null)""",
    "create index if not exists relay_rooms_origin on relay_rooms (origin)",
    """create table if not exists relay_origin_rooms (
       id text primary key, epoch integer not null, succession text not null,
       updated_at real not null)""",
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "release_0_1", RELEASE_0_1),
    # Publish keys: WHIP-only credentials for OBS (node.store.publish_keys); only the key's
    # SHA-256 is kept; room_id null means any room the account may speak in.
    Migration(
        2,
        "publish_keys",
        (
            """create table if not exists publish_keys (
               id text primary key, account_id integer not null references accounts(id),
               key_hash text not null, room_id text, label text default '',
               created_at real not null, last_used_at real)""",
            """create unique index if not exists idx_publish_keys_key_hash
               on publish_keys (key_hash)""",
        ),
    ),
)
