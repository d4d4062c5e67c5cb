"""Mouth-to-ear latency: tone bursts from a WHIP speaker, detected at WebRTC and Ogg listeners.

    .venv/bin/python -m bench.bench_latency --seconds 30

A node runs as its own process with a live room. This process is the speaker *and* the
listeners, so mouth and ear read one clock (``time.monotonic``):

- the speaker (aiortc over WHIP) plays 60 ms of 1 kHz every 500 ms, silence otherwise,
  paced in real time in 20 ms frames. A burst's *mouth* time is when its first frame was
  handed to the encoder minus one frame (a microphone delivers a 20 ms frame when its last
  sample is captured, so the burst's first sample was spoken 20 ms earlier);
- a WebRTC listener (WHEP, aiortc's jitter buffer and Opus decoder) and an Ogg/HTTP
  listener (chunked GET, pages parsed and decoded with libopus here). The *ear* time of an
  onset is when the decoded audio holding it became available plus the onset's offset
  inside it, i.e. the earliest it could play with no further playout buffer. A browser adds
  its own playout delay (a few tens of ms for WebRTC; for ``<audio>`` its media buffer).

Onsets are found on the decoded samples (first sample above a threshold after at least
200 ms below it) and matched to the latest burst spoken before them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from bench.harness import NodeUnderTest, append_results, markdown_table, run_dir
from node.media.ice import IceSettings, install_ice_policy
from tests.tonekit import (
    FRAME,
    RATE,
    accept_answer,
    frames_to_mono,
    make_offer,
    publish,
    tone_frame,
)

__all__ = ["BurstTrack", "OnsetDetector", "main"]

BURST_HZ = 1000.0
BURST_FRAMES = 3  # 60 ms
PERIOD_FRAMES = 25  # 500 ms
AMPLITUDE = 0.5
THRESHOLD = 0.1
QUIET_SAMPLES = int(0.2 * RATE)
FRAME_S = FRAME / RATE
CLIENT_PREFETCH: int | None = None  # packets in the listener's aiortc jitter buffer; None: 4


class BurstTrack(MediaStreamTrack):
    """Silence with a 1 kHz burst every ``PERIOD_FRAMES`` frames; records each burst's time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.mouth: list[float] = []
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            delay = self._start + self._index * FRAME_S - now
            if delay > 0:
                await asyncio.sleep(delay)
        position = self._index % PERIOD_FRAMES
        pts = self._index * FRAME
        if position < BURST_FRAMES:
            frame = tone_frame(BURST_HZ, FRAME, pts, amplitude=AMPLITUDE)
            if position == 0 and self._index >= PERIOD_FRAMES:  # the first one warms up
                self.mouth.append(time.monotonic() - FRAME_S)
        else:
            frame = tone_frame(BURST_HZ, FRAME, pts, amplitude=0.0)
        self._index += 1
        return frame


class OnsetDetector:
    """Onsets in a stream of decoded samples, each with the time it could first be heard."""

    def __init__(self) -> None:
        self.quiet = 0
        self.onsets: list[float] = []

    def feed(self, samples: np.ndarray[Any, Any], available_at: float) -> None:
        """``samples`` became available at ``available_at`` (its first sample plays then)."""
        loud = np.flatnonzero(np.abs(samples) > THRESHOLD)
        start = 0
        for index in loud:
            quiet_run = self.quiet + (int(index) - start)
            if quiet_run >= QUIET_SAMPLES:
                self.onsets.append(available_at + int(index) / RATE)
            self.quiet = 0
            start = int(index) + 1
        self.quiet += len(samples) - start


def match(mouth: list[float], ear: list[float]) -> list[float]:
    """Latency of each onset against the latest burst spoken before it (seconds)."""
    out = []
    for t in ear:
        spoken = [m for m in mouth if m <= t]
        if spoken:
            out.append(t - spoken[-1])
    return out


async def listen_webrtc(whep_url: str, detector: OnsetDetector, stop: asyncio.Event) -> None:
    pc, offer = await make_offer("recvonly")
    try:
        async with httpx.AsyncClient(timeout=20) as http:
            response = await http.post(
                whep_url, content=offer, headers={"Content-Type": "application/sdp"}
            )
        response.raise_for_status()
        transceiver = await accept_answer(pc, response.text)
        if CLIENT_PREFETCH is not None:
            jitter_buffer = transceiver.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
            jitter_buffer._prefetch = CLIENT_PREFETCH
        track = transceiver.receiver.track
        while not stop.is_set():
            frame = await asyncio.wait_for(track.recv(), 10)
            now = time.monotonic()
            assert isinstance(frame, av.AudioFrame)
            detector.feed(frames_to_mono([frame]), now)
    finally:
        await pc.close()


