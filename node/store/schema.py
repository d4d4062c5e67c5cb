"""Every table of the node's database: one ordered list of migrations, oldest first.

``MIGRATIONS`` is the schema's whole history. node.store.migrate applies the ones a
database has not had yet, in order, each exactly once, all in one transaction, at
start-up (and by ``python -m node migrate``); the database records which it has had
(sqlite-utils' ``_sqlite_migrations`` table). A database that records a migration this
code does not know is newer than the code: the node refuses to start on it.

Migration 1 is the schema release 0.1 created; migration 2 the publish keys added after
it; migration 3 what running a public node needs (roles, suspensions, reports, domain
blocks, server settings, personal blocks, room removals). Migrations 1 and 2 say ``if not
exists``: databases made before migrations existed (release 0.1, and main before this
list) already have some of their tables, and take the rest. Every
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
    # Running a public node (node.store.moderation, node.store.domain_blocks,
    # node.store.reports, node.store.settings, node.store.rooms): new tables only, so the
    # rows of release 0.1's tables stay as they were. ``account_standing`` holds what an
    # account's row lacks (role beyond is_admin, silence, the sign-up reason); an account
    # without a row is a user (or an admin, by is_admin) in good standing.
    Migration(
        3,
        "moderation",
        (
            """create table account_standing (
               account_id integer primary key references accounts(id),
               role text not null default 'user',
               silenced_at real, suspended_at real, deleted_at real,
               signup_reason text not null default '')""",
            """create table password_resets (
               token_hash text primary key, account_id integer not null references accounts(id),
               created_by integer references accounts(id), created_at real not null,
               expires_at real not null, used_at real)""",
            """create table domain_blocks (
               domain text primary key, severity text not null,
               public_comment text not null default '', private_note text not null default '',
               created_by integer references accounts(id), created_at real not null)""",
            """create table reports (
               id integer primary key autoincrement,
               reporter_id integer references accounts(id), reporter_actor text,
               forwarded_from text, target_kind text not null, target_account text,
               target_actor text, room_url text, room_title text not null default '',
               comment text not null default '', rule text not null default '',
               forward integer not null default 0, flag_id text,
               state text not null default 'open', action_taken text not null default '',
               resolved_by integer references accounts(id), resolved_at real,
               created_at real not null)""",
            "create index reports_state on reports (state, id)",
            "create unique index reports_flag on reports (flag_id) where flag_id is not null",
            "create table node_settings (name text primary key, value text not null)",
            """create table personal_blocks (
               account_id integer not null references accounts(id), kind text not null,
               target text not null, created_at real not null,
               primary key (account_id, kind, target))""",
            """create table room_removals (
               room_id text not null, member text not null, blocked integer not null,
               created_at real not null, primary key (room_id, member))""",
            """create table room_endings (
               room_id text primary key, by_whom text not null, node text not null,
               reason text not null default '', carried_on text not null default '[]',
               ended_at real not null)""",
        ),
    ),
    # Visitors (node.visitors, node.store.visitors): people of other fediverse servers
    # who proved their handle with a one-time code sent as a direct message. A code row
    # is also what the send limits count (per handle, server and client address), so the
    # limits hold across restarts; only SHA-256 hashes of codes and tokens are kept.
    Migration(
        4,
        "visitors",
        (
            """create table visitor_codes (
               id text primary key, handle text not null, server text not null,
               actor text not null, display_name text not null, icon text,
               client text not null, room_id text not null, code_hash text not null,
               created_at real not null, expires_at real not null,
               attempts integer not null default 0, used_at real, reported_at real)""",
            "create index visitor_codes_handle on visitor_codes (handle, created_at)",
            "create index visitor_codes_server on visitor_codes (server, created_at)",
            "create index visitor_codes_client on visitor_codes (client, created_at)",
            """create table visitor_sessions (
               id text primary key, token_hash text not null unique, handle text not null,
               user_agent text not null default '', created_at real not null,
               last_used_at real not null, expires_at real not null)""",
            "create index visitor_sessions_handle on visitor_sessions (handle)",
            """create table visitor_profiles (
               handle text primary key, actor text not null, display_name text not null,
               avatar blob, avatar_type text, updated_at real not null)""",
        ),
    ),
    # Avatars (node.avatars): the file name, under the data dir's avatars/, of the picture
    # an account uploaded (a PNG this node remade); null without one. A new upload gets a
    # new name, so its URL can be cached for good.
    Migration(5, "account avatars", ("alter table accounts add column avatar text",)),
    # Rooms people come back to (issue 12): a scheduled start, whether the room is recorded
    # (decided before it goes live), a cancelled schedule, the end-of-room summary, the
    # pinned comment or link (node.store.rooms); the recordings kept (node.store.recordings);
    # reminders asked by our users and RSVPs (Accept{Event}) of other servers' users
    # (node.store.reminders); the scheduled Event we announced (node.store.federation);
    # remote rooms' start times and Event ids (fed_remote_rooms).
    Migration(
        6,
        "rooms_schedule_recording",
        (
            # Null on rooms of before (not recorded, not cancelled): old rows stay as they
            # were, with empty new columns at the end (tests/test_store_upgrade.py).
            "alter table rooms add column starts_at real",
            "alter table rooms add column recording integer",
            "alter table rooms add column cancelled integer",
            "alter table rooms add column summary text",
            "alter table rooms add column pinned text",
            """create table recordings (
               room_id text primary key references rooms(id), file text not null,
               bytes integer not null, duration real not null, packets integer not null,
               created_at real not null, note_id text)""",
            """create table room_reminders (
               room_url text not null, account_id integer not null references accounts(id),
               event_id text, created_at real not null,
               primary key (room_url, account_id))""",
            "create index room_reminders_event on room_reminders (event_id)",
            """create table event_rsvps (
               room_id text not null, actor text not null, inbox text not null,
               activity_id text not null, created_at real not null,
               primary key (room_id, actor))""",
            """create table fed_room_events (
               room_id text primary key, event_id text not null, note_id text not null,
               actor text not null, published_at real not null, state text not null)""",
            "alter table fed_remote_rooms add column starts_at real",
            "alter table fed_remote_rooms add column event_id text",
            "create index fed_remote_rooms_event on fed_remote_rooms (event_id)",
        ),
    ),
    # Notifications of our users (node.store.notifications): one row each; ``dedupe`` keeps
    # one notification per thing (a room's start announced twice notifies once).
    Migration(
        7,
        "notifications",
        (
            """create table notifications (
               id integer primary key autoincrement,
               account_id integer not null references accounts(id), kind text not null,
               data text not null, dedupe text, created_at real not null, read_at real)""",
            "create index notifications_account on notifications (account_id, id)",
            """create unique index notifications_dedupe on notifications (account_id, dedupe)
               where dedupe is not null""",
        ),
    ),
    # The fediverse in the room (node.store.comments): replies to a room's announcements
    # (ours and other servers'), hidden by a moderator or not; likes and boosts of them.
    Migration(
        8,
        "room_comments",
        (
            """create table room_comments (
               id text primary key, room_id text not null, author text not null,
               handle text not null, name text not null, content text not null,
               url text not null, in_reply_to text not null, published real not null,
               hidden integer not null default 0, local integer not null default 0,
               created_at real not null)""",
            "create index room_comments_room on room_comments (room_id, published)",
            """create table room_engagement (
               room_id text not null, object_id text not null, actor text not null,
               kind text not null, activity_id text not null, created_at real not null,
               primary key (object_id, actor, kind))""",
            "create index room_engagement_room on room_engagement (room_id, kind)",
            "create index room_engagement_activity on room_engagement (activity_id)",
        ),
    ),
)
