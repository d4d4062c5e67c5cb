"""Our public rooms' life cycle as posts for the host's followers.

A public room going live is a ``Create{Note}`` from its host to the host's followers;
title or speaker changes while live are an ``Update`` (debounced: at most one per
``UPDATE_DEBOUNCE_S`` per room); the end is an ``Update`` with ``roomState: ended``.
Rooms that were live when the node died are announced as ended on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from federation.activities import RoomAnnouncement, build_create, build_room_note, build_update
from federation.activities import RoomState as AnnouncedState
from federation.actors import ActorUrls
from federation.outbox import OutboxPublisher
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.rooms import Room, RoomState, Visibility
from node.store.federation import SqliteRoomNotes
from node.store.rooms import room_from_row

log = logging.getLogger(__name__)

UPDATE_DEBOUNCE_S = 3.0
UPDATE_COALESCE_S = 0.5


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

    def __init__(
        self,
        base_url: str,
        notes: SqliteRoomNotes,
        stage: Stage,
        publisher: Callable[[], OutboxPublisher | None],
    ) -> None:
        self._base = base_url
        self._notes = notes
        self._stage = stage
        self._publisher = publisher
        self._rooms: dict[str, _Announced] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, on_air: OnAir) -> None:
        """Announce ``on_air``'s room if it is ours and we act as its origin (a room of
        ours carried on by another node is announced by nobody until it comes back)."""
        room = on_air.room
        if on_air.carriage.acting and "@" not in room.host and self._stage.store.exists(room.id):
            on_air.events.subscribe(lambda event: self._on_event(room, event))

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
        room_urls = self._stage.room_json(room)
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
            relay_url=None if ended else room_urls.get("relay_url"),
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
            publisher = self._publisher()
            if known is None or publisher is None:
                return
            actor = f"{self._base}/users/{room.host}"
            activity_id = f"{actor}/activities/{uuid.uuid4()}"
            try:
                if kind == "Create":
                    note = self._note(room, known, None)
                    activity = build_create(activity_id, actor, note)
                    self._notes.announced(
                        room.id, known.note_id, actor, known.published.timestamp()
                    )
                else:
                    note = self._note(room, known, dt.datetime.now(dt.UTC))
                    activity = build_update(activity_id, actor, note)
                known.title = room.title
                known.speakers = self._speakers(room)
                known.last_sent = time.monotonic()
                await publisher.publish(actor, activity)
                if kind == "End":
                    self._notes.ended(room.id)
                    self._rooms.pop(room.id, None)
            except Exception:
                log.exception("announcing room %s (%s) failed", room.id, kind)

    async def recover(self) -> None:
        """Rooms that were live when the node stopped ended at start-up: say so."""
        for room_id, note_id, published in self._notes.live():
            found = self._stage.store.rows("rooms.id = ?", [room_id])
            if not found:
                self._notes.forget(room_id)
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
