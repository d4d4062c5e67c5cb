"""Recording a room: its program stream stored as an Ogg/Opus file, packet for packet.

The host decides before the room goes live (``Room.recording``); from going live to the
end, the node that created the room writes every packet of ``OnAir.program`` (the packets
every listener gets, whichever node mixes them: the recording goes on across a move or a
failover of the mixer) into ``recordings/room-{id}.ogg`` under the data dir, through the
node's ``DataFiles`` (node.store.files: the data dir's ``recordings`` file area, which
``backup --with-files`` carries; a file written under a temporary name and put in place
when complete). A full disk stops the recording, never the room: the temporary file is
removed and the admin told (``GET /api/v1/admin/storage``). At the end the file's size and
length are stored (node.store.recordings) and ``on_recorded`` publishes the replay
(node.fediverse).

Storage: the program is Opus at a nominal 32 kbit/s, variable: about 9 MB an hour of
speech, 23 MB of a continuous loud tone (bench/bench_recording.py, bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from node.errors import InsufficientStorage
from node.media.errors import StreamClosed
from node.media.oggfile import OggOpusWriter
from node.media.packets import PacketReader
from node.onair.events import Event
from node.onair.on_air import OnAir
from node.rooms import Room, RoomState
from node.store.recordings import RecordingRow, RecordingStore

log = logging.getLogger(__name__)

AREA = "recordings"
"""The data dir's file area for recordings (backed up with ``--with-files``)."""


_WRITE_FAILED = (OSError, InsufficientStorage)
"""What a write of the recording may raise (InsufficientStorage: the disk is full)."""


class GrowingFile(Protocol):
    def write(self, data: bytes) -> None: ...

    def finish(self) -> Path: ...

    def abort(self) -> None: ...


class RecordingFiles(Protocol):
    """Where recordings are kept: node.store.files.DataFiles."""

    def growing(self, directory: str, name: str) -> GrowingFile: ...

    def path(self, directory: str, name: str) -> Path: ...

    def delete(self, directory: str, name: str) -> None: ...


def file_name(room_id: str) -> str:
    return f"room-{room_id}.ogg"


class Recorder:
    """Writes one room's program from now until ``stop``."""

    def __init__(self, on_air: OnAir, out: GrowingFile) -> None:
        room = on_air.room
        self.on_air = on_air
        self.out = out
        self.writer = OggOpusWriter(
            secrets.randbits(32),
            {"title": room.title, "artist": room.host_display_name, "comment": "Parley"},
        )
        self.bytes = 0
        self.failed = False
        self._write(self.writer.header())
        self._task = asyncio.get_running_loop().create_task(
            self._run(on_air.program.reader()), name=f"recording-{room.id}"
        )

    def _write(self, data: bytes) -> None:
        if data and not self.failed:
            try:
                self.out.write(data)
                self.bytes += len(data)
            except _WRITE_FAILED as exc:
                # A full disk stops the recording, never the room.
                log.error("recording of room %s stopped: %s", self.on_air.room.id, exc)
                self.failed = True
                self.out.abort()

    async def _run(self, reader: PacketReader) -> None:
        with contextlib.suppress(StreamClosed):
            async for packet in reader:
                self._write(self.writer.add(packet.data))
                if self.failed:
                    return

    async def stop(self) -> tuple[Path, int, float, int] | None:
        """Close the file: (path, bytes, seconds, packets), or None if it failed."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._write(self.writer.finish())
        if self.failed:
            return None
        try:
            path = self.out.finish()
        except _WRITE_FAILED as exc:
            log.error("recording of room %s lost: %s", self.on_air.room.id, exc)
            self.out.abort()
            return None
        return path, self.bytes, self.writer.duration, self.writer.packets


class Recordings:
    """Starts and stops the recorders of our recorded rooms; the stored recordings."""

    def __init__(
        self,
        files: RecordingFiles,
        store: RecordingStore,
        *,
        own_room: Callable[[str], bool],
        on_recorded: Callable[[Room, RecordingRow], None],
    ) -> None:
        self.files = files
        self.store = store
        self._own_room = own_room
        self._on_recorded = on_recorded
        self.recorders: dict[str, Recorder] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, on_air: OnAir) -> None:
        room = on_air.room
        if not self._own_room(room.id):
            return

        def on_event(event: Event) -> None:
            if event["type"] != "room":
                return
            if room.state is RoomState.LIVE and room.recording and room.id not in self.recorders:
                try:
                    out = self.files.growing(AREA, file_name(room.id))
                except _WRITE_FAILED as exc:
                    log.error("room %s is not recorded: %s", room.id, exc)
                    return
                self.recorders[room.id] = Recorder(on_air, out)
            elif room.state is RoomState.ENDED and room.id in self.recorders:
                task = asyncio.get_running_loop().create_task(self._finish(room))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        on_air.events.subscribe(on_event)
        on_event({"type": "room"})

    async def _finish(self, room: Room) -> None:
        recorder = self.recorders.pop(room.id)
        result = await recorder.stop()
        if result is None:
            return
        path, size, duration, packets = result
        self.store.add(room.id, path.name, size, duration, packets)
        row = self.store.get(room.id)
        if row is not None:
            self._on_recorded(room, row)

    def path(self, row: RecordingRow) -> Path:
        return self.files.path(AREA, row.file)

    def delete(self, room_id: str) -> RecordingRow | None:
        row = self.store.get(room_id)
        if row is None:
            return None
        self.files.delete(AREA, row.file)
        self.store.delete(room_id)
        return row

    async def close(self) -> None:
        """The node stops: recordings in progress are closed as they are."""
        for room_id in list(self.recorders):
            recorder = self.recorders.pop(room_id)
            result = await recorder.stop()
            if result is not None:
                path, size, duration, packets = result
                self.store.add(room_id, path.name, size, duration, packets)
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
