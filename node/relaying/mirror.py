"""The upstream-backed program source: this node relays a room another node acts as
origin for (a *mirror*).

The program arrives over the relay stream and is republished into the room's program
without re-encoding. Our speakers' audio is encoded once and sent up (``UplinkEncoder``);
their mix-minus comes back down. The room's state is decided upstream: our users' presence
and our listener count are reported up, their actions are sent to the acting origin as
signed activities (federation/room_activities.py), and state messages from upstream are
replicated into our copy of the room (names as we see them: node.relaying.names).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import av
from websockets.asyncio.client import ClientConnection

from federation.relay import (
    AudioFrame,
    FrameKind,
    RelayFrameError,
    SequenceFilter,
    SuccessionEntry,
)
from federation.room_activities import RoomActivity, build_room_activity
from node.errors import Conflict, Forbidden
from node.media.mixer import OpusFrameEncoder, SpeakerInput
from node.media.packets import SAMPLES_PER_FRAME, PacketStream
from node.onair.on_air import OnAir
from node.onair.source import Republisher, Speaker, levels_event
from node.relaying.counters import RelayCounters
from node.relaying.names import Names
from node.relaying.ports import RelaySigner
from node.room_actions import Act, RoomAction
from node.rooms import replicate

logger = logging.getLogger(__name__)

SEND_TIMEOUT_S = 1.0
"""A send to a peer that does not drain within this is dropped (the peer is frozen)."""


class UplinkEncoder:
    """Where a speaker of ours in a relayed room sends audio: 20 ms frames encoded once
    and sent up the relay (``send(name, opus)``)."""

    def __init__(self, name: str, send: Callable[[str, bytes], None]) -> None:
        self.name = name
        self.muted = True
        self._send = send
        self._frames = SpeakerInput(name, frame_samples=SAMPLES_PER_FRAME, clock=time.monotonic)
        self._encoder = OpusFrameEncoder(frame_samples=SAMPLES_PER_FRAME, bitrate=32000)

    def push(self, frame: av.AudioFrame) -> None:
        self._frames.push(frame)
        while (samples := self._frames.pop_frame()) is not None:
            if self.muted:
                continue
            data = self._encoder.encode(samples)
            if data is not None:
                self._send(self.name, data)


class Upstream:
    """ProgramSource of a room relayed from another node (node/onair/source.py)."""

    def __init__(
        self,
        on_air: OnAir,
        *,
        names: Names,
        counters: RelayCounters,
        signer: RelaySigner,
        relay_presence: Callable[[], set[str]],
    ) -> None:
        self.on_air = on_air
        self.names = names
        self.counters = counters
        self._signer = signer
        self._relay_presence = relay_presence
        self.link: ClientConnection | None = None
        """The relay connection to the node we take the room from, while there is one."""
        self.filter = SequenceFilter()
        self._returns: dict[str, Republisher] = {}
        self._uplink_seq: dict[str, int] = {}
        self.report_due = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()

    # -- ProgramSource ----------------------------------------------------------------

    def start(self) -> None:
        self.report_due.set()

    async def stop(self) -> None:
        for name in list(self._returns):
            self._returns.pop(name).stream.close()
        for task in list(self._sends):
            task.cancel()

    def attach(self, speaker: Speaker) -> None:
        returns = PacketStream()
        self._returns[speaker.name] = Republisher(returns)
        speaker.route(UplinkEncoder(speaker.name, self.send_uplink), returns)

    def detach(self, speaker: Speaker) -> None:
        speaker.route(None, None)
        feed = self._returns.pop(speaker.name, None)
        if feed is not None:
            feed.stream.close()

    def join(self, username: str, display_name: str) -> None:
        # Presence goes to the acting origin over the relay stream; the member shows up
        # here when its state comes back.
        self.report_due.set()

    def leave(self, username: str) -> None:
        self.report_due.set()

    def listeners(self, count: int) -> None:
        self.report_due.set()

    async def act(self, action: RoomAction, act: Act, display_name: str) -> bool:
        if action.activity is None:
            raise Forbidden("this room is carried from another node; do this on its origin")
        carriage = self.on_air.carriage
        actor = self._signer.actor_id(act.actor)
        activity = RoomActivity(
            type=action.activity,
            actor=actor,
            room=carriage.origin,
            member=None if act.target == act.actor else self.names.handle(act.target),
            arguments=dict(act.arguments),
        )
        doc = build_room_activity(f"{actor}/activities/{uuid.uuid4()}", activity)
        status = await self._signer.post_as(act.actor, f"{carriage.acting_origin}/inbox", doc)
        if status >= 300:
            raise Conflict(f"the room's node refused the action ({status})")
        return False

    # -- what goes up -----------------------------------------------------------------

    def presence(self) -> set[str]:
        """Handles of our users watching the room, and of our relays' users."""
        own = {
            self.names.handle(w.username) for w in self.on_air.watchers if w.username is not None
        }
        return own | self._relay_presence()

    def send_uplink(self, name: str, data: bytes) -> None:
        link = self.link
        if link is None:
            return
        # One sequence per speaker for the mirror's life, not per WHIP session: the origin
        # drops what looks older than it has seen, so a speaker who publishes again (a
        # reconnect, a new tab) must continue the line, not restart it at 0.
        seq = self._uplink_seq.get(name, 0)
        self._uplink_seq[name] = seq + 1
        frame = AudioFrame(FrameKind.UPLINK, self.names.handle(name), seq, 0, data)
        # Fire and forget: a send that cannot be queued is a lost 20 ms, not a stall.
        task = asyncio.get_running_loop().create_task(send_quietly(link, frame.serialize()))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    # -- what comes down --------------------------------------------------------------

    def on_binary(self, data: bytes) -> None:
        try:
            frame = AudioFrame.parse(data)
        except RelayFrameError:
            self.counters.malformed += 1
            return
        if not self.filter.accept(f"{frame.kind}/{frame.key}", frame.seq):
            self.counters.take_filtered(self.filter)
            return
        if frame.kind is FrameKind.PROGRAM:
            self.on_air.program_feed.feed(frame.payload)
        elif frame.kind is FrameKind.MIX_MINUS:
            feed = self._returns.get(self.names.local(frame.key))
            if feed is not None:
                feed.feed(frame.payload)
        else:
            self.counters.malformed += 1

    def on_event(self, message: dict[str, Any], peer: str) -> None:
        """A room event from upstream (names as ``peer`` sends them)."""
        room = self.on_air.room
        kind = message["type"]

        def name(n: str) -> str:
            return self.names.from_peer(n, peer)

        if kind in ("snapshot", "room"):
            replicate(room, message["room"], name)
        elif kind == "member":
            member = dict(message["member"])
            member["username"] = name(str(member.get("username")))
            room.replicate_member(member)
        elif kind == "member_left":
            room.replicate_left(name(str(message.get("username"))))
        elif kind == "listeners":
            room.replicate_listeners(int(message.get("count") or 0))
        elif kind == "levels":
            levels = message.get("levels")
            if isinstance(levels, dict):
                # Ephemeral: onto our room's bus, to our watchers and our own relays.
                self.on_air.events.publish(levels_event({name(k): v for k, v in levels.items()}))
        elif kind == "kicked":
            room.replicate_kicked(name(str(message.get("username"))), bool(message.get("blocked")))

    def new_epoch(self) -> None:
        """The acting origin changed: its packet lines start afresh."""
        self.filter.reset()


async def send_quietly(link: ClientConnection, data: bytes | str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(link.send(data), SEND_TIMEOUT_S)


def abort(link: ClientConnection) -> None:
    """Drop a relay connection at once. Never the polite close towards a peer that may be
    frozen: that waits for its answer (websockets' close timeout, 10 s)."""
    transport = link.transport
    if transport is not None:
        transport.abort()


def entries_of(doc: dict[str, Any]) -> list[SuccessionEntry]:
    return [SuccessionEntry(e["node"], e["relay"]) for e in doc.get("succession", [])]
