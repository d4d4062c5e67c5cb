"""LL-HLS through a real nginx: what the origin pays, what nginx pays, how late it is.

    .venv/bin/python -m bench.bench_hls --counts 10,100,1000,5000 --duration 10
    .venv/bin/python -m bench.bench_hls --mux        # pure fMP4 writer vs PyAV's mp4 muxer
    .venv/bin/python -m bench.bench_hls --latency 20 # glass-to-glass, tone bursts

For each count a fresh node (its own process, a WHIP speaker playing 440 Hz) and Debian's
nginx running deploy/nginx-hls.conf (one worker) in front of it; load-generator
processes (this module, ``--loadgen``) run LL-HLS listeners through nginx that ride the
preload hints as hls.js does (tests/hls_client.py: GET the hinted part, then the blocking
playlist reload; two requests per 200 ms part). Measured over the window: the node's HLS
requests (its access log) and CPU, nginx's CPU (master and worker), the load generators'
CPU, and the share of parts the listeners received; one canary listener per process
decodes what it got and must find 440 Hz. In the same run, on a fresh node: the node's CPU
with Ogg and with WebRTC listeners (bench/loadgen.py), for the cost per listener of each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from bench.harness import (
    LoadGen,
    NodeUnderTest,
    SpeakerProcess,
    append_results,
    cpu_sample,
    fit_line,
    free_port,
    markdown_table,
    run_dir,
)
from tests.hls_client import HlsListener, decode_fmp4
from tests.nginx import Nginx, origin_requests
from tests.tonekit import dominant_frequency

PER_PROC = 500
HOW = {
    "parts": "riding the preload hints: 2 requests per 200 ms part",
    "segments": "fetching 2 s segments: 2 requests per segment",
}
PART_S = 0.2


# -- load generator (a child process) --------------------------------------------------------


async def _loadgen(
    count: int, url: str, seconds: float, window: tuple[float, float], mode: str
) -> None:
    listeners = [HlsListener(url, mode=mode) for _ in range(count)]

    async def run(index: int, listener: HlsListener) -> None:
        await asyncio.sleep(index / max(count, 1))  # arrive over one second
        await listener.run(seconds - 1.0)

    started = time.monotonic()
    await asyncio.gather(*(run(i, item) for i, item in enumerate(listeners)))
    start, end = started + window[0], started + window[1]
    per_item = 10 if mode == "segments" else 1  # a segment holds ten parts
    in_window = per_item * sum(
        1 for item in listeners for t, _ in item.received if start <= t < end
    )
    canary = listeners[0]
    hz = None
    if canary.received:
        audio = decode_fmp4(canary.init + b"".join(data for _, data in canary.received))
        hz = round(dominant_frequency(audio[24000:])) if len(audio) > 48000 else None
    print(
        json.dumps(
            {
                "parts_in_window": in_window,
                "requests": sum(item.requests for item in listeners),
                "errors": [e for item in listeners for e in item.errors][:3],
                "error_count": sum(len(item.errors) for item in listeners),
                "resyncs": sum(item.resyncs for item in listeners),
                "canary_hz": hz,
            }
        ),
        flush=True,
    )


# -- one point ---------------------------------------------------------------------------


def _cpu(pids: list[int]) -> list[Any]:
    samples = []
    for pid in pids:
        with contextlib.suppress(OSError):
            samples.append(cpu_sample(pid))
    return samples


def _percent(before: list[Any], after: list[Any]) -> float:
    return sum(a.process_percent(b) for a, b in zip(before, after, strict=False))


def _hls_requests(node: NodeUnderTest) -> int:
    return len(origin_requests(node.log_path.read_text(errors="replace")))


def hls_point(
    workdir: Path, count: int, settle: float, duration: float, mode: str = "parts"
) -> dict[str, Any]:
    directory = workdir / f"hls-{count}"
    directory.mkdir()
    node = NodeUnderTest(directory)
    node.start()
    nginx = Nginx(directory / "nginx", node.port, free_port())
    speaker = None
    procs: list[subprocess.Popen[str]] = []
    try:
        room = node.live_room()
        speaker = SpeakerProcess(directory, room)
        speaker.start()
        nginx.start()
        url = f"{nginx.base_url}/api/v1/rooms/{room.id}/hls/index.m3u8"
        total = settle + duration + 2.0
        window = (settle, settle + duration)
        for i in range(math.ceil(count / PER_PROC)):
            n = min(PER_PROC, count - i * PER_PROC)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.bench_hls",
                        "--loadgen",
                        json.dumps([n, url, total, window, mode]),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        time.sleep(settle)
        pids = [node.pid, *nginx.pids(), *(p.pid for p in procs)]
        machine_before = cpu_sample(node.pid)
        before = _cpu(pids)
        requests_before = _hls_requests(node)
        time.sleep(duration)
        after = _cpu(pids)
        machine_after = cpu_sample(node.pid)
        requests_after = _hls_requests(node)
        nginx_n = len(nginx.pids())
        results = []
        for proc in procs:
            # A starved load generator may finish late; its figures say so.
            out, _ = proc.communicate(timeout=total + 300)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return {
            "count": count,
            "origin_requests": requests_after - requests_before,
            "origin_rps": (requests_after - requests_before) / duration,
            "node_cpu": before[0].process_percent(after[0]),
            "nginx_cpu": _percent(before[1 : 1 + nginx_n], after[1 : 1 + nginx_n]),
            "loadgen_cpu": _percent(before[1 + nginx_n :], after[1 + nginx_n :]),
            "machine": machine_before.machine_percent(machine_after),
            "delivered": sum(r["parts_in_window"] for r in results) / (count * duration / PART_S),
            "requests_per_listener_s": sum(r["requests"] for r in results) / count / total,
            "errors": sum(r["error_count"] for r in results),
            "first_errors": [e for r in results for e in r["errors"]][:2],
            "resyncs": sum(r["resyncs"] for r in results),
            "canary_hz": [r["canary_hz"] for r in results],
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        nginx.stop()
        if speaker is not None:
            speaker.stop()
        node.stop()


def node_point(
    workdir: Path, kind: str, count: int, settle: float, duration: float
) -> dict[str, Any]:
    """The node's own CPU with ``count`` Ogg ("http") or WebRTC listeners."""
    directory = workdir / f"{kind}-{count}"
    directory.mkdir()
    node = NodeUnderTest(directory)
    node.start()
    speaker = None
    loadgen = None
    try:
        room = node.live_room()
        speaker = SpeakerProcess(directory, room)
        speaker.start()
        if count:
            url = room.listen_url if kind == "http" else room.whep_url
            loadgen = LoadGen(
                directory,
                kind=kind,
                count=count,
                url=url,
                name=kind,
                max_seconds=settle + duration + 180,
            )
            loadgen.expect("connected", 150)
            loadgen.send("start")
        time.sleep(settle)
        before = cpu_sample(node.pid)
        time.sleep(duration)
        after = cpu_sample(node.pid)
        result: dict[str, Any] = {}
        if loadgen is not None:
            loadgen.send("stop")
            result = loadgen.expect("result", 60)
        return {
            "kind": kind,
            "count": count,
            "node_cpu": before.process_percent(after),
            "machine": before.machine_percent(after),
            "canary": result.get("canary_hz") or result.get("canary"),
        }
    finally:
        if loadgen is not None:
            loadgen.stop()
        if speaker is not None:
            speaker.stop()
        node.stop()


