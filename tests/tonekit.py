"""Test helpers for audio: tones in, frequencies out, and aiortc clients.

Audio is checked *as audio*: decode it and look at its spectrum, never at packet counts
or timings. Shared by the media tests and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import fractions
import io
import time

import av
import httpx
import numpy as np
import numpy.typing as npt
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import unpack_header_extensions

from node.media.mixer import OpusFrameEncoder
from node.media.packets import OPUS_RATE, OpusPacket

__all__ = [
    "Floats",
    "ToneTrack",
    "accept_answer",
    "decode_ogg",
    "decode_opus_packets",
    "dominant_frequency",
    "frequency_power",
    "header_extensions",
    "make_offer",
    "opus_tone_packets",
    "record_track",
    "tone_frame",
    "wait_connected",
]

RATE = OPUS_RATE
FRAME = 960  # 20 ms
AMPLITUDE = 0.3
TIME_BASE = fractions.Fraction(1, RATE)

Floats = npt.NDArray[np.float64]


def tone_frame(hz: float, n: int, pts: int, *, amplitude: float = AMPLITUDE) -> av.AudioFrame:
    """``n`` samples of a sine (mono s16, 48 kHz) starting at sample ``pts``."""
    t = (np.arange(n) + pts) / RATE
    samples = (np.sin(2 * np.pi * hz * t) * amplitude * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class ToneTrack(MediaStreamTrack):
    """An aiortc audio track playing a sine, 20 ms frames paced in real time."""

    kind = "audio"

    def __init__(self, hz: float, *, amplitude: float = AMPLITUDE) -> None:
        super().__init__()
        self.hz = hz
        self.amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._pts / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = tone_frame(self.hz, FRAME, self._pts, amplitude=self.amplitude)
        self._pts += FRAME
        return frame


def _window(samples: npt.ArrayLike) -> Floats:
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    x = x - x.mean()
    return x * np.hanning(len(x))


def dominant_frequency(samples: npt.ArrayLike, rate: int = RATE) -> float:
    """The frequency (Hz) of the strongest spectral peak (Hann window)."""
    x = _window(samples)
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(freqs[int(np.argmax(spectrum))])


def frequency_power(samples: npt.ArrayLike, rate: int, hz: float, *, width: float = 20.0) -> float:
    """Share (0..1) of the signal's power within ``width`` Hz of ``hz``.

    A pure tone gives close to 1 at its frequency; a tone that is absent gives close to 0.
    """
    x = _window(samples)
    power = np.abs(np.fft.rfft(x)) ** 2
    total = float(power.sum())
    if total == 0.0:
        return 0.0
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = np.abs(freqs - hz) <= width
    return float(power[band].sum()) / total


def rms(samples: npt.ArrayLike) -> float:
    x = np.asarray(samples, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def frames_to_mono(frames: list[av.AudioFrame]) -> Floats:
    """Decoded frames (s16/flt, any channel count, packed or planar) -> mono floats."""
    chunks: list[Floats] = []
    for frame in frames:
        data = frame.to_ndarray()
        channels = len(frame.layout.channels)
        if frame.format.is_planar:
            mono = data.astype(np.float64).mean(axis=0)
        else:
            mono = data.reshape(-1, channels).astype(np.float64).mean(axis=1)
        if frame.format.name.startswith("s16"):
            mono /= 32768.0
        chunks.append(mono)
    return np.concatenate(chunks) if chunks else np.zeros(0)


async def record_track(
    track: MediaStreamTrack, seconds: float, *, skip: float = 0.2, timeout: float = 30.0
) -> Floats:
    """Mono float samples received from a (remote) aiortc audio track.

    The first ``skip`` seconds are dropped (decoder warm-up, jitter buffer fill).
    ``timeout`` only guards against a hung test; nothing is asserted about timing.
    """
    wanted = int((seconds + skip) * RATE)
    frames: list[av.AudioFrame] = []

    async def collect() -> None:
        got = 0
        while got < wanted:
            frame = await track.recv()
            assert isinstance(frame, av.AudioFrame)
            frames.append(frame)
            got += frame.samples

    await asyncio.wait_for(collect(), timeout)
    return frames_to_mono(frames)[int(skip * RATE) :]


def decode_ogg(data: bytes) -> Floats:
    """Decode an Ogg/Opus byte string with PyAV to mono floats."""
    with av.open(io.BytesIO(data), mode="r", format="ogg") as container:
        frames = list(container.decode(audio=0))
    return frames_to_mono(frames)


def decode_opus_packets(packets: list[OpusPacket]) -> Floats:
    """Decode a run of Opus packets with libopus (as a client would) to mono floats."""
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = RATE
    decoder.layout = "mono"
    decoder.format = "s16"
    frames: list[av.AudioFrame] = []
    for packet in packets:
        frames.extend(decoder.decode(av.Packet(packet.data)))
    return frames_to_mono(frames)


def opus_tone_packets(hz: float, count: int, *, bitrate: int = 32000) -> list[OpusPacket]:
    """``count`` consecutive 20 ms Opus packets of a tone."""
    encoder = OpusFrameEncoder(frame_samples=FRAME, bitrate=bitrate)
    packets: list[OpusPacket] = []
    for i in range(count):
        samples = tone_frame(hz, FRAME, i * FRAME).to_ndarray().reshape(-1)
        data = encoder.encode(samples.astype(np.int16))
        if data is not None:
            packets.append(OpusPacket(i, i * FRAME, data))
    return packets


async def make_offer(
    direction: str, track: MediaStreamTrack | None = None
) -> tuple[RTCPeerConnection, str]:
    """An aiortc client with one audio transceiver and its complete (non-trickle) offer.

    ``direction`` is "sendonly", "sendrecv" (both need ``track``) or "recvonly".
    The remote audio track, if any, is ``pc.getTransceivers()[0].receiver.track`` once
    the answer is applied (see :func:`accept_answer`).
    """
    # No STUN server: aiortc would otherwise default to Google's, unreachable in tests.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if direction == "recvonly":
        pc.addTransceiver("audio", direction="recvonly")
    elif direction in ("sendonly", "sendrecv"):
        if track is None:
            raise ValueError(f"{direction} needs a track")
        pc.addTransceiver(track, direction=direction)
    else:
        raise ValueError(f"unknown direction {direction!r}")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def accept_answer(pc: RTCPeerConnection, answer_sdp: str) -> RTCRtpTransceiver:
    """Apply the server's answer; returns the audio transceiver."""
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
    return pc.getTransceivers()[0]


