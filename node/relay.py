"""Rooms across nodes: the relay stream's two ends, mirrors, remote speakers, succession.

Words used here:

- *carrying node*: the node whose ``OnAir`` a relay subscribes to (the acting origin, or
  another relay: relays form a tree).
- ``RelayHub`` (one per carried room): the serving end. Every relay subscriber gets the
  program as binary frames and the room's events as JSON, through a bounded queue of its
  own (a slow relay is dropped, never waited for). It takes remote speakers' uplink into
  the mixer and sends their mix-minus back.
- ``Mirror`` (one per remote room shown here): the subscribing end. It keeps a replicated
  ``Room`` (names seen from this node: our users bare, everyone else ``user@host``),
  republishes the program into a local ``PacketStream`` (no re-encode) that our WHEP,
  Ogg and relay subscribers read, encodes our speakers' uplink, and when the carrying
  node is gone walks the succession list: attach to the first live node before us, or,
  if we come first, *promote* (run the mixer here, epoch + 1).
- ``RelayService``: the node-wide registry the web layer talks to.

Wire format: ``federation/relay.py``; rules: FEDERATION.md "Node-to-node audio relay".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import av
import httpx
import sqlite_utils
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from federation.activities import AS_CONTEXT, PARLEY_NS
from federation.client import domain_is_blocked
from federation.relay import (
    DOWNSTREAM_TYPES,
    RELAY_PATH,
    UPSTREAM_TYPES,
    AudioFrame,
    FrameKind,
    RelayFrameError,
    SequenceFilter,
    SuccessionEntry,
    merge_succession,
    parse_control,
    serialize_control,
)
from federation.signatures import sign_request
from node.accounts import Account
from node.errors import Conflict, Forbidden, InvalidInput, NotFound, ParleyError
from node.mailbox import Mailbox
from node.media.errors import StreamClosed
from node.media.mixer import OpusFrameEncoder, SpeakerInput
from node.media.packets import SAMPLES_PER_FRAME, OpusPacket, PacketStream
from node.rooms import MODERATORS, Member, Role, Room, RoomState, Visibility, valid_csrc

if TYPE_CHECKING:
    from node.fediverse import Fediverse
    from node.stage import OnAir, Stage

logger = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 100
"""Messages queued per relay subscriber (2 s of program): beyond that it is dropped."""
MAX_SUBSCRIBERS_PER_ROOM = 32
UPSTREAM_SILENCE_S = 1.5
"""No message from the carrying node for this long: it is gone."""
KEEPALIVE_S = 0.5
CONNECT_TIMEOUT_S = 2.0
REMOTE_SPEAKER_IDLE_S = 3.0
RECOVERY_WINDOW_S = 8.0
"""A restarted origin waits this long for a relay that answers to show a higher epoch
(it refuses the room's relay subscriptions meanwhile, so the relays do take over)."""
PROBE_TIMEOUT_S = 2.0
MAX_RELAY_MESSAGE = 256 * 1024

RELAY_ACTIVITY_TYPES = frozenset(
    {
        "parley:RaiseHand",
        "parley:LowerHand",
        "parley:AnswerInvitation",
        "parley:Mute",
        "parley:Invite",
        "parley:SetRole",
    }
)


def ensure_relay_schema(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        create table if not exists relay_rooms (
            id text primary key, origin text not null, upstream text not null,
            epoch integer not null, succession text not null, room text not null,
            promoted integer not null default 0, updated_at real not null);
        create index if not exists relay_rooms_origin on relay_rooms (origin);
        create table if not exists relay_origin_rooms (
            id text primary key, epoch integer not null, succession text not null,
            updated_at real not null);
        """
    )


def _ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)


def _http_url(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)


def _netloc(url: str) -> str:
    return urlsplit(url).netloc.lower()


@dataclass
class RelayCounters:
    malformed: int = 0
    duplicates: int = 0
    late: int = 0
    uplink_refused: int = 0
    slow_dropped: int = 0
    refused_subscriptions: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)

    def take_filtered(self, seen: SequenceFilter) -> None:
        """Add what ``seen`` refused since the last call (the uplink filter of the service
        and every mirror's filter feed the same two counters)."""
        self.duplicates += seen.duplicates
        self.late += seen.late
        seen.duplicates = seen.late = 0


# --------------------------------------------------------------------------- names


class Names:
    """Member names as one node sees them: its own users bare, others ``user@host``."""

    def __init__(self, own_host: str) -> None:
        self.own_host = own_host

    def handle(self, name: str) -> str:
        """A name of ours as a global handle."""
        return name if "@" in name else f"{name}@{self.own_host}"

    def local(self, handle: str) -> str:
        """A global handle as we name it."""
        user, _, host = handle.rpartition("@")
        return user if user and host.lower() == self.own_host else handle

    def from_peer(self, name: str, peer_host: str) -> str:
        """A name as ``peer_host`` sent it, as we name it."""
        return self.local(name if "@" in name else f"{name}@{peer_host}")


# --------------------------------------------------------------------------- serving end


class RelaySubscriber(Mailbox[bytes | str]):
    """A node relaying one of our rooms: what goes down its stream is queued here."""

    def __init__(self, host: str, entry: SuccessionEntry | None) -> None:
        super().__init__(maxsize=SUBSCRIBER_QUEUE)
        self.host = host
        """Authenticated host (netloc of the signing key id); its users may speak up."""
        self.entry = entry
        self.listeners = 0
        self.presence: set[str] = set()


@dataclass(eq=False)
class RemoteSpeaker:
    handle: str
    subscriber: RelaySubscriber
    sink: SpeakerInput
    decoder: av.AudioCodecContext
    task: asyncio.Task[None] | None = None
    last_at: float = field(default_factory=time.monotonic)


class RelayHub:
    """The serving end for one room: fan-out to relays, uplink in, mix-minus back."""

    def __init__(self, on_air: OnAir, service: RelayService) -> None:
        self.on_air = on_air
        self.service = service
        self.subscribers: list[RelaySubscriber] = []
        self.remote_speakers: dict[str, RemoteSpeaker] = {}
        self._pump: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    # -- subscribers ------------------------------------------------------------------

    def add(self, subscriber: RelaySubscriber) -> None:
        if len(self.subscribers) >= MAX_SUBSCRIBERS_PER_ROOM:
            raise Conflict("this room has as many relays as it accepts")
        for old in [s for s in self.subscribers if s.host == subscriber.host]:
            # A node reconnecting replaces its old connection: one upstream per node.
            self.remove(old)
            old.close()
        self.subscribers.append(subscriber)
        subscriber.send(serialize_control(self.snapshot()))
        self._ensure_tasks()
        self.broadcast_snapshot(exclude=subscriber)
        self.service.persist_succession(self.on_air)

    def remove(self, subscriber: RelaySubscriber) -> None:
        if subscriber not in self.subscribers:
            return
        self.subscribers.remove(subscriber)
        for handle, speaker in list(self.remote_speakers.items()):
            if speaker.subscriber is subscriber:
                self._drop_speaker(handle)
        self._set_presence(subscriber, set())
        self.on_air.count_listeners()
        self.broadcast_snapshot()
        self.service.persist_succession(self.on_air)

    def hand_over(self, message: dict[str, Any]) -> None:
        """A move: tell every relay where the room goes, then let them go (each closes
        after what is queued for it, the handover included)."""
        text = serialize_control(message)
        for subscriber in list(self.subscribers):
            subscriber.send(text)
            subscriber.close()
        self.subscribers.clear()
        for name in list(self.remote_speakers):
            self._drop_speaker(name)

    def relayed_listeners(self) -> int:
        return sum(s.listeners for s in self.subscribers)

    def succession(self) -> list[SuccessionEntry]:
        own = SuccessionEntry(self.service.base_url, self.service.relay_url(self.on_air.room.id))
        mine = [s.entry for s in self.subscribers if s.entry is not None]
        mirror = self.on_air.mirror
        if mirror is not None and not mirror.promoted:
            # A relay passes on the list it got, then itself, then its own relays.
            return merge_succession(mirror.succession, [own, *mine])
        return merge_succession([own], mine)

    def snapshot(self) -> dict[str, Any]:
        mirror = self.on_air.mirror
        room = self.service.stage.room_json(self.on_air.room)
        origin = mirror.origin if mirror is not None else room["url"]
        acting = (
            mirror.acting_origin
            if mirror is not None and not mirror.promoted
            else self.service.base_url
        )
        return {
            "type": "snapshot",
            "room": room,
            "origin": origin,
            "acting_origin": acting,
            "epoch": mirror.epoch if mirror is not None else self.on_air.epoch,
            "succession": [e.to_json() for e in self.succession()],
        }

    def broadcast_snapshot(self, exclude: RelaySubscriber | None = None) -> None:
        if self.subscribers:
            text = serialize_control(self.snapshot())
            for subscriber in list(self.subscribers):
                if subscriber is not exclude:
                    self._send(subscriber, text)

    def event(self, event: dict[str, Any]) -> None:
        if self.subscribers:
            text = serialize_control(event)
            for subscriber in list(self.subscribers):
                self._send(subscriber, text)

    def _send(self, subscriber: RelaySubscriber, message: bytes | str) -> None:
        if not subscriber.send(message) and not subscriber.closed:
            logger.info("dropping relay %s of room %s: too slow", subscriber.host, self.room_id)
            self.service.counters.slow_dropped += 1
            subscriber.close()
            self.remove(subscriber)

    @property
    def room_id(self) -> str:
        return self.on_air.room.id

    # -- messages from a subscriber ---------------------------------------------------

    def on_text(self, subscriber: RelaySubscriber, text: str) -> None:
        try:
            message = parse_control(text, UPSTREAM_TYPES)
        except RelayFrameError as exc:
            self.service.counters.malformed += 1
            logger.info("malformed control message from %s: %s", subscriber.host, exc)
            return
        kind = message["type"]
        if kind == "listeners":
            subscriber.listeners = message["count"]
            self.on_air.count_listeners()
        elif kind == "presence":
            handles = {
                h for h in message["users"][:1000] if h.lower().endswith(f"@{subscriber.host}")
            }
            self._set_presence(subscriber, handles)

    def _set_presence(self, subscriber: RelaySubscriber, handles: set[str]) -> None:
        room = self.on_air.room
        names = self.service.names
        for handle in handles - subscriber.presence:
            with contextlib.suppress(ParleyError):
                room.connect(names.local(handle), handle)
        for handle in subscriber.presence - handles:
            room.disconnect(names.local(handle))
        subscriber.presence = handles

    def on_binary(self, subscriber: RelaySubscriber, data: bytes) -> None:
        try:
            frame = AudioFrame.parse(data)
        except RelayFrameError:
            self.service.counters.malformed += 1
            return
        if frame.kind is not FrameKind.UPLINK:
            self.service.counters.malformed += 1
            return
        seen = self.service.uplink_filter
        if not seen.accept(f"{subscriber.host}/{frame.key}", frame.seq):
            self.service.counters.take_filtered(seen)
            return
        name = self.service.names.local(frame.key)
        _, _, domain = frame.key.rpartition("@")
        # Only the relay's own users, and only while the room has them on stage.
        if domain.lower() != subscriber.host or not self.on_air.room.can_publish(name):
            self.service.counters.uplink_refused += 1
            return
        if self.on_air.mirror is not None and not self.on_air.mirror.promoted:
            # Uplink through more than one hop is not carried (FEDERATION.md).
            self.service.counters.uplink_refused += 1
            return
        speaker = self.remote_speakers.get(name)
        if speaker is None or speaker.subscriber is not subscriber:
            speaker = self._add_speaker(name, subscriber)
        speaker.last_at = time.monotonic()
        try:
            frames = speaker.decoder.decode(av.Packet(frame.payload))
        except av.FFmpegError:
            self.service.counters.malformed += 1
            return
        for decoded in frames:
            speaker.sink.push(decoded)

    def _add_speaker(self, name: str, subscriber: RelaySubscriber) -> RemoteSpeaker:
        if name in self.remote_speakers:
            self._drop_speaker(name)
        mixer = self.on_air.ensure_mixer()
        local = self.on_air.publishers.get(name)
        if local is not None:
            self.on_air.publisher_gone(local.session_id)
        sink = mixer.add_speaker(name)
        sink.muted = self.on_air.room.members[name].muted
        decoder = av.CodecContext.create("libopus", "r")
        assert isinstance(decoder, av.AudioCodecContext)
        decoder.sample_rate = 48000
        decoder.layout = "mono"
        speaker = RemoteSpeaker(name, subscriber, sink, decoder)
        handle = self.service.names.handle(name)
        speaker.task = asyncio.get_running_loop().create_task(
            self._send_returns(subscriber, handle, mixer.return_stream(name)),
            name=f"mix-minus-{name}",
        )
        self.remote_speakers[name] = speaker
        self.on_air.room.set_publishing(name, True)
        return speaker

    def _drop_speaker(self, name: str) -> None:
        speaker = self.remote_speakers.pop(name, None)
        if speaker is None:
            return
        if speaker.task is not None:
            speaker.task.cancel()
        if self.on_air.mixer is not None:
            self.on_air.mixer.remove_speaker(name)
        self.on_air.room.set_publishing(name, False)

    def member_changed(self, member: dict[str, Any]) -> None:
        speaker = self.remote_speakers.get(member["username"])
        if speaker is not None:
            speaker.sink.muted = member["muted"]
            if member["role"] == Role.LISTENER:
                self._drop_speaker(member["username"])

    async def _send_returns(
        self, subscriber: RelaySubscriber, handle: str, stream: PacketStream
    ) -> None:
        reader = stream.reader()
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
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(
                self._program_pump(), name=f"relay-{self.room_id}"
            )
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _program_pump(self) -> None:
        while self.subscribers:
            stream = self.on_air.program
            reader = stream.reader()
            try:
                while self.subscribers:
                    packet = await reader.next()
                    data = AudioFrame(
                        FrameKind.PROGRAM, "", packet.seq, packet.pts, packet.data
                    ).serialize()
                    for subscriber in list(self.subscribers):
                        self._send(subscriber, data)
            except StreamClosed:
                if self.on_air.room.state is not RoomState.LIVE:
                    return
                await asyncio.sleep(0.02)

    async def _watch(self) -> None:
        while self.subscribers or self.remote_speakers:
            await asyncio.sleep(KEEPALIVE_S)
            for subscriber in list(self.subscribers):
                self._send(subscriber, '{"type":"ping"}')
            now = time.monotonic()
            for name, speaker in list(self.remote_speakers.items()):
                if now - speaker.last_at > REMOTE_SPEAKER_IDLE_S:
                    self._drop_speaker(name)

    def close(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.close()
        self.subscribers.clear()
        for name in list(self.remote_speakers):
            self._drop_speaker(name)
        for task in (self._pump, self._watchdog):
            if task is not None:
                task.cancel()


# --------------------------------------------------------------------------- subscribing end


class Republisher:
    """Feeds a local PacketStream with renumbered packets, so what our listeners get stays
    continuous across upstream changes and failover (one seq/pts line per stream)."""

    def __init__(self, stream: PacketStream) -> None:
        self.stream = stream
        # A stream taken over from our own mixer (a move) goes on where the mixer stopped.
        self._seq = stream.published
        self._pts = stream.published * SAMPLES_PER_FRAME

    def feed(self, data: bytes) -> None:
        if self.stream.closed:
            return
        self.stream.publish(OpusPacket(self._seq, self._pts, data))
        self._seq += 1
        self._pts += SAMPLES_PER_FRAME


class UplinkInput(SpeakerInput):
    """Where a speaker of ours publishing into a remote room sends audio: encoded once
    and sent up the relay; after a promotion, straight into our own mixer."""

    def __init__(self, name: str, mirror: Mirror) -> None:
        super().__init__(name, frame_samples=SAMPLES_PER_FRAME, clock=time.monotonic)
        self._mirror = mirror
        self._encoder = OpusFrameEncoder(frame_samples=SAMPLES_PER_FRAME, bitrate=32000)
        self.target: SpeakerInput | None = None
        self.returns = PacketStream()
        self.return_feed = Republisher(self.returns)

    def push(self, frame: av.AudioFrame) -> None:
        if self.target is not None:
            self.last_audio_at = self._clock()
            self.target.muted = self.muted
            self.target.push(frame)
            return
        super().push(frame)
        while True:
            samples = self._pop()
            if samples is None:
                return
            if self.muted:
                continue
            data = self._encoder.encode(samples)
            if data is not None:
                self._mirror.send_uplink(self.speaker_id, data)


class Mirror:
    """A remote room as this node carries it."""

    def __init__(
        self,
        service: RelayService,
        on_air: OnAir,
        *,
        origin: str,
        upstream: str,
        epoch: int = 0,
        succession: list[SuccessionEntry] | None = None,
        promoted: bool = False,
        program: PacketStream | None = None,
    ) -> None:
        self.service = service
        self.on_air = on_air
        self.origin = origin
        """The room's identity: its URL on the node that started it."""
        self.upstream = upstream
        """Relay URL (ws) of the node we take the room from."""
        self.acting_origin = origin.split("/rooms/")[0]
        self.epoch = epoch
        self.succession = succession or []
        self.promoted = promoted
        self.program = program if program is not None else PacketStream(capacity=50)
        self.program_feed = Republisher(self.program)
        self.uplinks: dict[str, UplinkInput] = {}
        self._uplink_seq: dict[str, int] = {}
        self.filter = SequenceFilter()
        self.connected = asyncio.Event()
        self.upstream_connects = 0
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._forward: asyncio.Task[None] | None = None
        self._reported: tuple[int, frozenset[str]] | None = None
        self._closing = False

    @property
    def upstream_host(self) -> str:
        return _netloc(self.upstream)

    def start(self) -> None:
        if self.promoted:
            self.promote(persist=False)
        elif self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"mirror-{self.on_air.room.id}"
            )

    async def close(self) -> None:
        self._closing = True
        for task in (self._task, self._forward):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self.program.close()

    # -- the upstream connection ----------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing and not self.promoted:
            if await self._follow(self.upstream):
                continue  # was connected: one quick reconnect before walking the list
            if self._closing:
                return
            if self.on_air.room.state is RoomState.ENDED:
                return
            await self._fail_over()

    async def _follow(self, url: str) -> bool:
        """Attach to ``url`` and carry its stream until it ends; True if it delivered a
        snapshot we accepted (so the connection was good for a while)."""
        try:
            ws = await asyncio.wait_for(self.service.open_relay(url), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, WebSocketException, ParleyError) as exc:
            logger.info("relay %s unreachable: %s", url, exc)
            return False
        self._ws = ws
        self.upstream_connects += 1
        good = False
        reporter = asyncio.get_running_loop().create_task(self._report(ws))
        try:
            while True:
                message = await asyncio.wait_for(ws.recv(), UPSTREAM_SILENCE_S)
                if isinstance(message, bytes):
                    self._on_binary(message)
                elif not self._on_text(message, url):
                    return good
                else:
                    if not good:
                        good = True
                        self.upstream = url
                        self.connected.set()
                        self._reported = None
        except (TimeoutError, WebSocketException, OSError) as exc:
            logger.info("upstream %s of room %s lost: %r", url, self.on_air.room.id, exc)
            return good
        finally:
            reporter.cancel()
            self.connected.clear()
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()

    async def _report(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            while True:
                state = (self.on_air.local_listener_count(), frozenset(self._presence()))
                if state != self._reported:
                    self._reported = state
                    await ws.send(serialize_control({"type": "listeners", "count": state[0]}))
                    await ws.send(
                        serialize_control({"type": "presence", "users": sorted(state[1])})
                    )
                await ws.send('{"type":"ping"}')
                await asyncio.sleep(KEEPALIVE_S)

    def _presence(self) -> set[str]:
        names = self.service.names
        hub = self.on_air.relay_hub
        own = {names.handle(w.username) for w in self.on_air.watchers if w.username is not None}
        if hub is not None:
            for subscriber in hub.subscribers:
                own |= subscriber.presence
        return own

    async def _fail_over(self) -> None:
        """The carrying node is gone: the first live node on the list carries on."""
        dead = self.upstream
        own = self.service.base_url
        for entry in self.succession:
            if entry.node == own:
                logger.info("room %s: we are first on the succession list; promoting", self.origin)
                self.promote()
                return
            if entry.relay == dead:
                continue
            if await self._follow(entry.relay):
                return
        await asyncio.sleep(1.0)

    def _on_binary(self, data: bytes) -> None:
        counters = self.service.counters
        try:
            frame = AudioFrame.parse(data)
        except RelayFrameError:
            counters.malformed += 1
            return
        if not self.filter.accept(f"{frame.kind}/{frame.key}", frame.seq):
            counters.take_filtered(self.filter)
            return
        if frame.kind is FrameKind.PROGRAM:
            self.program_feed.feed(frame.payload)
        elif frame.kind is FrameKind.MIX_MINUS:
            uplink = self.uplinks.get(self.service.names.local(frame.key))
            if uplink is not None and not uplink.returns.closed:
                uplink.return_feed.feed(frame.payload)
        else:
            counters.malformed += 1

    def _on_text(self, text: str, url: str) -> bool:
        """Apply one state message; False to leave this upstream (stale epoch)."""
        try:
            message = parse_control(text, DOWNSTREAM_TYPES)
        except RelayFrameError:
            self.service.counters.malformed += 1
            return True
        kind = message["type"]
        peer = _netloc(url)
        names = self.service.names
        room = self.on_air.room
        if kind == "snapshot":
            if message["epoch"] < self.epoch:
                logger.warning("refusing %s: epoch %d < %d", url, message["epoch"], self.epoch)
                return False
            if message["epoch"] > self.epoch:
                self.filter.reset()
            self.epoch = message["epoch"]
            self.succession = [
                SuccessionEntry(e["node"], e["relay"]) for e in message["succession"]
            ]
            acting = message.get("acting_origin")
            if isinstance(acting, str):
                self.acting_origin = acting.rstrip("/")
            replicate(room, message["room"], lambda n: names.from_peer(n, peer))
            self.service.persist(self)
            if self.on_air.relay_hub is not None:
                self.on_air.relay_hub.broadcast_snapshot()
        elif kind == "room":
            replicate(room, message["room"], lambda n: names.from_peer(n, peer))
            self.service.persist(self)
        elif kind == "member":
            member = dict(message["member"])
            member["username"] = names.from_peer(str(member.get("username")), peer)
            room.replicate_member(member)
        elif kind == "member_left":
            room.replicate_left(names.from_peer(str(message.get("username")), peer))
        elif kind == "listeners":
            room.replicate_listeners(int(message.get("count") or 0))
        elif kind == "levels":
            levels = message.get("levels")
            if isinstance(levels, dict):
                self.on_air.broadcast(
                    {
                        "type": "levels",
                        "levels": {names.from_peer(k, peer): v for k, v in levels.items()},
                    }
                )
        elif kind == "kicked":
            room.replicate_kicked(
                names.from_peer(str(message.get("username")), peer), bool(message.get("blocked"))
            )
        elif kind == "handover" and message["epoch"] > self.epoch:
            if message["acting_origin"] == self.service.base_url:
                logger.info("room %s handed over to us (epoch %d)", self.origin, message["epoch"])
                self.epoch = message["epoch"] - 1
                self.promote()
            else:
                # Leave this upstream for the new acting origin; its snapshots carry the
                # new epoch once it has taken the room.
                self.upstream = message["relay"]
                self.acting_origin = message["acting_origin"]
            return False
        return True

    # -- our speakers -------------------------------------------------------------------

    def uplink(self, name: str) -> UplinkInput:
        old = self.uplinks.pop(name, None)
        if old is not None:
            old.returns.close()
        sink = UplinkInput(name, self)
        self.uplinks[name] = sink
        if self.promoted:
            self._attach_to_mixer(name, sink)
        return sink

    def uplink_gone(self, name: str) -> None:
        sink = self.uplinks.pop(name, None)
        if sink is not None:
            sink.returns.close()
        if self.promoted and self.on_air.mixer is not None:
            self.on_air.mixer.remove_speaker(name)

    def send_uplink(self, name: str, data: bytes) -> None:
        ws = self._ws
        if ws is None or self.promoted:
            return
        # One sequence per speaker for the mirror's life, not per WHIP session: the origin
        # drops what looks older than it has seen, so a speaker who publishes again (a
        # reconnect, a new tab) must continue the line, not restart it at 0.
        seq = self._uplink_seq.get(name, 0)
        self._uplink_seq[name] = seq + 1
        frame = AudioFrame(FrameKind.UPLINK, self.service.names.handle(name), seq, 0, data)
        # Fire and forget: a send that cannot be queued is a lost 20 ms, not a stall.
        asyncio.get_running_loop().create_task(_quiet_send(ws, frame.serialize()))

    def _attach_to_mixer(self, name: str, sink: UplinkInput) -> None:
        mixer = self.on_air.ensure_mixer()
        target = mixer.add_speaker(name)
        target.muted = sink.muted
        sink.target = target
        asyncio.get_running_loop().create_task(_copy(mixer.return_stream(name), sink.return_feed))

    # -- taking over ----------------------------------------------------------------------

    def promote(self, *, persist: bool = True) -> None:
        """Become the acting origin: our mixer, our speakers, epoch + 1."""
        if persist:
            self.epoch += 1
        self.promoted = True
        self.acting_origin = self.service.base_url
        self.succession = [e for e in self.succession if e.node == self.service.base_url] + [
            e for e in self.succession if e.node != self.service.base_url
        ]
        mixer = self.on_air.ensure_mixer()
        self._forward = asyncio.get_running_loop().create_task(
            _copy(mixer.program, self.program_feed)
        )
        for name, sink in self.uplinks.items():
            self._attach_to_mixer(name, sink)
        self.service.persist(self)
        if self.on_air.relay_hub is not None:
            self.on_air.relay_hub.broadcast_snapshot()

    async def hand_over(self, upstream: str, acting_origin: str) -> None:
        """We were acting origin and moved the room on: stop mixing, follow the new one;
        our speakers' uplinks go up the relay again (their sessions stay up)."""
        self.promoted = False
        self.upstream = upstream
        self.acting_origin = acting_origin
        if self._forward is not None:
            self._forward.cancel()
            self._forward = None
        for sink in self.uplinks.values():
            sink.target = None
        await self.on_air.stop_mixing(keep_program=False, close_speakers=False)
        self.service.persist(self)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"mirror-{self.on_air.room.id}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "remote": not self.promoted,
            "acting_origin": self.acting_origin,
            "epoch": self.epoch,
            "promoted": self.promoted,
            "upstream": None if self.promoted else self.upstream,
            "succession": [e.to_json() for e in self.succession],
        }


async def _quiet_send(ws: ClientConnection, data: bytes) -> None:
    with contextlib.suppress(Exception):
        await ws.send(data)


async def _copy(stream: PacketStream, feed: Republisher) -> None:
    reader = stream.reader()
    with contextlib.suppress(StreamClosed):
        async for packet in reader:
            feed.feed(packet.data)


def replicate(room: Room, doc: dict[str, Any], name: Callable[[str], str]) -> None:
    """Make ``room`` what ``doc`` (a room JSON from the carrying node) says."""
    members = []
    hands = [name(h) for h in doc.get("hands", []) if isinstance(h, str)]
    for raw in [*doc.get("speakers", []), *doc.get("audience", [])]:
        if not isinstance(raw, dict) or not isinstance(raw.get("username"), str):
            continue
        members.append(member_from_json({**raw, "username": name(raw["username"])}, hands))
    host = doc.get("host") or {}
    room.replicate(
        title=str(doc.get("title") or room.title),
        description=str(doc.get("description") or ""),
        state=RoomState(doc.get("state", room.state.value)),
        host=name(str(host.get("username") or room.host)),
        host_display_name=str(host.get("display_name") or room.host_display_name),
        members=members,
        listener_count=int(doc.get("listener_count") or 0),
        started_at=doc.get("started_at"),
    )


def member_from_json(raw: dict[str, Any], hands: list[str]) -> Member:
    username = str(raw["username"])
    try:
        role = Role(str(raw.get("role")))
    except ValueError:
        role = Role.LISTENER
    hand = float(hands.index(username) + 1) if username in hands else None
    if hand is None and raw.get("hand_raised"):
        hand = float(len(hands) + 1)
    return Member(
        username=username,
        display_name=str(raw.get("display_name") or username),
        role=role,
        muted=bool(raw.get("muted")),
        hand_raised_at=hand,
        invited=bool(raw.get("invited")),
        connections=1 if raw.get("connected") else 0,
        publishing=bool(raw.get("publishing")),
        csrc=valid_csrc(raw.get("csrc")),
    )


# --------------------------------------------------------------------------- the service


class RelayService:
    def __init__(self, stage: Stage, db: sqlite_utils.Database, base_url: str) -> None:
        ensure_relay_schema(db)
        self.stage = stage
        self.db = db
        self.base_url = base_url.rstrip("/")
        self.host = _netloc(self.base_url)
        self.names = Names(self.host)
        self.counters = RelayCounters()
        self.uplink_filter = SequenceFilter()
        self.fediverse: Fediverse | None = None
        self._http = httpx.AsyncClient(timeout=10)
        self._recoveries: set[asyncio.Task[None]] = set()

    def relay_url(self, room_id: str) -> str:
        return _ws_url(self.base_url) + RELAY_PATH.format(room_id=room_id)

    # -- subscribing ------------------------------------------------------------------

    async def open_relay(self, url: str) -> ClientConnection:
        fediverse = self._fediverse()
        host = urlsplit(url).hostname or ""
        if domain_is_blocked(host, fediverse.blocked_domains):
            raise Forbidden(f"{host} is blocked")
        key_id, pem = fediverse.actors.instance_key()
        # The relay URL of our copy rides along (signed) so the carrying node can put us
        # on the succession list.
        room_id = self._mirror_id_for_upstream(url)
        target = url
        if room_id is not None:
            sep = "&" if "?" in url else "?"
            target = f"{url}{sep}" + str(httpx.QueryParams({"relay": self.relay_url(room_id)}))
        signed = sign_request("GET", _http_url(target), {}, None, key_id, pem)
        headers = {k: v for k, v in signed.items() if k.lower() != "host"}
        return await connect(
            target,
            additional_headers=headers,
            max_size=MAX_RELAY_MESSAGE,
            open_timeout=CONNECT_TIMEOUT_S,
            ping_interval=None,
            compression=None,
        )

    def _mirror_id_for_upstream(self, url: str) -> str | None:
        for on_air in self.stage.rooms_on_air.values():
            mirror = on_air.mirror
            if mirror is not None and (
                mirror.upstream == url or any(e.relay == url for e in mirror.succession)
            ):
                return on_air.room.id
        return None

    def _fediverse(self) -> Fediverse:
        if self.fediverse is None:
            raise RuntimeError("relay service used before the federation started")
        return self.fediverse

    async def open_mirror(self, account: Account, body: dict[str, Any]) -> OnAir:
        url = body.get("url")
        handle = body.get("handle")
        if isinstance(url, str) and url.strip():
            doc = await self._fetch_room(url.strip())
        elif isinstance(handle, str) and handle.strip():
            doc = await self._room_of_handle(handle.strip())
        else:
            raise InvalidInput("url", "give the room's url or its host's handle")
        origin = str(doc.get("origin") or doc["url"])
        if _netloc(origin) == self.host:
            local_id = origin.rstrip("/").rsplit("/", 1)[-1]
            return self.stage.get(local_id)
        existing = self.mirror_of(origin)
        if existing is not None and existing.room.state is not RoomState.ENDED:
            return existing
        if doc.get("state") != RoomState.LIVE:
            raise Conflict("the room is not live")
        base = str(doc["url"]).split("/rooms/")[0]
        upstream = _ws_url(base) + RELAY_PATH.format(room_id=doc["id"])
        on_air = self.stage.open_mirror(doc, self.names, _netloc(base))
        mirror = Mirror(self, on_air, origin=origin, upstream=upstream)
        on_air.attach_mirror(mirror)
        self.persist(mirror)
        mirror.start()
        # Return once the first snapshot arrived (or soon anyway: the client watches).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(mirror.connected.wait(), 5)
        return on_air

    def mirror_of(self, origin: str) -> OnAir | None:
        for on_air in self.stage.rooms_on_air.values():
            if on_air.mirror is not None and on_air.mirror.origin == origin:
                return on_air
        return None

    async def _get_json(self, url: str) -> Any:
        fediverse = self._fediverse()
        if domain_is_blocked(urlsplit(url).hostname or "", fediverse.blocked_domains):
            raise Forbidden("that server is blocked here")
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise NotFound(f"cannot reach {url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise NotFound(f"{url} answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise NotFound(f"{url} did not answer JSON") from None

    async def _fetch_room(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or "/rooms/" not in parts.path:
            raise InvalidInput("url", "must be a room URL like https://node/rooms/ID")
        room_id = parts.path.rstrip("/").rsplit("/", 1)[-1]
        base = f"{parts.scheme}://{parts.netloc}"
        if parts.netloc.lower() == self.host:
            return self.stage.room_json(self.stage.get(room_id).room)
        doc = await self._get_json(f"{base}/api/v1/rooms/{room_id}")
        if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
            raise NotFound("that is not a Parley room")
        return doc

    async def _room_of_handle(self, handle: str) -> dict[str, Any]:
        user, _, host = handle.lstrip("@").rpartition("@")
        if not user or not host:
            raise InvalidInput("handle", "must be a handle like alice@example.org")
        scheme = "http" if self._fediverse().config.federation.allow_private_addresses else "https"
        doc = await self._get_json(f"{scheme}://{host}/api/v1/accounts/{user}/rooms")
        for room in doc.get("rooms", []) if isinstance(doc, dict) else []:
            if isinstance(room, dict) and room.get("state") == RoomState.LIVE:
                return room
        raise NotFound(f"{handle} has no live room")

    # -- persistence and restart ---------------------------------------------------------

    def persist(self, mirror: Mirror) -> None:
        room = mirror.on_air.room
        self.db.execute(
            "insert into relay_rooms (id, origin, upstream, epoch, succession, room, promoted, "
            "updated_at) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (id) do update set "
            "upstream = excluded.upstream, epoch = excluded.epoch, "
            "succession = excluded.succession, room = excluded.room, "
            "promoted = excluded.promoted, updated_at = excluded.updated_at",
            [
                room.id,
                mirror.origin,
                mirror.upstream,
                mirror.epoch,
                json.dumps([e.to_json() for e in mirror.succession]),
                json.dumps(room.to_json()),
                int(mirror.promoted),
                time.time(),
            ],
        )

    def restore(self) -> None:
        """Mirrors that were live before a restart resume (they re-attach upstream)."""
        rows = self.db.execute(
            "select id, origin, upstream, epoch, succession, room, promoted from relay_rooms"
        ).fetchall()
        for room_id, origin, upstream, epoch, succession, room_doc, promoted in rows:
            doc = json.loads(room_doc)
            if doc.get("state") != RoomState.LIVE:
                continue
            on_air = self.stage.open_mirror(doc, self.names, None, room_id=room_id)
            entries = [SuccessionEntry(e["node"], e["relay"]) for e in json.loads(succession)]
            mirror = Mirror(
                self,
                on_air,
                origin=origin,
                upstream=upstream,
                epoch=epoch,
                succession=entries,
                promoted=False,
            )
            on_air.attach_mirror(mirror)
            mirror.start()
            del promoted  # a restarted node re-attaches; it never resumes as origin alone

    def end_mirror(self, room_id: str) -> None:
        self.db.execute("delete from relay_rooms where id = ?", [room_id])

    def persist_succession(self, on_air: OnAir) -> None:
        """The acting origin keeps its succession list, so that after a crash it can ask
        those nodes before ending the room (FEDERATION.md "Survival")."""
        hub = on_air.relay_hub
        entries = hub.succession() if hub is not None else []
        mirror = on_air.mirror
        if mirror is not None:
            if mirror.promoted:
                mirror.succession = entries
                self.persist(mirror)
            return
        self.db.execute(
            "insert into relay_origin_rooms (id, epoch, succession, updated_at) "
            "values (?, ?, ?, ?) on conflict (id) do update set epoch = excluded.epoch, "
            "succession = excluded.succession, updated_at = excluded.updated_at",
            [
                on_air.room.id,
                on_air.epoch,
                json.dumps([e.to_json() for e in entries]),
                time.time(),
            ],
        )

    def rooms_to_recover(self) -> dict[str, tuple[int, list[SuccessionEntry]]]:
        """Our rooms left live by the previous run that had relays: room id -> (epoch,
        the other nodes of the succession list, in order)."""
        rows = self.db.execute(
            "select o.id, o.epoch, o.succession from relay_origin_rooms o "
            "join rooms r on r.id = o.id where r.state = 'live'"
        ).fetchall()
        found: dict[str, tuple[int, list[SuccessionEntry]]] = {}
        for room_id, epoch, succession in rows:
            entries = [
                SuccessionEntry(e["node"], e["relay"])
                for e in json.loads(succession)
                if e["node"] != self.base_url
            ]
            if entries:
                found[room_id] = (int(epoch), entries)
        return found

    def mirrored_rooms(self) -> set[str]:
        """Rooms restore() resumes as mirrors (some are ours, moved to another node)."""
        rows = self.db.execute("select id, room from relay_rooms").fetchall()
        return {r[0] for r in rows if json.loads(r[1]).get("state") == RoomState.LIVE}

    def recover_origins(self, rooms: dict[str, tuple[int, list[SuccessionEntry]]]) -> None:
        self.stage.recovering.update(rooms)
        for room_id, (epoch, entries) in rooms.items():
            task = asyncio.get_running_loop().create_task(
                self._recover(room_id, epoch, entries), name=f"recover-{room_id}"
            )
            self._recoveries.add(task)
            task.add_done_callback(self._recoveries.discard)

    async def _recover(self, room_id: str, epoch: int, entries: list[SuccessionEntry]) -> None:
        """Our room was live when we crashed: if a node of its succession list carries it
        at a higher epoch, follow that node; only if none answers, end it as before."""
        own_url = f"{self.base_url}/rooms/{room_id}"
        deadline = time.monotonic() + RECOVERY_WINDOW_S
        try:
            while True:
                answered = False
                for entry in entries:
                    snapshot = await self._probe(entry.relay)
                    if snapshot is None or snapshot.get("origin") != own_url:
                        continue
                    answered = True
                    if snapshot["epoch"] > epoch:
                        self._rejoin(room_id, own_url, epoch, entry, snapshot)
                        return
                if not answered or time.monotonic() > deadline:
                    break
                # A relay that has not taken over yet will: we refuse its reconnects.
                await asyncio.sleep(0.5)
        finally:
            self.stage.recovering.discard(room_id)
        logger.info("no node carries on room %s; it ends", room_id)
        self.stage.store.end_live(room_id, time.time())
        self.db.execute("delete from relay_origin_rooms where id = ?", [room_id])
        if self.fediverse is not None:
            await self.fediverse.announcer.recover()

    async def _probe(self, url: str) -> dict[str, Any] | None:
        """The first snapshot ``url`` sends, or None if it cannot be had."""
        try:
            ws = await asyncio.wait_for(self.open_relay(url), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, WebSocketException, ParleyError) as exc:
            logger.info("succession node %s unreachable: %s", url, exc)
            return None
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                while True:
                    message = await ws.recv()
                    if isinstance(message, str):
                        doc = parse_control(message, DOWNSTREAM_TYPES)
                        if doc["type"] == "snapshot":
                            return doc
        except (TimeoutError, WebSocketException, OSError, RelayFrameError):
            return None
        finally:
            with contextlib.suppress(Exception):
                await ws.close()

    def _rejoin(
        self,
        room_id: str,
        own_url: str,
        epoch: int,
        entry: SuccessionEntry,
        snapshot: dict[str, Any],
    ) -> None:
        logger.info(
            "room %s is carried on by %s (epoch %d); following it",
            room_id,
            snapshot.get("acting_origin"),
            snapshot["epoch"],
        )
        on_air = self.stage.open_mirror(
            snapshot["room"], self.names, _netloc(entry.relay), room_id=room_id
        )
        mirror = Mirror(self, on_air, origin=own_url, upstream=entry.relay, epoch=epoch)
        on_air.attach_mirror(mirror)
        self.db.execute("delete from relay_origin_rooms where id = ?", [room_id])
        self.persist(mirror)
        mirror.start()

    async def move(self, on_air: OnAir, account: Account, body: dict[str, Any]) -> None:
        """Hand a live room we act as origin for to one of its relays (epoch + 1); we
        become a relay of the new acting origin."""
        to = body.get("to")
        if not isinstance(to, str) or not to.startswith(("http://", "https://")):
            raise InvalidInput("to", "must be the base URL of a node relaying the room")
        to = to.rstrip("/")
        room = on_air.room
        if room.state is not RoomState.LIVE:
            raise Conflict("the room is not live")
        if on_air.relaying:
            raise Forbidden("move the room on the node that carries it now")
        if room.role_of(account.username) not in MODERATORS:
            raise Forbidden("only the host or a cohost may move the room")
        hub = on_air.relay_hub
        target = None
        if hub is not None:
            target = next(
                (s.entry for s in hub.subscribers if s.entry is not None and s.entry.node == to),
                None,
            )
        if hub is None or target is None:
            raise Conflict("that node does not relay this room now")
        mirror = on_air.mirror
        epoch = mirror.epoch if mirror is not None else on_air.epoch
        logger.info("moving room %s to %s (epoch %d)", room.id, to, epoch + 1)
        hub.hand_over(
            {"type": "handover", "epoch": epoch + 1, "acting_origin": to, "relay": target.relay}
        )
        if mirror is not None:
            await mirror.hand_over(target.relay, to)
            return
        program = on_air.mixer.program if on_air.mixer is not None else None
        await on_air.stop_mixing(keep_program=True, close_speakers=True)
        mirror = Mirror(
            self,
            on_air,
            origin=f"{self.base_url}/rooms/{room.id}",
            upstream=target.relay,
            epoch=epoch,
            program=program,
        )
        mirror.acting_origin = to
        on_air.attach_mirror(mirror)
        self.db.execute("delete from relay_origin_rooms where id = ?", [room.id])
        self.persist(mirror)
        mirror.start()

    async def close(self) -> None:
        for task in list(self._recoveries):
            task.cancel()
        await self._http.aclose()

    # -- activities for remote rooms -------------------------------------------------------

    async def forward(
        self, on_air: OnAir, account: Account, kind: str, extra: dict[str, Any]
    ) -> None:
        """Send one of our user's actions in a remote room to its acting origin, signed
        with the user's key."""
        mirror = on_air.mirror
        assert mirror is not None
        fediverse = self._fediverse()
        actor = fediverse.actor_id(account.username)
        activity = {
            "@context": [AS_CONTEXT, {"parley": PARLEY_NS}],
            "id": f"{actor}/activities/{uuid.uuid4()}",
            "type": kind,
            "actor": actor,
            "object": mirror.origin,
            **extra,
        }
        client = fediverse.client
        assert client is not None
        key = await fediverse.actors.local_actor_key(actor)
        assert key is not None
        result = await client.post_activity(
            f"{mirror.acting_origin}/inbox",
            json.dumps(activity).encode(),
            key_id=key[0],
            private_pem=key[1],
        )
        if result.status >= 300:
            raise Conflict(f"the room's node refused the action ({result.status})")

    def member_handle(self, name: str) -> str:
        return self.names.handle(name)

    async def apply_activity(self, actor_id: str, activity: dict[str, Any]) -> None:
        """A room action from a remote user (already verified as signed by ``actor_id``)."""
        fediverse = self._fediverse()
        room_url = activity.get("object")
        if not isinstance(room_url, str):
            return
        on_air = self._carried_room(room_url)
        if on_air is None:
            logger.info("room action for unknown room %s", room_url)
            return
        assert fediverse.resolver is not None
        remote = await fediverse.resolver.actor(actor_id)
        handle = fediverse.handle_of(remote.id, remote.preferred_username)
        who = self.names.local(handle)
        room = on_air.room
        member = activity.get("parley:member")
        target = self.names.local(member) if isinstance(member, str) else who
        kind = activity.get("type")
        try:
            if kind == "parley:RaiseHand":
                if who not in room.members:
                    room.connect(who, handle)
                room.raise_hand(who)
            elif kind == "parley:LowerHand":
                room.lower_hand(who, target)
            elif kind == "parley:AnswerInvitation":
                room.answer_invitation(who, bool(activity.get("parley:accept")))
            elif kind == "parley:Mute":
                room.set_muted(who, target, bool(activity.get("parley:muted")))
            elif kind == "parley:Invite":
                room.invite(who, target)
            elif kind == "parley:SetRole":
                room.set_role(who, target, Role(str(activity.get("parley:role"))))
        except (ParleyError, ValueError) as exc:
            logger.info("room action %s by %s refused: %s", kind, handle, exc)

    def _carried_room(self, room_url: str) -> OnAir | None:
        prefix = f"{self.base_url}/rooms/"
        if room_url.startswith(prefix):
            with contextlib.suppress(NotFound, Conflict):
                own = self.stage.get(room_url[len(prefix) :])
                # Our own room carried on elsewhere: its acting origin applies actions.
                return None if own.relaying else own
        on_air = self.mirror_of(room_url)
        if on_air is not None and on_air.mirror is not None and on_air.mirror.promoted:
            return on_air
        return None

    # -- the serving end ------------------------------------------------------------------

    def hub(self, on_air: OnAir) -> RelayHub:
        if on_air.relay_hub is None:
            on_air.relay_hub = RelayHub(on_air, self)
        return on_air.relay_hub

    def stats(self) -> dict[str, Any]:
        rooms: dict[str, Any] = {}
        upstreams = 0
        for room_id, on_air in self.stage.rooms_on_air.items():
            hub = on_air.relay_hub
            mirror = on_air.mirror
            entry: dict[str, Any] = {}
            if hub is not None:
                entry["subscribers"] = len(hub.subscribers)
                entry["remote_speakers"] = sorted(hub.remote_speakers)
            if mirror is not None:
                entry["upstream"] = mirror.upstream if mirror.connected.is_set() else None
                entry["upstream_connects"] = mirror.upstream_connects
                entry["epoch"] = mirror.epoch
                entry["promoted"] = mirror.promoted
                upstreams += int(mirror.connected.is_set())
            if entry:
                rooms[room_id] = entry
        return {
            "subscribers": sum(
                len(o.relay_hub.subscribers)
                for o in self.stage.rooms_on_air.values()
                if o.relay_hub
            ),
            "upstreams": upstreams,
            "rooms": rooms,
            **self.counters.to_json(),
        }


def visibility_of(doc: dict[str, Any]) -> Visibility:
    try:
        return Visibility(str(doc.get("visibility")))
    except ValueError:
        return Visibility.PUBLIC
