"""The load generator: N real listeners in one process, driven over stdin/stdout.

    python -m bench.loadgen --kind webrtc|http|ws --count N --url URL [--ws-url URL]
        [--duration S]

Protocol (one JSON object per stdout line): after connecting it prints
``{"event": "connected", ...}``. Then either it is driven over stdin (``start`` resets the
counters and opens the measurement window, ``stop`` prints ``{"event": "result", ...}``,
``quit`` closes every listener and exits) or, with ``--duration``, it runs one window by
itself and exits. ``--max-seconds`` bounds the whole process whatever happens.

WebRTC listeners are full aiortc peers (ICE, DTLS, SRTP). To keep the generator cheap the
Opus payload is not decoded: ``RTCRtpReceiver._handle_rtp_packet`` (called by the DTLS
transport with an already decrypted and parsed ``RtpPacket``) is replaced per receiver by a
counter that checks the payload type and the Opus TOC byte (one 20 ms frame). One canary
listener keeps aiortc's decoder and checks that the audio is the 440 Hz tone.

Those listeners send no RTCP receiver reports (aiortc's receiver only reports streams
its own packet handler saw); ``--receiver-reports 5`` makes each send one every ~5 s, as
libwebrtc does for audio.

A *browser-like* listener (``--kind webrtc --ws-url URL``) also holds the room WebSocket
as the web client does, as a guest; ``--kind ws`` opens only WebSockets (watchers). The
WebSocket messages are counted (by type) and their bytes, not decoded beyond their type.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import av
import httpx
import numpy as np
import websockets.asyncio.client
from aiortc import RTCPeerConnection
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtpPacket

from node.media.ice import IceSettings, install_ice_policy
from tests.tonekit import (
    accept_answer,
    decode_ogg,
    dominant_frequency,
    frames_to_mono,
    make_offer,
    wait_connected,
)

__all__ = ["RtpCounter", "opus_frame_ms", "opus_packet_ms"]

FRAMES_PER_SECOND = 50  # 20 ms of audio each
CONNECT_CONCURRENCY = 8
CANARY_SECONDS = 3.0


def opus_frame_ms(toc: int) -> float:
    """Duration of an Opus packet's frames from its TOC byte (RFC 6716 section 3.1)."""
    config = toc >> 3
    if config < 12:
        size = (10.0, 20.0, 40.0, 60.0)[config % 4]
    elif config < 16:
        size = (10.0, 20.0)[config % 2]
    else:
        size = (2.5, 5.0, 10.0, 20.0)[config % 4]
    code = toc & 3
    frames = 1 if code == 0 else 2 if code in (1, 2) else 0  # code 3: count in next byte
    return size * frames


def opus_packet_ms(payload: bytes) -> float:
    """Duration of a whole Opus packet (RFC 6716 section 3.2), code 3 included."""
    if not payload:
        return 0.0
    if payload[0] & 3 == 3:
        if len(payload) < 2:
            return 0.0
        return opus_frame_ms(payload[0] & ~3) * (payload[1] & 0x3F)
    return opus_frame_ms(payload[0])


