"""What follows a listener's fixed RTP header (node/media/rtpwire.py), read back with
aiortc's own parser."""

from __future__ import annotations

import pytest
from aiortc.rtp import RtpPacket

from node.media.packets import Contributors, OpusPacket, combine_opus
from node.media.rtpwire import RtpLayout, dbov, extension_block, packet_tail
from tests.tonekit import header_extensions, opus_tone_packets

FIXED = bytes([0x00, 111, 0, 1, 0, 0, 3, 192, 0, 0, 0, 42])  # byte0 replaced below


def _packet(layout: RtpLayout, contributors: Contributors | None, payload: bytes) -> bytes:
    byte0, tail = packet_tail(layout, contributors, payload)
    return bytes([byte0]) + FIXED[1:] + tail


def test_a_chromium_layout_carries_mid_level_and_csrcs() -> None:
    layout = RtpLayout.negotiated(
        "0",
        [
            (1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            (3, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
            (4, "urn:ietf:params:rtp-hdrext:sdes:mid"),
        ],
    )
    assert layout == RtpLayout(mid="0", mid_id=4, audio_level_id=1)
    data = _packet(layout, Contributors(20, ((5, 20), (6, 30))), b"\xfcopus")
    packet = RtpPacket.parse(data)
    assert packet.version == 2 and packet.ssrc == 42 and packet.payload == b"\xfcopus"
    assert packet.csrc == [5, 6]
    assert header_extensions(data) == {4: b"0", 1: bytes([0x80 | 20])}


def test_rfc_6465_levels_follow_the_csrc_order() -> None:
    layout = RtpLayout(mid="audio", mid_id=2, csrc_levels_id=12)
    data = _packet(layout, Contributors(3, ((9, 3), (8, 50), (7, 127))), b"\xfc")
    assert RtpPacket.parse(data).csrc == [9, 8, 7]
    assert header_extensions(data) == {2: b"audio", 12: bytes([3, 50, 127])}


def test_nothing_to_say_is_a_plain_header() -> None:
    byte0, tail = packet_tail(RtpLayout(), None, b"\xfc")
    assert (byte0, tail) == (0x80, b"\xfc")
    # Nobody heard: no CSRC and no RFC 6465 element, the packet's level still there.
    layout = RtpLayout(mid_id=1, mid="0", audio_level_id=2, csrc_levels_id=3)
    data = _packet(layout, Contributors(), b"\xfc")
    assert data[0] == 0x90
    assert header_extensions(data) == {1: b"0", 2: bytes([127])}


def test_more_than_fifteen_contributors_keep_the_first_fifteen() -> None:
    sources = tuple((csrc, csrc) for csrc in range(1, 20))
    layout = RtpLayout(csrc_levels_id=1)
    data = _packet(layout, Contributors(1, sources), b"\xfc")
    assert RtpPacket.parse(data).csrc == list(range(1, 16))
    assert header_extensions(data) == {1: bytes(range(1, 16))}


def test_ids_above_fourteen_use_two_byte_elements() -> None:
    block = extension_block([(15, b"0"), (2, bytes([5]))])
    assert block[:2] == b"\x10\x00"
    data = _packet(RtpLayout(mid="0", mid_id=15, audio_level_id=2), Contributors(5), b"\xfc")
    assert header_extensions(data) == {15: b"0", 2: bytes([5])}
    with pytest.raises(ValueError):
        extension_block([(300, b"x")])
    assert extension_block([]) == b""


@pytest.mark.parametrize(
    ("level", "expected"),
    [(1.0, 0), (2.0, 0), (0.5, 6), (0.03, 30), (1e-7, 127), (0.0, 127), (-1.0, 127)],
)
def test_dbov(level: float, expected: int) -> None:
    assert dbov(level) == expected


def test_combined_packets_keep_every_contributor_at_its_loudest() -> None:
    first, second = opus_tone_packets(440, 2)
    a = OpusPacket(first.seq, first.pts, first.data, Contributors(20, ((1, 20), (2, 40))))
    b = OpusPacket(second.seq, second.pts, second.data, Contributors(10, ((2, 10), (3, 50))))
    combined = combine_opus([a, b])
    assert combined is not None
    assert combined.contributors == Contributors(10, ((2, 10), (1, 20), (3, 50)))
    plain = combine_opus([first, second])
    assert plain is not None and plain.contributors is None
