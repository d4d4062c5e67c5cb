from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from node.media.errors import StreamClosed
from node.media.mixer import JITTER_FRAMES, TRIM_WINDOW_TICKS, RoomMixer
from node.media.packets import OpusPacket, PacketReader, PacketStream
from tests.tonekit import (
    FRAME,
    decode_opus_packets,
    dominant_frequency,
    frequency_power,
    rms,
    tone_frame,
)

TICKS = 75  # 1.5 s of audio


async def drain(reader: PacketReader) -> list[OpusPacket]:
    """The packets already published (a reader with lag() > 0 never blocks)."""
    packets: list[OpusPacket] = []
    while reader.lag() > 0:
        packets.append(await reader.next())
    return packets


def play(mixer: RoomMixer, tones: dict[str, float], ticks: int = TICKS) -> None:
    inputs = {sid: mixer.add_speaker(sid) for sid in tones}
    for i in range(ticks):
        for sid, hz in tones.items():
            inputs[sid].push(stereo(tone_frame(hz, FRAME, i * FRAME)))
        mixer.tick()


def stereo(frame: av.AudioFrame) -> av.AudioFrame:
    """What aiortc's Opus decoder hands over: s16 interleaved stereo."""
    mono = frame.to_ndarray().reshape(-1)
    both = np.repeat(mono, 2).reshape(1, -1).astype(np.int16)
    out = av.AudioFrame.from_ndarray(both, format="s16", layout="stereo")
    out.sample_rate = 48000
    out.pts = frame.pts
    return out


def audio(packets: list[OpusPacket]) -> np.ndarray:
    # Skip the encoder warm-up so the spectrum shows the steady state.
    return decode_opus_packets(packets)[FRAME * 10 :]


async def test_program_holds_both_tones_and_returns_hold_only_the_other() -> None:
    mixer = RoomMixer()
    program = mixer.program.reader()
    mixer.add_speaker("a")
    mixer.add_speaker("b")
    ret_a = mixer.return_stream("a").reader()
    ret_b = mixer.return_stream("b").reader()
    play(mixer, {"a": 440.0, "b": 660.0})

    mixed = audio(await drain(program))
    assert frequency_power(mixed, 48000, 440) > 0.25
    assert frequency_power(mixed, 48000, 660) > 0.25

    heard_by_a = audio(await drain(ret_a))
    assert dominant_frequency(heard_by_a) == pytest.approx(660, abs=5)
    assert frequency_power(heard_by_a, 48000, 440) < 0.02

    heard_by_b = audio(await drain(ret_b))
    assert dominant_frequency(heard_by_b) == pytest.approx(440, abs=5)
    assert frequency_power(heard_by_b, 48000, 660) < 0.02
    mixer.close()


async def test_muted_speaker_is_absent_from_program() -> None:
    mixer = RoomMixer()
    program = mixer.program.reader()
    mixer.add_speaker("a")
    mixer.add_speaker("b").muted = True
    play(mixer, {"a": 440.0, "b": 660.0})
    mixed = audio(await drain(program))
    assert dominant_frequency(mixed) == pytest.approx(440, abs=5)
    assert frequency_power(mixed, 48000, 660) < 0.02
    levels = mixer.levels()
    assert levels["a"] > 0.1
    assert levels["b"] == 0.0
    mixer.close()


async def test_levels_follow_who_speaks() -> None:
    mixer = RoomMixer()
    mixer.add_speaker("quiet")
    play(mixer, {"loud": 440.0}, ticks=10)
    levels = mixer.levels()
    assert levels["loud"] > 0.1
    assert levels["quiet"] == 0.0
    for _ in range(50):  # one second with nobody speaking
        mixer.tick()
    assert mixer.levels()["loud"] < 0.001
    mixer.close()


async def test_silence_when_nobody_speaks() -> None:
    mixer = RoomMixer()
    program = mixer.program.reader()
    mixer.add_speaker("a")
    ret_a = mixer.return_stream("a").reader()
    for _ in range(TICKS):
        mixer.tick()
    assert rms(audio(await drain(program))) < 1e-3
    assert rms(audio(await drain(ret_a))) < 1e-3
    mixer.close()


async def test_other_input_formats_are_resampled() -> None:
    mixer = RoomMixer()
    program = mixer.program.reader()
    speaker = mixer.add_speaker("a")
    for i in range(TICKS):
        # 44.1 kHz float planar, 10 ms frames: not what aiortc gives, still accepted.
        t = (np.arange(441) + i * 441) / 44100
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 44100
        speaker.push(frame)
        if i % 2:
            mixer.tick()
    assert dominant_frequency(audio(await drain(program))) == pytest.approx(440, abs=5)
    mixer.close()


async def test_close_ends_readers() -> None:
    mixer = RoomMixer()
    mixer.add_speaker("a")
    ret = mixer.return_stream("a").reader()
    program = mixer.program.reader()
    mixer.close()
    with pytest.raises(StreamClosed):
        await program.next()
    assert [p async for p in ret] == []


