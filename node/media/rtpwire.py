"""What goes between a listener's 12-byte RTP header and the Opus payload. Pure functions.

Every listener's packet is ``fixed header | CSRC list | header extensions | payload``
(RFC 3550 section 5.1, RFC 8285). Only the fixed header differs between listeners (SSRC,
sequence number, timestamp); the rest depends on the packet and on what the listener
negotiated (its :class:`RtpLayout`), so the fan-out builds it once per packet per layout.

The contributing speakers of a mix go in the CSRC list with their levels in the
mixer-to-client audio level extension (RFC 6465, ``csrc-audio-level``), for clients that
offer it (Firefox does). Chromium does not implement RFC 6465: its
``getContributingSources()`` lists the CSRCs of each packet and gives each one the level of
the client-to-mixer extension (RFC 6464, ``ssrc-audio-level``), which Chromium offers;
that one carries the level of the whole packet (the mix). A listener's answer accepts
these two and the MID (RFC 8843), and nothing else (peers.py).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from node.media.packets import MAX_CSRCS, SILENCE_DBOV, Contributors

__all__ = [
    "CSRC_AUDIO_LEVEL",
    "LISTENER_EXTENSIONS",
    "MID",
    "SSRC_AUDIO_LEVEL",
    "RtpLayout",
    "dbov",
    "extension_block",
    "packet_tail",
]

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
SSRC_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
CSRC_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:csrc-audio-level"
LISTENER_EXTENSIONS = (MID, SSRC_AUDIO_LEVEL, CSRC_AUDIO_LEVEL)
"""The header extensions a listener's answer accepts when offered."""

_ONE_BYTE_PROFILE = 0xBEDE
_TWO_BYTE_PROFILE = 0x1000
_CSRC = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class RtpLayout:
    """What a listener negotiated that shapes its packets beyond SSRC, seq and timestamp.

    Listeners of the same browser share one layout (same MID, same extension ids), so a
    room has a handful of layouts however many listeners it has.
    """

    mid: str | None = None
    mid_id: int | None = None
    audio_level_id: int | None = None
    """RFC 6464 ``ssrc-audio-level``: the packet's level."""
    csrc_levels_id: int | None = None
    """RFC 6465 ``csrc-audio-level``: one level per CSRC."""

    @classmethod
    def negotiated(cls, mid: str | None, extensions: Iterable[tuple[int, str]]) -> RtpLayout:
        """The layout from a transceiver's MID and its negotiated (id, uri) extensions."""
        ids = {uri: ext_id for ext_id, uri in extensions}
        return cls(
            mid=mid,
            mid_id=ids.get(MID),
            audio_level_id=ids.get(SSRC_AUDIO_LEVEL),
            csrc_levels_id=ids.get(CSRC_AUDIO_LEVEL),
        )


def dbov(level: float) -> int:
    """A linear level (RMS, 1.0 = full scale) as RFC 6464/6465 -dBov, 0..127."""
    if level <= 0.0:
        return SILENCE_DBOV
    return max(0, min(SILENCE_DBOV, round(-20.0 * math.log10(level))))


def extension_block(elements: Iterable[tuple[int, bytes]]) -> bytes:
    """RFC 8285 header extensions: profile, length in 32-bit words, elements, padding.

    One-byte elements (ids 1-14, 1-16 bytes) when all fit, two-byte ones otherwise (a
    peer that offered ``extmap-allow-mixed`` and an id above 14). Empty: no block.
    """
    items = [(ext_id, bytes(value)) for ext_id, value in elements]
    if not items:
        return b""
    if all(1 <= ext_id <= 14 and 1 <= len(value) <= 16 for ext_id, value in items):
        profile = _ONE_BYTE_PROFILE
        body = b"".join(
            bytes([(ext_id << 4) | (len(value) - 1)]) + value for ext_id, value in items
        )
    else:
        if not all(1 <= ext_id <= 255 and len(value) <= 255 for ext_id, value in items):
            raise ValueError("a header extension id or value does not fit RFC 8285")
        profile = _TWO_BYTE_PROFILE
        body = b"".join(bytes([ext_id, len(value)]) + value for ext_id, value in items)
    body += bytes(-len(body) % 4)
    return struct.pack("!HH", profile, len(body) // 4) + body


def packet_tail(
    layout: RtpLayout, contributors: Contributors | None, payload: bytes
) -> tuple[int, bytes]:
    """``(first header byte, everything after the 12-byte fixed header)`` of a packet.

    The first byte carries version 2, the extension bit and the CSRC count; the tail is
    the CSRC list, the header extensions and the payload.
    """
    sources = contributors.sources[:MAX_CSRCS] if contributors is not None else ()
    elements: list[tuple[int, bytes]] = []
    if layout.mid_id and layout.mid:
        elements.append((layout.mid_id, layout.mid.encode()))
    if layout.audio_level_id and contributors is not None:
        voice = 0x80 if contributors.voice else 0
        elements.append((layout.audio_level_id, bytes([voice | contributors.level & 0x7F])))
    if layout.csrc_levels_id and sources:
        elements.append((layout.csrc_levels_id, bytes(level & 0x7F for _, level in sources)))
    extension = extension_block(elements)
    byte0 = 0x80 | (0x10 if extension else 0) | len(sources)
    csrcs = b"".join(_CSRC.pack(csrc) for csrc, _ in sources)
    return byte0, csrcs + extension + payload
