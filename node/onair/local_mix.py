"""The mixer-backed program source: this node acts as the room's origin.

Every 20 ms the mixer sums the speakers attached here (local sessions, and remote
speakers whose audio arrives over the relay) into the program, encoded once, and each
speaker's mix-minus. This node decides the room's state: users join it, actions apply
to it, its listener count is the room's. Speaking levels go out on the room's event bus
every 250 ms while they change, to local watchers and relays alike. A host of this node
who leaves without ending the room has ``host_grace_s`` to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from node.media.mixer import RoomMixer
from node.onair.events import Event
from node.onair.source import RoomOnAir, Speaker, copy_stream, levels_event
from node.room_actions import Act, RoomAction, apply
from node.rooms import RoomState

logger = logging.getLogger(__name__)

LEVELS_INTERVAL_S = 0.25


class LocalMix:
    def __init__(self, on_air: RoomOnAir, *, host_grace_s: float) -> None:
        self._on_air = on_air
        self._host_grace_s = host_grace_s
        self.mixer = RoomMixer(csrc_of=on_air.room.csrc_for)
        self._tasks: list[asyncio.Task[None]] = []
        self._grace: asyncio.Task[None] | None = None
        self._unsubscribe = lambda: None
        self._stopping = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        room_id = self._on_air.room.id
        self._tasks = [
            loop.create_task(self.mixer.run(), name=f"mixer-{room_id}"),
            loop.create_task(
                copy_stream(self.mixer.program, self._on_air.program_feed),
                name=f"program-{room_id}",
            ),
            loop.create_task(self._levels(), name=f"levels-{room_id}"),
        ]
        self._unsubscribe = self._on_air.events.subscribe(self._on_event)
        self._check_host()

    async def stop(self) -> None:
        self._stopping = True
        self._unsubscribe()
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self.mixer.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2)
        self._tasks = []

    # -- speakers ---------------------------------------------------------------------

    def attach(self, speaker: Speaker) -> None:
        sink = self.mixer.add_speaker(speaker.name)
        speaker.route(sink, self.mixer.return_stream(speaker.name))
        self._on_air.room.set_publishing(speaker.name, True)

    def detach(self, speaker: Speaker) -> None:
        self.mixer.remove_speaker(speaker.name)
        speaker.route(None, None)
        self._on_air.room.set_publishing(speaker.name, False)

    async def _levels(self) -> None:
        last: dict[str, float] = {}
        while True:
            await asyncio.sleep(LEVELS_INTERVAL_S)
            levels = {k: round(v, 3) for k, v in self.mixer.levels().items()}
            if levels != last:
                self._on_air.events.publish(levels_event(levels))
                last = levels

    # -- the room's state is decided here ---------------------------------------------

    def join(self, username: str, display_name: str) -> None:
        self._on_air.room.connect(username, display_name)

    def leave(self, username: str) -> None:
        self._on_air.room.disconnect(username)

    def listeners(self, count: int) -> None:
        self._on_air.room.set_listener_count(count, self._on_air.local_listener_total())

    async def act(self, action: RoomAction, act: Act, display_name: str) -> bool:
        apply(self._on_air.room, action, act)
        return True

    # -- a host who left --------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event["type"] in ("member", "member_left", "room") and not self._stopping:
            self._check_host()

    def _check_host(self) -> None:
        room = self._on_air.room
        # Only a host of this node can come back here; a carried room's host is elsewhere.
        local_host = "@" not in room.host
        if not local_host or room.state is not RoomState.LIVE or room.host_present:
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
            if room.state is RoomState.LIVE:
                room.set_host_away(None)
            return
        if self._grace is None:
            # Listeners see "the host is away" with the time left; a cohost may take over.
            room.set_host_away(room.clock() + self._host_grace_s)
            self._grace = asyncio.get_running_loop().create_task(self._end_after_grace())

    async def _end_after_grace(self) -> None:
        await asyncio.sleep(self._host_grace_s)
        self._grace = None
        room = self._on_air.room
        if room.state is RoomState.LIVE and not room.host_present:
            logger.info("host of room %s did not come back; ending it", room.id)
            room.end(None)