async def test_run_ticks_until_stopped() -> None:
    mixer = RoomMixer()
    reader = mixer.program.reader()
    task = asyncio.create_task(mixer.run())
    first = await asyncio.wait_for(reader.next(), 5)
    second = await asyncio.wait_for(reader.next(), 5)
    assert second.seq == first.seq + 1
    assert second.pts == first.pts + FRAME
    mixer.stop()
    await asyncio.wait_for(task, 5)
    mixer.close()


# -- PacketStream ----------------------------------------------------------------------


async def test_stream_readers_share_packets_and_skip_when_behind() -> None:
    stream = PacketStream(capacity=4)
    fast, slow = stream.reader(), stream.reader()
    stream.publish(OpusPacket(0, 0, b"0"))
    assert (await fast.next()).seq == 0
    for seq in range(1, 10):
        stream.publish(OpusPacket(seq, seq * FRAME, b"x"))
    assert slow.lag() == 10
    assert (await slow.next()).seq == 6  # the oldest packet still in the ring
    assert slow.skipped == 6
    assert fast.lag() == 9


async def test_cancelling_one_waiting_reader_does_not_disturb_others() -> None:
    stream = PacketStream()
    first, second = stream.reader(), stream.reader()
    waiting_1 = asyncio.create_task(first.next())
    waiting_2 = asyncio.create_task(second.next())
    await asyncio.sleep(0)
    waiting_1.cancel()
    await asyncio.sleep(0)
    stream.publish(OpusPacket(7, 0, b"p"))
    assert (await waiting_2).seq == 7
    with pytest.raises(asyncio.CancelledError):
        await waiting_1


async def test_nobody_reading_a_mix_minus_costs_no_encode() -> None:
    # A send-only WHIP speaker never reads its return stream: nothing is published to it.
    mixer = RoomMixer()
    program = mixer.program.reader()
    play(mixer, {"a": 440.0, "b": 660.0})
    assert mixer.return_stream("a").published == 0
    assert mixer.return_stream("b").published == 0
    assert frequency_power(audio(await drain(program)), 48_000, 440) > 0.2


async def test_a_standing_queue_drains_but_a_cushion_stays() -> None:
    mixer = RoomMixer()
    sink = mixer.add_speaker("a")
    for i in range(JITTER_FRAMES):  # a burst fills the queue once...
        sink.push(stereo(tone_frame(440, FRAME, i * FRAME)))
    for i in range(TRIM_WINDOW_TICKS * JITTER_FRAMES):  # ...then frames arrive at tick rate
        sink.push(stereo(tone_frame(440, FRAME, i * FRAME)))
        mixer.tick()
    assert sink.pending() == 1  # the due frame was mixed; one spare is left
    for _ in range(TRIM_WINDOW_TICKS * 2):  # the spare (jitter cushion) is never trimmed
        sink.push(stereo(tone_frame(440, FRAME, 0)))
        mixer.tick()
    assert sink.pending() == 1
    mixer.close()


async def test_program_packets_name_the_speakers_heard_loudest_first() -> None:
    names = {"loud": 40, "soft": 7, "muted": 9, "quiet": 11}
    mixer = RoomMixer(csrc_of=names.__getitem__)
    program = mixer.program.reader()
    inputs = {sid: mixer.add_speaker(sid) for sid in names}
    inputs["muted"].muted = True
    assert mixer.csrcs() == names
    for i in range(10):
        inputs["loud"].push(tone_frame(440, FRAME, i * FRAME, amplitude=0.5))
        inputs["soft"].push(tone_frame(660, FRAME, i * FRAME, amplitude=0.1))
        inputs["muted"].push(tone_frame(550, FRAME, i * FRAME, amplitude=0.5))
        # Audible, but under the speaking level: mixed, not named.
        inputs["quiet"].push(tone_frame(770, FRAME, i * FRAME, amplitude=0.01))
        mixer.tick()
    packets = await drain(program)
    last = packets[-1].contributors
    assert last is not None
    # A 0.5 sine is -9 dBov (RMS 0.354), a 0.1 sine -23.
    assert last.sources == ((40, 9), (7, 23))
    assert last.voice and last.level == 9  # the mix: RMS 0.36
    for _ in range(25):  # half a second of silence: the smoothed levels fall away
        mixer.tick()
    quiet = (await drain(program))[-1].contributors
    assert quiet is not None and quiet.sources == () and not quiet.voice
    assert quiet.level == 127
    mixer.close()


async def test_without_a_room_speakers_are_numbered_in_order() -> None:
    mixer = RoomMixer()
    mixer.add_speaker("a")
    mixer.add_speaker("b")
    mixer.add_speaker("a")  # already there: same speaker
    assert mixer.csrcs() == {"a": 1, "b": 2}
    mixer.close()
