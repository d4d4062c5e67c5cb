"""A recorded public room's replay, posted to its host's followers: a ``Note`` with an
``Audio`` attachment (federation.recordings) that Mastodon plays inline; deleting the
recording deletes the post (``Delete{Tombstone}``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from federation.activities import RoomAnnouncement, build_create, build_delete
from federation.activities import RoomState as AnnouncedState
from federation.actors import ActorUrls
from federation.outbox import OutboxPublisher
from federation.recordings import Replay, build_replay_note
from node.rooms import Room, Visibility
from node.store.recordings import RecordingRow, RecordingStore

log = logging.getLogger(__name__)


class ReplayPublisher:
    def __init__(
        self,
        base_url: str,
        store: RecordingStore,
        publisher: Callable[[], OutboxPublisher | None],
        urls: Callable[[str], dict[str, str]],
    ) -> None:
        self._base = base_url.rstrip("/")
        self._store = store
        self._publisher = publisher
        self._urls = urls
        """Room id -> its ``url`` and ``recording_url``."""
        self._tasks: set[asyncio.Task[None]] = set()

    def recorded(self, room: Room, row: RecordingRow) -> None:
        if room.visibility is not Visibility.PUBLIC:
            return
        task = asyncio.get_running_loop().create_task(self._publish(room, row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, room: Room, row: RecordingRow) -> None:
        publisher = self._publisher()
        if publisher is None:
            return
        actor = ActorUrls.for_user(self._base, room.owner)
        urls = self._urls(room.id)
        note_id = f"{actor.id}/rooms/{room.id}/replay"
        replay = Replay(
            room=RoomAnnouncement(
                id=f"{self._base}/rooms/{room.id}",
                url=urls["url"],
                state=AnnouncedState.ENDED,
                title=room.title,
                description=room.description,
                host=actor.id,
            ),
            audio_url=urls["recording_url"],
            duration_s=row.duration,
            bytes=row.bytes,
        )
        note = build_replay_note(
            replay,
            note_id=note_id,
            host_name=room.host_display_name or room.owner,
            followers_url=actor.followers,
            published=dt.datetime.now(dt.UTC),
            base_url=self._base,
        )
        try:
            activity = build_create(f"{actor.id}/activities/{uuid.uuid4()}", actor.id, note)
            await publisher.publish(actor.id, activity)
            self._store.published(room.id, note_id)
        except Exception:
            log.exception("publishing the replay of room %s failed", room.id)

    async def deleted(self, owner: str, row: RecordingRow) -> None:
        publisher = self._publisher()
        if publisher is None or row.note_id is None:
            return
        actor = ActorUrls.for_user(self._base, owner)
        delete: dict[str, Any] = build_delete(
            f"{actor.id}/activities/{uuid.uuid4()}", actor.id, row.note_id
        )
        delete["cc"] = [actor.followers]
        await publisher.publish(actor.id, delete)

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
