"""Listeners over worker processes: what the whole machine serves against one process.

    .venv/bin/python -m bench.bench_workers --counts 100,200,300,400 --workers 0,2
    .venv/bin/python -m bench.bench_workers --kind http --counts 500,1000,1500,2000 \
        --per-proc 500
    .venv/bin/python -m bench.bench_workers --kind browser --counts 100,200,300 \
        --workers 0,2 --fanouts native,batched
    .venv/bin/python -m bench.bench_workers --kind ws --counts 200,500,1000 --workers 0 \
        --per-proc 500

A real node (``python -m node``) with ``[media] workers`` at each value, a WHIP speaker
(440 Hz), and N real listeners in separate load-generator processes: aiortc WebRTC
listeners (``--kind webrtc``), HTTP clients of the Ogg stream (``--kind http``, which
workers take over from the node process connection by connection), *browser-like*
listeners (``--kind browser``: WHEP audio plus the room WebSocket as a guest, as the web
client holds them, and RTCP receiver reports every ~5 s as a browser sends them), or
room WebSocket watchers alone (``--kind ws``). ``--fanouts`` runs the node with each
``[media] webrtc_fanout`` too (e.g. ``native,batched``: the C step and the Python one),
every setting interleaved in one run. Over the window the CPU of the node process and
of each of its worker processes is read from /proc; a least-squares slope over N = 0
and the counts gives each process's base and cost per listener. Points are interleaved
(workers 0, 2, 0, 2...) so drift of the shared
machine hits every setting alike.

What a setting can serve is where its first limit is reached: a process at 100 % of a
core (base + slope × its share of the listeners), or the machine's cores all busy. The
load generators need more CPU per listener than the node does, so this 2-core machine
cannot drive a node to saturation while generating the load: the capacity comes from the
measured per-process slopes, and the report says so next to the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    LoadGen,
    LoadWindow,
    NodeUnderTest,
    SpeakerProcess,
    append_results,
    child_pids,
    fit_line,
    load_and_measure,
    markdown_table,
    run_dir,
)

BROWSER_RR_S = 5.0
"""A browser-like listener's RTCP receiver reports, every ~5 s (libwebrtc, audio)."""

OGG_PAGE_MS = 200
"""node.toml's [media] ogg_page_ms, which NodeUnderTest leaves at its default."""


@dataclass(kw_only=True)
class Point(LoadWindow):
    fanout: str
    workers: int
    listeners: int
    per_worker: list[int] | None = None
    error: str | None = None

    def total_cpu(self) -> float:
        return self.cpu_percent + sum(self.other_cpu_percent.values())

    def worker_cpu(self) -> list[float]:
        return [v for k, v in sorted(self.other_cpu_percent.items()) if k.startswith("worker")]


def held_by_workers(node: NodeUnderTest, point: Point, kind: str) -> None:
    stats = node.stats()
    if "media_workers" in stats:
        # Room WebSockets handed over are not sessions: counted apart.
        key = "websockets" if kind == "ws" else "listeners"
        point.per_worker = list(stats["media_workers"].get(key) or [])


ROOM_EVENTS = {
    "before": {"room_events": "per_watcher", "ws_compression": True},
    "deflate": {"room_events": "shared", "ws_compression": True},
    "after": {"room_events": "shared", "ws_compression": False},
}
"""``--room-events``: how room events reach WebSockets. ``before``: each event to each
watcher on its own, JSON-encoded and compressed (permessage-deflate) per watcher, as
before issue 18; ``after``: encoded once per room and tick, the same strings to every
socket, uncompressed (the default); ``deflate``: the shared path with compression."""


