"""Batched RTP fan-out: one send loop per packet stream instead of one sender per listener.

With aiortc's own path every WebRTC listener has an ``RTCRtpSender`` whose RTP coroutine
wakes per packet, builds an ``RtpPacket`` object, serialises it, and awaits four coroutine
layers down to ``sendto`` (DTLS transport -> ICE transport -> aioice connection -> its
protocol). Profiling showed that bookkeeping, not the cryptography, is most of a
listener's cost (see bench/RESULTS.md). Here one task per :class:`PacketStream` wakes once
per Opus packet and, in a plain loop over the listeners, writes each listener's 12-byte
RTP header in front of a header-extension block built once per listener, protects it with
that listener's SRTP session and hands it to the socket of that listener's nominated ICE
candidate pair. The payload is the same bytes object for everybody.

aiortc still does everything else for a listener: ICE (including consent freshness),
the DTLS handshake and SRTP keying, RTCP in both directions (sender reports from the
listener's own ``RTCRtpSender`` RTCP task, every 5 s as libwebrtc does for audio rather
than aiortc's 1 s (:func:`report_slowly`), with the counters this loop keeps; receiver
reports, NACK and PLI are routed to that sender as usual; NACK finds no history and is
ignored, PLI means nothing for audio), and the close of the peer connection.

Several 20 ms Opus frames may go in one RTP packet (``frames_per_packet``, [media]
webrtc_packet_ms): a packet costs about the same to protect and send whatever its size.

How a listener joins: its ``RTCRtpSender`` gets a :class:`FanoutTrack` whose ``recv()``
is first called by the sender's RTP task right after DTLS completed and the sender was
started (so SSRC, MID, payload type and keys are all final). That first call attaches
the listener to the stream's :class:`RtpFanout`; then ``recv()`` just waits until the
track is stopped, which aiortc does when the sender stops (peer connection closed).

aiortc / aioice / asyncio internals this module relies on (check them on every upgrade of
aiortc, currently 1.16, and aioice):

- ``RTCRtpSender._ssrc`` (public in practice: RTCP routing uses it) and the private
  counters the sender's RTCP task puts into sender reports:
  ``_RTCRtpSender__packet_count``, ``__octet_count``, ``__ntp_timestamp``,
  ``__rtp_timestamp``; for :func:`report_slowly` also ``_run_rtcp`` (started by
  ``send()``), ``_send_rtcp``, ``__rtcp_started``, ``__rtcp_exited``, ``__lsr``,
  ``__lsr_time`` and ``__cname``.
- ``RTCRtpSender._run_rtp`` calls ``track.recv()`` only after ``send()`` (post DTLS), and
  stops the track when it ends.
- ``RTCRtpTransceiver._codecs[0]`` is the negotiated send codec (its ``payloadType``) and
  ``RTCRtpTransceiver._headerExtensions`` the negotiated header extensions.
- ``RTCDtlsTransport._tx_srtp`` (a ``pylibsrtp.Session``) and ``RTCDtlsTransport.state``.
- ``RTCIceTransport._connection`` (an ``aioice.Connection``) and its ``_nominated[1]``
  candidate pair: ``.protocol.transport`` (the asyncio datagram transport) and
  ``.remote_addr``.
- asyncio's selector datagram transport keeps its socket as ``_sock``; uvloop's gives a
  pseudo-socket through ``get_extra_info("socket")`` whose descriptor is duplicated (see
  ``_socket_sendto``); failing both, the transport's public ``sendto`` is used, on a copy
  of the packet, after checking ``is_closing()``.
- ``aiortc.rtp.RtpPacket.serialize`` and ``HeaderExtensionsMap.configure`` build the
  per-listener header template, so the wire format stays exactly aiortc's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pylibsrtp
from aiortc import MediaStreamTrack, RTCRtpTransceiver
from aiortc.clock import current_ntp_time
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
)
from aiortc.utils import random32
from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from node.media.errors import StreamClosed
from node.media.packets import (
    OpusPacket,
    PacketReader,
    PacketStream,
    combine_opus,
    continues_opus,
)

__all__ = [
    "FanoutTrack",
    "RtpFanout",
    "RtpListener",
    "Transmit",
    "listener_for",
    "plain_transmitter",
    "report_slowly",
    "srtp_socket_transmitter",
]

logger = logging.getLogger(__name__)

_RTP_HEADER = struct.Struct("!BBHII")
_MARKER = 0x80

YIELD_EVERY = 256
"""Listeners served between two yields to the event loop, so that ICE, DTLS, RTCP and
HTTP keep running while a large room's packet goes out."""

