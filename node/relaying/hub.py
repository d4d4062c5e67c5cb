"""The serving end of the relay stream for one room: the relays subscribed to it.

Every subscriber gets the program as binary frames and the room's events as JSON, through
a bounded queue of its own (a slow relay is dropped, never waited for). The hub reads the
room's one event bus and forwards what relays take (FEDERATION.md: ``member``,
``member_left``, ``room``, ``levels``, ``listeners``, ``kicked``). On the acting origin it
takes remote speakers' uplink into the room (each is a ``Speaker`` like a local one) and
sends their mix-minus back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av

from federation.relay import (
    DOWNSTREAM_TYPES,
    MAX_PRESENCE,
    UPSTREAM_TYPES,
    AudioFrame,
    CloseCode,
    FrameKind,
    RelayFrameError,
    SequenceFilter,
    SuccessionEntry,
    merge_succession,
    parse_control,
    serialize_control,
)
from node.errors import Conflict, ParleyError
from node.mailbox import Mailbox
from node.media.errors import StreamClosed
from node.onair.events import Event
from node.onair.on_air import OnAir
from node.onair.source import Speaker
from node.relaying.counters import RelayCounters
from node.relaying.names import Names
from node.rooms import Role, RoomState

logger = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 100
"""Messages queued per relay subscriber (2 s of program): beyond that it is dropped."""
MAX_SUBSCRIBERS_PER_ROOM = 32
KEEPALIVE_S = 0.5
REMOTE_SPEAKER_IDLE_S = 3.0
FORWARDED = DOWNSTREAM_TYPES - {"snapshot", "ping", "handover"}
"""Room events a relay takes from the room's bus (state and ephemeral alike)."""


class RelaySubscriber(Mailbox[bytes | str]):
    """A node relaying one of our rooms: what goes down its stream is queued here."""

    def __init__(self, host: str, entry: SuccessionEntry | None) -> None:
        super().__init__(maxsize=SUBSCRIBER_QUEUE)
        self.host = host
        """Authenticated ``host[:port]`` of the signing instance actor; its users may
        speak up."""
        self.entry = entry
        self.listeners = 0
        self.presence: set[str] = set()
        self.relays: list[SuccessionEntry] = []
        """The relay's own relays, and theirs (its ``relays`` reports)."""
        self.close_code: int = CloseCode.GOING_AWAY
        """Why its connection ends (the first reason given wins)."""

    def close(self, code: int = CloseCode.GOING_AWAY) -> None:
        if not self.closed:
            self.close_code = code
        super().close()


@dataclass(eq=False)
class RemoteSpeaker:
    """A speaker of a relay: their uplink decoded into a Speaker of the room."""

    subscriber: RelaySubscriber
    speaker: Speaker
    decoder: av.AudioCodecContext
    task: asyncio.Task[None] | None = None
    last_at: float = field(default_factory=time.monotonic)


def _opus_decoder() -> av.AudioCodecContext:
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    return decoder


