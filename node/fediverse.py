"""The node's side of federation: SQLite implementations of every federation port, the
room announcer, and ``Fediverse``, which the app factory wires in.

Tables (all created by ``ensure_federation_schema``, additive like the rest of the schema):

- ``fed_instance``      the instance actor's keypair (created on first start)
- ``fed_followers``     remote actors following our accounts
- ``fed_following``     remote actors our accounts follow (pending / accepted)
- ``fed_actors``        cache of remote actor documents, by id and key id
- ``fed_inbox``         verified incoming activities: pending -> processing -> done | failed;
                        ``receipts`` counts how often the same id arrived (redeliveries)
- ``fed_deliveries``    one row per (activity, inbox): queued -> delivered | dead, with
                        ``tries`` and ``next_try`` (a claim leases the row for a while, so a
                        crash mid-send retries it rather than losing it)
- ``fed_outbox``        what our actors published, for their outbox collections
- ``fed_remote_rooms``  rooms other nodes announced to us (an ended room never comes back)
- ``fed_room_notes``    the Note each of our live rooms was announced with

Room announcements: a public room going live is a ``Create{Note}`` from its host to the
host's followers; title or speaker changes while live are an ``Update`` (debounced: at most
one per ``UPDATE_DEBOUNCE_S`` per room); the end is an ``Update`` with ``roomState: ended``.
Rooms that were live when the node died are announced as ended on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import sqlite_utils
from starlette.requests import Request
from starlette.routing import BaseRoute

from federation.activities import (
    RemoteRoom,
    RoomAnnouncement,
    build_create,
    build_follow,
    build_room_note,
    build_undo,
    build_update,
)
from federation.activities import RoomState as AnnouncedState
from federation.actors import ActorUrls, RemoteActor, parse_acct, parse_webfinger
from federation.client import ActorResolver, FederationClient, domain_is_blocked
from federation.delivery import DeliveryWorker
from federation.errors import (
    ActivityParseError,
    BlockedDomain,
    FederationError,
    PrivateAddress,
    RemoteFetchError,
)
from federation.inbox import InboxContext, InboxWorker
from federation.keys import generate_keypair
from federation.outbox import OutboxPublisher
from federation.ports import (
    DeliveryAttempt,
    FollowState,
    LocalAccount,
    NodeUsage,
    StoredActivity,
)
from federation.routes import FederationSite, build_routes
from node.accounts import Account, AccountDirectory
from node.config import Config
from node.errors import Forbidden, InvalidInput, NotFound
from node.local_follows import LocalFollows
from node.relay import RelayService
from node.rooms import Room, RoomState, Visibility, room_from_row
from node.stage import Stage

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.5
# A claimed delivery is due again after this long unless the worker records an outcome:
# a node killed mid-send retries the row after a restart instead of losing it.
CLAIM_LEASE = dt.timedelta(minutes=2)
UPDATE_DEBOUNCE_S = 3.0
UPDATE_COALESCE_S = 0.5


def _now() -> float:
    return time.time()


def _ts(moment: dt.datetime) -> float:
    return moment.timestamp()


def ensure_federation_schema(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        create table if not exists fed_instance (name text primary key, value text not null);
        create table if not exists fed_followers (
            local_actor text not null, remote_actor text not null, follow_id text not null,
            state text not null, created_at real not null,
            primary key (local_actor, remote_actor));
        create index if not exists fed_followers_remote on fed_followers (remote_actor);
        create table if not exists fed_following (
            local_actor text not null, remote_actor text not null, follow_id text not null,
            state text not null, created_at real not null,
            primary key (local_actor, remote_actor));
        create index if not exists fed_following_remote on fed_following (remote_actor);
        create index if not exists fed_following_follow on fed_following (follow_id);
        create table if not exists fed_actors (
            id text primary key, key_id text not null, inbox text not null,
            preferred_username text not null, doc text not null, fetched_at real not null);
        create index if not exists fed_actors_key on fed_actors (key_id);
        create index if not exists fed_actors_inbox on fed_actors (inbox);
        create table if not exists fed_inbox (
            id integer primary key autoincrement, activity_id text not null unique,
            payload text not null, state text not null default 'pending', error text,
            receipts integer not null default 1, received_at real not null,
            processed_at real);
        create index if not exists fed_inbox_state on fed_inbox (state, id);
        create table if not exists fed_deliveries (
            id integer primary key autoincrement, activity_json text not null,
            inbox_url text not null, signing_actor text not null,
            state text not null default 'queued', tries integer not null default 0,
            next_try real not null, last_error text, created_at real not null,
            updated_at real not null);
        create index if not exists fed_deliveries_due on fed_deliveries (state, next_try);
        create table if not exists fed_outbox (
            id integer primary key autoincrement, activity_id text not null unique,
            actor text not null, activity text not null, published_at real not null);
        create index if not exists fed_outbox_actor on fed_outbox (actor, id);
        create table if not exists fed_remote_rooms (
            id text primary key, url text not null, state text not null, title text not null,
            host text not null, note_id text not null, listen_url text, whep_url text,
            speakers text not null, updated_at real not null);
        create index if not exists fed_remote_rooms_note on fed_remote_rooms (note_id);
        create table if not exists fed_room_notes (
            room_id text primary key, note_id text not null, actor text not null,
            published_at real not null, state text not null);
        """
    )


