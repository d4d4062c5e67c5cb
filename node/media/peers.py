"""WebRTC peer sessions: WHIP-style publishing (speakers) and WHEP-style listening.

Listeners get pre-encoded Opus packets, never a per-listener encode. By default (fan-out
"native", or "batched" for the same loop in pure Python) one
:class:`~node.media.fanout.RtpFanout` per packet stream builds, protects and sends every
WHEP listener's RTP in one loop, and aiortc keeps ICE, DTLS and RTCP (see
``node/media/fanout.py`` and ``node/media/native.py``). Listeners' answers accept the
MID and the two audio level header extensions (node/media/rtpwire.py), so packets of a
mix name their speakers (CSRCs). With fan-out "aiortc" each listener instead has a
:class:`PacketTrack` handing its ``RTCRtpSender`` an ``av.Packet`` to pack (the slower,
stock path, kept as a fallback and as the benchmark's baseline). Speakers' return
streams (few per room) always use :class:`PacketTrack`.

Offers are checked before any ``RTCPeerConnection`` exists, and a failed negotiation
closes its connection: sessions never leak.

We do not trickle ICE: the answer is returned after gathering completed (aiortc gathers
inside ``setLocalDescription``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import av
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import MAX_MISORDER, JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription
from aiortc.utils import uint16_add

from node.media import native
from node.media.certificate import CertificateKeeper
from node.media.errors import InvalidOffer, SessionNotFound, StreamClosed
from node.media.fanout import RtpFanout, RtpListener
from node.media.fanout_attach import FanoutTrack, listener_for, report_slowly
from node.media.ice import IceSettings, rtc_configuration
from node.media.lean import release_after_handshake, shed_setup_state
from node.media.mixer import AudioSink
from node.media.packets import PacketReader, PacketStream
from node.media.rtpwire import CSRC_AUDIO_LEVEL, LISTENER_EXTENSIONS

__all__ = ["FanoutMode", "ListenerSessions", "PacketTrack", "PeerSessions", "check_offer"]

FanoutMode = Literal["native", "batched", "aiortc"]

logger = logging.getLogger(__name__)

_MEDIA_LINE = re.compile(r"^m=(\S+)\s", re.MULTILINE)
_OPUS_RTPMAP = re.compile(r"^a=rtpmap:\d+\s+opus/48000", re.MULTILINE | re.IGNORECASE)
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def check_offer(sdp: str, *, max_bytes: int, directions: tuple[str, ...]) -> str:
    """Refuse an offer we cannot serve; returns its audio direction.

    Pure and cheap, so it runs before any peer connection is created.
    """
    if len(sdp.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InvalidOffer("offer too large")
    lines = sdp.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "v=0":
        raise InvalidOffer("offer is not SDP")
    kinds = _MEDIA_LINE.findall(sdp)
    if "audio" not in kinds or any(kind not in ("audio", "video") for kind in kinds):
        raise InvalidOffer("only audio is accepted")
    if kinds.count("audio") != 1:
        raise InvalidOffer("exactly one audio stream is accepted")
    # Video m-lines are tolerated and declined (answered inactive): OBS's WHIP output
    # always offers video, and a room is audio only.
    if not _OPUS_RTPMAP.search(sdp):
        raise InvalidOffer("the offer has no Opus codec")
    direction = _audio_direction(lines)
    if direction not in directions:
        raise InvalidOffer(f"audio direction must be {' or '.join(directions)}")
    return direction


def _audio_direction(lines: list[str]) -> str:
    session_level = "sendrecv"
    media_level: str | None = None
    in_media = False
    for line in lines:
        line = line.strip()
        if line.startswith("m="):
            in_media = True
        elif line.startswith("a=") and line[2:] in _DIRECTIONS:
            if in_media:
                media_level = line[2:]
            else:
                session_level = line[2:]
    return media_level or session_level


class ListenerSessions(Protocol):
    """Where WHEP listeners are served: :class:`PeerSessions` in the node process, or
    :class:`node.media.workers.WorkerPool` in worker processes."""

    def count(self) -> int: ...

    def on_closed(self, callback: Callable[[str], None]) -> None: ...

    async def listen(self, offer_sdp: str, *, stream: PacketStream) -> tuple[str, str]: ...

    async def close(self, session_id: str) -> None: ...

    async def close_all(self) -> None: ...


class PacketTrack(MediaStreamTrack):
    """An audio track that replays pre-encoded packets from a :class:`PacketStream`."""

    kind = "audio"

    def __init__(self, reader: PacketReader) -> None:
        super().__init__()
        self._reader = reader

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            packet = await self._reader.next()
        except StreamClosed:
            self.stop()
            raise MediaStreamError from None
        return packet.as_av_packet()


@dataclass(slots=True)
class _Session:
    pc: RTCPeerConnection
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _opus_only(transceiver: RTCRtpTransceiver) -> None:
    # Our packets are Opus; if the offer preferred another codec aiortc would pick it and
    # "pack" Opus bytes as, say, PCMU.
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == "audio/opus"])


class PeerSessions:
    """All WebRTC sessions of a node, by opaque session id."""

    def __init__(
        self,
        settings: IceSettings,
        *,
        max_sdp_bytes: int = 16384,
        connect_timeout: float = 30.0,
        fanout: FanoutMode = "native",
        frames_per_packet: int = 1,
    ) -> None:
        if fanout not in ("native", "batched", "aiortc"):
            raise ValueError(f"unknown fan-out {fanout!r}")
        if fanout == "native" and not native.available():
            logger.warning("WebRTC fan-out in Python: %s", native.why_unavailable())
            fanout = "batched"
        self._frames_per_packet = frames_per_packet
        self._settings = settings
        self._fanout_mode = fanout
        self._fanouts: dict[PacketStream, RtpFanout] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._max_sdp_bytes = max_sdp_bytes
        self._connect_timeout = connect_timeout
        self._certificates = CertificateKeeper()
        self._sessions: dict[str, _Session] = {}
        self._callbacks: list[Callable[[str], None]] = []

    def count(self) -> int:
        return len(self._sessions)

    def on_closed(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(session_id)`` once when a session ends, whoever ended it."""
        self._callbacks.append(callback)

    async def publish(
        self, offer_sdp: str, *, sink: AudioSink, returns: PacketStream | None
    ) -> tuple[str, str]:
        """WHIP: receive a speaker's audio into ``sink``; returns (session id, answer).

        With ``returns`` and a sendrecv offer, that stream (the speaker's mix-minus) is
        sent back on the same transceiver.
        """
        direction = check_offer(
            offer_sdp, max_bytes=self._max_sdp_bytes, directions=("sendonly", "sendrecv")
        )
        send_back = returns is not None and direction == "sendrecv"
        session_id, session = self._open()
        pc = session.pc
        transceiver = pc.addTransceiver("audio", direction="sendrecv" if send_back else "recvonly")
        _opus_only(transceiver)
        _decode_on_arrival(transceiver)
        if send_back:
            assert returns is not None
            transceiver.sender.replaceTrack(PacketTrack(returns.reader()))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                task = asyncio.create_task(_pump(track, sink), name=f"media-in-{session_id}")
                session.tasks.append(task)

        return session_id, await self._answer(session_id, offer_sdp)

    async def listen(self, offer_sdp: str, *, stream: PacketStream) -> tuple[str, str]:
        """WHEP: send ``stream``'s packets to a recvonly client; returns (session id, answer)."""
        check_offer(offer_sdp, max_bytes=self._max_sdp_bytes, directions=("recvonly",))
        session_id, session = self._open()
        if self._fanout_mode == "aiortc":
            track: MediaStreamTrack = PacketTrack(stream.reader())
        else:
            track = self._fanout_track(session_id, stream)
        transceiver = session.pc.addTransceiver(track, direction="sendonly")
        prepare = None
        if isinstance(track, FanoutTrack):
            report_slowly(transceiver.sender)
            prepare = _accept_level_extensions(offer_sdp)
        _opus_only(transceiver)
        answer = await self._answer(session_id, offer_sdp, prepare=prepare)
        return session_id, send_only_extensions(answer, (CSRC_AUDIO_LEVEL,))

    def fanout_listeners(self) -> int:
        """WebRTC listeners currently served by batched fan-out loops."""
        return sum(len(fanout) for fanout in self._fanouts.values())

    @property
    def fanout_path(self) -> FanoutMode:
        """How WebRTC listeners are sent to: "native", "batched" (its pure-Python step,
        also where the native one is not built) or "aiortc"."""
        return self._fanout_mode

    def native_listeners(self) -> int:
        """Of those, the listeners served by the native step."""
        return sum(fanout.native_count() for fanout in self._fanouts.values())

    def _fanout_track(self, session_id: str, stream: PacketStream) -> FanoutTrack:
        attached: list[RtpListener] = []

        def on_start() -> None:
            session = self._sessions.get(session_id)
            if session is None:
                raise ConnectionError("session already closed")
            transceiver = session.pc.getTransceivers()[0]
            listener = listener_for(transceiver, use_native=self._fanout_mode == "native")
            release_after_handshake(transceiver.sender.transport)
            shed_setup_state(session.pc)
            listener.on_drop = lambda _listener, _reason: self._close_soon(session_id)
            fanout = self._fanouts.get(stream)
            if fanout is None:
                fanout = self._fanouts[stream] = RtpFanout(
                    stream, frames_per_packet=self._frames_per_packet
                )
                logger.info("WebRTC fan-out of a stream started (%s step)", self._fanout_mode)
            fanout.add(listener)
            attached.append(listener)

        def on_stop() -> None:
            fanout = self._fanouts.get(stream)
            if fanout is None:
                return
            for listener in attached:
                fanout.remove(listener)
            if not len(fanout):
                del self._fanouts[stream]

        return FanoutTrack(on_start, on_stop)

    def _close_soon(self, session_id: str) -> None:
        # Called from inside the fan-out loop, which must not wait for a close.
        task = asyncio.get_running_loop().create_task(self._finish(session_id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self, session_id: str) -> None:
        if session_id not in self._sessions:
            raise SessionNotFound(session_id)
        await self._finish(session_id)

    async def close_all(self) -> None:
        await asyncio.gather(*(self._finish(sid) for sid in list(self._sessions)))
        for fanout in list(self._fanouts.values()):
            await fanout.close()
        self._fanouts.clear()

    # -- internals --------------------------------------------------------------------

    def _open(self) -> tuple[str, _Session]:
        session_id = secrets.token_urlsafe(16)
        pc = RTCPeerConnection(rtc_configuration(self._settings))
        self._certificates.apply(pc)
        session = _Session(pc)
        self._sessions[session_id] = session

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                logger.info("media session %s %s", session_id, pc.connectionState)
                await self._finish(session_id)

        return session_id, session

    async def _answer(
        self,
        session_id: str,
        offer_sdp: str,
        *,
        prepare: Callable[[RTCRtpTransceiver], None] | None = None,
    ) -> str:
        pc = self._sessions[session_id].pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind != "audio":
                    transceiver.direction = "inactive"
                elif prepare is not None:
                    prepare(transceiver)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            logger.info("refused offer for session %s: %s", session_id, exc)
            await self._finish(session_id, notify=False)
            raise InvalidOffer("the offer could not be negotiated") from exc
        self._sessions[session_id].tasks.append(
            asyncio.create_task(self._watch_connect(session_id, pc), name=f"media-{session_id}")
        )
        return pc.localDescription.sdp

    async def _watch_connect(self, session_id: str, pc: RTCPeerConnection) -> None:
        # A client that vanishes before ICE completes would otherwise hold its session
        # until aioice gives up on its connectivity checks, which takes much longer.
        await asyncio.sleep(self._connect_timeout)
        if pc.connectionState != "connected" and session_id in self._sessions:
            logger.info("media session %s never connected; closing it", session_id)
            await self._finish(session_id)

    async def _finish(self, session_id: str, *, notify: bool = True) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return  # already finished (close() racing a connection state change)
        tasks = [task for task in session.tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await session.pc.close()
        if notify:
            for callback in self._callbacks:
                try:
                    callback(session_id)
                except Exception:
                    logger.exception("on_closed callback failed for session %s", session_id)


def _accept_level_extensions(offer_sdp: str) -> Callable[[RTCRtpTransceiver], None]:
    """Make a listener's answer accept the header extensions of rtpwire.py it was offered.

    aiortc answers only the extensions it implements itself (MID and RFC 6464's level);
    the RFC 6465 one the fan-out writes is added here, with the offer's id.
    """

    def prepare(transceiver: RTCRtpTransceiver) -> None:
        # Runs inside _answer's error handling: an offer aiortc parsed parses here too.
        transceiver._headerExtensions = [
            ext
            for media in SessionDescription.parse(offer_sdp).media
            if media.kind == "audio"
            for ext in media.rtp.headerExtensions
            if ext.uri in LISTENER_EXTENSIONS
        ]

    return prepare


def send_only_extensions(sdp: str, uris: tuple[str, ...]) -> str:
    """Mark extensions we only send as ``sendonly`` in an answer (RFC 8285 section 6):
    a client offers RFC 6465's as ``recvonly`` and an answer line without a direction
    would claim ``sendrecv``. aiortc writes no directions."""
    lines = sdp.split("\r\n")
    for i, line in enumerate(lines):
        if line.startswith("a=extmap:"):
            ext_id, _, uri = line[len("a=extmap:") :].partition(" ")
            if uri in uris and "/" not in ext_id:
                lines[i] = f"a=extmap:{ext_id}/sendonly {uri}"
    return "\r\n".join(lines)


class ArrivalOrderBuffer(JitterBuffer):
    """A speaker's audio packets handed to the decoder the moment they arrive.

    aiortc's jitter buffer releases a frame only when a packet of the next frame arrives
    (it reassembles video frames from several packets), which holds every audio packet
    back one packet time (20 ms) although an audio packet is always a whole frame. The
    mixer's own per-speaker queue (node.media.mixer.SpeakerInput) absorbs arrival jitter
    and trims a standing delay, so here a packet newer than any seen goes straight on and
    an older one (a duplicate, or reordered behind a newer one) is dropped, as the mixer
    would have played past it anyway; one more than ``MAX_MISORDER`` (aiortc's 100) back
    is a sender that restarted its sequence and goes on. bench/bench_latency.py measured
    both.
    """

    def __init__(self) -> None:
        super().__init__(capacity=16)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._origin is not None:
            behind = uint16_add(self._origin, -seq - 1)  # 0: the newest seen again
            if behind < MAX_MISORDER:
                return False, None  # a duplicate, or late behind a newer packet
            # Otherwise newer, or so far back that the sender restarted its sequence.
        self._origin = uint16_add(seq, 1)
        data = getattr(packet, "_data", packet.payload)  # depayloaded by the receiver
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


def _decode_on_arrival(transceiver: RTCRtpTransceiver) -> None:
    # aiortc has no option for this: RTCRtpReceiver keeps its JitterBuffer privately and
    # calls its add() on every packet. Left alone if aiortc's internals change.
    name = "_RTCRtpReceiver__jitter_buffer"
    if isinstance(getattr(transceiver.receiver, name, None), JitterBuffer):
        setattr(transceiver.receiver, name, ArrivalOrderBuffer())


async def _pump(track: MediaStreamTrack, sink: AudioSink) -> None:
    """Feed a speaker's decoded frames to the mixer until the track ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, av.AudioFrame):
            sink.push(frame)
