"""The room mixer: every 20 ms, sum the speakers and encode the program once.

Besides the program every speaker gets a *mix-minus* (the program without their own
voice), so nobody hears themselves with a delay. Encoding a mix-minus per speaker per
tick is the expensive part, so it is done only for speakers who are audible right now
(plus a short hangover): for a speaker who contributed nothing audible, the program
*is* their mix-minus, and their return stream carries the very same packet.

Each program packet also says who is heard in it (:class:`~node.media.packets.Contributors`:
the speakers' CSRCs and levels, and the level of the mix), which the WebRTC fan-out
writes into every listener's RTP header (node/media/rtpwire.py), so a browser knows who
speaks from the audio itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
import numpy.typing as npt

from node.media.packets import MAX_CSRCS, OPUS_RATE, Contributors, OpusPacket, PacketStream
from node.media.rtpwire import dbov

__all__ = ["AudioSink", "OpusFrameEncoder", "RoomMixer", "SpeakerInput"]

logger = logging.getLogger(__name__)

JITTER_FRAMES = 6
"""Frames a speaker may queue; older ones are dropped so latency stays bounded."""

TRIM_WINDOW_TICKS = 50
"""A speaker's queue that held more than the frame due plus one spare (20 ms of jitter
cushion) at every tick of this window (1 s) carries a standing delay: the speaker's and
the node's clocks run at the same rate, so a queue built by one late burst never drains
by itself. Its oldest frame is then dropped. Without this a queue filled once stays at
JITTER_FRAMES, 120 ms more mouth-to-ear latency for every listener (bench_latency.py)."""

AUDIBLE_RMS = 10 ** (-50 / 20) * 32768
"""A frame quieter than -50 dBFS counts as silence when choosing who needs a mix-minus."""

HANGOVER_TICKS = 25
"""Keep encoding a speaker's own mix-minus this long (0.5 s) after they went quiet, so
their return does not flip between encoders between words."""

MAX_CATCH_UP_TICKS = 10
"""When run() is late by more than this many ticks (200 ms) it skips time instead of
mixing the missed ticks at once. Speakers' frames wait in their queues meanwhile, so a
stall shorter than this loses no audio. Handing one Ogg page to 2,000 HTTP listeners
stalls the event loop ~100 ms (bench_fanout, 2026-11-23); with the former 3 ticks every
such stall cut audio out for every listener of the room."""

LEVEL_DECAY = 0.8
"""Per-tick decay of the smoothed speaking level (fast attack, ~100 ms release)."""

SPEAKING_LEVEL = 0.03
"""A speaker whose smoothed level is above this (about -30 dBov) is a contributing source
(CSRC) of the program packet: the threshold at which the web client lights a speaking
ring from the levels of the room WebSocket (static/room.js), so both say the same.
Chromium gives no level per CSRC (rtpwire.py), so being listed must mean speaking."""

Samples = npt.NDArray[np.int16]


class AudioSink(Protocol):
    """Where a speaker's decoded audio is pushed (node.media.peers feeds one per WHIP
    session): the mixer's SpeakerInput, or anything that forwards to one."""

    def push(self, frame: av.AudioFrame) -> None: ...


class SpeakerInput:
    """Where one speaker's decoded audio goes: a small jitter queue of mono frames.

    The mixer pops one frame per tick; anything else that consumes 20 ms frames at its
    own pace (an encoder sending a speaker's voice to another node) uses ``pop_frame``.
    """

    def __init__(self, speaker_id: str, *, frame_samples: int, clock: Callable[[], float]) -> None:
        self.speaker_id = speaker_id
        self.muted = False
        """Server-side mute: while set the mixer drops this speaker's audio entirely."""
        self.last_audio_at = 0.0
        """Monotonic time of the last push (callers use it to notice a vanished speaker)."""
        self._frame_samples = frame_samples
        self._clock = clock
        self._frames: deque[Samples] = deque(maxlen=JITTER_FRAMES)
        self._resampler: av.AudioResampler | None = None
        self._floor = JITTER_FRAMES  # fewest frames queued at a tick in this window
        self._window = 0

    def push(self, frame: av.AudioFrame) -> None:
        """Queue a decoded frame (any layout/format/rate) as mono int16 frames."""
        self.last_audio_at = self._clock()
        if (
            frame.format.name == "s16"
            and frame.sample_rate == OPUS_RATE
            and frame.samples == self._frame_samples
        ):
            # aiortc's Opus decoder gives exactly this: s16 interleaved, 48 kHz, 20 ms.
            samples = np.asarray(frame.to_ndarray(), dtype=np.int16)
            self._frames.append(_to_mono(samples, len(frame.layout.channels)))
            return
        if self._resampler is None:
            self._resampler = av.AudioResampler(
                format="s16", layout="mono", rate=OPUS_RATE, frame_size=self._frame_samples
            )
        for out in self._resampler.resample(frame):
            self._frames.append(np.array(out.to_ndarray(), dtype=np.int16).reshape(-1))

    def pending(self) -> int:
        """Frames queued and not yet mixed."""
        return len(self._frames)

    def pop_frame(self) -> Samples | None:
        """The next 20 ms frame, or None; trims a standing queue (TRIM_WINDOW_TICKS)."""
        frames = self._frames
        depth = len(frames)
        if depth < self._floor:
            self._floor = depth
        self._window += 1
        if self._window >= TRIM_WINDOW_TICKS:
            if self._floor >= 3:
                frames.popleft()  # see TRIM_WINDOW_TICKS
            self._floor = JITTER_FRAMES
            self._window = 0
        return frames.popleft() if frames else None

    def _clear(self) -> None:
        self._frames.clear()


