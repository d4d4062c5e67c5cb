from __future__ import annotations

import asyncio
import os
import struct

import pytest

from node.media.mixer import RoomMixer
from node.media.packets import OpusPacket, PacketStream
from node.media.stream import OggOpusPages, lacing, ogg_crc, ogg_listener, ogg_page
from tests.tonekit import (
    FRAME,
    decode_ogg,
    dominant_frequency,
    frequency_power,
    opus_tone_packets,
    tone_frame,
)


def slow_ogg_crc(data: bytes) -> int:
    """Bit by bit, straight from RFC 3533's description of the checksum."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


@pytest.mark.parametrize("size", [0, 1, 7, 255, 256, 1000])
def test_fast_crc_matches_reference(size: int) -> None:
    data = os.urandom(size)
    assert ogg_crc(data) == slow_ogg_crc(data)


def test_known_crc() -> None:
    # The CRC-32/MPEG-2 family without init/xorout ("CRC-32/BZIP2" variant differs):
    # for "123456789" the poly-0x04c11db7, init 0, no-reflect, no-xorout check is 0x89a1897f.
    assert ogg_crc(b"123456789") == 0x89A1897F


def test_page_layout() -> None:
    packets = [b"a" * 300, b"b" * 10]
    page = ogg_page(0x02, 1234, 0xDEADBEEF, 7, packets)
    magic, version, flags, granule, serial, seq, crc, count = struct.unpack_from(
        "<4sBBqIIIB", page
    )
    assert (magic, version, flags, granule, serial, seq) == (b"OggS", 0, 2, 1234, 0xDEADBEEF, 7)
    assert page[27 : 27 + count] == lacing(packets) == bytes([255, 45, 10])
    assert crc == slow_ogg_crc(page[:22] + b"\0\0\0\0" + page[26:])
    assert lacing([b"x" * 510]) == bytes([255, 255, 0])  # a multiple of 255 ends with 0


async def test_listener_bytes_decode_to_the_tone() -> None:
    mixer = RoomMixer()
    speaker = mixer.add_speaker("a")
    pages = OggOpusPages(mixer.program)
    chunks: list[bytes] = []

    async def listen() -> None:
        async for chunk in ogg_listener(pages):
            chunks.append(chunk)

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0)  # the listener subscribes before audio flows
    for i in range(100):  # two seconds
        speaker.push(tone_frame(440, FRAME, i * FRAME))
        mixer.tick()
        for _ in range(3):  # let the page builder and the listener run
            await asyncio.sleep(0)
    mixer.close()
    await listener
    await pages.close()

    data = b"".join(chunks)
    assert data.startswith(b"OggS")
    samples = decode_ogg(data)
    assert len(samples) > FRAME * 90
    assert dominant_frequency(samples[FRAME * 5 :]) == pytest.approx(440, abs=5)
    assert frequency_power(samples[FRAME * 5 :], 48000, 440) > 0.5


async def test_listener_on_a_bare_stream_and_page_numbers_are_continuous() -> None:
    stream = PacketStream()
    listener = ogg_listener(stream, packets_per_page=5)
    first = asyncio.ensure_future(anext(listener))
    await asyncio.sleep(0)
    packets = opus_tone_packets(660, 30)
    for packet in packets:
        stream.publish(packet)
    chunks = [await first]
    stream.close()
    chunks += [c async for c in listener]  # ends with the stream, after what it holds
    assert len(chunks) == 6

    data = b"".join(chunks)
    seqs = [struct.unpack_from("<I", data, i + 18)[0] for i in _page_offsets(data)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert dominant_frequency(decode_ogg(data)[FRAME * 5 :]) == pytest.approx(660, abs=5)


def _page_offsets(data: bytes) -> list[int]:
    offsets, at = [], 0
    while at < len(data):
        offsets.append(at)
        count = data[at + 26]
        at += 27 + count + sum(data[at + 27 : at + 27 + count])
    return offsets


async def test_a_listener_that_never_reads_is_dropped() -> None:
    stream = PacketStream()
    pages = OggOpusPages(stream)
    reader_first = asyncio.ensure_future(anext(ogg_listener(pages, max_lag_packets=20)))
    lazy = ogg_listener(pages, max_lag_packets=20)
    lazy_first = asyncio.ensure_future(anext(lazy))
    await asyncio.sleep(0)
    for seq in range(5):
        stream.publish(OpusPacket(seq, seq * FRAME, b"\xf8\xff\xfe"))
    await asyncio.sleep(0)
    assert (await lazy_first).startswith(b"OggS")
    for seq in range(5, 60):  # 11 more pages while `lazy` does not read
        stream.publish(OpusPacket(seq, seq * FRAME, b"\xf8\xff\xfe"))
        await asyncio.sleep(0)
    with pytest.raises(StopAsyncIteration):
        await anext(lazy)
    await reader_first
    await pages.close()