# --------------------------------------------------------------------------- stores


class Wakeable:
    """An asyncio.Event a worker loop sleeps on; stores set it when they add work."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.event.set()


class SqliteFollows:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def _upsert(self, table: str, local: str, remote: str, follow_id: str, state: str) -> None:
        self._db.execute(
            f"insert into {table} (local_actor, remote_actor, follow_id, state, created_at) "
            "values (?, ?, ?, ?, ?) on conflict (local_actor, remote_actor) do update set "
            "follow_id = excluded.follow_id, state = excluded.state",
            [local, remote, follow_id, state, _now()],
        )

    def _delete(self, table: str, local: str, remote: str) -> bool:
        cursor = self._db.execute(
            f"delete from {table} where local_actor = ? and remote_actor = ?", [local, remote]
        )
        return cursor.rowcount > 0

    async def add_follower(
        self, local_actor: str, remote_actor: str, follow_id: str, state: FollowState
    ) -> None:
        self._upsert("fed_followers", local_actor, remote_actor, follow_id, state.value)

    async def remove_follower(self, local_actor: str, remote_actor: str) -> bool:
        return self._delete("fed_followers", local_actor, remote_actor)

    async def followers(self, local_actor: str) -> list[str]:
        rows = self._db.execute(
            "select remote_actor from fed_followers where local_actor = ? and state = ? "
            "order by created_at, remote_actor",
            [local_actor, FollowState.ACCEPTED.value],
        ).fetchall()
        return [r[0] for r in rows]

    async def add_following(
        self, local_actor: str, remote_actor: str, follow_id: str, state: FollowState
    ) -> None:
        self._upsert("fed_following", local_actor, remote_actor, follow_id, state.value)

    async def set_following_state(
        self, local_actor: str, remote_actor: str, state: FollowState
    ) -> bool:
        cursor = self._db.execute(
            "update fed_following set state = ? where local_actor = ? and remote_actor = ?",
            [state.value, local_actor, remote_actor],
        )
        return cursor.rowcount > 0

    async def remove_following(self, local_actor: str, remote_actor: str) -> bool:
        return self._delete("fed_following", local_actor, remote_actor)

    async def find_following(self, follow_id: str) -> tuple[str, str] | None:
        row = self._db.execute(
            "select local_actor, remote_actor from fed_following where follow_id = ?",
            [follow_id],
        ).fetchone()
        return None if row is None else (row[0], row[1])

    async def following(self, local_actor: str) -> list[str]:
        rows = self._db.execute(
            "select remote_actor from fed_following where local_actor = ? "
            "order by created_at, remote_actor",
            [local_actor],
        ).fetchall()
        return [r[0] for r in rows]

    async def remove_actor(self, remote_actor: str) -> int:
        count = 0
        for table in ("fed_followers", "fed_following"):
            cursor = self._db.execute(
                f"delete from {table} where remote_actor = ?", [remote_actor]
            )
            count += cursor.rowcount
        return count

    def rows(self, table: str, local_actor: str) -> list[dict[str, Any]]:
        """Follow rows with the cached actor's username, for the JSON API."""
        cursor = self._db.execute(
            f"select f.remote_actor, f.state, a.preferred_username from {table} f "
            "left join fed_actors a on a.id = f.remote_actor where f.local_actor = ? "
            "order by f.created_at, f.remote_actor",
            [local_actor],
        )
        return [
            {"actor": r[0], "state": r[1], "preferred_username": r[2]} for r in cursor.fetchall()
        ]

    def follow_row(self, local_actor: str, remote_actor: str) -> tuple[str, str] | None:
        row = self._db.execute(
            "select follow_id, state from fed_following where local_actor = ? and "
            "remote_actor = ?",
            [local_actor, remote_actor],
        ).fetchone()
        return None if row is None else (row[0], row[1])


