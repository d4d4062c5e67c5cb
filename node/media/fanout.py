"""Batched RTP fan-out: one send loop per packet stream instead of one sender per listener.

With aiortc's own path every WebRTC listener has an ``RTCRtpSender`` whose RTP coroutine
wakes per packet, builds an ``RtpPacket`` object, serialises it, and awaits four coroutine
layers down to ``sendto`` (DTLS transport -> ICE transport -> aioice connection -> its
protocol). Profiling showed that bookkeeping, not the cryptography, is most of a
listener's cost (see bench/RESULTS.md). Here one task per :class:`PacketStream` wakes once
per Opus packet and, in a plain loop over the listeners, writes each listener's 12-byte
RTP header in front of the bytes every listener of the same :class:`RtpLayout` shares
(the CSRC list of the speakers heard, header extensions and payload, built once per
packet: node/media/rtpwire.py), protects it with that listener's SRTP session and hands
it to the socket of that listener's nominated ICE candidate pair.

Two ways to do the per-listener step, same bytes on the wire: the native step
(node/media/native.py: one C call per packet for a batch of listeners) and the
pure-Python one (a ``transmit`` closure per listener), kept as the fallback where the C
extension is not built and as the reference the tests compare with.

Several 20 ms Opus frames may go in one RTP packet (``frames_per_packet``, [media]
webrtc_packet_ms): a packet costs about the same to protect and send whatever its size.

This module knows nothing of aiortc but the counters of a listener's ``RTCRtpSender``
that its sender reports read (``_RTCRtpSender__packet_count``, ``__octet_count``,
``__ntp_timestamp``, ``__rtp_timestamp``, updated every ``STATS_EVERY`` packets);
node/media/fanout_attach.py puts aiortc's WHEP sessions on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.clock import current_ntp_time

from node.media import native
from node.media.errors import StreamClosed
from node.media.packets import (
    OpusPacket,
    PacketReader,
    PacketStream,
    combine_opus,
    continues_opus,
)
from node.media.rtpwire import RtpLayout, packet_tail

__all__ = [
    "RTP_HEADER",
    "RtpFanout",
    "RtpListener",
    "Transmit",
    "counters",
    "plain_transmitter",
]

logger = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
_MARKER = 0x80

YIELD_EVERY = 256
"""Listeners served between two yields to the event loop, so that ICE, DTLS, RTCP and
HTTP keep running while a large room's packet goes out."""

NATIVE_YIELD_EVERY = 512
"""The same for the native step: about as long a pause (~1.6 ms) as the Python step's."""

STATS_EVERY = 8
"""Packets between two updates of the aiortc sender's counters (read by its RTCP task for
sender reports once a second or so; a report at most 160 ms stale is still consistent,
because the RTP and NTP timestamps in it are set together)."""

MAX_SEND_ERRORS = 50
"""Consecutive packets a listener's socket may refuse (full buffer) before it is dropped."""


Transmit = Callable[[int, int, int, int, bytes], object]
"""``transmit(byte0, second_byte, seq, timestamp, tail)``: build one listener's RTP packet
(``byte0``: version, extension bit, CSRC count; ``second_byte``: marker + payload type;
``tail``: what follows the fixed header), protect it and send it; raises if the
listener's transport is gone, ``BlockingIOError`` if its socket buffer is full."""


@dataclass(eq=False, slots=True)
class RtpListener:
    """One listener's RTP state on the fast path.

    Plain data and one callable (``transmit``), so the loop is testable without aiortc;
    or, on the native path, a ``native`` listener that keeps the same state in C (then
    ``transmit`` is None and the counters here are not used: see :func:`counters`).
    """

    ssrc: int
    payload_type: int
    transmit: Transmit | None
    layout: RtpLayout = RtpLayout()
    native: native.NativeListener | None = None
    slot: int = 0
    """Index of ``layout`` in its fan-out's table (set by :meth:`RtpFanout.add`)."""
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


def counters(listener: RtpListener) -> tuple[int, int, int]:
    """(packets, octets, last RTP timestamp) sent to ``listener``, on either path."""
    state = listener.native
    if state is not None:
        return state.packets, state.octets, state.last_timestamp
    return listener.packets, listener.octets, listener.last_timestamp