STATS_EVERY = 8
"""Packets between two updates of the aiortc sender's counters (read by its RTCP task for
sender reports once a second or so; a report at most 160 ms stale is still consistent,
because the RTP and NTP timestamps in it are set together)."""

MAX_SEND_ERRORS = 50
"""Consecutive packets a listener's socket may refuse (full buffer) before it is dropped."""


Transmit = Callable[[int, int, int, bytes], object]
"""``transmit(second_byte, seq, timestamp, payload)``: build one listener's RTP packet
(marker + payload type in ``second_byte``), protect it and send it; raises if the
listener's transport is gone, ``BlockingIOError`` if its socket buffer is full."""


@dataclass(eq=False, slots=True)
class RtpListener:
    """One listener's RTP state on the fast path.

    Plain data and one callable (``transmit``), so the loop is testable without aiortc.
    """

    ssrc: int
    payload_type: int
    transmit: Transmit
    seq: int = 0
    ts_origin: int = 0
    packets: int = 0
    octets: int = 0
    last_timestamp: int = 0
    send_errors: int = 0
    first: bool = True
    on_drop: Callable[[RtpListener, str], None] | None = None
    sender: Any = None
    """The aiortc ``RTCRtpSender`` whose RTCP task reports for this stream, if any."""
    release: Callable[[], None] | None = None
    """Frees what ``transmit`` holds (a duplicated socket), once the listener leaves."""


def plain_transmitter(
    ssrc: int,
    extension: bytes,
    protect: Callable[[bytes], bytes],
    send: Callable[[bytes], object],
) -> Transmit:
    """A transmitter from any ``protect`` (SRTP, or identity in tests) and ``send``.

    ``extension`` is the header extension block (profile, length, elements) written after
    the fixed header; constant per listener.
    """
    byte0 = 0x90 if extension else 0x80
    pack = _RTP_HEADER.pack

    def transmit(second_byte: int, seq: int, timestamp: int, payload: bytes) -> object:
        return send(protect(pack(byte0, second_byte, seq, timestamp, ssrc) + extension + payload))

    return transmit