def _to_mono(samples: npt.NDArray[np.int16], channels: int) -> Samples:
    if channels == 1:
        return samples.reshape(-1)
    # Interleaved s16: average the channels (a browser mic sends the same signal twice).
    wide = samples.reshape(-1, channels).astype(np.int32)
    return (wide.sum(axis=1) // channels).astype(np.int16)


class OpusFrameEncoder:
    """A mono libopus encoder that re-uses one input frame for every call."""

    def __init__(self, *, frame_samples: int, bitrate: int) -> None:
        codec = av.CodecContext.create("libopus", "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = OPUS_RATE
        codec.layout = "mono"
        codec.format = "s16"
        codec.bit_rate = bitrate
        codec.time_base = Fraction(1, OPUS_RATE)
        codec.options = {"application": "voip"}
        codec.open()
        self._codec = codec
        self._frame = av.AudioFrame(format="s16", layout="mono", samples=frame_samples)
        self._frame.sample_rate = OPUS_RATE
        self._frame.time_base = Fraction(1, OPUS_RATE)
        # libopus consumes the samples inside encode() (one packet out per 20 ms frame in),
        # so writing the next frame into the same buffer afterwards is safe.
        self._input: Samples = np.frombuffer(memoryview(self._frame.planes[0]), dtype=np.int16)
        self._pts = 0

    def encode(self, samples: Samples) -> bytes | None:
        self._input[:] = samples
        self._frame.pts = self._pts
        self._pts += self._frame.samples
        packets = self._codec.encode(self._frame)
        return bytes(packets[0]) if packets else None


class _Speaker:
    __slots__ = ("input", "returns", "encoder", "level", "hangover", "own", "csrc")

    def __init__(self, speaker_input: SpeakerInput, encoder: OpusFrameEncoder, csrc: int) -> None:
        self.input = speaker_input
        self.returns = PacketStream()
        self.encoder = encoder
        self.level = 0.0
        self.hangover = 0
        self.own: Samples | None = None
        self.csrc = csrc


class RoomMixer:
    """Mixes a room's speakers into a program stream and per-speaker mix-minus streams."""

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        bitrate: int = 32000,
        clock: Callable[[], float] = time.monotonic,
        csrc_of: Callable[[str], int] | None = None,
    ) -> None:
        """``csrc_of(speaker_id)`` names each speaker's contributing source (RFC 3550 CSRC,
        1..2**32-1) in program packets; the room keeps them stable (node.rooms). Without
        it speakers are numbered in the order they were added."""
        if frame_ms not in (10, 20, 40, 60):
            raise ValueError("frame_ms must be an Opus frame size: 10, 20, 40 or 60")
        self.frame_ms = frame_ms
        self.frame_samples = OPUS_RATE * frame_ms // 1000
        self.bitrate = bitrate
        self.program = PacketStream()
        self._clock = clock
        self._csrc_of = csrc_of
        self._speakers: dict[str, _Speaker] = {}
        self._next_csrc = 1
        self._encoder = OpusFrameEncoder(frame_samples=self.frame_samples, bitrate=bitrate)
        self._sum = np.zeros(self.frame_samples, dtype=np.int32)
        self._mix = np.zeros(self.frame_samples, dtype=np.int16)
        self._minus = np.zeros(self.frame_samples, dtype=np.int32)
        self._minus16 = np.zeros(self.frame_samples, dtype=np.int16)
        self._square = np.zeros(self.frame_samples, dtype=np.float64)
        self._seq = 0
        self._pts = 0
        self._stopping = False

    # -- speakers ---------------------------------------------------------------------

    def add_speaker(self, speaker_id: str) -> SpeakerInput:
        if speaker_id in self._speakers:
            return self._speakers[speaker_id].input
        speaker_input = SpeakerInput(
            speaker_id, frame_samples=self.frame_samples, clock=self._clock
        )
        encoder = OpusFrameEncoder(frame_samples=self.frame_samples, bitrate=self.bitrate)
        if self._csrc_of is not None:
            csrc = self._csrc_of(speaker_id)
        else:
            csrc, self._next_csrc = self._next_csrc, self._next_csrc + 1
        self._speakers[speaker_id] = _Speaker(speaker_input, encoder, csrc & 0xFFFFFFFF)
        return speaker_input

    def remove_speaker(self, speaker_id: str) -> None:
        speaker = self._speakers.pop(speaker_id, None)
        if speaker is not None:
            speaker.returns.close()

    def return_stream(self, speaker_id: str) -> PacketStream:
        """The speaker's mix-minus: the program without their own voice."""
        return self._speakers[speaker_id].returns

    def speakers(self) -> list[str]:
        return list(self._speakers)

    def levels(self) -> dict[str, float]:
        """Speaker id -> smoothed RMS level in 0..1, for "who is speaking"."""
        return {sid: speaker.level for sid, speaker in self._speakers.items()}

    def csrcs(self) -> dict[str, int]:
        """Speaker id -> the CSRC that names them in program packets."""
        return {sid: speaker.csrc for sid, speaker in self._speakers.items()}

    # -- the 20 ms step ---------------------------------------------------------------

    def tick(self) -> None:
        """Mix one frame, encode the program once, and the mix-minus where it differs."""
        total = self._sum
        total.fill(0)
        square = self._square
        heard: list[tuple[int, int]] = []
        for speaker in self._speakers.values():
            speaker_input = speaker.input
            if speaker_input.muted:
                speaker_input._clear()
                own = None
            else:
                own = speaker_input.pop_frame()
            rms = 0.0
            if own is not None:
                np.add(total, own, out=total)
                np.multiply(own, own, out=square, dtype=np.float64)
                rms = float(np.sqrt(square.mean()))
                if rms >= AUDIBLE_RMS:
                    speaker.hangover = HANGOVER_TICKS
            speaker.own = own
            level = rms / 32768.0
            # Fast attack, slow release: a frame a little quieter than the last is not a
            # 20 % drop (a tone whose frames hold a fractional number of cycles flickered).
            speaker.level = max(level, speaker.level * LEVEL_DECAY)
            if speaker.level > SPEAKING_LEVEL and not speaker_input.muted:
                heard.append((dbov(speaker.level), speaker.csrc))

        mix = self._mix
        np.clip(total, -32768, 32767, out=mix)
        seq, pts = self._seq, self._pts
        self._seq += 1
        self._pts += self.frame_samples
        data = self._encoder.encode(mix)
        program = None
        if data is not None:
            program = OpusPacket(seq, pts, data, self._contributors(mix, heard))
        if program is not None:
            self.program.publish(program)

        minus, minus16 = self._minus, self._minus16
        for speaker in self._speakers.values():
            own = speaker.own
            speaker.own = None
            if not speaker.returns.ever_read:
                continue  # a send-only speaker: nobody would decode this mix-minus
            if speaker.hangover > 0:
                speaker.hangover -= 1
                if own is None:
                    minus16[:] = mix
                else:
                    np.subtract(total, own, out=minus)
                    np.clip(minus, -32768, 32767, out=minus)
                    minus16[:] = minus
                own_data = speaker.encoder.encode(minus16)
                if own_data is not None:
                    speaker.returns.publish(OpusPacket(seq, pts, own_data))
            elif program is not None:
                speaker.returns.publish(program)

    def _contributors(self, mix: Samples, heard: list[tuple[int, int]]) -> Contributors:
        heard.sort()  # loudest (lowest -dBov) first; CSRC breaks ties
        square = self._square
        np.multiply(mix, mix, out=square, dtype=np.float64)
        level = float(np.sqrt(square.mean())) / 32768.0
        return Contributors(dbov(level), tuple((csrc, level) for level, csrc in heard[:MAX_CSRCS]))

    # -- pacing -----------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every ``frame_ms`` on an absolute schedule until :meth:`stop`."""
        self._stopping = False
        period = self.frame_ms / 1000
        due = self._clock()
        while not self._stopping:
            now = self._clock()
            if now - due > period * MAX_CATCH_UP_TICKS:
                logger.info("mixer fell %.0f ms behind; skipping ahead", (now - due) * 1000)
                due = now
            while due <= now and not self._stopping:
                self.tick()
                due += period
            await asyncio.sleep(max(due - self._clock(), 0.0))

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        """Stop and end every stream (program and returns)."""
        self.stop()
        self.program.close()
        for speaker in self._speakers.values():
            speaker.returns.close()