class RtpCounter:
    """Counts one listener's RTP packets in the window; loss by sequence, RFC 3550 jitter."""

    __slots__ = (
        "payload_type",
        "ssrc",
        "packets",
        "frames",
        "last_frames",
        "bad",
        "octets",
        "first_ext",
        "last_ext",
        "last_seq",
        "last_arrival",
        "last_ts",
        "jitter",
        "max_gap",
        "ts_span",
        "first_at",
    )

    def __init__(self, payload_type: int | None) -> None:
        self.payload_type = payload_type
        self.ssrc: int | None = None
        self.last_seq: int | None = None
        self.first_at: float | None = None
        self.reset()

    def reset(self) -> None:
        self.packets = 0
        self.frames = 0
        self.last_frames = 1
        self.bad = 0
        self.octets = 0
        self.first_ext: int | None = None
        self.last_ext = 0
        self.last_arrival: float | None = None
        self.last_ts = 0
        self.jitter = 0.0
        self.max_gap = 0.0
        self.ts_span = 0

    def add(self, packet: RtpPacket) -> None:
        now = time.monotonic()
        self.ssrc = packet.ssrc
        if self.first_at is None:
            self.first_at = now
        payload = packet.payload
        ms = opus_packet_ms(payload)
        if (
            self.payload_type is not None and packet.payload_type != self.payload_type
        ) or ms not in (20.0, 40.0, 60.0):
            self.bad += 1
        frames = int(ms // 20)
        seq = packet.sequence_number
        if self.first_ext is None:
            self.first_ext = self.last_ext = seq
        else:
            assert self.last_seq is not None
            delta = (seq - self.last_seq) & 0xFFFF
            if delta < 0x8000:
                self.last_ext += delta
            else:
                # A reordered or duplicate packet: count it, do not move the span.
                self.packets += 1
                self.frames += frames
                self.octets += len(payload)
                return
        self.last_seq = seq
        self.packets += 1
        self.frames += frames
        self.octets += len(payload)
        if self.last_arrival is not None:
            # A sender that skips stale packets keeps RTP sequence numbers contiguous but
            # jumps the timestamp: the span in 20 ms frames shows what was never sent.
            self.ts_span += (packet.timestamp - self.last_ts) & 0xFFFFFFFF
            gap = now - self.last_arrival
            if gap > self.max_gap:
                self.max_gap = gap
            transit_delta = gap - ((packet.timestamp - self.last_ts) & 0xFFFFFFFF) / 48000
            self.jitter += (abs(transit_delta) - self.jitter) / 16
        self.last_arrival = now
        self.last_ts = packet.timestamp
        self.last_frames = frames

    def expected(self) -> int:
        return 0 if self.first_ext is None else self.last_ext - self.first_ext + 1

    def expected_by_timestamp(self) -> int:
        """20 ms frames the RTP timestamps span, the last packet's included."""
        return 0 if self.first_ext is None else self.ts_span // 960 + self.last_frames


@dataclass
class WebRtcListener:
    pc: RTCPeerConnection
    counter: RtpCounter
    location: str | None
    canary_frames: list[av.AudioFrame] = field(default_factory=list)
    canary_task: asyncio.Task[None] | None = None
    report_task: asyncio.Task[None] | None = None


@dataclass
class Watcher:
    """One room WebSocket: messages and bytes received in the window, by type."""

    task: asyncio.Task[None] | None = None
    messages: int = 0
    octets: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    ended: bool = False
    error: str | None = None


@dataclass
class HttpListener:
    task: asyncio.Task[None] | None = None
    octets: int = 0
    pages: int = 0
    ended: bool = False
    error: str | None = None
    first_at: float | None = None
    canary_bytes: bytearray | None = None
    chunked: bool = False
    """The body came with chunked framing (the node process) or close-delimited (a media
    worker that took the connection over)."""


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.kind: str = args.kind
        self.count: int = args.count
        self.url: str = args.url
        self.canary: bool = args.canary
        self.webrtc: list[WebRtcListener] = []
        self.http: list[HttpListener] = []
        self.watchers: list[Watcher] = []
        self.ws_url: str | None = args.ws_url if args.kind != "ws" else args.url
        self.failures: list[str] = []
        self.window_start = 0.0
        self.rusage_start = 0.0
        self.http_client: httpx.AsyncClient | None = None
        self.burst: bool = args.burst
        self.receiver_reports: float = args.receiver_reports
        self.levels_from_audio: bool = args.levels_from_audio

    # -- connecting --------------------------------------------------------------------

    async def connect_all(self) -> dict[str, Any]:
        if self.burst and self.kind == "webrtc":
            return await self._connect_burst()
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        join_times: list[float] = []

        async def one(index: int) -> None:
            async with gate:
                t0 = time.monotonic()
                try:
                    if self.kind == "webrtc":
                        await self._connect_webrtc(index == 0 and self.canary)
                    elif self.kind == "http":
                        await self._connect_http(index == 0 and self.canary)
                    if self.ws_url is not None:
                        await self._connect_ws(self.ws_url)
                    join_times.append(time.monotonic() - t0)
                except Exception as exc:  # counted and reported, never fatal
                    self.failures.append(f"{type(exc).__name__}: {exc}")

        self.http_client = httpx.AsyncClient(timeout=60)
        await asyncio.gather(*(one(i) for i in range(self.count)))
        join_times.sort()
        return {
            "event": "connected",
            "ok": len(join_times),
            "failed": len(self.failures),
            "failures": self.failures[:5],
            "connect_s": round(time.monotonic() - started, 2),
            "join_median_s": round(join_times[len(join_times) // 2], 3) if join_times else None,
        }

    async def _connect_burst(self) -> dict[str, Any]:
        """Every listener's WHEP POST at the same instant; time to connected for each.

        Offers (the client's own ICE gathering) are made beforehand, a few at a time, so
        the burst measures the node: POST → answer → ICE → DTLS, all joins overlapping.
        """
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def prepare() -> tuple[RTCPeerConnection, str]:
            async with gate:
                return await make_offer("recvonly")

        offers = await asyncio.gather(*(prepare() for _ in range(self.count)))
        times: list[float] = []
        answers: list[float] = []
        self.http_client = httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
        )
        fired = time.monotonic()

        async def one(index: int) -> None:
            try:
                await self._connect_webrtc(
                    index == 0 and self.canary, offers[index], answers=answers
                )
                times.append(time.monotonic() - fired)
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(i) for i in range(self.count)))
        times.sort()
        answers.sort()
        return {
            "event": "connected",
            "ok": len(times),
            "failed": len(self.failures),
            "failures": self.failures[:5],
            "connect_s": round(time.monotonic() - fired, 2),
            "join_median_s": round(times[len(times) // 2], 3) if times else None,
            "join_times_s": [round(t, 3) for t in times],
            "answer_times_s": [round(t, 3) for t in answers],
        }

    async def _connect_webrtc(
        self,
        canary: bool,
        prepared: tuple[RTCPeerConnection, str] | None = None,
        *,
        answers: list[float] | None = None,
    ) -> None:
        assert self.http_client is not None
        pc, offer = prepared or await make_offer("recvonly")
        posted = time.monotonic()
        try:
            response = await self.http_client.post(
                self.url, content=offer, headers={"Content-Type": "application/sdp"}
            )
            if response.status_code != 201:
                raise RuntimeError(f"WHEP answered {response.status_code}: {response.text}")
            if answers is not None:
                answers.append(time.monotonic() - posted)
            location = response.headers.get("location")
            transceiver = await accept_answer(pc, response.text)
            receiver = transceiver.receiver
            payload_type = next(  # the negotiated Opus payload type
                (c.payloadType for c in transceiver._codecs if c.mimeType.lower() == "audio/opus"),
                None,
            )
            counter = RtpCounter(payload_type)
            listener = WebRtcListener(
                pc, counter, urljoin(self.url, location) if location else None
            )
            original = receiver._handle_rtp_packet

            if canary:

                async def count_and_decode(packet: RtpPacket, arrival_time_ms: int) -> None:
                    counter.add(packet)
                    await original(packet, arrival_time_ms=arrival_time_ms)

                receiver._handle_rtp_packet = count_and_decode  # type: ignore[method-assign]
                listener.canary_task = asyncio.create_task(_drain_canary(receiver, listener))
            else:

                async def count_only(packet: RtpPacket, arrival_time_ms: int) -> None:
                    counter.add(packet)

                receiver._handle_rtp_packet = count_only  # type: ignore[method-assign]
                if self.receiver_reports:
                    listener.report_task = asyncio.create_task(
                        _report(receiver, counter, self.receiver_reports)
                    )
            self.webrtc.append(listener)
            await wait_connected(pc, timeout=60)
        except BaseException:
            await pc.close()
            raise

    async def _connect_ws(self, url: str) -> None:
        watcher = Watcher()
        connected = asyncio.get_running_loop().create_future()
        watcher.task = asyncio.create_task(_watch(url, watcher, connected, self.levels_from_audio))
        self.watchers.append(watcher)
        await asyncio.wait_for(connected, 30)

    async def _connect_http(self, canary: bool) -> None:
        listener = HttpListener(canary_bytes=bytearray() if canary else None)
        connected = asyncio.get_running_loop().create_future()
        listener.task = asyncio.create_task(_http_listen(self.url, listener, connected))
        self.http.append(listener)
        await asyncio.wait_for(connected, 30)

    # -- the window --------------------------------------------------------------------

    def start_window(self) -> None:
        self.window_start = time.monotonic()
        self.rusage_start = _cpu_seconds()
        for listener in self.webrtc:
            listener.counter.reset()
        for http in self.http:
            http.octets = 0
            http.pages = 0
        for watcher in self.watchers:
            watcher.messages = watcher.octets = 0
            watcher.by_type.clear()

    def result(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.window_start
        cpu = _cpu_seconds() - self.rusage_start
        result: dict[str, Any] = {
            "event": "result",
            "kind": self.kind,
            "listeners": self.count,
            "window_s": round(elapsed, 3),
            "loadgen_cpu_percent": round(100 * cpu / elapsed, 1),
            "failures": len(self.failures),
        }
        if self.kind == "webrtc":
            result.update(self._webrtc_result(elapsed))
        elif self.kind == "http":
            result.update(self._http_result(elapsed))
        if self.watchers:
            result.update(self._ws_result(elapsed))
        return result

    def _ws_result(self, elapsed: float) -> dict[str, Any]:
        watchers = self.watchers
        by_type: dict[str, int] = {}
        for watcher in watchers:
            for kind, n in watcher.by_type.items():
                by_type[kind] = by_type.get(kind, 0) + n
        count = max(len(watchers), 1)
        return {
            "ws_watchers": sum(1 for w in watchers if not w.ended),
            "ws_ended_early": sum(1 for w in watchers if w.ended),
            "ws_errors": sorted({w.error for w in watchers if w.error})[:5],
            "ws_messages_per_s": round(sum(w.messages for w in watchers) / elapsed / count, 3),
            "ws_bytes_per_s": round(sum(w.octets for w in watchers) / elapsed / count, 1),
            "ws_types_per_s": {k: round(n / elapsed / count, 3) for k, n in by_type.items()},
        }

    def _webrtc_result(self, elapsed: float) -> dict[str, Any]:
        counters = [listener.counter for listener in self.webrtc]
        received = sum(c.packets for c in counters)
        frames = sum(c.frames for c in counters)
        expected_seq = sum(c.expected() for c in counters)
        expected_ts = sum(c.expected_by_timestamp() for c in counters)
        expected_time = FRAMES_PER_SECOND * elapsed * len(counters)
        silent = sum(1 for c in counters if c.packets == 0)
        jitters = sorted(c.jitter * 1000 for c in counters if c.packets > 1)
        gaps = sorted(c.max_gap * 1000 for c in counters if c.packets > 1)
        connected = sum(
            1 for listener in self.webrtc if listener.pc.connectionState == "connected"
        )
        out: dict[str, Any] = {
            "connected": connected,
            "packets": received,
            "frames": frames,
            "bad_packets": sum(c.bad for c in counters),
            "silent_listeners": silent,
            "loss_percent_seq": round(100 * (1 - received / expected_seq), 3)
            if expected_seq
            else None,
            "loss_percent_ts": round(100 * (1 - frames / expected_ts), 3) if expected_ts else None,
            "rate_percent": round(100 * frames / expected_time, 2) if expected_time else None,
            "jitter_ms_mean": round(sum(jitters) / len(jitters), 2) if jitters else None,
            "jitter_ms_max": round(jitters[-1], 2) if jitters else None,
            "max_gap_ms_median": round(gaps[len(gaps) // 2], 1) if gaps else None,
            "max_gap_ms_max": round(gaps[-1], 1) if gaps else None,
        }
        for listener in self.webrtc:
            if listener.canary_task is not None and listener.canary_frames:
                samples = frames_to_mono(listener.canary_frames)
                out["canary_hz"] = round(dominant_frequency(samples[int(0.2 * 48000) :]), 1)
                out["canary_dbfs"] = round(_dbfs(samples), 1)
        return out

    def _http_result(self, elapsed: float) -> dict[str, Any]:
        listeners = max(len(self.http), 1)
        out: dict[str, Any] = {
            "connected": sum(1 for h in self.http if not h.ended),
            "ended_early": sum(1 for h in self.http if h.ended),
            "errors": sorted({h.error for h in self.http if h.error})[:5],
            "bytes_per_s_mean": round(sum(h.octets for h in self.http) / elapsed / listeners),
            "pages_per_s_mean": round(sum(h.pages for h in self.http) / elapsed / listeners, 2),
            "pages_per_s_min": round(min((h.pages for h in self.http), default=0) / elapsed, 2),
        }
        for h in self.http:
            if h.canary_bytes:
                try:
                    body = bytes(h.canary_bytes)
                    samples = decode_ogg(_dechunk(body) if h.chunked else body)
                    out["canary_hz"] = round(dominant_frequency(samples[int(0.2 * 48000) :]), 1)
                    out["canary_dbfs"] = round(_dbfs(samples), 1)
                except Exception as exc:
                    out["canary_error"] = f"{type(exc).__name__}: {exc}"
        return out

    # -- leaving -----------------------------------------------------------------------

    async def close_all(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY * 2)
        deleted = 0

        async def leave(listener: WebRtcListener) -> None:
            nonlocal deleted
            async with gate:
                if listener.canary_task is not None:
                    listener.canary_task.cancel()
                if listener.report_task is not None:
                    listener.report_task.cancel()
                if listener.location and self.http_client is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await self.http_client.delete(listener.location)
                        deleted += response.status_code == 200
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(listener.pc.close(), 10)

        await asyncio.gather(*(leave(listener) for listener in self.webrtc))
        for http in self.http:
            if http.task is not None:
                http.task.cancel()
        await asyncio.gather(*(h.task for h in self.http if h.task), return_exceptions=True)
        for watcher in self.watchers:
            if watcher.task is not None:
                watcher.task.cancel()
        await asyncio.gather(*(w.task for w in self.watchers if w.task), return_exceptions=True)
        if self.http_client is not None:
            await self.http_client.aclose()
        return {"event": "closed", "deleted": deleted}


async def _report(receiver: Any, counter: RtpCounter, interval: float) -> None:
    """RTCP receiver reports every ``interval`` s (randomised 0.5-1.5x, RFC 3550), as a
    browser sends them (libwebrtc: 5 s for audio). The counting receiver replaced aiortc's
    packet handler, so aiortc's own receiver sends none."""
    while True:
        await asyncio.sleep(interval * (0.5 + random.random()))
        rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
        if counter.ssrc is None or rtcp_ssrc is None:
            continue
        report = RtcpReceiverInfo(
            ssrc=counter.ssrc,
            fraction_lost=0,
            packets_lost=0,
            highest_sequence=counter.last_ext & 0xFFFFFFFF,
            jitter=int(counter.jitter * 48000),
            lsr=0,
            dlsr=0,
        )
        await receiver._send_rtcp(RtcpRrPacket(ssrc=rtcp_ssrc, reports=[report]))


async def _drain_canary(receiver: Any, listener: WebRtcListener) -> None:
    wanted = int((CANARY_SECONDS + 0.2) * 48000)
    got = 0
    while True:
        frame = await receiver.track.recv()
        if got < wanted and isinstance(frame, av.AudioFrame):
            listener.canary_frames.append(frame)
            got += frame.samples


async def _watch(
    url: str, watcher: Watcher, connected: asyncio.Future[None], levels_from_audio: bool
) -> None:
    """A guest on the room WebSocket, as the web client's page is, counting what comes.
    With ``levels_from_audio`` it says it reads speaking levels from its WebRTC audio, as
    the web client does once the program names a speaker (CSRCs)."""
    try:
        async with websockets.asyncio.client.connect(url, max_size=1 << 20) as ws:
            if levels_from_audio:
                await ws.send(json.dumps({"type": "levels_source", "source": "audio"}))
            async for message in ws:
                if not connected.done():
                    connected.set_result(None)
                watcher.messages += 1
                watcher.octets += len(message)
                text = message if isinstance(message, str) else ""
                # '{"type":"levels", ...': the type without parsing the whole message.
                start = text.find('"type":')
                start = text.find('"', start + 7) + 1 if start >= 0 else -1
                kind = text[start : text.find('"', start)] if start > 0 else "?"
                watcher.by_type[kind] = watcher.by_type.get(kind, 0) + 1
        watcher.ended = True
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        watcher.ended = True
        watcher.error = f"{type(exc).__name__}: {exc}"
        if not connected.done():
            connected.set_exception(exc)


async def _http_listen(url: str, listener: HttpListener, connected: asyncio.Future[None]) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    canary_limit = 64 * 1024
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: audio/ogg\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"HTTP {status.decode()}")
        listener.chunked = b"\r\ntransfer-encoding: chunked" in head.lower()
        if not connected.done():
            connected.set_result(None)
        tail = b""
        while True:
            data = await reader.read(65536)
            if not data:
                listener.ended = True
                return
            if listener.first_at is None:
                listener.first_at = time.monotonic()
            listener.octets += len(data)
            # Pages are counted by their capture pattern; the tail catches one split
            # across two reads (chunk-size lines are hex digits and cannot contain it).
            joined = tail + data
            listener.pages += joined.count(b"OggS")
            tail = data[-3:]
            if listener.canary_bytes is not None and len(listener.canary_bytes) < canary_limit:
                listener.canary_bytes.extend(data)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        listener.ended = True
        listener.error = f"{type(exc).__name__}: {exc}"
        if not connected.done():
            connected.set_exception(exc)
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _dechunk(data: bytes) -> bytes:
    """The body of an HTTP/1.1 chunked transfer (as far as it goes)."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        if end < 0:
            break
        try:
            size = int(data[pos:end].split(b";")[0], 16)
        except ValueError:
            return data  # not chunked after all (a cut stream)
        start = end + 2
        if size == 0 or start + size > len(data):
            out += data[start : start + size]
            break
        out += data[start : start + size]
        pos = start + size + 2
    return bytes(out)


def _dbfs(samples: np.ndarray[Any, Any]) -> float:
    rms = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
    return 20 * float(np.log10(max(rms, 1e-9)))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run(args: argparse.Namespace) -> None:
    install_ice_policy(IceSettings(host_addresses=("127.0.0.1",)), asyncio.get_running_loop())
    generator = Generator(args)
    try:
        _emit(await generator.connect_all())
        if args.duration is not None:
            await asyncio.sleep(args.settle)
            generator.start_window()
            await asyncio.sleep(args.duration)
            _emit(generator.result())
            return
        commands = await _stdin_lines()
        while True:
            line = (await commands.readline()).decode().strip()
            if line == "start":
                generator.start_window()
                _emit({"event": "started"})
            elif line == "stop":
                _emit(generator.result())
            elif line in ("quit", ""):  # "" is EOF: the driver is gone
                return
    finally:
        _emit(await generator.close_all())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=("webrtc", "http", "ws"), required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--url", required=True, help="WHEP URL, Ogg listen URL or ws_url")
    parser.add_argument(
        "--ws-url", help="also hold the room WebSocket per listener (a browser-like listener)"
    )
    parser.add_argument("--duration", type=float, help="run one window alone, then exit")
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--no-canary", dest="canary", action="store_false")
    parser.add_argument(
        "--burst", action="store_true", help="WebRTC: fire every WHEP POST at once (join storm)"
    )
    parser.add_argument(
        "--receiver-reports",
        type=float,
        default=0.0,
        metavar="S",
        help="WebRTC: send RTCP receiver reports every S s as browsers do (0: none)",
    )
    parser.add_argument(
        "--levels-from-audio",
        action="store_true",
        help="room WebSockets say they read speaking levels from the WebRTC audio "
        "(levels_source), as the web client does when listening over WebRTC",
    )
    args = parser.parse_args(argv)
    if not 0 < args.count <= 5000:
        parser.error("--count must be 1..5000")
    for url in (args.url, args.ws_url):
        if url and urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error("loopback only: the URL must point at 127.0.0.1")

    async def bounded() -> None:
        try:
            await asyncio.wait_for(run(args), args.max_seconds)
        except TimeoutError:
            _emit({"event": "timeout", "after_s": args.max_seconds})

    asyncio.run(bounded())


if __name__ == "__main__":
    main()