class RtpFanout:
    """Sends one :class:`PacketStream` to every attached :class:`RtpListener`.

    The loop runs while at least one listener is attached and stops when the last one
    leaves or the stream closes; it never awaits a listener, so a broken one cannot stall
    it (its send raises and it is dropped; a full socket buffer drops that packet).
    """

    def __init__(self, stream: PacketStream, *, frames_per_packet: int = 1) -> None:
        if not 1 <= frames_per_packet <= 6:
            raise ValueError("frames_per_packet must be between 1 and 6")
        self.stream = stream
        self.frames_per_packet = frames_per_packet
        """20 ms Opus frames per RTP packet (see :func:`combine_opus`): 2 halves the
        packets, and with them most of a listener's cost, for 20 ms more delay."""
        self._packets = 0
        self._listeners: list[RtpListener] = []
        self._task: asyncio.Task[None] | None = None
        self._reader: PacketReader | None = None
        self.sent = 0
        """Datagrams sent over the fan-out's life (all listeners)."""

    def __len__(self) -> int:
        return len(self._listeners)

    @property
    def listeners(self) -> tuple[RtpListener, ...]:
        return tuple(self._listeners)

    def add(self, listener: RtpListener) -> None:
        self._listeners.append(listener)
        if self._task is None or self._task.done():
            # Taken now, not when the task first runs, so no packet is missed.
            self._reader = self.stream.reader()
            self._reader.position = self.stream.published
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._reader), name="rtp-fanout"
            )

    def remove(self, listener: RtpListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
        release, listener.release = listener.release, None
        if release is not None:
            release()
        if not self._listeners and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        for listener in list(self._listeners):
            self.remove(listener)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, reader: PacketReader) -> None:
        frames: list[OpusPacket] = []
        try:
            while self._listeners:
                packet = await reader.next()
                if self.frames_per_packet == 1:
                    await self.send_packet(packet)
                    continue
                if frames and not continues_opus(frames[-1], packet):
                    # A gap (skipped packets) or another Opus mode: what waits goes alone.
                    for waiting in frames:
                        await self.send_packet(waiting)
                    frames.clear()
                frames.append(packet)
                if len(frames) < self.frames_per_packet:
                    continue
                combined = combine_opus(frames)
                for out in [combined] if combined is not None else list(frames):
                    await self.send_packet(out)
                frames.clear()
        except StreamClosed:
            for waiting in frames:
                await self.send_packet(waiting)

    async def send_packet(self, packet: OpusPacket) -> None:
        """Send one packet to every listener attached when it starts (yields in between)."""
        listeners = list(self._listeners)
        self._packets += 1
        sync_stats = self._packets % STATS_EVERY == 0
        ntp = current_ntp_time() if sync_stats else 0
        for start in range(0, len(listeners), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            self._send_batch(listeners[start : start + YIELD_EVERY], packet, ntp, sync_stats)

    def _send_batch(
        self, listeners: list[RtpListener], packet: OpusPacket, ntp: int, sync_stats: bool
    ) -> None:
        payload = packet.data
        size = len(payload)
        pts = packet.pts
        dropped: list[tuple[RtpListener, str]] = []
        sent = 0
        for listener in listeners:
            seq = listener.seq
            timestamp = (listener.ts_origin + pts) & 0xFFFFFFFF
            if listener.first:
                # RFC 3551 section 4.1: the marker bit flags the first packet of a talkspurt.
                second_byte = listener.payload_type | _MARKER
                listener.first = False
            else:
                second_byte = listener.payload_type
            try:
                listener.transmit(second_byte, seq, timestamp, payload)
            except BlockingIOError:
                listener.send_errors += 1
                if listener.send_errors > MAX_SEND_ERRORS:
                    dropped.append((listener, "socket buffer full"))
                # The packet is lost for this listener, but its sequence number is used:
                # the receiver sees a gap, as with loss on the network.
            except Exception as exc:  # a closed socket, a dead SRTP session...
                dropped.append((listener, f"{type(exc).__name__}: {exc}"))
                continue
            else:
                listener.send_errors = 0
                sent += 1
            listener.seq = (seq + 1) & 0xFFFF
            listener.packets += 1
            listener.octets += size
            listener.last_timestamp = timestamp
            if sync_stats and listener.sender is not None:
                _sync_sender_stats(listener, ntp)
        self.sent += sent
        for listener, reason in dropped:
            logger.info("dropping RTP listener ssrc=%08x: %s", listener.ssrc, reason)
            self.remove(listener)
            if listener.on_drop is not None:
                listener.on_drop(listener, reason)


SENDER_REPORT_INTERVAL = 5.0
"""Seconds between a fan-out listener's RTCP sender reports (randomised 0.5-1.5x, as RFC
3550 section 6.2 asks). aiortc sends one every 0.5-1.5 s; 5 s is RFC 3550's minimum and
libwebrtc's interval for audio. At 40 ms packets a listener's sender reports were about a
twentieth of its cost (bench/RESULTS.md)."""


def report_slowly(sender: RTCRtpSender) -> None:
    """Make ``sender``'s RTCP task send its reports every ``SENDER_REPORT_INTERVAL``.

    Call before the sender starts (it starts its RTCP task in ``send()``). The task keeps
    aiortc's protocol: started and exited events, a sender report plus SDES CNAME per
    interval from the counters :func:`_sync_sender_stats` keeps, BYE when cancelled.
    """

    async def run_rtcp() -> None:
        mangled = "_RTCRtpSender__"
        getattr(sender, mangled + "rtcp_started").set()
        delay = 0.5 + random.random()  # the first report as soon as aiortc's
        try:
            while True:
                await asyncio.sleep(delay)
                delay = SENDER_REPORT_INTERVAL * (0.5 + random.random())
                ntp = getattr(sender, mangled + "ntp_timestamp")
                packets: list[Any] = [
                    RtcpSrPacket(
                        ssrc=sender._ssrc,
                        sender_info=RtcpSenderInfo(
                            ntp_timestamp=ntp,
                            rtp_timestamp=getattr(sender, mangled + "rtp_timestamp"),
                            packet_count=getattr(sender, mangled + "packet_count") & 0xFFFFFFFF,
                            octet_count=getattr(sender, mangled + "octet_count") & 0xFFFFFFFF,
                        ),
                    )
                ]
                # Round-trip time estimates from receiver reports match against these.
                setattr(sender, mangled + "lsr", (ntp >> 16) & 0xFFFFFFFF)
                setattr(sender, mangled + "lsr_time", time.time())
                cname = getattr(sender, mangled + "cname")
                if cname is not None:
                    packets.append(
                        RtcpSdesPacket(
                            chunks=[RtcpSourceInfo(ssrc=sender._ssrc, items=[(1, cname.encode())])]
                        )
                    )
                await sender._send_rtcp(packets)
        except asyncio.CancelledError:
            pass
        await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
        getattr(sender, mangled + "rtcp_exited").set()

    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]


