"""WebRTC fan-out, side by side: aiortc's sender per listener against the batched loop,
its per-listener step in Python ("batched") and in C ("native").

    .venv/bin/python -m bench.bench_fanout_fast --counts 100,200 --duration 10
    .venv/bin/python -m bench.bench_fanout_fast --modes aiortc,batched,native,batched40,native40 \
        --counts 200,400 --aiortc-counts 100,200

Every path is served by the same small server (bench/fast_server.py: Parley's
``PeerSessions.listen`` over a ``PacketStream`` of pre-encoded 440 Hz Opus, nothing else
in the process), one fresh server process per point, points interleaved (aiortc, batched,
native, aiortc...) so drift of the shared machine hits all alike. Listeners are real aiortc
peers (ICE + DTLS + SRTP) in separate load-generator processes (bench/loadgen.py, which
counts RTP sequence numbers and computes RFC 3550 jitter; one canary per point decodes
and must hear 440 Hz). The server's CPU comes from /proc/PID/stat over the window; per
listener is the least-squares slope over N = 0 and the counts. With ``--profile-at N``
py-spy records both servers at N listeners and the report says where the time goes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import profile
from bench.harness import (
    LoadGen,
    LoadWindow,
    ProcessUnderTest,
    append_results,
    fit_line,
    free_port,
    load_and_measure,
    markdown_table,
    run_dir,
)

MODES = (
    "aiortc",
    "batched",
    "batched40",
    "batched60",
    "native",
    "native40",
    "native60",
    "silent",
)
"""aiortc's sender per listener and the batched loop (Python or native step), all at
20 ms per RTP packet, and the batched loop at 40 ms (two Opus frames, the node's
default) and 60 ms per packet; "silent" is the native server sending no audio at all:
what a connected listener costs without it (ICE consent, RTCP, the event loop)."""
DEFAULT_MODES = "aiortc,batched,native,batched40,native40"


class FastServer(ProcessUnderTest):
    def __init__(self, directory: Path, mode: str) -> None:
        self.port = free_port()
        fanout = "native" if mode == "silent" else mode.rstrip("0123456789")
        packet_ms = mode[len(fanout) :] if mode != "silent" else ""
        super().__init__(
            [
                sys.executable,
                "-m",
                "bench.fast_server",
                "--port",
                str(self.port),
                "--fanout",
                fanout,
                "--packet-ms",
                packet_ms or "20",
                *(["--silent"] if mode == "silent" else []),
            ],
            directory / f"server-{mode}.log",
        )

    @property
    def whep_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/whep"

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"server exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_tail()}")

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=10).json())


@dataclass
class Point(LoadWindow):
    mode: str
    listeners: int
    leftover: int | None = None
    native: int | None = None
    """Listeners the server had on the native step during the window."""
    error: str | None = None


def measure(
    mode: str, n: int, args: argparse.Namespace, workdir: Path, profile_seconds: int
) -> Point:
    point = Point(mode, n)
    directory = workdir / f"{mode}-{n}"
    directory.mkdir()
    server = FastServer(directory, mode)
    generators: list[LoadGen] = []
    try:
        server.start()
        time.sleep(args.warmup)
        load_and_measure(
            point,
            server.pid,
            generators,
            directory,
            kind="webrtc",
            listeners=n,
            url=server.whep_url,
            per_proc=args.per_proc,
            settle=args.settle,
            duration=args.duration,
            profile_seconds=profile_seconds,
            profile_path=workdir / f"profile-{mode}-{n}.txt",
            at_end=lambda: setattr(point, "native", server.stats().get("native_listeners")),
            extra=("--receiver-reports", str(args.receiver_reports)),
        )
        time.sleep(2)
        point.leftover = int(server.stats()["peer_connections"])
    except Exception as exc:
        point.error = f"{type(exc).__name__}: {exc}"
    finally:
        for generator in generators:
            generator.stop()
        server.stop()
    return point


def report(points: list[Point], args: argparse.Namespace, workdir: Path) -> str:
    slopes: dict[str, tuple[float, float]] = {}
    rows = []
    for mode in MODES:
        series = [
            (float(p.listeners), p.cpu_percent) for p in points if p.mode == mode and not p.error
        ]
        rss = [
            (float(p.listeners), float(p.rss_kib))
            for p in points
            if p.mode == mode and not p.error
        ]
        if len({x for x, _ in series}) < 2:
            continue
        slope, intercept = fit_line(series)
        rss_slope, _ = fit_line(rss)
        slopes[mode] = (slope, intercept)
        rows.append(
            [
                mode,
                ",".join(str(int(x)) for x, _ in series),
                f"{intercept:.1f}",
                f"{slope:.4f}",
                f"{100 / slope:.0f}" if slope > 0 else "n/a",
                f"{rss_slope:.0f}",
            ]
        )
    text = [
        f"Window {args.duration:g} s after {args.settle:g} s settle; a fresh server per point; "
        f"{args.per_proc} listeners per load-generator process; listeners' RTCP receiver "
        f"reports: {f'every ~{args.receiver_reports:g} s' if args.receiver_reports else 'none'}."
        f" Logs: `{workdir}`.\n",
        markdown_table(
            [
                "fan-out",
                "points (N)",
                "base CPU %",
                "% core / listener",
                "listeners / core",
                "RSS KiB / listener",
            ],
            rows,
        ),
    ]
    for mode in MODES[1:-1]:
        step = "native (C)" if mode.startswith("native") else "Python"
        what = f"{mode[len(mode.rstrip('0123456789')) :] or '20'} ms packets"
        if "aiortc" in slopes and mode in slopes and slopes[mode][0] > 0:
            text.append(
                f"\n{mode} ({step} step, {what}) is "
                f"**{slopes['aiortc'][0] / slopes[mode][0]:.2f}×** cheaper per WebRTC listener "
                "than aiortc's sender per listener at 20 ms packets (same run)."
            )
        python = "batched" + mode.removeprefix("native")
        if mode.startswith("native") and python in slopes and slopes[mode][0] > 0:
            text.append(
                f"\n{mode} is **{slopes[python][0] / slopes[mode][0]:.2f}×** cheaper per "
                f"WebRTC listener than {python}, the same loop with its step in Python "
                "(same run)."
            )
    detail = []
    for p in points:
        loss = p.merged("loss_percent_seq")
        rate = p.merged("rate_percent")
        jitter = p.merged("jitter_ms_mean")
        jitter_max = p.merged("jitter_ms_max", "max")
        gap = p.merged("max_gap_ms_max", "max")
        canary = next((r.get("canary_hz") for r in p.results if r.get("canary_hz")), None)
        silent = sum(int(r.get("silent_listeners", 0)) for r in p.results)
        bad = sum(int(r.get("bad_packets", 0)) for r in p.results)
        detail.append(
            [
                p.mode,
                p.listeners,
                f"{p.connected}/{p.listeners}",
                f"{p.cpu_percent:.1f}",
                f"{p.cpu_percent / p.listeners:.3f}" if p.listeners else "-",
                f"{p.rss_kib / 1024:.1f}",
                f"{p.loadgen_cpu_percent:.0f}",
                f"{p.machine_percent:.0f}",
                f"{loss:.3f}" if loss is not None else "-",
                f"{rate:.1f}" if rate is not None else "-",
                f"{jitter:.2f}/{jitter_max:.1f}" if jitter is not None else "-",
                f"{gap:.0f}" if gap is not None else "-",
                f"{silent}/{bad}",
                f"{canary:.0f}" if canary else "-",
                "-" if p.native is None else p.native,
                "-" if p.leftover is None else p.leftover,
                p.error or "",
            ]
        )
    text += [
        "",
        markdown_table(
            [
                "fan-out",
                "N",
                "connected",
                "server CPU %",
                "% / listener (raw)",
                "RSS MiB",
                "loadgen CPU %",
                "machine busy %",
                "loss % (seq)",
                "rate %",
                "jitter ms mean/max",
                "max gap ms",
                "silent/bad",
                "canary Hz",
                "on native step",
                "left after close",
                "error",
            ],
            detail,
        ),
    ]
    for p in points:
        if p.profile is None or not Path(p.profile).exists():
            if p.profile:
                text.append(f"\nprofile {p.mode} N={p.listeners}: {p.profile}")
            continue
        total, own, inclusive = profile.summarise(Path(p.profile), top=14)
        if not total:
            continue
        text.append(
            f"\n### py-spy: {p.mode} at {p.listeners} listeners ({total} active samples)\n"
        )
        text.append(
            markdown_table(
                ["self time: function (file)", "% of active"],
                [[name, f"{100 * c / total:.1f}"] for name, c in own],
            )
        )
        text.append("")
        text.append(
            markdown_table(
                ["inclusive: function (file)", "% of active"],
                [[name, f"{100 * c / total:.1f}"] for name, c in inclusive[:20]],
            )
        )
    return "\n".join(text)


def main(argv: list[str] | None = None) -> list[Point]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="100,200")
    parser.add_argument(
        "--aiortc-counts",
        help="counts for the aiortc mode (default: --counts); it saturates a core early",
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--per-proc", type=int, default=100)
    parser.add_argument("--profile-at", type=int, default=0, help="N to profile (0: none)")
    parser.add_argument("--profile-seconds", type=int, default=8)
    parser.add_argument("--modes", default=DEFAULT_MODES, help=f"of {','.join(MODES)}")
    parser.add_argument(
        "--receiver-reports",
        type=float,
        default=0.0,
        metavar="S",
        help="listeners send RTCP receiver reports every S s (5: as browsers; 0: none)",
    )
    parser.add_argument("--no-results", dest="write", action="store_false")
    args = parser.parse_args(argv)
    counts = [0] + [int(c) for c in args.counts.split(",") if c.strip()]
    stock = [0] + [int(c) for c in (args.aiortc_counts or args.counts).split(",") if c.strip()]
    modes = [m for m in args.modes.split(",") if m in MODES]
    workdir = run_dir("fanout-fast")
    points = []
    for n in sorted({*counts, *stock}):
        for mode in modes:
            if n not in (stock if mode == "aiortc" else counts):
                continue
            seconds = args.profile_seconds if n == args.profile_at and n else 0
            started = time.monotonic()
            point = measure(mode, n, args, workdir, seconds)
            points.append(point)
            print(
                json.dumps(
                    {
                        "mode": mode,
                        "n": n,
                        "cpu": round(point.cpu_percent, 1),
                        "took_s": round(time.monotonic() - started, 1),
                        "error": point.error,
                        "results": point.results,
                    }
                ),
                flush=True,
            )
    body = report(points, args, workdir)
    print(body)
    if args.write:
        append_results("WebRTC fan-out: aiortc's sender, the Python step, the native step", body)
    return points


if __name__ == "__main__":
    main()
