"""The federation package's ports (federation.ports) on SQLite.

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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

import sqlite_utils

from federation.activities import RemoteRoom
from federation.activities import RoomState as AnnouncedState
from federation.actors import RemoteActor
from federation.ports import DeliveryAttempt, FollowState, StoredActivity

# A claimed delivery is due again after this long unless the worker records an outcome:
# a node killed mid-send retries the row after a restart instead of losing it.
CLAIM_LEASE = dt.timedelta(minutes=2)


def _now() -> float:
    return time.time()


def _ts(moment: dt.datetime) -> float:
    return moment.timestamp()


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
    def __init__(self, db: sqlite_utils.Database, on_added: Callable[[], None]) -> None:
        self._db = db
        self._wake = on_added
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
        self._wake()
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
    def __init__(self, db: sqlite_utils.Database, on_added: Callable[[], None]) -> None:
        self._db = db
        self._wake = on_added

    async def enqueue(self, activity_json: str, inbox_url: str, signing_actor: str) -> None:
        now = _now()
        self._db.execute(
            "insert into fed_deliveries (activity_json, inbox_url, signing_actor, next_try, "
            "created_at, updated_at) values (?, ?, ?, ?, ?, ?)",
            [activity_json, inbox_url, signing_actor, now, now, now],
        )
        self._wake()

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
        # a room's life cycle only moves forward, so an ended room is never revived. Only
        # its host changes it; a tombstone left by someone else (note_id '') gives way.
        self._db.execute(
            "insert into fed_remote_rooms (id, url, state, title, host, note_id, listen_url, "
            "whep_url, speakers, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict (id) do update set url = excluded.url, state = excluded.state, "
            "title = excluded.title, host = excluded.host, note_id = excluded.note_id, "
            "listen_url = excluded.listen_url, whep_url = excluded.whep_url, "
            "speakers = excluded.speakers, updated_at = excluded.updated_at "
            "where (fed_remote_rooms.state != 'ended' and fed_remote_rooms.host = excluded.host)"
            " or (fed_remote_rooms.note_id = '' and fed_remote_rooms.host != excluded.host)",
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

    async def end(self, room_id: str, by: str) -> bool:
        cursor = self._db.execute(
            "update fed_remote_rooms set state = 'ended', updated_at = ? where id = ? "
            "and host = ?",
            [_now(), room_id, by],
        )
        if cursor.rowcount > 0:
            return True
        # The end overtook the Create (a retried delivery): keep a tombstone so the late
        # Create cannot list a room that is over.
        self._db.execute(
            "insert or ignore into fed_remote_rooms (id, url, state, title, host, note_id, "
            "speakers, updated_at) values (?, ?, 'ended', '', ?, '', '[]', ?)",
            [room_id, room_id, by, _now()],
        )
        return False

    async def end_by_note(self, note_id: str, by: str) -> bool:
        cursor = self._db.execute(
            "update fed_remote_rooms set state = 'ended', updated_at = ? where note_id = ? "
            "and host = ?",
            [_now(), note_id, by],
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


class SqliteRoomNotes:
    """The Note each of our live rooms was announced with (``fed_room_notes``)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def announced(self, room_id: str, note_id: str, actor: str, published_at: float) -> None:
        self._db.execute(
            "insert or replace into fed_room_notes (room_id, note_id, actor, "
            "published_at, state) values (?, ?, ?, ?, 'live')",
            [room_id, note_id, actor, published_at],
        )

    def ended(self, room_id: str) -> None:
        self._db.execute("update fed_room_notes set state = 'ended' where room_id = ?", [room_id])

    def live(self) -> list[tuple[str, str, float]]:
        """(room id, note id, published at) of rooms announced live and not yet ended."""
        rows = self._db.execute(
            "select room_id, note_id, published_at from fed_room_notes where state = 'live'"
        ).fetchall()
        return [(r[0], r[1], float(r[2])) for r in rows]

    def forget(self, room_id: str) -> None:
        self._db.execute("delete from fed_room_notes where room_id = ?", [room_id])