def measure(
    fanout: str,
    workers: int,
    listeners: int,
    args: argparse.Namespace,
    workdir: Path,
    events: str | None = None,
) -> Point:
    label = fanout if events is None else f"{fanout}/{events}"
    point = Point(fanout=label, workers=workers, listeners=listeners)
    directory = workdir / f"{label.replace('/', '-')}-workers{workers}-{listeners}"
    for again in range(2, 1000):
        if not directory.exists():
            break
        directory = workdir / f"{label.replace('/', '-')}-workers{workers}-{listeners}-{again}"
    directory.mkdir()
    settings: dict[str, dict[str, object]] = {
        "media": {"workers": workers, "webrtc_fanout": fanout}
    }
    if events is not None:
        settings["node"] = dict(ROOM_EVENTS[events])
    node = NodeUnderTest(directory, settings)
    node.start()
    speaker: SpeakerProcess | None = None
    generators: list[LoadGen] = []
    try:
        room = node.live_room()
        speaker = SpeakerProcess(directory, room)
        speaker.start()
        pids = child_pids(node.pid, "node.media.worker")
        if len(pids) != workers:
            raise RuntimeError(f"expected {workers} worker processes, found {pids}")
        time.sleep(args.warmup)
        kind, url, extra = {
            "webrtc": ("webrtc", room.whep_url, ()),
            "browser": (
                "webrtc",
                room.whep_url,
                (
                    "--ws-url",
                    room.ws_url,
                    "--receiver-reports",
                    str(BROWSER_RR_S),
                    # As the web client, once the program's CSRCs name a speaker.
                    "--levels-from-audio",
                ),
            ),
            "http": ("http", room.listen_url, ()),
            "ws": ("ws", room.ws_url, ()),
        }[args.kind]
        load_and_measure(
            point,
            node.pid,
            generators,
            directory,
            kind=kind,
            extra=extra,
            listeners=listeners,
            url=url,
            per_proc=args.per_proc,
            settle=args.settle,
            duration=args.duration,
            others={f"worker{i}": pid for i, pid in enumerate(pids)},
            at_end=lambda: held_by_workers(node, point, args.kind),
        )
    except Exception as exc:
        point.error = f"{type(exc).__name__}: {exc}"
    finally:
        for generator in generators:
            generator.stop()
        if speaker is not None:
            speaker.stop()
        node.stop()
    return point


@dataclass
class Capacity:
    workers: int
    main_base: float
    main_slope: float
    """The node process: CPU % at no listener, and per listener of the node."""
    worker_base: float
    worker_slope: float
    """A worker: CPU % at no listener, and per listener it holds (N / workers)."""
    total_slope: float
    rss_slope: float

    def listeners(self, cores: int) -> float:
        """Listeners at the first limit: one process at 100 % of a core, or all cores
        busy (the node's processes only: the load is generated elsewhere)."""
        limits = []
        if self.main_slope > 0:
            limits.append((100 - self.main_base) / self.main_slope)
        if self.workers and self.worker_slope > 0:
            limits.append(self.workers * (100 - self.worker_base) / self.worker_slope)
        base = self.main_base + self.workers * self.worker_base
        if self.total_slope > 0:
            limits.append((100 * cores - base) / self.total_slope)
        return min(limits) if limits else float("inf")


def capacity(points: list[Point], fanout: str, workers: int) -> Capacity | None:
    series = [p for p in points if p.fanout == fanout and p.workers == workers and p.error is None]
    if len({p.listeners for p in series}) < 2:
        return None
    main_slope, main_base = fit_line([(p.listeners, p.cpu_percent) for p in series])
    total_slope, _ = fit_line([(p.listeners, p.total_cpu()) for p in series])
    rss_slope, _ = fit_line(
        [(p.listeners, p.rss_kib + sum(p.other_rss_kib.values())) for p in series]
    )
    worker_slope = worker_base = 0.0
    if workers:
        # Each worker's CPU against the listeners it held (the pool balances them).
        held = [
            (float(n), cpu)
            for p in series
            for n, cpu in zip(p.per_worker or [0] * workers, p.worker_cpu(), strict=False)
        ]
        worker_slope, worker_base = fit_line(held)
    return Capacity(
        workers, main_base, main_slope, worker_base, worker_slope, total_slope, rss_slope
    )


