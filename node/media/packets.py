"""Opus packets and their broadcast to many readers.

A :class:`Broadcast` is a bounded ring plus one shared :class:`asyncio.Future` that every
waiting reader awaits: publishing costs the same whether one or a thousand readers
follow, and there is no per-reader queue to grow when a reader is slow. A reader that
falls off the end of the ring skips ahead and counts what it missed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Generic, TypeVar

import av

from node.media.errors import StreamClosed

__all__ = [
    "Broadcast",
    "BroadcastReader",
    "Contributors",
    "MAX_CSRCS",
    "OPUS_RATE",
    "OPUS_TIME_BASE",
    "OpusPacket",
    "PacketReader",
    "PacketStream",
    "SAMPLES_PER_FRAME",
    "combine_opus",
    "continues_opus",
]

OPUS_RATE = 48000
SAMPLES_PER_FRAME = 960  # 20 ms at 48 kHz
OPUS_TIME_BASE = Fraction(1, OPUS_RATE)
DEFAULT_CAPACITY = 50  # one second of 20 ms packets

T = TypeVar("T")


MAX_CSRCS = 15
"""An RTP header lists at most 15 contributing sources (RFC 3550 section 5.1, CC is 4 bits)."""

SILENCE_DBOV = 127
"""RFC 6464/6465 audio levels are -dBov from 0 (loudest) to 127 (silence or quieter)."""


@dataclass(frozen=True, slots=True)
class Contributors:
    """Who is audible in a packet of a mix, for the RTP header of every listener.

    ``sources`` become the CSRC list (RFC 3550) with one level each in the mixer-to-client
    audio level extension (RFC 6465); ``level`` is the packet's own level, for the
    client-to-mixer extension (RFC 6464), the one a browser reports for every source.
    Levels are -dBov, 0 (loudest) to 127 (silence).
    """

    level: int = SILENCE_DBOV
    sources: tuple[tuple[int, int], ...] = ()
    """(CSRC, level) of each speaker heard in the packet, loudest first, at most 15."""

    @property
    def voice(self) -> bool:
        """Somebody is speaking in this packet (RFC 6464's V flag)."""
        return bool(self.sources)

    def merge(self, other: Contributors) -> Contributors:
        """The contributors of two packets carried as one: each source at its loudest."""
        loudest = dict(self.sources)
        for csrc, level in other.sources:
            loudest[csrc] = min(level, loudest.get(csrc, SILENCE_DBOV))
        ranked = sorted(loudest.items(), key=lambda item: (item[1], item[0]))
        return Contributors(min(self.level, other.level), tuple(ranked[:MAX_CSRCS]))


@dataclass(slots=True)
class OpusPacket:
    """One 20 ms Opus frame at 48 kHz."""

    seq: int
    """Increases by 1 per packet in the stream that produced it."""
    pts: int
    """Start of the packet in 48 kHz samples (increases by 960)."""
    data: bytes
    contributors: Contributors | None = None
    """Who speaks in it, when a mixer made it (None: a stream that does not say)."""
    _av_packet: av.Packet | None = field(default=None, repr=False, compare=False)

    def as_av_packet(self) -> av.Packet:
        """The packet as PyAV wants it, built once and shared by every listener.

        aiortc's ``RTCRtpSender`` only reads the bytes, ``pts`` and ``time_base`` of a
        pre-encoded packet (``codecs/opus.py`` ``pack``), so sharing one object is safe.
        """
        packet = self._av_packet
        if packet is None:
            packet = av.Packet(self.data)
            packet.pts = self.pts
            packet.time_base = OPUS_TIME_BASE
            self._av_packet = packet
        return packet


MAX_OPUS_FRAME_BYTES = 1275
"""Largest compressed Opus frame (RFC 6716 section 3.2.1)."""


def continues_opus(previous: OpusPacket, packet: OpusPacket) -> bool:
    """Whether ``packet`` may follow ``previous`` in one multi-frame Opus packet: the next
    in sequence, both one frame (code 0) with the same TOC configuration."""
    data, before = packet.data, previous.data
    return (
        packet.seq == previous.seq + 1
        and bool(data)
        and bool(before)
        and data[0] == before[0]
        and not data[0] & 0x03
    )


def combine_opus(packets: list[OpusPacket]) -> OpusPacket | None:
    """Consecutive single-frame Opus packets as one multi-frame packet, or None.

    RFC 6716 section 3.2.5 (code 3, variable bitrate): the TOC byte of the frames with
    code 3, a frame-count byte, the length of every frame but the last, then the frames.
    RFC 7587 allows one such packet per RTP packet (up to 120 ms). Only packets that
    :func:`continue <continues_opus>` one another combine, which is what a steady encoder
    produces; anything else (a mode switch, a gap in sequence) is None and the caller
    sends the packets one by one. The result keeps the first packet's seq and pts, and
    each contributor at its loudest in any of the packets.
    """
    if not 2 <= len(packets) <= 6:
        return None
    first = packets[0]
    if not all(continues_opus(a, b) for a, b in zip(packets, packets[1:], strict=False)):
        return None
    lengths = bytearray()
    for i, packet in enumerate(packets):
        size = len(packet.data) - 1
        if size > MAX_OPUS_FRAME_BYTES:
            return None
        if i < len(packets) - 1:
            if size < 252:
                lengths.append(size)
            else:
                low = 252 + ((size - 252) & 0x03)
                lengths += bytes((low, (size - low) >> 2))
    body = b"".join(packet.data[1:] for packet in packets)
    header = bytes((first.data[0] | 0x03, 0x80 | len(packets)))
    contributors = first.contributors
    for packet in packets[1:]:
        if packet.contributors is not None:
            contributors = (
                packet.contributors
                if contributors is None
                else contributors.merge(packet.contributors)
            )
    return OpusPacket(first.seq, first.pts, header + bytes(lengths) + body, contributors)


class Broadcast(Generic[T]):
    """Publish items to any number of readers through a bounded ring."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ring: list[T | None] = [None] * capacity
        self._next = 0  # stream index the next published item gets
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._ever_read = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def published(self) -> int:
        """How many items were ever published (the index of the next one)."""
        return self._next

    def publish(self, item: T) -> None:
        if self._closed:
            raise StreamClosed("publish on a closed stream")
        self._ring[self._next % self._capacity] = item
        self._next += 1
        self._wake()

    @property
    def ever_read(self) -> bool:
        """Whether anybody ever asked for a reader: a producer may skip work for a stream
        nobody consumes (a send-only WHIP speaker never reads its mix-minus)."""
        return self._ever_read

    def reader(self) -> BroadcastReader[T]:
        """A reader that starts at the newest item (or the next one if none yet)."""
        self._ever_read = True
        return BroadcastReader(self, max(self._next - 1, 0))

    def close(self) -> None:
        """End the stream: readers drain what they can still reach, then stop."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wait(self) -> asyncio.Future[None]:
        # Created only when somebody waits, so publishing to an idle stream allocates
        # nothing; a waiter cancelled by one reader is replaced (see BroadcastReader.next).
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
        return waiter


class BroadcastReader(Generic[T]):
    """One consumer's position in a :class:`Broadcast`."""

    def __init__(self, stream: Broadcast[T], position: int) -> None:
        self._stream = stream
        self.position = position
        """Stream index of the next item this reader returns."""
        self.skipped = 0
        """Items lost because this reader fell behind the ring."""

    def lag(self) -> int:
        """Items published that this reader has not read yet."""
        return self._stream._next - self.position

    async def next(self) -> T:
        """The next item; raises :class:`StreamClosed` once the stream ended."""
        stream = self._stream
        while True:
            newest = stream._next
            if self.position < newest:
                oldest = newest - stream._capacity
                if self.position < oldest:
                    self.skipped += oldest - self.position
                    self.position = oldest
                item = stream._ring[self.position % stream._capacity]
                self.position += 1
                return item  # type: ignore[return-value]
            if stream._closed:
                raise StreamClosed("stream closed")
            waiter = stream._wait()
            try:
                await waiter
            except asyncio.CancelledError:
                # Every reader awaits the same future, and cancelling a task cancels
                # the future it awaits. If the cancellation was aimed at another reader
                # this task is not being cancelled: wait again on a fresh future.
                task = asyncio.current_task()
                if task is not None and task.cancelling() == 0 and waiter.cancelled():
                    continue
                raise

    def __aiter__(self) -> BroadcastReader[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.next()
        except StreamClosed:
            raise StopAsyncIteration from None


class PacketStream(Broadcast[OpusPacket]):
    """Broadcast of :class:`OpusPacket` to many readers (a room program, a mix-minus)."""


PacketReader = BroadcastReader[OpusPacket]