def _sync_sender_stats(listener: RtpListener, ntp: int) -> None:
    sender = listener.sender
    sender._RTCRtpSender__packet_count = listener.packets
    sender._RTCRtpSender__octet_count = listener.octets
    sender._RTCRtpSender__ntp_timestamp = ntp
    sender._RTCRtpSender__rtp_timestamp = listener.last_timestamp


class FanoutTrack(MediaStreamTrack):
    """The track an aiortc sender on the fast path pulls from: it never yields media.

    The sender's first ``recv()`` (after DTLS) calls ``on_start``; afterwards ``recv()``
    waits until the track is stopped. ``on_stop`` runs once when it is stopped.
    """

    kind = "audio"

    def __init__(self, on_start: Callable[[], None], on_stop: Callable[[], None]) -> None:
        super().__init__()
        self._on_start: Callable[[], None] | None = on_start
        self._on_stop: Callable[[], None] | None = on_stop
        self._stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:  # never returns a frame
        if self.readyState != "live":
            raise MediaStreamError
        on_start, self._on_start = self._on_start, None
        if on_start is not None:
            try:
                on_start()
            except Exception:
                logger.exception("could not attach a listener to the RTP fan-out")
                self.stop()
                raise MediaStreamError from None
        await asyncio.shield(self._stopped)
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if not self._stopped.done():
            self._stopped.set_result(None)
        on_stop, self._on_stop = self._on_stop, None
        if on_stop is not None:
            on_stop()


def listener_for(transceiver: RTCRtpTransceiver) -> RtpListener:
    """An :class:`RtpListener` sending on an aiortc transceiver's established transport.

    Call it only once the sender has started (from :class:`FanoutTrack`'s ``on_start``):
    the DTLS handshake is done and the ICE pair nominated.
    """
    sender: RTCRtpSender = transceiver.sender
    dtls = sender.transport
    if dtls.state != "connected" or dtls._tx_srtp is None:
        raise ConnectionError("DTLS transport is not connected")
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        raise ConnectionError("no nominated ICE candidate pair")
    payload_type = transceiver._codecs[0].payloadType
    if payload_type is None:
        raise ConnectionError("no negotiated payload type")
    extension = _extension_block(
        transceiver.mid, RTCRtpParameters(headerExtensions=transceiver._headerExtensions)
    )
    udp = pair.protocol.transport
    remote = pair.remote_addr

    def send(data: bytes | memoryview) -> None:
        if udp.is_closing():
            raise ConnectionError("ICE socket closed")
        # A transport may queue what it cannot send at once: never hand it a view of a
        # buffer that the next packet overwrites.
        udp.sendto(bytes(data), remote)

    release = None
    if not udp.get_extra_info("peername") and _has_srtp_internals(dtls._tx_srtp):
        sendto, release = _socket_sendto(udp)
        transmit = srtp_socket_transmitter(
            sender._ssrc, extension, dtls._tx_srtp, sendto, remote, send=send
        )
    else:
        transmit = plain_transmitter(sender._ssrc, extension, dtls._tx_srtp.protect, send)
    return RtpListener(
        ssrc=sender._ssrc,
        payload_type=payload_type,
        transmit=transmit,
        seq=random_sequence_number(),
        ts_origin=random32(),
        sender=sender,
        release=release,
    )