LABELS = {
    "webrtc": "WebRTC",
    "http": "HTTP (Ogg)",
    "browser": "browser-like (WHEP + room WebSocket)",
    "ws": "room WebSocket",
}


def _events(points: list[Point]) -> str:
    """WebSocket messages per second per watcher over the points, by type."""
    totals: dict[str, float] = {}
    watchers = 0.0
    for p in points:
        for result in p.results:
            n = float(result.get("ws_watchers") or 0)
            watchers += n
            for kind, rate in (result.get("ws_types_per_s") or {}).items():
                totals[kind] = totals.get(kind, 0.0) + rate * n
    if not watchers:
        return "-"
    parts = sorted(((rate / watchers, kind) for kind, rate in totals.items()), reverse=True)
    return f"{sum(r for r, _ in parts):.2f} (" + ", ".join(f"{k} {r:.2f}" for r, k in parts) + ")"


def report(points: list[Point], args: argparse.Namespace, workdir: Path) -> str:
    cores = os.cpu_count() or 1
    label = LABELS[args.kind]
    text = [
        f"Window {args.duration:g} s after {args.settle:g} s settle; a fresh node per point; "
        f"{args.per_proc} listeners per load-generator process; logs in `{workdir}`.",
        "",
    ]
    settings = sorted({(p.fanout, p.workers) for p in points})
    caps = {(f, w): capacity(points, f, w) for f, w in settings}
    rows = []
    for (fanout, workers), cap in caps.items():
        if cap is None:
            continue
        series = [p for p in points if (p.fanout, p.workers) == (fanout, workers) and p.listeners]
        rows.append(
            [
                fanout,
                workers,
                f"{cap.main_base:.1f}",
                f"{cap.main_slope:.4f}",
                f"{cap.worker_base:.1f}" if workers else "-",
                f"{cap.worker_slope:.4f}" if workers else "-",
                f"{cap.total_slope:.4f}",
                f"{100 / cap.total_slope:.0f}" if cap.total_slope > 0 else "n/a",
                f"{cap.rss_slope:.0f}",
                f"{cap.listeners(1 if not workers else cores):.0f}",
                _events(series),
            ]
        )
    text.append(
        markdown_table(
            [
                "fan-out",
                "workers",
                "node process base %",
                "node process % / listener",
                "worker base %",
                "worker % / listener it holds",
                "all processes % / listener",
                "listeners / core (all processes)",
                "RSS KiB / listener (all)",
                f"listeners at first limit ({cores} cores)",
                "WebSocket messages / s / watcher (by type)",
            ],
            rows,
        )
    )
    for fanout in sorted({f for f, _ in settings}):
        one = caps.get((fanout, 0))
        pooled = [c for (f, w), c in caps.items() if f == fanout and w and c is not None]
        if one is None:
            continue
        for cap in pooled:
            ratio = cap.listeners(cores) / one.listeners(1)
            text += [
                "",
                f"{fanout}: with {cap.workers} worker(s) the machine serves **{ratio:.2f}×** "
                f"the {label} listeners one process does (same run).",
            ]
    fanouts = sorted({f for f, _ in settings})
    if len(fanouts) > 1:
        for workers in sorted({w for _, w in settings}):
            costs = {
                f: caps[(f, workers)].total_slope  # type: ignore[union-attr]
                for f in fanouts
                if caps.get((f, workers)) is not None
            }
            if len(costs) > 1 and min(costs.values()) > 0:
                best = min(costs, key=costs.__getitem__)
                for other, cost in costs.items():
                    if other != best:
                        text += [
                            "",
                            f"workers = {workers}: a {label} listener costs all processes "
                            f"**{cost / costs[best]:.2f}×** more with `{other}` than with "
                            f"`{best}` (same run).",
                        ]
    if any(w for _, w in settings) or args.kind != "ws":
        text += [
            "",
            "The load generators cannot drive a setting to its limit on this machine, so the "
            "limits are computed from the measured per-process slopes (above) rather than "
            "observed.",
        ]
    detail = []
    for p in points:
        if args.kind in ("webrtc", "browser"):
            delivery = p.webrtc_delivery()
        elif args.kind == "http":
            delivery = p.http_delivery(OGG_PAGE_MS)
        else:
            delivery = "-"
        watchers = sum(int(r.get("ws_watchers") or 0) for r in p.results)
        detail.append(
            [
                p.fanout,
                p.workers,
                p.listeners,
                f"{p.connected}/{p.listeners}",
                f"{p.cpu_percent:.1f}",
                " / ".join(f"{c:.1f}" for c in p.worker_cpu()) or "-",
                f"{p.total_cpu():.1f}",
                " / ".join(str(n) for n in p.per_worker) if p.per_worker else "-",
                f"{(p.rss_kib + sum(p.other_rss_kib.values())) / 1024:.1f}",
                f"{p.loadgen_cpu_percent:.0f}",
                f"{p.machine_percent:.0f}",
                delivery,
                f"{watchers} watching, {_events([p])}" if watchers else "-",
                p.error or "",
            ]
        )
    text += [
        "",
        markdown_table(
            [
                "fan-out",
                "workers",
                "N",
                "connected",
                "node process CPU %",
                "worker CPU %",
                "all CPU %",
                "listeners per worker",
                "RSS MiB (all)",
                "loadgen CPU %",
                "machine busy %",
                "delivery",
                "WebSocket",
                "error",
            ],
            detail,
        ),
    ]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> list[Point]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=tuple(LABELS), default="webrtc")
    parser.add_argument("--counts", default="100,200,300,400")
    parser.add_argument("--workers", default="0,2", help="settings of [media] workers")
    parser.add_argument(
        "--fanouts", default="native", help="settings of [media] webrtc_fanout to compare"
    )
    parser.add_argument(
        "--room-events",
        default="",
        help=f"how room events reach WebSockets, variants to compare: {', '.join(ROOM_EVENTS)}",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds over every setting and count (a busy machine: more points per fit)",
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--per-proc", type=int, default=100)
    parser.add_argument("--no-results", dest="write", action="store_false")
    args = parser.parse_args(argv)
    counts = [0] + [int(c) for c in args.counts.split(",") if c.strip()]
    settings = [int(w) for w in args.workers.split(",") if w.strip()]
    fanouts = [f for f in args.fanouts.split(",") if f.strip()]
    variants: list[str | None] = [v for v in args.room_events.split(",") if v.strip()] or [None]
    for variant in variants:
        if variant is not None and variant not in ROOM_EVENTS:
            parser.error(f"--room-events: {variant} is none of {', '.join(ROOM_EVENTS)}")
    workdir = run_dir("workers")
    points = []
    for n in [c for _ in range(args.repeat) for c in counts]:
        for fanout, variant, workers in (
            (f, v, w) for f in fanouts for v in variants for w in settings
        ):
            started = time.monotonic()
            point = measure(fanout, workers, n, args, workdir, variant)
            points.append(point)
            print(
                json.dumps(
                    {
                        "fanout": point.fanout,
                        "workers": workers,
                        "n": n,
                        "node_cpu": round(point.cpu_percent, 1),
                        "worker_cpu": [round(c, 1) for c in point.worker_cpu()],
                        "per_worker": point.per_worker,
                        "took_s": round(time.monotonic() - started, 1),
                        "error": point.error,
                    }
                ),
                flush=True,
            )
    body = report(points, args, workdir)
    print(body)
    if args.write:
        append_results(f"{LABELS[args.kind]} listeners over worker processes", body)
    return points


if __name__ == "__main__":
    main()