async def publish(whip_url: str, token: str, track: MediaStreamTrack) -> RTCPeerConnection:
    """A send-only WHIP speaker with ``track``, as OBS or a script publishes."""
    pc, offer = await make_offer("sendonly", track)
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            whip_url,
            content=offer,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    await accept_answer(pc, response.text)
    return pc


async def wait_connected(pc: RTCPeerConnection, *, timeout: float = 20.0) -> None:
    """Until ICE and DTLS are up (``timeout`` only guards against a hung test)."""

    async def connected() -> None:
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed"):
                raise ConnectionError(f"peer connection {pc.connectionState}")
            await asyncio.sleep(0.02)

    await asyncio.wait_for(connected(), timeout)


def header_extensions(rtp: bytes) -> dict[int, bytes]:
    """The header extension elements of a decrypted RTP packet, by id (RFC 8285), as
    they are on the wire (aiortc's parser keeps only those it knows)."""
    if not rtp[0] & 0x10:
        return {}
    start = 12 + 4 * (rtp[0] & 0x0F)
    profile = int.from_bytes(rtp[start : start + 2], "big")
    words = int.from_bytes(rtp[start + 2 : start + 4], "big")
    body = rtp[start + 4 : start + 4 + 4 * words]
    return dict(unpack_header_extensions(profile, body))