def _socket_sendto(
    udp: Any,
) -> tuple[Callable[[memoryview, tuple[str, int]], object] | None, Callable[[], None] | None]:
    """``socket.sendto`` of an ICE transport's socket, and what to call when done.

    asyncio's selector transport keeps its socket (``_sock``): its ``sendto`` is used as
    is, and a closed transport closes it (EBADF drops the listener). uvloop gives a
    pseudo-socket whose file descriptor is duplicated into a real socket object, ~2 us per
    packet cheaper than the transport's ``sendto`` (bench/RESULTS.md); the duplicate is
    closed when the listener leaves, and a closing transport is checked before each send.
    Neither: (None, None) and the caller goes through the transport.
    """
    sock = getattr(udp, "_sock", None)
    if sock is not None:
        return sock.sendto, None
    pseudo = udp.get_extra_info("socket")
    try:
        duplicate = socket.socket(fileno=os.dup(pseudo.fileno()))
    except (AttributeError, OSError, ValueError):
        return None, None
    raw_sendto = duplicate.sendto
    is_closing = udp.is_closing

    def sendto(data: memoryview, addr: tuple[str, int]) -> object:
        if is_closing():
            raise ConnectionError("ICE socket closed")
        return raw_sendto(data, addr)

    return sendto, duplicate.close


def _extension_block(mid: str | None, parameters: RTCRtpParameters) -> bytes:
    """The bytes aiortc would put between the fixed header and the payload."""
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(parameters)
    template = RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0)
    template.extensions.mid = mid
    return template.serialize(extensions_map)[12:]


def _has_srtp_internals(session: Any) -> bool:
    return all(hasattr(session, name) for name in ("_srtp", "_cdata", "_buffer"))


def srtp_socket_transmitter(
    ssrc: int,
    extension: bytes,
    session: Any,
    sendto: Callable[[memoryview, tuple[str, int]], object] | None,
    addr: tuple[str, int],
    *,
    send: Callable[[memoryview], object] | None = None,
) -> Transmit:
    """The fast transmitter: the packet is written straight into the SRTP session's own
    C buffer, protected there by libsrtp and sent from it, with no intermediate objects.

    ``sendto`` is the ICE socket's own ``socket.sendto`` (asyncio's selector loop); where
    the loop gives no socket (uvloop) it is None and ``send`` takes the protected packet.

    Profiling put ``pylibsrtp.Session.protect``'s Python wrapper (a fresh ``int *``, a
    checked copy, an assert helper, a bytes copy out) at about 40 % of its cost. The
    session's buffer is shared with aiortc's own ``protect_rtcp`` calls; that is safe
    because protect and send here are one synchronous step.
    """
    srtp = session._srtp[0]
    cdata = session._cdata
    view = memoryview(session._buffer)
    length = _srtp_ffi.new("int *")
    protect = _srtp_lib.srtp_protect
    byte0 = 0x90 if extension else 0x80
    header_end = 12 + len(extension)
    capacity = len(view) - SRTP_MAX_TRAILER_LEN - header_end
    pack_into = _RTP_HEADER.pack_into
    if sendto is None:
        if send is None:
            raise ValueError("srtp_socket_transmitter needs sendto or send")
        to_transport = send

        def sendto(data: memoryview, _addr: tuple[str, int]) -> object:
            return to_transport(data)

    def transmit(second_byte: int, seq: int, timestamp: int, payload: bytes) -> object:
        size = len(payload)
        if size > capacity:
            raise ValueError("packet too large for SRTP")
        # aiortc's protect_rtcp may have overwritten the buffer since the last packet.
        pack_into(view, 0, byte0, second_byte, seq, timestamp, ssrc)
        view[12:header_end] = extension
        view[header_end : header_end + size] = payload
        length[0] = header_end + size
        code = protect(srtp, cdata, length)
        if code:
            raise pylibsrtp.Error(f"srtp_protect failed ({code})")
        # A closed socket raises OSError (EBADF) here, which drops the listener.
        return sendto(view[: length[0]], addr)

    return transmit