class SqliteInbox:
    def __init__(self, db: sqlite_utils.Database, wake: Wakeable) -> None:
        self._db = db
        self._wake = wake
        # A node killed while processing leaves rows 'processing'; they are work to redo.
        db.execute("update fed_inbox set state = 'pending' where state = 'processing'")

    async def store(self, activity_id: str, payload: Mapping[str, Any]) -> bool:
        try:
            self._db.execute(
                "insert into fed_inbox (activity_id, payload, received_at) values (?, ?, ?)",
                [activity_id, json.dumps(payload), _now()],
            )
        except sqlite3.IntegrityError:
            self._db.execute(
                "update fed_inbox set receipts = receipts + 1 where activity_id = ?",
                [activity_id],
            )
            return False
        self._wake.wake()
        return True

    async def claim_next(self) -> StoredActivity | None:
        row = self._db.execute(
            "select id, activity_id, payload from fed_inbox where state = 'pending' "
            "order by id limit 1"
        ).fetchone()
        if row is None:
            return None
        self._db.execute("update fed_inbox set state = 'processing' where id = ?", [row[0]])
        return StoredActivity(row[0], row[1], json.loads(row[2]))

    async def mark_processed(self, row_id: int) -> None:
        self._db.execute(
            "update fed_inbox set state = 'done', processed_at = ? where id = ?", [_now(), row_id]
        )

    async def mark_failed(self, row_id: int, reason: str) -> None:
        self._db.execute(
            "update fed_inbox set state = 'failed', error = ?, processed_at = ? where id = ?",
            [reason[:500], _now(), row_id],
        )


