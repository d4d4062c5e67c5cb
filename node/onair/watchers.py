"""A room's WebSocket clients (watchers) and how its events reach them.

The room's events are encoded once per room, not once per watcher: the events published
during one turn of the event loop are gathered, each is turned into its JSON text once,
and every watcher is handed the same tuple of strings in one step (one queue entry, one
wake-up of its sender task per tick, however many events the tick had). A watcher whose
client reads its speaking levels from the WebRTC audio (``levels_in_audio``) is handed
the same tuple without the ``levels`` events, also built once per tick. A watcher that
cannot keep up (its bounded queue is full) is dropped, as before.

``per_watcher`` (``[node] room_events``) is the path before issue 18: each event goes to
each watcher on its own, encoded by the watcher's sender. It stays for comparison in
bench/ (bench_workers ``--room-events``) and is run by the tests too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from node.config import RoomEventsPath
from node.mailbox import Mailbox
from node.onair.events import Event

logger = logging.getLogger(__name__)

__all__ = ["RoomEventsPath", "RoomWatchers", "Watcher"]

MAILBOX_SIZE = 256
"""Queue entries a watcher may have waiting (one per tick with events, or one message
of its own) before it is dropped as too slow."""

Outgoing = dict[str, Any] | str | tuple[str, ...]
"""What a watcher's sender writes: one event of its own (a dict, e.g. its snapshot or a
pong), or the room's events of one tick, already encoded (each string one message)."""


class Watcher(Mailbox[Outgoing]):
    """One WebSocket client of a room: events are queued and sent by its own task, so a
    slow client never blocks the room (its queue is bounded; overflow disconnects it)."""

    def __init__(self, username: str | None) -> None:
        super().__init__(maxsize=MAILBOX_SIZE)
        self.username = username
        self.levels_in_audio = False
        """The client said it reads speaking levels from its WebRTC audio (the CSRCs of
        program packets): the room sends it no ``levels`` events."""


class RoomWatchers:
    """The watchers of one room; ``publish`` is the room's event bus subscriber."""

    def __init__(
        self, *, path: RoomEventsPath = "shared", dropped: Callable[[Watcher], None]
    ) -> None:
        self._path = path
        self._dropped = dropped
        """Called for a watcher dropped as too slow (after it is closed)."""
        self._all: set[Watcher] = set()
        self._pending: list[Event] = []
        self._flush_scheduled = False

    def __iter__(self) -> Any:
        return iter(list(self._all))

    def __len__(self) -> int:
        return len(self._all)

    def add(self, watcher: Watcher) -> None:
        # Events published before it came are in the snapshot it gets: not sent again.
        self.flush()
        self._all.add(watcher)

    def discard(self, watcher: Watcher) -> bool:
        """Forget ``watcher``; False if it was not one (already dropped or removed)."""
        if watcher not in self._all:
            return False
        self._all.discard(watcher)
        return True

    def close(self, watcher: Watcher) -> None:
        """Close ``watcher`` after what the room published so far reached its queue (a
        kicked client gets its ``kicked`` event, then the close)."""
        self.flush()
        self._all.discard(watcher)
        watcher.close()

    def close_all(self) -> None:
        self.flush()
        for watcher in list(self._all):
            watcher.close()
        self._all.clear()

    def publish(self, event: Event) -> None:
        if self._path == "per_watcher":
            for watcher in list(self._all):
                if not watcher.send(event):
                    self._drop(watcher)
            return
        self._pending.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Hand the events gathered this tick to every watcher, each encoded once."""
        self._flush_scheduled = False
        if not self._pending:
            return
        events, self._pending = self._pending, []
        if not self._all:
            return
        texts = tuple(json.dumps(event, separators=(",", ":")) for event in events)
        without_levels: tuple[str, ...] | None = None
        for watcher in list(self._all):
            batch = texts
            if watcher.levels_in_audio:
                if without_levels is None:
                    without_levels = tuple(
                        text
                        for event, text in zip(events, texts, strict=True)
                        if event["type"] != "levels"
                    )
                batch = without_levels
                if not batch:
                    continue
            if not watcher.send(batch):
                self._drop(watcher)

    def _drop(self, watcher: Watcher) -> None:
        logger.info("dropping a WebSocket client that cannot keep up")
        self._all.discard(watcher)
        watcher.close()
        self._dropped(watcher)
