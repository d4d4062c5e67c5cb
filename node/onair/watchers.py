"""A room's WebSocket clients (watchers) and how its events reach them.

The room's events are encoded once per room, not once per watcher: the events published
during one turn of the event loop are gathered, each is turned into its JSON text once,
and every watcher is handed the same tuple of strings in one step (one queue entry, one
wake-up of its sender task per tick, however many events the tick had). A watcher whose
client reads its speaking levels from the WebRTC audio (``levels_in_audio``) is handed
the same tuple without the ``levels`` events, also built once per tick. A watcher that
cannot keep up (its bounded queue is full) is dropped, as before.

With ``[media] workers`` the clients' connections are handed to the media workers
(``RemoteWatcher``): each tick's events go to each worker holding clients of the room
once, as bytes, and the worker frames them once for all its clients (node/media/
ws_fanout.py); the node process's work per tick does not grow with the clients.

``per_watcher`` (``[node] room_events``) is the path before issue 18: each event goes to
each watcher on its own, encoded by the watcher's sender. It stays for comparison in
bench/ (bench_workers ``--room-events``) and is run by the tests too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from node.config import RoomEventsPath
from node.mailbox import Mailbox
from node.media.ws_fanout import text_frames
from node.onair.events import Event
from node.visitors import Visitor

logger = logging.getLogger(__name__)

__all__ = ["RemoteWatcher", "RoomEventsPath", "RoomWatchers", "Watcher", "WatcherHost"]

CLOSE_CODE = 4001
"""The close code of a room WebSocket the room ends (room ended, user removed)."""

MAX_BUFFER = 256 * 1024
"""Unsent bytes at which a watcher written to directly is dropped as too slow."""

MAILBOX_SIZE = 256
"""Queue entries a watcher may have waiting (one per tick with events, or one message
of its own) before it is dropped as too slow."""

Outgoing = dict[str, Any] | str | tuple[str, ...]
"""What a watcher's sender writes: one event of its own (a dict, e.g. its snapshot or a
pong), or the room's events of one tick, already encoded (each string one message)."""


class Transport(Protocol):
    """The part of an asyncio transport the room writes its events to."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


class Watcher(Mailbox[Outgoing]):
    """One WebSocket client of a room: events are queued and sent by its own task, so a
    slow client never blocks the room (its queue is bounded; overflow disconnects it).

    Once its sender has sent everything queued, it may hand the room its connection's
    transport (``direct``): from then on the room's events are written to it as
    ready-made WebSocket frames, the same bytes for every such watcher, with no task to
    wake (uncompressed connections only; a frame is written whole, so it never lands
    inside one the server writes itself). Unsent bytes past ``MAX_BUFFER`` drop it."""

    def __init__(self, username: str | None, *, visitor: Visitor | None = None) -> None:
        super().__init__(maxsize=MAILBOX_SIZE)
        self.username = username
        self.visitor = visitor
        """Set when the watcher is a verified visitor of this node (node.visitors)."""
        self.levels_in_audio = False
        """The client said it reads speaking levels from its WebRTC audio (the CSRCs of
        program packets): the room sends it no ``levels`` events."""
        self.direct: Transport | None = None

    def close(self) -> None:
        self.direct = None  # what is left goes through the sender, the close too
        super().close()


@dataclass(eq=False)
class RemoteWatcher:
    """A WebSocket client whose connection a media worker serves."""

    username: str | None
    session_id: str
    visitor: Visitor | None = None


class WatcherHost(Protocol):
    """Where watchers' connections can be handed (node.media.workers.WorkerPool)."""

    def broadcast(self, feed: object, messages: list[tuple[bytes, bool]]) -> None: ...

    def close_ws(self, session_id: str, code: int) -> None: ...

    def forget_feed(self, feed: object) -> None: ...


class RoomWatchers:
    """The watchers of one room; ``publish`` is the room's event bus subscriber."""

    def __init__(
        self,
        *,
        path: RoomEventsPath = "shared",
        dropped: Callable[[Watcher], None],
        host: WatcherHost | None = None,
    ) -> None:
        self.path = path
        self.host = host
        """Where remote watchers live (None: all are in this process)."""
        self._dropped = dropped
        """Called for a watcher dropped as too slow (after it is closed)."""
        self._all: set[Watcher] = set()
        self._remote: dict[str, RemoteWatcher] = {}
        self._pending: list[Event] = []
        self._flush_scheduled = False

    def __iter__(self) -> Iterator[Watcher | RemoteWatcher]:
        return iter([*self._all, *self._remote.values()])

    def __len__(self) -> int:
        return len(self._all) + len(self._remote)

    def add_remote(self, watcher: RemoteWatcher) -> None:
        """A watcher handed to ``host`` (after ``flush``: it gets the batches from the
        next one on; its snapshot holds what came before)."""
        self._remote[watcher.session_id] = watcher

    def remote(self, session_id: str) -> RemoteWatcher | None:
        return self._remote.get(session_id)

    def remote_gone(self, session_id: str) -> RemoteWatcher | None:
        """Its connection ended; the watcher if it was still one of the room's."""
        return self._remote.pop(session_id, None)

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

    def close(self, watcher: Watcher | RemoteWatcher) -> None:
        """Close ``watcher`` after what the room published so far reached it (a kicked
        client gets its ``kicked`` event, then the close)."""
        self.flush()
        if isinstance(watcher, RemoteWatcher):
            if self._remote.pop(watcher.session_id, None) is not None and self.host:
                self.host.close_ws(watcher.session_id, CLOSE_CODE)
            return
        self._all.discard(watcher)
        watcher.close()

    def close_all(self) -> None:
        self.flush()
        for watcher in list(self._all):
            watcher.close()
        self._all.clear()
        if self.host is not None:
            for session_id in list(self._remote):
                self.host.close_ws(session_id, CLOSE_CODE)
            self.host.forget_feed(self)
        self._remote.clear()

    def publish(self, event: Event) -> None:
        if self.path == "per_watcher":
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
        if not self._all and not self._remote:
            return
        texts = tuple(json.dumps(event, separators=(",", ":")) for event in events)
        encoded = [text.encode() for text in texts]
        if self._remote and self.host is not None:
            self.host.broadcast(
                self,
                [
                    (data, event["type"] == "levels")
                    for event, data in zip(events, encoded, strict=True)
                ],
            )
        state = [i for i, event in enumerate(events) if event["type"] != "levels"]
        without_levels = tuple(texts[i] for i in state)
        frames: dict[bool, bytes] = {}
        for watcher in list(self._all):
            batch = without_levels if watcher.levels_in_audio else texts
            if not batch:
                continue
            transport = watcher.direct
            if transport is None:
                if not watcher.send(batch):
                    self._drop(watcher)
                continue
            if transport.is_closing():  # gone: its handler is about to unwatch it
                self._drop(watcher, slow=False)
                continue
            if transport.get_write_buffer_size() > MAX_BUFFER:
                self._drop(watcher)
                continue
            data = frames.get(watcher.levels_in_audio)
            if data is None:
                chosen = [encoded[i] for i in state] if watcher.levels_in_audio else encoded
                data = frames[watcher.levels_in_audio] = text_frames(chosen)
            transport.write(data)

    def _drop(self, watcher: Watcher, *, slow: bool = True) -> None:
        if slow:
            logger.info("dropping a WebSocket client that cannot keep up")
        self._all.discard(watcher)
        watcher.direct = None
        watcher.close()
        self._dropped(watcher)
