"""Ogg/Opus over HTTP for any player (browser ``<audio>``, mpv, VLC).

Ogg framing (RFC 3533) and the Opus mapping (RFC 7845) are pure functions here.

Pages are built once per stream and shared: :class:`OggOpusPages` turns the packet stream
into a broadcast of pages, so each HTTP listener wakes once per page (100 ms) and writes
bytes that already exist, instead of waking per packet and framing its own pages. Page
sequence numbers are therefore global to the stream; a listener's two header pages are
numbered just before the first data page it gets, so what it sees is continuous.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from node.media.errors import StreamClosed
from node.media.packets import (
    OPUS_RATE,
    SAMPLES_PER_FRAME,
    Broadcast,
    BroadcastReader,
    PacketReader,
    PacketStream,
)

__all__ = [
    "OggOpusPages",
    "OggPage",
    "lacing",
    "ogg_crc",
    "ogg_listener",
    "ogg_page",
    "opus_head",
    "opus_tags",
]

logger = logging.getLogger(__name__)

HEADER_BOS = 0x02
HEADER_EOS = 0x04
OPUS_PRE_SKIP = 312  # libopus' encoder look-ahead at 48 kHz (RFC 7845 section 4.2)
VENDOR = b"parley"
PAGE_RING = 25  # pages kept for listeners (2.5 s at 5 packets per page)

_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _reverse32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little").translate(_BIT_REVERSED), "big")


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04c11db7, initial value 0, not reflected, no final xor.

    zlib computes the reflected variant of the same polynomial in C. Feeding it
    bit-reversed bytes and bit-reversing its result gives the unreflected CRC; starting
    zlib from 0xffffffff cancels its built-in initial inversion, and the final xor
    cancels its output inversion.
    """
    reflected = zlib.crc32(data.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return _reverse32(reflected)


MAX_SEGMENTS = 255
"""Entries in one page's segment table (RFC 3533 section 6)."""


def lacing(packets: Sequence[bytes]) -> bytes:
    """The segment table for complete packets (each ends with a value below 255)."""
    table = bytearray()
    for packet in packets:
        full, rest = divmod(len(packet), 255)
        table.extend(b"\xff" * full)
        table.append(rest)
    if len(table) > MAX_SEGMENTS:
        raise ValueError("too many segments for one Ogg page")
    return bytes(table)


def ogg_page(
    header_type: int, granule: int, serial: int, seq: int, packets: Sequence[bytes]
) -> bytes:
    """One Ogg page holding complete packets (RFC 3533 section 6)."""
    segments = lacing(packets)
    header = struct.pack(
        "<4sBBqIIIB", b"OggS", 0, header_type, granule, serial, seq, 0, len(segments)
    )
    page = b"".join((header, segments, *packets))
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def opus_head(*, channels: int = 1, pre_skip: int = OPUS_PRE_SKIP) -> bytes:
    """The identification header (RFC 7845 section 5.1), mapping family 0."""
    return struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, OPUS_RATE, 0, 0)


def opus_tags(vendor: bytes = VENDOR) -> bytes:
    """The comment header (RFC 7845 section 5.2) with no user comments."""
    return b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)


@dataclass(slots=True, frozen=True)
class OggPage:
    seq: int
    data: bytes


class OggOpusPages:
    """A stream's Opus packets as shared Ogg pages; one per stream, many listeners.

    The page builder runs as a task started by the first listener and ends when the
    packet stream closes (or on :meth:`close`).
    """

    def __init__(self, stream: PacketStream, *, packets_per_page: int = 5) -> None:
        self.stream = stream
        self.packets_per_page = packets_per_page
        self.serial = secrets.randbits(32)
        self.pages: Broadcast[OggPage] = Broadcast(PAGE_RING)
        self._seq = 2  # 0 and 1 are the first listener's header pages, at the earliest
        self._task: asyncio.Task[None] | None = None
        self._head = opus_head()
        self._tags = opus_tags()

    def headers(self, next_page_seq: int) -> bytes:
        """OpusHead (BOS) and OpusTags pages numbered to precede ``next_page_seq``."""
        return ogg_page(HEADER_BOS, 0, self.serial, next_page_seq - 2, [self._head]) + ogg_page(
            0, 0, self.serial, next_page_seq - 1, [self._tags]
        )

    def page_reader(self) -> BroadcastReader[OggPage]:
        """A reader of data pages from the next page on (starts the builder if needed)."""
        if self._task is None and not self.pages.closed:
            # The packet reader is taken now, not when the task first runs, so packets
            # published in between are not missed.
            self._task = asyncio.get_running_loop().create_task(
                self._build(self.stream.reader()), name="ogg-pages"
            )
        return BroadcastReader(self.pages, self.pages.published)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.pages.close()

    async def _build(self, reader: PacketReader) -> None:
        batch: list[bytes] = []
        segments = 0
        end = 0
        try:
            while True:
                packet = await reader.next()
                size = len(packet.data) // 255 + 1
                if batch and segments + size > MAX_SEGMENTS:
                    # Large packets (a relay may send up to 1275 bytes each) fill the
                    # page's segment table before packets_per_page: close the page early.
                    self._publish(batch, end)
                    batch, segments = [], 0
                batch.append(packet.data)
                segments += size
                # Granule: end of the page's last packet, in 48 kHz samples.
                end = packet.pts + SAMPLES_PER_FRAME
                if len(batch) == self.packets_per_page:
                    self._publish(batch, end)
                    batch, segments = [], 0
        except StreamClosed:
            pass
        finally:
            self.pages.close()

    def _publish(self, batch: list[bytes], granule: int) -> None:
        data = ogg_page(0, granule, self.serial, self._seq, batch)
        self.pages.publish(OggPage(self._seq, data))
        self._seq += 1


async def ogg_listener(
    source: PacketStream | OggOpusPages,
    *,
    packets_per_page: int = 5,
    max_lag_packets: int = 50,
) -> AsyncIterator[bytes]:
    """Bytes for one HTTP listener: headers, then one page per ``packets_per_page``.

    Pass the stream's shared :class:`OggOpusPages` (the cheap way for many listeners); a
    bare :class:`PacketStream` gets pages of its own. Stops when the stream ends, or when
    this listener fell more than ``max_lag_packets`` behind (a slow consumer is dropped
    rather than buffered for).
    """
    if isinstance(source, OggOpusPages):
        pages, own = source, False
    else:
        pages, own = OggOpusPages(source, packets_per_page=packets_per_page), True
    max_lag_pages = max(max_lag_packets // pages.packets_per_page, 1)
    reader = pages.page_reader()
    try:
        try:
            first = await reader.next()
        except StreamClosed:
            return
        yield pages.headers(first.seq) + first.data
        while True:
            if reader.lag() > max_lag_pages or reader.skipped:
                logger.info("dropping an Ogg listener %d pages behind", reader.lag())
                return
            try:
                page = await reader.next()
            except StreamClosed:
                return
            yield page.data
    finally:
        if own:
            await pages.close()