class OggReader:
    """Chunked HTTP body → Ogg pages → Opus packets, incrementally."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self.body = bytearray()

    def chunks(self, data: bytes) -> None:
        self.raw += data
        while True:
            end = self.raw.find(b"\r\n")
            if end < 0:
                return
            size = int(bytes(self.raw[:end]).split(b";")[0], 16)
            if len(self.raw) < end + 2 + size + 2:
                return
            self.body += self.raw[end + 2 : end + 2 + size]
            del self.raw[: end + 2 + size + 2]

    def pages(self) -> list[list[bytes]]:
        out = []
        while len(self.body) >= 27:
            segments = self.body[26]
            header = 27 + segments
            if len(self.body) < header:
                break
            table = self.body[27:header]
            size = sum(table)
            if len(self.body) < header + size:
                break
            packets, current, pos = [], bytearray(), header
            for lace in table:
                current += self.body[pos : pos + lace]
                pos += lace
                if lace < 255:
                    packets.append(bytes(current))
                    current = bytearray()
            out.append(packets)
            del self.body[: header + size]
        return out


async def listen_ogg(listen_url: str, detector: OnsetDetector, stop: asyncio.Event) -> None:
    parts = urlsplit(listen_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = RATE
    decoder.layout = "mono"
    decoder.format = "s16"
    ogg = OggReader()
    try:
        writer.write(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        while not stop.is_set():
            data = await asyncio.wait_for(reader.read(65536), 10)
            if not data:
                return
            now = time.monotonic()
            ogg.chunks(data)
            offset = 0
            for packets in ogg.pages():
                for packet in packets:
                    if packet.startswith((b"OpusHead", b"OpusTags")):
                        continue
                    samples = frames_to_mono(list(decoder.decode(av.Packet(packet))))
                    # A player can start the page's first sample on arrival; later packets
                    # of the page play after it.
                    detector.feed(samples, now + offset / RATE)
                    offset += len(samples)
    finally:
        writer.close()


def _row(label: str, values: list[float], target_ms: float) -> list[Any]:
    if not values:
        return [label, 0, "-", "-", "-", "-", f"{target_ms:g}"]
    ordered = sorted(v * 1000 for v in values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return [
        label,
        len(ordered),
        f"{statistics.median(ordered):.0f}",
        f"{p99:.0f}",
        f"{ordered[0]:.0f}",
        f"{ordered[-1]:.0f}",
        f"{target_ms:g}",
    ]


async def _measure(room: Any, seconds: float) -> dict[str, Any]:
    install_ice_policy(IceSettings(host_addresses=("127.0.0.1",)), asyncio.get_running_loop())
    track = BurstTrack()
    speaker = await publish(room.whip_url, room.host_token, track)
    await asyncio.sleep(1.0)
    stop = asyncio.Event()
    rtc, ogg = OnsetDetector(), OnsetDetector()
    tasks = [
        asyncio.create_task(listen_webrtc(room.whep_url, rtc, stop)),
        asyncio.create_task(listen_ogg(room.listen_url, ogg, stop)),
    ]
    await asyncio.sleep(2.0)  # joins settle; onsets before this are not counted
    window_start = time.monotonic()
    await asyncio.sleep(seconds)
    stop.set()
    for task in tasks:
        task.cancel()
    errors = []
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
            errors.append(f"{type(result).__name__}: {result}")
    with contextlib.suppress(Exception):
        await speaker.close()
    mouth = [m for m in track.mouth if m >= window_start - 1.0]
    return {
        "bursts": len([m for m in mouth if m >= window_start]),
        "webrtc": match(mouth, [t for t in rtc.onsets if t >= window_start]),
        "ogg": match(mouth, [t for t in ogg.onsets if t >= window_start]),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="mouth-to-ear latency")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--page-ms", type=int, default=0, help="[media] ogg_page_ms (0: default)")
    parser.add_argument("--no-results", dest="write", action="store_false")
    parser.add_argument(
        "--packet-ms", type=int, default=0, help="[media] webrtc_packet_ms (0: default)"
    )
    parser.add_argument(
        "--client-prefetch",
        type=int,
        default=None,
        help="packets the WebRTC listener's aiortc jitter buffer holds (default: aiortc's 4)",
    )
    args = parser.parse_args(argv)
    global CLIENT_PREFETCH
    CLIENT_PREFETCH = args.client_prefetch
    workdir = run_dir("latency")
    media: dict[str, Any] = {}
    if args.page_ms:
        media["ogg_page_ms"] = args.page_ms
    if args.packet_ms:
        media["webrtc_packet_ms"] = args.packet_ms
    node = NodeUnderTest(workdir, {"media": media})
    node.start()
    try:
        room = node.live_room()
        result = asyncio.run(_measure(room, args.seconds))
    finally:
        node.stop()
    page = f"{args.page_ms} ms" if args.page_ms else "default"
    packet = f"{args.packet_ms} ms" if args.packet_ms else "default"
    body = "\n".join(
        [
            f"{args.seconds:g} s window; {BURST_FRAMES * 20} ms bursts of {BURST_HZ:g} Hz every "
            f"{PERIOD_FRAMES * 20} ms from an aiortc WHIP speaker ({result['bursts']} bursts); "
            f"Ogg pages: {page}; WebRTC packets: {packet}; listener's aiortc jitter buffer "
            f"prefetch: {'4 (aiortc default)' if CLIENT_PREFETCH is None else CLIENT_PREFETCH}"
            " packets; "
            "speaker and both listeners in one process (one clock), node "
            f"in its own; logs in `{workdir}`. Mouth = burst's first sample captured; ear = "
            "onset sample available to play, no playout buffer beyond aiortc's jitter "
            "buffer (WebRTC) or the page (Ogg).\n",
            markdown_table(
                ["listener", "onsets", "p50 ms", "p99 ms", "min ms", "max ms", "target ms"],
                [
                    _row("WebRTC (WHEP, same node)", result["webrtc"], 150),
                    _row("Ogg/HTTP (listen.ogg)", result["ogg"], 1000),
                ],
            ),
        ]
        + ([f"\nErrors: {result['errors'][:5]}"] if result["errors"] else [])
    )
    print(body)
    if args.write:
        append_results("Mouth-to-ear latency", body)


if __name__ == "__main__":
    main()
