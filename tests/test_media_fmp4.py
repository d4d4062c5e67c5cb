"""The fMP4 writer against FFmpeg's own MP4 demuxer (PyAV): what it reads back is the
very Opus packets, and they decode to the tone they carry."""

from __future__ import annotations

import io
import struct

import av

from node.media.fmp4 import init_segment, media_fragment, opus_specific_box
from tests.tonekit import dominant_frequency, frames_to_mono, opus_tone_packets


def boxes(data: bytes) -> list[bytes]:
    kinds, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        assert size >= 8
        kinds.append(kind)
        offset += size
    assert offset == len(data)
    return kinds


def test_dops_is_big_endian_opus_head() -> None:
    body = opus_specific_box(channels=1, pre_skip=312)[8:]
    assert body == bytes([0, 1]) + (312).to_bytes(2, "big") + (48000).to_bytes(4, "big") + bytes(3)


def test_init_and_fragments_are_read_back_packet_for_packet_by_ffmpeg() -> None:
    packets = opus_tone_packets(440, 100)
    init = init_segment()
    assert boxes(init) == [b"ftyp", b"moov"]
    fragments = [
        media_fragment(
            i + 1, i * 9600, [p.data for p in packets[i * 10 : i * 10 + 10]], [960] * 10
        )
        for i in range(10)
    ]
    assert all(boxes(f) == [b"moof", b"mdat"] for f in fragments)
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        assert stream.sample_rate == 48000
        demuxed = [p for p in container.demux(stream) if p.size]
    assert [bytes(p) for p in demuxed] == [p.data for p in packets]
    assert [p.pts for p in demuxed] == [i * 960 for i in range(100)]
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as container:
        audio = frames_to_mono(list(container.decode(audio=0)))
    assert abs(dominant_frequency(audio[4800:]) - 440) < 5


def test_one_part_alone_after_the_init_segment_decodes() -> None:
    packets = opus_tone_packets(440, 30)
    part = media_fragment(7, 123 * 960, [p.data for p in packets[20:]], [960] * 10)
    with av.open(io.BytesIO(init_segment() + part), format="mp4") as container:
        frames = list(container.decode(audio=0))
    assert sum(f.samples for f in frames) > 8000