class SqliteDeliveries:
    def __init__(self, db: sqlite_utils.Database, wake: Wakeable) -> None:
        self._db = db
        self._wake = wake

    async def enqueue(self, activity_json: str, inbox_url: str, signing_actor: str) -> None:
        now = _now()
        self._db.execute(
            "insert into fed_deliveries (activity_json, inbox_url, signing_actor, next_try, "
            "created_at, updated_at) values (?, ?, ?, ?, ?, ?)",
            [activity_json, inbox_url, signing_actor, now, now, now],
        )
        self._wake.wake()

    async def claim_due(self, now: dt.datetime, limit: int) -> list[DeliveryAttempt]:
        rows = self._db.execute(
            "select id, activity_json, inbox_url, signing_actor, tries from fed_deliveries "
            "where state = 'queued' and next_try <= ? order by next_try, id limit ?",
            [_ts(now), limit],
        ).fetchall()
        if rows:
            lease = _ts(now + CLAIM_LEASE)
            marks = ",".join("?" * len(rows))
            self._db.execute(
                f"update fed_deliveries set next_try = ? where id in ({marks})",
                [lease, *[r[0] for r in rows]],
            )
        return [DeliveryAttempt(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def _finish(self, row_id: int, state: str, error: str | None) -> None:
        self._db.execute(
            "update fed_deliveries set state = ?, tries = tries + 1, last_error = ?, "
            "updated_at = ? where id = ?",
            [state, error, _now(), row_id],
        )

    async def mark_delivered(self, row_id: int) -> None:
        self._finish(row_id, "delivered", None)

    async def mark_retry(self, row_id: int, next_try: dt.datetime, error: str) -> None:
        self._db.execute(
            "update fed_deliveries set tries = tries + 1, next_try = ?, last_error = ?, "
            "updated_at = ? where id = ?",
            [_ts(next_try), error[:500], _now(), row_id],
        )

    async def postpone(self, row_id: int, next_try: dt.datetime) -> None:
        self._db.execute(
            "update fed_deliveries set next_try = ?, updated_at = ? where id = ?",
            [_ts(next_try), _now(), row_id],
        )

    async def mark_dead(self, row_id: int, reason: str) -> None:
        self._finish(row_id, "dead", reason[:500])

    def counts(self) -> dict[str, int]:
        rows = self._db.execute(
            "select state, count(*) from fed_deliveries group by state"
        ).fetchall()
        return {r[0]: r[1] for r in rows}


class SqliteActorCache:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    @staticmethod
    def _load(row: Any) -> RemoteActor | None:
        return None if row is None else RemoteActor(**json.loads(row[0]))

    async def get(self, actor_id: str) -> RemoteActor | None:
        row = self._db.execute("select doc from fed_actors where id = ?", [actor_id]).fetchone()
        return self._load(row)

    async def get_by_key_id(self, key_id: str) -> RemoteActor | None:
        row = self._db.execute(
            "select doc from fed_actors where key_id = ? order by fetched_at desc limit 1",
            [key_id],
        ).fetchone()
        return self._load(row)

    async def put(self, actor: RemoteActor) -> None:
        self._db.execute(
            "insert into fed_actors (id, key_id, inbox, preferred_username, doc, fetched_at) "
            "values (?, ?, ?, ?, ?, ?) on conflict (id) do update set key_id = excluded.key_id, "
            "inbox = excluded.inbox, preferred_username = excluded.preferred_username, "
            "doc = excluded.doc, fetched_at = excluded.fetched_at",
            [
                actor.id,
                actor.public_key_id,
                actor.inbox,
                actor.preferred_username,
                json.dumps(dataclasses.asdict(actor)),
                _now(),
            ],
        )

    async def remove(self, actor_id: str) -> None:
        self._db.execute("delete from fed_actors where id = ?", [actor_id])

    def actors_with_inbox(self, inbox: str) -> list[str]:
        rows = self._db.execute("select id from fed_actors where inbox = ?", [inbox]).fetchall()
        return [r[0] for r in rows]


class SqliteRoomDirectory:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    async def upsert(self, room: RemoteRoom) -> None:
        # Deliveries can arrive out of order (a retried Create after the ending Update):
        # a room's life cycle only moves forward, so an ended room is never revived.
        self._db.execute(
            "insert into fed_remote_rooms (id, url, state, title, host, note_id, listen_url, "
            "whep_url, speakers, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict (id) do update set url = excluded.url, state = excluded.state, "
            "title = excluded.title, note_id = excluded.note_id, "
            "listen_url = excluded.listen_url, whep_url = excluded.whep_url, "
            "speakers = excluded.speakers, updated_at = excluded.updated_at "
            "where fed_remote_rooms.state != 'ended' and fed_remote_rooms.host = excluded.host",
            [
                room.id,
                room.url,
                room.state.value,
                room.title,
                room.host,
                room.note_id,
                room.listen_url,
                room.whep_url,
                json.dumps(list(room.speakers)),
                _now(),
            ],
        )

    async def end(self, room_id: str) -> bool:
        cursor = self._db.execute(
            "update fed_remote_rooms set state = 'ended', updated_at = ? where id = ?",
            [_now(), room_id],
        )
        if cursor.rowcount > 0:
            return True
        # The end overtook the Create (a retried delivery): keep a tombstone so the late
        # Create cannot list a room that is over.
        self._db.execute(
            "insert or ignore into fed_remote_rooms (id, url, state, title, host, note_id, "
            "speakers, updated_at) values (?, ?, 'ended', '', '', '', '[]', ?)",
            [room_id, room_id, _now()],
        )
        return False

    async def end_by_note(self, note_id: str) -> bool:
        cursor = self._db.execute(
            "update fed_remote_rooms set state = 'ended', updated_at = ? where note_id = ?",
            [_now(), note_id],
        )
        return cursor.rowcount > 0

    async def list_rooms(self) -> list[RemoteRoom]:
        rows = self._db.execute(
            "select id, url, state, title, host, note_id, listen_url, whep_url, speakers "
            "from fed_remote_rooms where state != 'ended' order by updated_at desc"
        ).fetchall()
        return [
            RemoteRoom(
                id=r[0],
                url=r[1],
                state=AnnouncedState(r[2]),
                title=r[3],
                host=r[4],
                note_id=r[5],
                listen_url=r[6],
                whep_url=r[7],
                speakers=tuple(json.loads(r[8])),
            )
            for r in rows
        ]

    def followed_live_rooms(self) -> list[dict[str, Any]]:
        """Live rooms whose host one of our accounts follows, with the host's cached actor."""
        rows = self._db.execute(
            "select r.id, r.url, r.state, r.title, r.host, r.listen_url, r.whep_url, "
            "r.speakers, a.doc from fed_remote_rooms r left join fed_actors a on a.id = r.host "
            "where r.state = 'live' and exists (select 1 from fed_following f "
            "where f.remote_actor = r.host) order by r.updated_at desc"
        ).fetchall()
        return [
            {
                "id": r[0],
                "url": r[1],
                "state": r[2],
                "title": r[3],
                "host": r[4],
                "listen_url": r[5],
                "whep_url": r[6],
                "speakers": json.loads(r[7]),
                "host_doc": json.loads(r[8]) if r[8] else None,
            }
            for r in rows
        ]


class SqliteOutbox:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    async def add(self, actor: str, activity: Mapping[str, Any]) -> None:
        self._db.execute(
            "insert or ignore into fed_outbox (activity_id, actor, activity, published_at) "
            "values (?, ?, ?, ?)",
            [str(activity.get("id")), actor, json.dumps(activity), _now()],
        )

    async def count(self, actor: str) -> int:
        row = self._db.execute("select count(*) from fed_outbox where actor = ?", [actor])
        return int(row.fetchone()[0])

    async def page(self, actor: str, offset: int, limit: int) -> list[Mapping[str, Any]]:
        rows = self._db.execute(
            "select activity from fed_outbox where actor = ? order by id desc limit ? offset ?",
            [actor, limit, offset],
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    async def latest_object(self, object_id: str) -> Mapping[str, Any] | None:
        row = self._db.execute(
            "select json_extract(activity, '$.object') from fed_outbox "
            "where json_extract(activity, '$.object.id') = ? order by id desc limit 1",
            [object_id],
        ).fetchone()
        return json.loads(row[0]) if row else None


class NodeActors:
    """LocalActors and KeyStore over the accounts table and the instance keypair."""

    def __init__(
        self, db: sqlite_utils.Database, accounts: AccountDirectory, config: Config
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._config = config
        self.base_url = config.node.base_url.rstrip("/")
        self.instance = ActorUrls.for_instance(self.base_url)

    def ensure_instance_key(self) -> None:
        if self._instance_value("private_pem") is None:
            keys = generate_keypair()
            self._db.execute(
                "insert or ignore into fed_instance (name, value) values (?, ?), (?, ?)",
                ["private_pem", keys.private_pem, "public_pem", keys.public_pem],
            )

    def _instance_value(self, name: str) -> str | None:
        row = self._db.execute("select value from fed_instance where name = ?", [name]).fetchone()
        return None if row is None else str(row[0])

    def instance_key(self) -> tuple[str, str]:
        pem = self._instance_value("private_pem")
        if pem is None:
            raise RuntimeError("instance key not created yet (Fediverse.start)")
        return self.instance.key_id, pem

    def username_of(self, actor_id: str) -> str | None:
        prefix = f"{self.base_url}/users/"
        if not actor_id.startswith(prefix):
            return None
        username = actor_id[len(prefix) :]
        return username if username and "/" not in username else None

    def _active(self, username: str) -> Account | None:
        try:
            account = self._accounts.get(username)
        except NotFound:
            return None
        return account if account.status == "active" else None

    async def account(self, username: str) -> LocalAccount | None:
        account = self._active(username)
        if account is None:
            return None
        return LocalAccount(
            account.username, account.display_name, account.bio, account.public_key_pem
        )

    async def instance_public_key(self) -> str:
        return self._instance_value("public_pem") or ""

    async def usage(self) -> NodeUsage:
        now = _now()

        def active_since(seconds: float) -> int:
            row = self._db.execute(
                "select count(distinct account_id) from sessions where last_used_at > ?",
                [now - seconds],
            ).fetchone()
            return int(row[0])

        posts = self._db.execute("select count(*) from fed_room_notes").fetchone()
        return NodeUsage(
            users_total=self._accounts.count(),
            users_active_month=active_since(30 * 86400),
            users_active_halfyear=active_since(182 * 86400),
            local_posts=int(posts[0]),
            open_registrations=self._config.accounts.registration == "open",
        )

    async def local_actor_key(self, actor_id: str) -> tuple[str, str] | None:
        if actor_id == self.instance.id:
            pem = self._instance_value("private_pem")
            return None if pem is None else (self.instance.key_id, pem)
        username = self.username_of(actor_id)
        if username is None:
            return None
        account = self._active(username)
        if account is None:
            return None
        return f"{actor_id}#main-key", self._accounts.private_key_pem(account.id)


# --------------------------------------------------------------------------- rooms


@dataclass
class _Announced:
    note_id: str
    published: dt.datetime
    title: str = ""
    speakers: tuple[str, ...] = ()
    last_sent: float = 0.0
    pending: asyncio.Task[None] | None = None


class RoomAnnouncer:
    """Turns our public rooms' life cycle into Create/Update{Note} for the host's followers."""

    def __init__(self, fediverse: Fediverse, db: sqlite_utils.Database) -> None:
        self._fed = fediverse
        self._db = db
        self._base = fediverse.base_url
        self._rooms: dict[str, _Announced] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, room: Room) -> None:
        room.subscribe(lambda event: self._on_event(room, event))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_event(self, room: Room, event: Mapping[str, Any]) -> None:
        if room.visibility is not Visibility.PUBLIC or event.get("type") not in ("room", "member"):
            return
        known = self._rooms.get(room.id)
        if room.state is RoomState.LIVE and known is None:
            self._rooms[room.id] = _Announced(
                note_id=f"{self._base}/users/{room.host}/rooms/{room.id}",
                published=dt.datetime.now(dt.UTC),
                last_sent=time.monotonic(),
            )
            self._spawn(self._announce(room, "Create"))
        elif room.state is RoomState.ENDED and known is not None:
            if known.pending is not None:
                known.pending.cancel()
            self._spawn(self._announce(room, "End"))
        elif room.state is RoomState.LIVE and known is not None and known.pending is None:
            since = time.monotonic() - known.last_sent
            delay = max(UPDATE_COALESCE_S, UPDATE_DEBOUNCE_S - since)
            known.pending = self._spawn(self._debounced_update(room, delay))

    async def _debounced_update(self, room: Room, delay: float) -> None:
        await asyncio.sleep(delay)
        known = self._rooms.get(room.id)
        if known is None:
            return
        known.pending = None
        if room.state is RoomState.LIVE and (
            room.title != known.title or self._speakers(room) != known.speakers
        ):
            await self._announce(room, "Update")

    def _speakers(self, room: Room) -> tuple[str, ...]:
        return tuple(f"{self._base}/users/{m.username}" for m in room.stage)

    def _note(self, room: Room, known: _Announced, updated: dt.datetime | None) -> dict[str, Any]:
        urls = ActorUrls.for_user(self._base, room.host)
        room_urls = self._fed.stage.room_json(room)
        ended = room.state is RoomState.ENDED
        announcement = RoomAnnouncement(
            id=f"{self._base}/rooms/{room.id}",
            url=str(room_urls.get("url", f"{self._base}/rooms/{room.id}")),
            state=AnnouncedState(room.state.value),
            title=room.title,
            description=room.description,
            host=urls.id,
            listen_url=None if ended else room_urls.get("listen_url"),
            whep_url=None if ended else room_urls.get("whep_url"),
            speakers=() if ended else self._speakers(room),
        )
        return build_room_note(
            announcement,
            note_id=known.note_id,
            host_name=room.host_display_name,
            followers_url=urls.followers,
            published=known.published,
            base_url=self._base,
            updated=updated,
        )

    async def _announce(self, room: Room, kind: str) -> None:
        async with self._lock:
            known = self._rooms.get(room.id)
            publisher = self._fed.publisher
            if known is None or publisher is None:
                return
            actor = f"{self._base}/users/{room.host}"
            activity_id = f"{actor}/activities/{uuid.uuid4()}"
            try:
                if kind == "Create":
                    note = self._note(room, known, None)
                    activity = build_create(activity_id, actor, note)
                    self._db.execute(
                        "insert or replace into fed_room_notes (room_id, note_id, actor, "
                        "published_at, state) values (?, ?, ?, ?, 'live')",
                        [room.id, known.note_id, actor, _ts(known.published)],
                    )
                else:
                    note = self._note(room, known, dt.datetime.now(dt.UTC))
                    activity = build_update(activity_id, actor, note)
                known.title = room.title
                known.speakers = self._speakers(room)
                known.last_sent = time.monotonic()
                await publisher.publish(actor, activity)
                if kind == "End":
                    self._db.execute(
                        "update fed_room_notes set state = 'ended' where room_id = ?", [room.id]
                    )
                    self._rooms.pop(room.id, None)
            except Exception:
                log.exception("announcing room %s (%s) failed", room.id, kind)

    async def recover(self) -> None:
        """Rooms that were live when the node stopped ended at start-up: say so."""
        rows = self._db.execute(
            "select room_id, note_id, published_at from fed_room_notes where state = 'live'"
        ).fetchall()
        for room_id, note_id, published in rows:
            found = self._fed.stage.store.rows("rooms.id = ?", [room_id])
            if not found:
                self._db.execute("delete from fed_room_notes where room_id = ?", [room_id])
                continue
            room = room_from_row(found[0], max_speakers=1, blocked=set())
            if room.state is not RoomState.ENDED:
                continue
            self._rooms[room_id] = _Announced(
                note_id=note_id, published=dt.datetime.fromtimestamp(published, dt.UTC)
            )
            await self._announce(room, "End")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# --------------------------------------------------------------------------- Fediverse


def _site_of(request: Request) -> FederationSite | None:
    fediverse: Fediverse | None = getattr(request.app.state, "fediverse", None)
    return None if fediverse is None else fediverse.site


def fediverse_routes() -> list[BaseRoute]:
    """Every federation route; handlers find the Fediverse on ``request.app.state``, so
    the list can be built before the database is open."""
    from node.web import follows

    return [*build_routes(_site_of), *follows.routes]


def _software_version() -> str:
    try:
        return importlib.metadata.version("parley")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


class Fediverse:
    def __init__(
        self,
        config: Config,
        db: sqlite_utils.Database,
        accounts: AccountDirectory,
        stage: Stage,
        relay: RelayService | None = None,
    ) -> None:
        ensure_federation_schema(db)
        self.relay = relay
        if relay is not None:
            relay.fediverse = self
        self.config = config
        self.stage = stage
        self.base_url = config.node.base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc.lower()
        self.blocked_domains = frozenset(d.lower() for d in config.federation.blocked_domains)
        self._inbox_wake = Wakeable()
        self._delivery_wake = Wakeable()
        self.follows = SqliteFollows(db)
        self.inbox = SqliteInbox(db, self._inbox_wake)
        self.deliveries = SqliteDeliveries(db, self._delivery_wake)
        self.actor_cache = SqliteActorCache(db)
        self.remote_room_directory = SqliteRoomDirectory(db)
        self.outbox = SqliteOutbox(db)
        self.actors = NodeActors(db, accounts, config)
        self.accounts = accounts
        self.site: FederationSite | None = None
        self.publisher: OutboxPublisher | None = None
        self.client: FederationClient | None = None
        self.resolver: ActorResolver | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.announcer = RoomAnnouncer(self, db)
        stage.on_room(self.announcer.watch)
        for on_air in list(stage.rooms_on_air.values()):
            self.announcer.watch(on_air.room)

    @property
    def routes(self) -> list[BaseRoute]:
        return fediverse_routes()

    async def start(self) -> None:
        self.actors.ensure_instance_key()
        key_id, pem = self.actors.instance_key()
        self.client = FederationClient(
            user_agent=f"Parley/{_software_version()} (+{self.base_url}/)",
            blocked_domains=self.blocked_domains,
            allow_private_addresses=self.config.federation.allow_private_addresses,
        )
        self.resolver = ActorResolver(
            self.client, self.actor_cache, signing_key_id=key_id, signing_private_pem=pem
        )
        self.publisher = OutboxPublisher(
            self.follows,
            self.resolver,
            self.deliveries,
            self.outbox,
            blocked_domains=self.blocked_domains,
            is_local_actor=LocalFollows(self.follows, self.accounts, self.base_url).is_local_actor,
        )
        context = InboxContext(
            follows=self.follows,
            deliveries=self.deliveries,
            keys=self.actors,
            rooms=self.remote_room_directory,
            actors=self.actor_cache,
            resolver=self.resolver,
            room_actions=self.relay,
        )
        inbox_worker = InboxWorker(self.inbox, context)
        delivery_worker = DeliveryWorker(
            self.deliveries, self.actors, self.client, on_gone=self._inbox_gone
        )
        self.site = FederationSite(
            base_url=self.base_url,
            actors=self.actors,
            follows=self.follows,
            outbox=self.outbox,
            inbox=self.inbox,
            resolver=self.resolver,
            authorized_fetch=self.config.federation.authorized_fetch,
            blocked_domains=self.blocked_domains,
            software_version=_software_version(),
            on_stored=self._inbox_wake.wake,
        )
        self._tasks = [
            asyncio.create_task(self._loop(inbox_worker.run_once, self._inbox_wake), name="inbox"),
            asyncio.create_task(
                self._loop(delivery_worker.run_once, self._delivery_wake), name="delivery"
            ),
        ]
        await self.announcer.recover()

    async def _loop(self, step: Any, wake: Wakeable) -> None:
        while True:
            wake.event.clear()
            try:
                busy = bool(await step())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("federation worker step failed")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.event.wait(), IDLE_WAIT_S)

    async def _inbox_gone(self, inbox_url: str) -> None:
        for actor in self.actor_cache.actors_with_inbox(inbox_url):
            removed = await self.follows.remove_actor(actor)
            log.info("inbox %s is gone: dropped %d follows of %s", inbox_url, removed, actor)

    async def stop(self) -> None:
        await self.announcer.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.client is not None:
            await self.client.aclose()

    # ------------------------------------------------------------------ listing

    def remote_rooms(self) -> list[dict[str, Any]]:
        """Live rooms announced by accounts our users follow, shaped like local rooms."""
        result = []
        for row in self.remote_room_directory.followed_live_rooms():
            doc = row["host_doc"] or {}
            origin = urlsplit(row["url"]).netloc
            username = doc.get("preferred_username") or row["host"].rsplit("/", 1)[-1]
            result.append(
                {
                    "id": row["id"],
                    "title": row["title"],
                    "description": "",
                    "visibility": "public",
                    "state": row["state"],
                    "url": row["url"],
                    # Where this node's client opens it: our relayed copy (node.relay).
                    "local_url": f"{self.base_url}/rooms/remote?origin="
                    + quote(row["url"], safe=""),
                    "origin": origin,
                    "remote": True,
                    "host": {
                        "username": username,
                        "display_name": doc.get("name") or username,
                        "handle": f"{username}@{urlsplit(row['host']).netloc}",
                        "actor": row["host"],
                    },
                    "speakers": [{"actor": s} for s in row["speakers"]],
                    "listen_url": row["listen_url"],
                    "whep_url": row["whep_url"],
                }
            )
        return result

    # ------------------------------------------------------------------ follows (JSON API)

    def actor_id(self, username: str) -> str:
        return ActorUrls.for_user(self.base_url, username).id

    def _ready(self) -> tuple[FederationClient, ActorResolver, OutboxPublisher]:
        if self.client is None or self.resolver is None or self.publisher is None:
            raise RuntimeError("Fediverse.start() has not run")
        return self.client, self.resolver, self.publisher

    async def _webfinger(self, user: str, host: str) -> str:
        client, _, _ = self._ready()
        key_id, pem = self.actors.instance_key()
        resource = quote(f"acct:{user}@{host}", safe=":@")
        # https first; plain http only where private addresses are allowed (tests, LANs).
        schemes = (
            ["https", "http"] if self.config.federation.allow_private_addresses else ["https"]
        )
        last: FederationError | None = None
        for scheme in schemes:
            url = f"{scheme}://{host}/.well-known/webfinger?resource={resource}"
            try:
                jrd = await client.get_json(url, key_id=key_id, private_pem=pem)
            except RemoteFetchError as exc:
                last = exc
                if exc.status is not None:
                    break
                continue
            if not isinstance(jrd, Mapping):
                raise ActivityParseError("WebFinger answer is not an object", None)
            return parse_webfinger(jrd)
        assert last is not None
        raise last

    async def resolve_handle(self, handle: Any) -> RemoteActor:
        """``alice@host``, ``@alice@host`` or an actor URL -> the remote actor (fetched)."""
        if not isinstance(handle, str) or not handle.strip():
            raise InvalidInput("handle", "must be a handle like alice@example.org")
        text = handle.strip()
        _, resolver, _ = self._ready()
        try:
            if text.startswith(("http://", "https://")):
                host = urlsplit(text).hostname or ""
                if domain_is_blocked(host, self.blocked_domains):
                    raise BlockedDomain(host)
                return await resolver.actor(text, refresh=True)
            try:
                user, host = parse_acct(text)
            except ActivityParseError:
                raise InvalidInput("handle", "must be a handle like alice@example.org") from None
            if domain_is_blocked(urlsplit(f"//{host}").hostname or host, self.blocked_domains):
                raise BlockedDomain(host)
            return await resolver.actor(await self._webfinger(user, host), refresh=True)
        except (BlockedDomain, PrivateAddress) as exc:
            raise Forbidden(f"{text}: {exc}") from None
        except RemoteFetchError as exc:
            if exc.status in (401, 403):
                raise Forbidden(f"{text}: the other server refuses us ({exc})") from None
            raise NotFound(f"cannot find {text}: {exc}") from None
        except ActivityParseError as exc:
            raise NotFound(f"{text} is not a usable ActivityPub actor: {exc}") from None

    @staticmethod
    def handle_of(actor_id: str, preferred_username: str | None) -> str:
        username = preferred_username or actor_id.rstrip("/").rsplit("/", 1)[-1]
        return f"{username}@{urlsplit(actor_id).netloc}"

    async def follow(self, account: Account, handle: Any) -> dict[str, Any]:
        _, _, publisher = self._ready()
        remote = await self.resolve_handle(handle)
        local = self.actor_id(account.username)
        if remote.id == local:
            raise InvalidInput("handle", "you cannot follow yourself")
        existing = self.follows.follow_row(local, remote.id)
        state = FollowState.PENDING
        if existing is not None and existing[1] == FollowState.ACCEPTED.value:
            state = FollowState.ACCEPTED
        else:
            follow_id = f"{local}/follows/{uuid.uuid4()}"
            await self.follows.add_following(local, remote.id, follow_id, FollowState.PENDING)
            await publisher.send(local, build_follow(follow_id, local, remote.id), remote.inbox)
        return {
            "handle": self.handle_of(remote.id, remote.preferred_username),
            "actor": remote.id,
            "state": state.value,
        }

    async def _following_actor(self, local: str, handle: str) -> str | None:
        text = handle.strip()
        if text.startswith(("http://", "https://")):
            return text
        try:
            user, host = parse_acct(text)
        except ActivityParseError:
            raise InvalidInput("handle", "must be a handle like alice@example.org") from None
        for row in self.follows.rows("fed_following", local):
            if self.handle_of(row["actor"], row["preferred_username"]).lower() == (
                f"{user}@{host}".lower()
            ):
                return str(row["actor"])
        return None

    async def unfollow(self, account: Account, handle: Any) -> dict[str, Any]:
        _, resolver, publisher = self._ready()
        if not isinstance(handle, str) or not handle.strip():
            raise InvalidInput("handle", "must be a handle like alice@example.org")
        local = self.actor_id(account.username)
        remote_id = await self._following_actor(local, handle)
        found = None if remote_id is None else self.follows.follow_row(local, remote_id)
        if remote_id is None or found is None:
            raise NotFound(f"you do not follow {handle}")
        follow_id, _ = found
        await self.follows.remove_following(local, remote_id)
        cached = await self.actor_cache.get(remote_id)
        try:
            remote = cached or await resolver.actor(remote_id)
        except FederationError as exc:
            log.info("Undo{Follow} of %s not sent: %s", remote_id, exc)
            remote = None
        if remote is not None:
            undo = build_undo(
                f"{local}#undo/{uuid.uuid4()}", local, build_follow(follow_id, local, remote_id)
            )
            await publisher.send(local, undo, remote.inbox)
        return {
            "handle": self.handle_of(remote_id, cached.preferred_username if cached else None),
            "actor": remote_id,
            "state": "removed",
        }

    def _listing(self, table: str, username: str) -> list[dict[str, Any]]:
        return [
            {
                "handle": self.handle_of(row["actor"], row["preferred_username"]),
                "actor": row["actor"],
                "state": row["state"],
            }
            for row in self.follows.rows(table, self.actor_id(username))
        ]

    def following_of(self, username: str) -> list[dict[str, Any]]:
        return self._listing("fed_following", username)

    def followers_of(self, username: str) -> list[dict[str, Any]]:
        return self._listing("fed_followers", username)
