"""An Ogg/Opus file written from Opus packets as they come, and read back: pure framing
over bytes (RFC 3533, RFC 7845), no I/O of its own.

A recording stores a room's program packets as they are (no re-encoding), 50 packets (one
second) per page to keep the framing small (about 0.5 % of the file at 32 kbit/s). Granule
positions count 48 kHz samples from the stream's start, pre-skip included, so a player
knows the exact length from the last page (whose ``EOS`` flag says the stream is
complete). ``packets_of`` reads a file's packets back (the replay's HLS segments are cut
from them: node.media.replay).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from node.media.packets import SAMPLES_PER_FRAME
from node.media.stream import (
    HEADER_BOS,
    HEADER_EOS,
    MAX_SEGMENTS,
    OPUS_PRE_SKIP,
    ogg_page,
    opus_head,
)

PACKETS_PER_PAGE = 50
_HEADER = struct.Struct("<4sBBqIIIB")


def opus_tags_with(comments: dict[str, str], vendor: bytes = b"parley") -> bytes:
    """The comment header (RFC 7845 section 5.2) with ``KEY=value`` user comments."""
    entries = [f"{k.upper()}={v}".encode() for k, v in comments.items() if v]
    body = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(entries))
    for entry in entries:
        body += struct.pack("<I", len(entry)) + entry
    return body


class OggOpusWriter:
    """Bytes of an Ogg/Opus file, page by page: ``header()``, then ``add(packet)`` (which
    returns a page every ``PACKETS_PER_PAGE`` packets), then ``finish()`` (the last page,
    flagged end of stream)."""

    def __init__(self, serial: int, comments: dict[str, str]) -> None:
        self.serial = serial
        self.packets = 0
        self._comments = comments
        self._seq = 0
        self._batch: list[bytes] = []
        self._segments = 0

    def _page(self, flags: int, granule: int, packets: list[bytes]) -> bytes:
        page = ogg_page(flags, granule, self.serial, self._seq, packets)
        self._seq += 1
        return page

    def header(self) -> bytes:
        head = self._page(HEADER_BOS, 0, [opus_head()])
        return head + self._page(0, 0, [opus_tags_with(self._comments)])

    @property
    def granule(self) -> int:
        return self.packets * SAMPLES_PER_FRAME

    def add(self, packet: bytes) -> bytes:
        size = len(packet) // 255 + 1
        out = b""
        if self._batch and self._segments + size > MAX_SEGMENTS:
            out = self._page(0, self.granule, self._batch)
            self._batch, self._segments = [], 0
        self._batch.append(packet)
        self._segments += size
        self.packets += 1
        if len(self._batch) >= PACKETS_PER_PAGE:
            out += self._page(0, self.granule, self._batch)
            self._batch, self._segments = [], 0
        return out

    def finish(self) -> bytes:
        """The last page (possibly holding no packet), flagged end of stream."""
        page = self._page(HEADER_EOS, self.granule, self._batch)
        self._batch, self._segments = [], 0
        return page

    @property
    def duration(self) -> float:
        """Playable seconds (pre-skip removed)."""
        return max(0, self.granule - OPUS_PRE_SKIP) / 48000


def pages(data: bytes) -> Iterator[tuple[int, int, list[bytes]]]:
    """(header type, granule, complete packets) of every page of an Ogg stream (packets
    continued across pages are joined onto the page where they end)."""
    offset = 0
    pending = b""
    while offset + _HEADER.size <= len(data):
        magic, _, flags, granule, _, _, _, count = _HEADER.unpack_from(data, offset)
        if magic != b"OggS":
            raise ValueError(f"no Ogg page at byte {offset}")
        table = data[offset + _HEADER.size : offset + _HEADER.size + count]
        body = offset + _HEADER.size + count
        packets: list[bytes] = []
        for lacing in table:
            pending += data[body : body + lacing]
            body += lacing
            if lacing < 255:
                packets.append(pending)
                pending = b""
        yield flags, granule, packets
        offset = body


def packets_of(data: bytes) -> list[bytes]:
    """The audio packets of an Ogg/Opus file (its two header packets left out)."""
    found = [packet for _, _, packets in pages(data) for packet in packets]
    return found[2:]