# -- muxer ---------------------------------------------------------------------------------


def mux_comparison(parts: int = 500) -> list[list[Any]]:
    """Per part (10 Opus packets): this module's writer against FFmpeg's mp4 muxer."""
    from node.media.fmp4 import media_fragment
    from node.media.stream import opus_head
    from tests.tonekit import opus_tone_packets

    packets = opus_tone_packets(440, parts * 10)
    rows = []
    best = math.inf
    size = 0
    for _ in range(3):
        started = time.perf_counter()
        size = 0
        for i in range(parts):
            chunk = packets[i * 10 : i * 10 + 10]
            size += len(media_fragment(i + 1, i * 9600, [p.data for p in chunk], [960] * 10))
        best = min(best, time.perf_counter() - started)
    rows.append(["pure writer (node/media/fmp4.py)", f"{best / parts * 1e6:.1f}", size // parts])
    best = math.inf
    for _ in range(3):
        buffer = io.BytesIO()
        container = av.open(
            buffer,
            "w",
            format="mp4",
            options={"movflags": "empty_moov+default_base_moof+cmaf", "frag_duration": "200000"},
        )
        stream = container.add_stream("libopus", rate=48000)
        stream.codec_context.layout = "mono"
        stream.codec_context.extradata = opus_head()
        stream.time_base = Fraction(1, 48000)
        started = time.perf_counter()
        for packet in packets:
            out = av.Packet(packet.data)
            out.pts = out.dts = packet.pts
            out.time_base = Fraction(1, 48000)
            out.stream = stream
            container.mux(out)
        container.close()
        best = min(best, time.perf_counter() - started)
        size = len(buffer.getvalue())
    rows.append(
        ["PyAV mp4 muxer, frag_duration 200 ms", f"{best / parts * 1e6:.1f}", size // parts]
    )
    return rows


# -- latency --------------------------------------------------------------------------------


async def _latency(node: NodeUnderTest, nginx: Nginx, seconds: float) -> dict[str, Any]:
    from bench.bench_latency import BurstTrack, OnsetDetector, match
    from node.media.ice import IceSettings, install_ice_policy
    from tests.tonekit import RATE, frames_to_mono, publish

    install_ice_policy(IceSettings(host_addresses=("127.0.0.1",)), asyncio.get_running_loop())
    room = node.live_room()
    track = BurstTrack()
    speaker = await publish(room.whip_url, room.host_token, track)
    url = f"{nginx.base_url}/api/v1/rooms/{room.id}/hls/index.m3u8"
    listener = HlsListener(url)
    detector = OnsetDetector()
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = RATE
    decoder.layout = "mono"
    decoder.format = "s16"
    done = 0

    async def decode_as_it_comes() -> None:
        nonlocal done
        while True:
            await asyncio.sleep(0.01)
            while done < len(listener.received):
                arrived, data = listener.received[done]
                done += 1
                with av.open(io.BytesIO(listener.init + data), format="mp4") as container:
                    payloads = [bytes(p) for p in container.demux(audio=0) if p.size]
                offset = 0
                for payload in payloads:
                    samples = frames_to_mono(list(decoder.decode(av.Packet(payload))))
                    detector.feed(samples, arrived + offset / RATE)
                    offset += len(samples)

    decoding = asyncio.create_task(decode_as_it_comes())
    await asyncio.sleep(1.0)
    started = time.monotonic()
    await listener.run(seconds + 3.0)
    await asyncio.sleep(0.1)
    decoding.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await decoding
    with contextlib.suppress(Exception):
        await speaker.close()
    window = started + 3.0
    mouth = [m for m in track.mouth if m >= window - 1.0]
    return {
        "latencies": match(mouth, [t for t in detector.onsets if t >= window]),
        "bursts": len([m for m in mouth if m >= window]),
        "errors": listener.errors,
    }


def latency_run(workdir: Path, seconds: float) -> str:
    node = NodeUnderTest(workdir / "latency-node")
    (workdir / "latency-node").mkdir()
    node.start()
    nginx = Nginx(workdir / "latency-nginx", node.port, free_port())
    try:
        nginx.start()
        result = asyncio.run(_latency(node, nginx, seconds))
    finally:
        nginx.stop()
        node.stop()
    values = sorted(v * 1000 for v in result["latencies"])
    hold_back = 3 * PART_S * 1000
    rows = []
    if values:
        p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
        median = statistics.median(values)
        rows = [
            [
                "LL-HLS part available at the listener",
                len(values),
                f"{median:.0f}",
                f"{p99:.0f}",
                f"{values[0]:.0f}",
                f"{values[-1]:.0f}",
                "2500",
            ],
            [
                "+ a player's PART-HOLD-BACK (600 ms, hls.js low-latency mode)",
                len(values),
                f"{median + hold_back:.0f}",
                f"{p99 + hold_back:.0f}",
                f"{values[0] + hold_back:.0f}",
                f"{values[-1] + hold_back:.0f}",
                "2500",
            ],
        ]
    return "\n".join(
        [
            f"{seconds:g} s window; 60 ms bursts of 1 kHz every 500 ms from an aiortc WHIP "
            f"speaker ({result['bursts']} bursts); one LL-HLS listener (tests/hls_client.py, "
            "riding "
            "preload hints) through nginx running deploy/nginx-hls.conf; speaker and listener in "
            "one process (one clock), node and nginx in their own. Mouth = burst's first sample "
            "captured; ear = onset sample available to play (part arrival + its offset in the "
            "part).\n",
            markdown_table(
                ["listener", "onsets", "p50 ms", "p99 ms", "min ms", "max ms", "target ms"], rows
            ),
        ]
        + ([f"\nErrors: {result['errors'][:3]}"] if result["errors"] else [])
    )


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LL-HLS through nginx")
    parser.add_argument("--counts", default="10,100,1000,5000")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--ogg", type=int, default=500, help="Ogg listeners on the node")
    parser.add_argument("--webrtc", type=int, default=100, help="WebRTC listeners on the node")
    parser.add_argument("--mux", action="store_true", help="only the muxer comparison")
    parser.add_argument("--latency", type=float, default=0.0, help="only latency, N seconds")
    parser.add_argument(
        "--mode",
        choices=["parts", "segments"],
        default="parts",
        help="listeners ride LL-HLS parts (hls.js) or fetch 2 s segments (plain players)",
    )
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--no-results", dest="write", action="store_false")
    args = parser.parse_args(argv)
    if args.loadgen:
        count, url, seconds, window, mode = json.loads(args.loadgen)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(_loadgen(count, url, seconds, tuple(window), mode))
        return
    if args.mux:
        body = (
            "Per LL-HLS part (10 Opus packets of a 440 Hz tone, 32 kbit/s), best of 3 runs "
            "of 500 parts, in process.\n\n"
            + markdown_table(["muxer", "µs per part", "bytes per part"], mux_comparison())
        )
        print(body)
        if args.write:
            append_results("LL-HLS: fMP4 muxer per part", body)
        return
    workdir = run_dir("hls")
    if args.latency:
        body = latency_run(workdir, args.latency)
        print(body)
        if args.write:
            append_results("LL-HLS glass-to-glass latency through nginx", body)
        return
    counts = [int(c) for c in args.counts.split(",")]
    points = []
    for count in counts:
        point = hls_point(workdir, count, args.settle, args.duration, args.mode)
        print(json.dumps(point), flush=True)
        points.append(point)
    others = [node_point(workdir, "http", 0, args.settle, args.duration)]
    if args.ogg:
        others.append(node_point(workdir, "http", args.ogg, args.settle, args.duration))
    if args.webrtc:
        others.append(node_point(workdir, "webrtc", args.webrtc, args.settle, args.duration))
    for other in others:
        print(json.dumps(other), flush=True)
    base = others[0]["node_cpu"]
    nginx_slope, nginx_base = fit_line([(p["count"], p["nginx_cpu"]) for p in points])
    delivered = [(p["count"], p["nginx_cpu"] / max(p["delivered"], 1e-6)) for p in points]
    nginx_delivered, _ = fit_line(delivered)
    rows = [
        [
            p["count"],
            p["origin_requests"],
            f"{p['origin_rps']:.1f}",
            f"{p['node_cpu']:.1f}",
            f"{p['nginx_cpu']:.1f}",
            f"{p['loadgen_cpu']:.0f}",
            f"{p['machine']:.0f}",
            f"{100 * p['delivered']:.1f}",
            f"{p['requests_per_listener_s']:.1f}",
            f"{p['errors']}/{p['resyncs']}",
            ",".join(str(h) for h in p["canary_hz"]),
        ]
        for p in points
    ]
    per = {"http": None, "webrtc": None}
    for other in others[1:]:
        per[other["kind"]] = (other["node_cpu"] - base) / other["count"]
    compare = [
        [
            "HLS listener: nginx (one worker)",
            f"{nginx_slope:.4f}",
            f"{nginx_delivered:.4f}",
            f"{100 / nginx_slope:.0f}" if nginx_slope > 0 else "-",
        ],
    ]
    labels = {
        "http": f"Ogg listener: node ({args.ogg})",
        "webrtc": f"WebRTC: node ({args.webrtc})",
    }
    for kind, value in per.items():
        if value is not None:
            compare.append(
                [labels[kind], f"{value:.4f}", "-", f"{100 / value:.0f}" if value > 0 else "-"]
            )
    body = "\n".join(
        [
            f"Window {args.duration:g} s after {args.settle:g} s settle; a fresh node, speaker "
            f"and nginx per point; {PER_PROC} LL-HLS listeners per load-generator process "
            f"({HOW[args.mode]}); "
            f"logs in `{workdir}`.\n",
            markdown_table(
                [
                    "HLS listeners",
                    "origin HLS requests in window",
                    "origin req/s",
                    "node CPU %",
                    "nginx CPU %",
                    "loadgen CPU %",
                    "machine busy %",
                    "parts delivered %",
                    "requests / listener / s",
                    "errors/resyncs",
                    "canary Hz",
                ],
                rows,
            ),
            "",
            f"Node alone (same run): {base:.1f} % with its speaker and no listener; "
            + "; ".join(f"{o['kind']} {o['count']}: {o['node_cpu']:.1f} %" for o in others[1:])
            + ".\n",
            markdown_table(
                [
                    "listener",
                    "% of a core per listener",
                    "per delivered listener",
                    "listeners per core",
                ],
                compare,
            ),
        ]
    )
    print(body)
    if args.write:
        append_results("LL-HLS through nginx: origin load and cost per listener", body)


if __name__ == "__main__":
    main()