def plain_transmitter(
    ssrc: int,
    protect: Callable[[bytes], bytes],
    send: Callable[[bytes], object],
) -> Transmit:
    """A transmitter from any ``protect`` (SRTP, or identity in tests) and ``send``."""
    pack = RTP_HEADER.pack

    def transmit(byte0: int, second_byte: int, seq: int, timestamp: int, tail: bytes) -> object:
        return send(protect(pack(byte0, second_byte, seq, timestamp, ssrc) + tail))

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
        self._python: list[RtpListener] = []
        """Listeners sent to by their ``transmit`` closure."""
        self._native: list[native.NativeListener] = []
        """The native state of the other listeners, in the order the C step takes it."""
        self._owners: dict[native.NativeListener, RtpListener] = {}
        self._layouts: list[RtpLayout | None] = []
        """Header layouts in use, by index (a native listener's ``layout`` is one)."""
        self._layout_users: dict[RtpLayout, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._reader: PacketReader | None = None
        self.sent = 0
        """Datagrams sent over the fan-out's life (all listeners)."""

    def __len__(self) -> int:
        return len(self._listeners)

    @property
    def listeners(self) -> tuple[RtpListener, ...]:
        return tuple(self._listeners)

    def native_count(self) -> int:
        """Listeners served by the native step."""
        return len(self._native)

    def add(self, listener: RtpListener) -> None:
        self._listeners.append(listener)
        index = listener.slot = self._use_layout(listener.layout)
        if listener.native is not None:
            listener.native.layout = index
            self._native.append(listener.native)
            self._owners[listener.native] = listener
        else:
            self._python.append(listener)
        if self._task is None or self._task.done():
            # Taken now, not when the task first runs, so no packet is missed.
            self._reader = self.stream.reader()
            self._reader.position = self.stream.published
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._reader), name="rtp-fanout"
            )

    def remove(self, listener: RtpListener) -> None:
        try:
            self._listeners.remove(listener)
        except ValueError:
            return
        state = listener.native
        if state is not None:
            with contextlib.suppress(ValueError):
                self._native.remove(state)
            self._owners.pop(state, None)
            state.close()
        else:
            with contextlib.suppress(ValueError):
                self._python.remove(listener)
        self._release_layout(listener.layout)
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

    def _use_layout(self, layout: RtpLayout) -> int:
        users = self._layout_users.get(layout, 0)
        self._layout_users[layout] = users + 1
        if users:
            return self._layouts.index(layout)
        try:
            index = self._layouts.index(None)
        except ValueError:
            self._layouts.append(layout)
            return len(self._layouts) - 1
        self._layouts[index] = layout
        return index

    def _release_layout(self, layout: RtpLayout) -> None:
        users = self._layout_users.get(layout, 0) - 1
        if users > 0:
            self._layout_users[layout] = users
            return
        self._layout_users.pop(layout, None)
        with contextlib.suppress(ValueError):
            self._layouts[self._layouts.index(layout)] = None

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
        python = list(self._python)
        natives = list(self._native)
        self._packets += 1
        sync_stats = self._packets % STATS_EVERY == 0
        ntp = current_ntp_time() if sync_stats else 0
        contributors = packet.contributors
        payload = packet.data
        tails = tuple(
            packet_tail(layout, contributors, payload) if layout is not None else (0x80, b"")
            for layout in self._layouts
        )
        yielded = False
        for start in range(0, len(natives), NATIVE_YIELD_EVERY):
            if yielded:
                await asyncio.sleep(0)
            yielded = True
            self._send_native(natives, start, tails, packet)
        for start in range(0, len(python), YIELD_EVERY):
            if yielded:
                await asyncio.sleep(0)
            yielded = True
            self._send_batch(python[start : start + YIELD_EVERY], packet, tails)
        if sync_stats:
            for listener in self._listeners:
                if listener.sender is not None:
                    _sync_sender_stats(listener, ntp)

    def _send_native(
        self,
        natives: list[native.NativeListener],
        start: int,
        tails: tuple[tuple[int, bytes], ...],
        packet: OpusPacket,
    ) -> None:
        sent, failures = native.send_batch(
            natives,
            start,
            start + NATIVE_YIELD_EVERY,
            tails,
            packet.pts,
            len(packet.data),
            MAX_SEND_ERRORS,
        )
        self.sent += sent
        for state, reason in failures or ():
            listener = self._owners.get(state)
            if listener is not None:  # else it left while the packet was going out
                self._drop(listener, reason)

    def _send_batch(
        self,
        listeners: list[RtpListener],
        packet: OpusPacket,
        tails: tuple[tuple[int, bytes], ...],
    ) -> None:
        size = len(packet.data)
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
            byte0, tail = tails[listener.slot]
            try:
                listener.transmit(byte0, second_byte, seq, timestamp, tail)  # type: ignore[misc]
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
        self.sent += sent
        for listener, reason in dropped:
            self._drop(listener, reason)

    def _drop(self, listener: RtpListener, reason: str) -> None:
        logger.info("dropping RTP listener ssrc=%08x: %s", listener.ssrc, reason)
        self.remove(listener)
        if listener.on_drop is not None:
            listener.on_drop(listener, reason)


def _sync_sender_stats(listener: RtpListener, ntp: int) -> None:
    sender = listener.sender
    packets, octets, last_timestamp = counters(listener)
    sender._RTCRtpSender__packet_count = packets
    sender._RTCRtpSender__octet_count = octets
    sender._RTCRtpSender__ntp_timestamp = ntp
    sender._RTCRtpSender__rtp_timestamp = last_timestamp
