"""HlsStream in process: parts and segments of a packet stream, the playlist, blocking."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.media.hls import (
    HlsOutputs,
    HlsStream,
    PlaylistRequest,
    TooFarAhead,
    parse_media_name,
    part_name,
    segment_name,
)
from node.media.packets import OpusPacket, PacketStream
from tests.hls_client import decode_fmp4, parse_playlist
from tests.tonekit import dominant_frequency, opus_tone_packets

TONE = opus_tone_packets(440, 400)


async def feed(stream: PacketStream, packets: list[OpusPacket]) -> None:
    for packet in packets:
        stream.publish(packet)
        await asyncio.sleep(0)


async def started(**options: float) -> tuple[PacketStream, HlsStream]:
    stream = PacketStream(capacity=500)
    output = HlsStream(stream, **options)  # type: ignore[arg-type]
    output.start()
    await asyncio.sleep(0)
    return stream, output


async def test_parts_and_segments_carry_the_packets_and_the_playlist_lists_them() -> None:
    stream, output = await started()
    await feed(stream, TONE[:250])  # 2 segments and 5 parts
    playlist = parse_playlist(output.playlist()[0])
    assert [msn for msn, _ in playlist.segments] == [0, 1]
    assert playlist.hint is not None and playlist.hint[:2] == (2, 5)
    assert (2, 4) == playlist.parts[-1][:2]
    assert "#EXT-X-PROGRAM-DATE-TIME:" in playlist.text
    assert "CAN-BLOCK-RELOAD=YES" in playlist.text and not playlist.ended
    segment = output.segment(1)
    assert segment is not None and segment.data is not None
    assert segment.data == b"".join(p.data for p in segment.parts)
    audio = decode_fmp4(output.init + (output.segment(0).data or b"") + segment.data)
    assert abs(dominant_frequency(audio[4800:]) - 440) < 5
    stream.close()
    await asyncio.sleep(0)
    ended = parse_playlist(output.playlist()[0])
    assert ended.ended and ended.hint is None
    assert [msn for msn, _ in ended.segments] == [0, 1, 2]  # the last one shorter
    assert "#EXTINF:1.000," in ended.text


async def test_blocking_reload_waits_for_the_part_and_refuses_the_far_future() -> None:
    stream, output = await started()
    await feed(stream, TONE[:30])  # parts 0.0 .. 0.2
    waiting = asyncio.create_task(output.wait_playlist(PlaylistRequest(0, 4)))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await feed(stream, TONE[30:50])
    assert await asyncio.wait_for(waiting, 1) is True
    with pytest.raises(TooFarAhead):
        await output.wait_playlist(PlaylistRequest(3))
    with pytest.raises(TooFarAhead):
        await output.wait_playlist(PlaylistRequest(0, 9))  # more than 3 parts ahead
    # A part number past its segment's end names a part of the next segment.
    assert output.normalise(PlaylistRequest(0, 12)) == PlaylistRequest(1, 2)
    await output.close()


async def test_a_stalled_stream_answers_a_blocking_reload_in_bounded_time() -> None:
    stream, output = await started(block_timeout=0.2)
    await feed(stream, TONE[:10])
    assert await output.wait_playlist(PlaylistRequest(0, 2)) is False
    await output.close()


async def test_the_hinted_part_is_waited_for_other_missing_parts_are_not() -> None:
    stream, output = await started()
    await feed(stream, TONE[:10])
    assert await output.wait_part(0, 3, 5.0) is None  # two ahead: at once
    assert await output.wait_part(7, 0, 5.0) is None
    pending = asyncio.create_task(output.wait_part(0, 1, 5.0))
    await asyncio.sleep(0.01)
    await feed(stream, TONE[10:20])
    part = await asyncio.wait_for(pending, 1)
    assert part is not None and (part.msn, part.index) == (0, 1)
    assert await output.wait_part(0, 2, 0.05) is None  # due, never came: bounded
    await output.close()


async def test_a_restarted_output_continues_the_media_sequence_under_a_new_token() -> None:
    outputs = HlsOutputs()
    stream = PacketStream(capacity=500)
    first = outputs.start("room", stream)
    await asyncio.sleep(0)
    await feed(stream, TONE[:250])
    stream.close()
    await asyncio.sleep(0)
    assert first.closed and outputs.find("room") is first  # kept for its EXT-X-ENDLIST
    again = PacketStream(capacity=500)
    second = outputs.start("room", again)
    assert second is not first and second.token != first.token
    await feed(again, TONE[:10])
    assert parse_playlist(second.playlist()[0]).parts[0][:2] == (3, 0)
    await outputs.close()


@given(st.integers(0, 2**53), st.integers(0, 2**53))
def test_media_names_round_trip(msn: int, part: int) -> None:
    assert parse_media_name(part_name(msn, part)) == (msn, part)
    assert parse_media_name(segment_name(msn)) == (msn, None)


@given(st.text(max_size=60))
def test_media_names_parse_only_canonical_names(name: str) -> None:
    parsed = parse_media_name(name)
    if parsed is not None:
        msn, part = parsed
        canonical = segment_name(msn) if part is None else part_name(msn, part)
        assert canonical == name