class RelayHub:
    def __init__(
        self,
        on_air: OnAir,
        *,
        names: Names,
        counters: RelayCounters,
        uplink_filter: SequenceFilter,
        room_json: Callable[[OnAir], dict[str, Any]],
        changed: Callable[[OnAir], None],
    ) -> None:
        self.on_air = on_air
        self.names = names
        self.counters = counters
        self.uplink_filter = uplink_filter
        self._room_json = room_json
        self._changed = changed
        """Called when the succession list changed (the service persists it)."""
        self.subscribers: list[RelaySubscriber] = []
        self.remote_speakers: dict[str, RemoteSpeaker] = {}
        self._pump: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._unsubscribe = on_air.events.subscribe(self._on_event)

    @property
    def room_id(self) -> str:
        return self.on_air.room.id

    # -- subscribers ------------------------------------------------------------------

    def add(self, subscriber: RelaySubscriber) -> None:
        if len(self.subscribers) >= MAX_SUBSCRIBERS_PER_ROOM:
            raise Conflict("this room has as many relays as it accepts")
        for old in [s for s in self.subscribers if s.host == subscriber.host]:
            # A node reconnecting replaces its old connection: one upstream per node.
            self.remove(old)
            old.close(CloseCode.REPLACED)
        self.subscribers.append(subscriber)
        self.broadcast_snapshot()
        self._ensure_tasks()

    def remove(self, subscriber: RelaySubscriber) -> None:
        if subscriber not in self.subscribers:
            return
        self.subscribers.remove(subscriber)
        for name, remote in list(self.remote_speakers.items()):
            if remote.subscriber is subscriber:
                self._drop_speaker(name)
        self._set_presence(subscriber, set())
        self._count_listeners()
        self.broadcast_snapshot()

    def hand_over(self, message: dict[str, Any]) -> None:
        """A move: tell every relay where the room goes, then let them go (each closes
        after what is queued for it, the handover included)."""
        text = serialize_control(message)
        for subscriber in list(self.subscribers):
            subscriber.send(text)
            subscriber.close(CloseCode.HANDED_OVER)
        self.subscribers.clear()
        self.drop_remote_speakers()

    def drop_remote_speakers(self) -> None:
        for name in list(self.remote_speakers):
            self._drop_speaker(name)

    def presence(self) -> set[str]:
        """Handles of the relays' users watching the room."""
        found: set[str] = set()
        for subscriber in self.subscribers:
            found |= subscriber.presence
        return found

    def below(self) -> list[SuccessionEntry]:
        """Every node that takes the room through us: our relays, then theirs."""
        direct = [s.entry for s in self.subscribers if s.entry is not None]
        return merge_succession(direct, [e for s in self.subscribers for e in s.relays])

    def succession(self) -> list[SuccessionEntry]:
        carriage = self.on_air.carriage
        mine = self.below()
        if carriage.acting:
            return merge_succession([carriage.own], mine)
        # A relay passes on the list it got, then itself, then its own relays.
        return merge_succession(carriage.succession, [carriage.own, *mine])

    def snapshot(self) -> dict[str, Any]:
        carriage = self.on_air.carriage
        entries = self.succession()
        carriage.published(entries)
        return {
            "type": "snapshot",
            "room": self._room_json(self.on_air),
            "origin": carriage.origin,
            "acting_origin": carriage.acting_origin,
            "epoch": carriage.epoch,
            "succession": [e.to_json() for e in entries],
            "path": carriage.path_down(),
        }

    def broadcast_snapshot(self) -> None:
        """Send every relay the current snapshot (the list or the epoch changed)."""
        text = serialize_control(self.snapshot())
        for subscriber in list(self.subscribers):
            self._send(subscriber, text)
        self._changed(self.on_air)

    def _on_event(self, event: Event) -> None:
        kind = event["type"]
        if kind in FORWARDED and self.subscribers:
            text = serialize_control(event)
            for subscriber in list(self.subscribers):
                self._send(subscriber, text)
        if kind == "member":
            member = event["member"]
            if member["role"] == Role.LISTENER and member["username"] in self.remote_speakers:
                self._drop_speaker(member["username"])
        elif kind == "room" and self.on_air.room.state is RoomState.ENDED:
            self.close(CloseCode.ROOM_ENDED)

    def _send(self, subscriber: RelaySubscriber, message: bytes | str) -> None:
        if not subscriber.send(message) and not subscriber.closed:
            logger.info("dropping relay %s of room %s: too slow", subscriber.host, self.room_id)
            self.counters.slow_dropped += 1
            subscriber.close(CloseCode.TOO_SLOW)
            self.remove(subscriber)

    # -- messages from a subscriber ---------------------------------------------------

    def on_text(self, subscriber: RelaySubscriber, text: str) -> None:
        try:
            message = parse_control(text, UPSTREAM_TYPES)
        except RelayFrameError as exc:
            self.counters.malformed += 1
            logger.info("malformed control message from %s: %s", subscriber.host, exc)
            return
        kind = message["type"]
        if kind == "listeners":
            subscriber.listeners = message["count"]
            self._count_listeners()
        elif kind == "presence":
            # The whole set each time: whoever is not in it any more has left.
            handles = {
                h
                for h in message["users"][:MAX_PRESENCE]
                if h.rpartition("@")[2].lower() == subscriber.host and h.rpartition("@")[0]
            }
            self._set_presence(subscriber, handles)
        elif kind == "relays":
            entries = [SuccessionEntry(e["node"], e["relay"]) for e in message["relays"]]
            if entries != subscriber.relays:
                subscriber.relays = entries
                self.broadcast_snapshot()

    def _count_listeners(self) -> None:
        self.on_air.relayed_listeners = sum(s.listeners for s in self.subscribers)
        self.on_air.count_listeners()

    def _set_presence(self, subscriber: RelaySubscriber, handles: set[str]) -> None:
        source = self.on_air.source
        if source is not None:
            for handle in handles - subscriber.presence:
                with contextlib.suppress(ParleyError):
                    source.join(self.names.local(handle), handle)
            for handle in subscriber.presence - handles:
                source.leave(self.names.local(handle))
        subscriber.presence = handles

    def on_binary(self, subscriber: RelaySubscriber, data: bytes) -> None:
        try:
            frame = AudioFrame.parse(data)
        except RelayFrameError:
            self.counters.malformed += 1
            return
        if frame.kind is not FrameKind.UPLINK:
            self.counters.malformed += 1
            return
        if not self.uplink_filter.accept(f"{subscriber.host}/{frame.key}", frame.seq):
            self.counters.take_filtered(self.uplink_filter)
            return
        name = self.names.local(frame.key)
        _, _, domain = frame.key.rpartition("@")
        # Only the relay's own users, only while the room has them on stage, and only on
        # the acting origin: uplink through more than one hop is not carried.
        if (
            domain.lower() != subscriber.host
            or not self.on_air.room.can_publish(name)
            or not self.on_air.carriage.acting
        ):
            self.counters.uplink_refused += 1
            return
        remote = self.remote_speakers.get(name)
        if remote is None or remote.subscriber is not subscriber:
            remote = self._add_speaker(name, subscriber)
        remote.last_at = time.monotonic()
        try:
            frames = remote.decoder.decode(av.Packet(frame.payload))
        except av.FFmpegError:
            self.counters.malformed += 1
            return
        for decoded in frames:
            remote.speaker.push(decoded)

    def _add_speaker(self, name: str, subscriber: RelaySubscriber) -> RemoteSpeaker:
        if name in self.remote_speakers:
            self._drop_speaker(name)
        if name in self.on_air.publishers:
            # The same person publishing here too: the newest session wins.
            asyncio.get_running_loop().create_task(self.on_air.close_publisher(name))
        speaker = Speaker(name)
        speaker.muted = self.on_air.room.members[name].muted
        self.on_air.add_speaker(speaker)
        remote = RemoteSpeaker(subscriber, speaker, _opus_decoder())
        remote.task = asyncio.get_running_loop().create_task(
            self._send_returns(subscriber, self.names.handle(name), speaker),
            name=f"mix-minus-{name}",
        )
        self.remote_speakers[name] = remote
        return remote

    def _drop_speaker(self, name: str) -> None:
        remote = self.remote_speakers.pop(name, None)
        if remote is None:
            return
        if remote.task is not None:
            remote.task.cancel()
        if self.on_air.speakers.get(name) is remote.speaker:
            self.on_air.remove_speaker(name)

    async def _send_returns(
        self, subscriber: RelaySubscriber, handle: str, speaker: Speaker
    ) -> None:
        reader = speaker.returns.reader()
        with contextlib.suppress(StreamClosed):
            while True:
                packet = await reader.next()
                frame = AudioFrame(
                    FrameKind.MIX_MINUS, handle, packet.seq, packet.pts, packet.data
                )
                self._send(subscriber, frame.serialize())
                if subscriber.closed:
                    return

    # -- program and housekeeping -------------------------------------------------------

    def _ensure_tasks(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pump is None or self._pump.done():
            self._pump = loop.create_task(self._program_pump(), name=f"relay-{self.room_id}")
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = loop.create_task(self._watch())

    async def _program_pump(self) -> None:
        reader = self.on_air.program.reader()
        with contextlib.suppress(StreamClosed):
            while self.subscribers:
                packet = await reader.next()
                data = AudioFrame(
                    FrameKind.PROGRAM, "", packet.seq, packet.pts, packet.data
                ).serialize()
                for subscriber in list(self.subscribers):
                    self._send(subscriber, data)

    async def _watch(self) -> None:
        while self.subscribers or self.remote_speakers:
            await asyncio.sleep(KEEPALIVE_S)
            for subscriber in list(self.subscribers):
                self._send(subscriber, '{"type":"ping"}')
            now = time.monotonic()
            for name, remote in list(self.remote_speakers.items()):
                if now - remote.last_at > REMOTE_SPEAKER_IDLE_S:
                    self._drop_speaker(name)

    def close(self, code: int = CloseCode.GOING_AWAY) -> None:
        """Let every relay go with ``code`` (the room ended, or this node stops)."""
        self._unsubscribe()
        for subscriber in list(self.subscribers):
            subscriber.close(code)
        self.subscribers.clear()
        for name in list(self.remote_speakers):
            self._drop_speaker(name)
        for task in (self._pump, self._watchdog):
            if task is not None:
                task.cancel()
