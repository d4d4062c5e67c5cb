"""Join-to-first-audio: how long a new listener waits before hearing the room.

    .venv/bin/python -m bench.bench_join --joins 20

Against a node with a live room and a WHIP speaker (440 Hz), joins run one after another:

- WebRTC (WHEP): the clock starts when the offer POST starts (the client's own offer
  creation, ICE gathering on loopback, is reported apart) and stops at the answer, at
  "connected" (ICE + DTLS), at the first RTP packet, and at the first decoded frame above
  -40 dBFS (aiortc's decoder, as a real client hears it);
- Ogg/HTTP: from sending the GET to the first body bytes (headers plus the first page of
  audio come together) and to the first complete data page.

With ``--burst N`` it measures a join storm instead: load-generator processes
(bench/loadgen.py ``--burst``) prepare N WebRTC offers, then fire every WHEP POST at once;
each listener's time from the burst to "connected" (ICE + DTLS) is recorded.

    .venv/bin/python -m bench.bench_join --burst 200 --burst-procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import av
import httpx
import numpy as np
from aiortc.rtp import RtpPacket

from bench.harness import (
    LoadGen,
    NodeUnderTest,
    SpeakerProcess,
    append_results,
    cpu_sample,
    markdown_table,
    run_dir,
)
from node.media.ice import IceSettings, install_ice_policy
from tests.tonekit import accept_answer, make_offer

__all__ = ["burst", "join_ogg", "join_webrtc", "main"]

AUDIBLE_DBFS = -40.0
TIMEOUT_S = 15.0
BURST_TARGET_S = 10.0  # issue 5: 200 listeners joining at once all connected within 10 s


def _dbfs(frame: av.AudioFrame) -> float:
    samples = frame.to_ndarray().astype(np.float64)
    if frame.format.name.startswith("s16"):
        samples /= 32768.0
    rms = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
    return 20 * float(np.log10(max(rms, 1e-9)))


async def join_webrtc(http: httpx.AsyncClient, whep_url: str) -> dict[str, float]:
    t_offer = time.perf_counter()
    pc, offer = await make_offer("recvonly")
    marks: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        marks["offer_s"] = t0 - t_offer
        response = await http.post(
            whep_url, content=offer, headers={"Content-Type": "application/sdp"}
        )
        response.raise_for_status()
        marks["answer_s"] = time.perf_counter() - t0
        transceiver = await accept_answer(pc, response.text)
        receiver = transceiver.receiver
        original = receiver._handle_rtp_packet
        first_rtp = asyncio.get_running_loop().create_future()

        async def watch(packet: RtpPacket, arrival_time_ms: int) -> None:
            if not first_rtp.done():
                first_rtp.set_result(time.perf_counter())
            await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = watch  # type: ignore[method-assign]

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected" and "connected_s" not in marks:
                marks["connected_s"] = time.perf_counter() - t0

        async def audible() -> float:
            while True:
                frame = await receiver.track.recv()
                if isinstance(frame, av.AudioFrame) and _dbfs(frame) > AUDIBLE_DBFS:
                    return time.perf_counter()

        heard = await asyncio.wait_for(audible(), TIMEOUT_S)
        marks["first_rtp_s"] = await asyncio.wait_for(first_rtp, TIMEOUT_S) - t0
        marks["first_audio_s"] = heard - t0
        location = response.headers.get("location")
        if location:
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(urljoin(whep_url, location))
    finally:
        await pc.close()
    return marks


async def join_ogg(listen_url: str) -> dict[str, float]:
    parts = urlsplit(listen_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        t0 = time.perf_counter()
        writer.write(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
        marks = {"headers_s": time.perf_counter() - t0}
        body = b""
        while b"OggS" not in body:
            body += await asyncio.wait_for(reader.read(65536), TIMEOUT_S)
        marks["first_bytes_s"] = time.perf_counter() - t0
        # The first chunk carries OpusHead, OpusTags and the first data page: 3 pages.
        while body.count(b"OggS") < 3:
            body += await asyncio.wait_for(reader.read(65536), TIMEOUT_S)
        marks["first_audio_page_s"] = time.perf_counter() - t0
    finally:
        writer.close()
    return marks


def _stats(values: list[float]) -> list[str]:
    if not values:
        return ["-"] * 4
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return [
        f"{statistics.median(ordered) * 1000:.0f}",
        f"{p90 * 1000:.0f}",
        f"{ordered[0] * 1000:.0f}",
        f"{ordered[-1] * 1000:.0f}",
    ]


async def _run(whep_url: str, listen_url: str, joins: int, pause: float) -> dict[str, Any]:
    install_ice_policy(IceSettings(host_addresses=("127.0.0.1",)), asyncio.get_running_loop())
    webrtc: list[dict[str, float]] = []
    ogg: list[dict[str, float]] = []
    errors: list[str] = []
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        for _ in range(joins):
            try:
                webrtc.append(await join_webrtc(http, whep_url))
            except Exception as exc:
                errors.append(f"webrtc {type(exc).__name__}: {exc}")
            await asyncio.sleep(pause)
        for _ in range(joins):
            try:
                ogg.append(await join_ogg(listen_url))
            except Exception as exc:
                errors.append(f"ogg {type(exc).__name__}: {exc}")
            await asyncio.sleep(pause)
    return {"webrtc": webrtc, "ogg": ogg, "errors": errors}


def burst(node: NodeUnderTest, whep_url: str, count: int, procs: int, workdir: Path) -> str:
    """N WHEP joins at once from ``procs`` load generators; a RESULTS.md body."""
    generators: list[LoadGen] = []
    replies: list[dict[str, Any]] = []
    before = cpu_sample(node.pid)
    try:
        for i in range(procs):
            share = count // procs + (1 if i < count % procs else 0)
            generators.append(
                LoadGen(
                    workdir,
                    kind="webrtc",
                    count=share,
                    url=whep_url,
                    name=f"burst-{i}",
                    max_seconds=180,
                    canary=False,
                    extra=["--burst"],
                )
            )
        replies = [g.expect("connected", timeout=150) for g in generators]
        after = cpu_sample(node.pid)
        stats = node.stats()
        for generator in generators:
            generator.send("quit")
        for generator in generators:
            with contextlib.suppress(TimeoutError, RuntimeError):
                generator.expect("closed", timeout=60)
    finally:
        for generator in generators:
            generator.stop()
    joins = sorted(t for r in replies for t in r["join_times_s"])
    answers = sorted(t for r in replies for t in r["answer_times_s"])
    failures = [f for r in replies for f in r["failures"]]
    within = sum(1 for t in joins if t <= BURST_TARGET_S)
    rows = [
        ["POST → answer", len(answers), *_stats(answers)],
        ["POST → connected (ICE + DTLS)", len(joins), *_stats(joins)],
    ]
    lines = [
        f"{count} WebRTC listeners fire their WHEP POSTs at once ({procs} load-generator "
        f"processes, offers prepared beforehand); idle node with one WHIP speaker; logs in "
        f"`{workdir}`.\n",
        markdown_table(["interval", "joins", "median ms", "p90 ms", "min ms", "max ms"], rows),
        f"\n**{len(joins)}/{count} connected, {within} within {BURST_TARGET_S:g} s** "
        f"(failed: {sum(r['failed'] for r in replies)}). Node CPU during the storm: "
        f"{before.process_percent(after):.0f} % of a core; machine busy "
        f"{before.machine_percent(after):.0f} %; node peer connections afterwards: "
        f"{stats.get('peer_connections')}.",
    ]
    if failures:
        lines.append(f"\nFailures: {failures[:5]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="join-to-first-audio")
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between joins")
    parser.add_argument("--burst", type=int, default=0, help="N WebRTC joins at once instead")
    parser.add_argument("--burst-procs", type=int, default=2, help="load generators for --burst")
    parser.add_argument("--no-results", dest="write", action="store_false")
    args = parser.parse_args(argv)
    workdir = run_dir("join")
    node = NodeUnderTest(workdir)
    node.start()
    speaker: SpeakerProcess | None = None
    try:
        room = node.live_room()
        speaker = SpeakerProcess(workdir, room)
        speaker.start()
        time.sleep(2)
        if args.burst:
            text = burst(node, room.whep_url, args.burst, args.burst_procs, workdir)
        else:
            result = asyncio.run(_run(room.whep_url, room.listen_url, args.joins, args.pause))
    finally:
        if speaker is not None:
            speaker.stop()
        node.stop()
    if args.burst:
        problems = node.log_problems()
        if problems:
            text += "\n\nNode log lines that look like trouble:\n" + "\n".join(
                f"- `{line[:160]}`" for line in problems[:10]
            )
        print(text)
        if args.write:
            append_results("Join storm: WebRTC listeners joining at once", text)
        return
    rows = []
    labels = [
        ("webrtc", "offer_s", "WebRTC: client offer creation (before POST)"),
        ("webrtc", "answer_s", "WebRTC: POST → answer (node gathers ICE)"),
        ("webrtc", "connected_s", "WebRTC: POST → connected (ICE + DTLS)"),
        ("webrtc", "first_rtp_s", "WebRTC: POST → first RTP packet"),
        ("webrtc", "first_audio_s", f"WebRTC: POST → first decoded frame > {AUDIBLE_DBFS:g} dBFS"),
        ("ogg", "headers_s", "Ogg: GET → response headers"),
        ("ogg", "first_bytes_s", "Ogg: GET → first page bytes"),
        ("ogg", "first_audio_page_s", "Ogg: GET → first audio page complete"),
    ]
    for kind, key, label in labels:
        values = [m[key] for m in result[kind] if key in m]
        rows.append([label, len(values), *_stats(values)])
    body = "\n".join(
        [
            f"{args.joins} sequential joins of each kind, {args.pause:g} s apart, idle node with "
            f"one WHIP speaker; logs in `{workdir}`.\n",
            markdown_table(["interval", "joins", "median ms", "p90 ms", "min ms", "max ms"], rows),
        ]
        + ([f"\nErrors: {result['errors'][:5]}"] if result["errors"] else [])
    )
    problems = node.log_problems()
    if problems:
        body += "\n\nNode log lines that look like trouble:\n" + "\n".join(
            f"- `{line[:160]}`" for line in problems[:10]
        )
    print(body)
    if args.write:
        append_results("Join-to-first-audio", body)


if __name__ == "__main__":
    main()
