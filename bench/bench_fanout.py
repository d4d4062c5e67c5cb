"""Fan-out cost: CPU and memory per WebRTC and per Ogg/HTTP listener, node against stock.

    .venv/bin/python -m bench.bench_fanout --counts 50,100,200 --duration 10

For every point a fresh server process is started (a node with a live room and a WHIP
speaker, or bench/stock_server.py), N listeners are opened by load-generator processes,
and after ``--settle`` seconds the server's CPU is measured over ``--duration`` seconds.
Node and stock points are interleaved so slow drift of the shared machine hits both.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profile
from bench.harness import (
    LoadGen,
    LoadWindow,
    NodeUnderTest,
    ProcessUnderTest,
    SpeakerProcess,
    StockServer,
    append_results,
    fit_line,
    load_and_measure,
    markdown_table,
    run_dir,
)
from node.config import MediaSettings

__all__ = ["Point", "main", "measure"]


@dataclass
class Point(LoadWindow):
    target: str  # "node", "stock" (pre-encoded) or "stock-frames" (encode per listener)
    kind: str  # "webrtc" or "http"
    listeners: int
    loadgen_procs: int = 0
    leftover_sessions: int | None = None
    log_problems: list[str] = field(default_factory=list)
    error: str | None = None
    code: str = "-"

    def delivered_listeners(self) -> float:
        """Listeners' worth of audio actually delivered: N × (received / real-time rate)."""
        if not self.listeners:
            return 0.0
        full = 0.0
        for r in self.results:
            if self.kind == "webrtc":
                full += r["frames"] / r["window_s"] / 50
            else:
                page_ms = (
                    node_variant(self.target)
                    .get("media", {})
                    .get("ogg_page_ms", MediaSettings().ogg_page_ms)
                )
                full += r["pages_per_s_mean"] * r["listeners"] * page_ms / 1000
        return full


def node_variant(target: str) -> dict[str, dict[str, Any]]:
    """node.toml settings for a target ``node:TOKEN+TOKEN`` (plain ``node``: the defaults).

    Tokens: ``asyncio`` or ``uvloop`` ([node] event_loop), ``h11`` or ``httptools``
    ([node] http_parser), ``pageMS`` ([media] ogg_page_ms). A variant states all three,
    the unnamed ones at the settings they had before they became options.
    """
    if target == "node":
        return {}
    node: dict[str, Any] = {"event_loop": "asyncio", "http_parser": "h11"}
    media: dict[str, Any] = {"ogg_page_ms": 100}
    for token in target.partition(":")[2].split("+"):
        if token in ("asyncio", "uvloop"):
            node["event_loop"] = token
        elif token in ("h11", "httptools"):
            node["http_parser"] = token
        elif token.startswith("page") and token[4:].isdigit():
            media["ogg_page_ms"] = int(token[4:])
        else:
            raise ValueError(f"unknown node variant token {token!r} in {target!r}")
    return {"node": node, "media": media}


def _start_target(
    target: str, directory: Path
) -> tuple[ProcessUnderTest, list[ProcessUnderTest], str, str]:
    """(server, helpers, WHEP URL, Ogg URL) with audio already flowing."""
    if target == "node" or target.startswith("node:"):
        node = NodeUnderTest(directory, node_variant(target))
        node.start()
        room = node.live_room()
        speaker = SpeakerProcess(directory, room)
        try:
            speaker.start()
        except Exception:
            node.stop()
            raise
        return node, [speaker], room.whep_url, room.listen_url
    stock = StockServer(directory, "frames" if target == "stock-frames" else "packets")
    stock.start()
    return stock, [], stock.whep_url, ""


def measure(
    target: str,
    kind: str,
    listeners: int,
    args: argparse.Namespace,
    workdir: Path,
    *,
    profile_seconds: int = 0,
) -> Point:
    point = Point(target, kind, listeners)
    directory = workdir / f"{target}-{kind}-{listeners}"
    directory.mkdir()
    server, helpers, whep_url, listen_url = _start_target(target, directory)
    if isinstance(server, NodeUnderTest):
        point.code = server.code
    generators: list[LoadGen] = []
    try:
        time.sleep(args.warmup)
        load_and_measure(
            point,
            server.pid,
            generators,
            directory,
            kind=kind,
            listeners=listeners,
            url=whep_url if kind == "webrtc" else listen_url,
            per_proc=args.webrtc_per_proc if kind == "webrtc" else args.http_per_proc,
            settle=args.settle,
            duration=args.duration,
            profile_seconds=profile_seconds,
            profile_path=workdir / f"profile-{target}-{kind}-{listeners}.txt",
        )
        point.loadgen_procs = len(generators)
        point.log_problems.extend(point.problems)
        if isinstance(server, NodeUnderTest | StockServer):
            time.sleep(2)
            point.leftover_sessions = int(server.stats()["peer_connections"])
    except Exception as exc:
        point.error = f"{type(exc).__name__}: {exc}"
    finally:
        for generator in generators:
            generator.stop()
        for helper in helpers:
            helper.stop()
        server.stop()
        if isinstance(server, NodeUnderTest):
            point.log_problems.extend(server.log_problems()[:20])
    return point


def _summary_rows(points: list[Point]) -> tuple[list[list[Any]], dict[tuple[str, str], float]]:
    rows: list[list[Any]] = []
    slopes: dict[tuple[str, str], float] = {}
    groups = sorted({(p.target, p.kind) for p in points if p.listeners > 0})
    for target, kind in groups:
        series = [
            p
            for p in points
            if p.target == target and (p.kind == kind or p.listeners == 0) and p.error is None
        ]
        cpu = [(float(p.listeners), p.cpu_percent) for p in series]
        rss = [(float(p.listeners), p.rss_kib) for p in series]
        if len({x for x, _ in cpu}) < 2:
            continue
        slope, intercept = fit_line(cpu)
        rss_slope, _ = fit_line(rss)
        delivered_slope, _ = fit_line([(p.delivered_listeners(), p.cpu_percent) for p in series])
        slopes[(target, kind)] = slope
        counts = ",".join(str(int(x)) for x, _ in cpu)
        rows.append(
            [
                target,
                kind,
                counts,
                f"{intercept:.1f}",
                f"{slope:.3f}",
                f"{100 / slope:.0f}" if slope > 0 else "n/a",
                f"{rss_slope:.0f}",
                f"{delivered_slope:.3f}",
                f"{100 / delivered_slope:.0f}" if delivered_slope > 0 else "n/a",
            ]
        )
    return rows, slopes


def _report(points: list[Point], args: argparse.Namespace, workdir: Path) -> str:
    detail = []
    for p in points:
        rate = p.merged("rate_percent")
        loss = p.merged("loss_percent_seq")
        ts_loss = p.merged("loss_percent_ts")
        jitter = p.merged("jitter_ms_mean")
        jitter_max = p.merged("jitter_ms_max", "max")
        gap = p.merged("max_gap_ms_max", "max")
        pages = p.merged("pages_per_s_mean")
        bps = p.merged("bytes_per_s_mean")
        canary = next((r.get("canary_hz") for r in p.results if r.get("canary_hz")), None)
        if p.kind == "webrtc":
            quality = (
                f"rate {rate:.2f} %, loss seq {loss:.3f} % / ts {ts_loss:.2f} %, "
                f"jitter {jitter:.2f}/{jitter_max:.1f} ms, max gap {gap:.0f} ms"
                if rate is not None
                and loss is not None
                and ts_loss is not None
                and jitter is not None
                else "-"
            )
        else:
            ended = sum(int(r.get("ended_early", 0)) for r in p.results)
            quality = (
                f"{pages:.2f} pages/s, {bps / 1000:.1f} kB/s, ended early {ended}"
                if pages is not None and bps is not None
                else "-"
            )
        detail.append(
            [
                p.target,
                p.kind if p.listeners else "-",
                p.listeners,
                f"{p.connected}/{p.listeners}" + (f" ({p.failures} failed)" if p.failures else ""),
                f"{p.cpu_percent:.1f}",
                f"{(p.cpu_percent / p.listeners) if p.listeners else 0:.3f}",
                f"{p.delivered_listeners():.0f}",
                f"{p.rss_kib / 1024:.1f}",
                f"{p.loadgen_cpu_percent:.0f} ({p.loadgen_procs})",
                f"{p.machine_percent:.0f}",
                quality,
                f"{canary:.0f}" if canary else "-",
                "-" if p.leftover_sessions is None else p.leftover_sessions,
                p.code,
                p.error or "",
            ]
        )
    rows, slopes = _summary_rows(points)
    codes = {p.code for p in points if p.target.startswith("node")}
    if len(codes) > 1:
        text_warning = (
            f"\n**Warning: node/media changed during this run ({', '.join(sorted(codes))});"
            " node points were measured on different code and do not form one series.**\n"
        )
    else:
        text_warning = f"\nNode media code (sha256 of node/media, node/onair): {codes}.\n"
    text = [
        f"Window {args.duration:g} s after {args.settle:g} s settle; a fresh server per point. "
        f"Logs and configs: `{workdir}`.\n",
        text_warning,
        "### Summary (least-squares over the points, 0 listeners included)\n",
        markdown_table(
            [
                "server",
                "listeners",
                "points (N)",
                "base CPU %",
                "% core / listener",
                "listeners / core",
                "RSS KiB / listener",
                "% core / delivered listener",
                "delivered listeners / core",
            ],
            rows,
        ),
        '\n"Delivered" normalises each point by the audio it really delivered (N × received'
        " packets or pages ÷ the real-time rate): when the machine starves a server it sends"
        " less, and the plain slope then flatters it.",
    ]
    node_rtc, stock_rtc = slopes.get(("node", "webrtc")), slopes.get(("stock", "webrtc"))
    if node_rtc and stock_rtc:
        text.append(
            f"\nnode / stock CPU per WebRTC listener: **{node_rtc / stock_rtc:.2f}** "
            f"(< 1 means the node is cheaper)."
        )
    text += [
        "\n### Points\n",
        markdown_table(
            [
                "server",
                "listeners",
                "N",
                "connected",
                "server CPU % core",
                "% / listener (raw)",
                "delivered listeners",
                "RSS MiB",
                "loadgen CPU % (procs)",
                "machine busy %",
                "delivery",
                "canary Hz",
                "sessions left after close",
                "node media code",
                "error",
            ],
            detail,
        ),
        "\nleftover: peer connections the server still held 2 s after the listeners left "
        "(speaker's own session counts 1 on the node).",
    ]
    problems = [(p, line) for p in points for line in p.log_problems]
    if problems:
        text.append("\n### Problems seen in logs\n")
        seen: set[str] = set()
        for p, line in problems:
            key = line[:160]
            if key not in seen:
                seen.add(key)
                text.append(f"- {p.target} {p.kind} N={p.listeners}: `{key}`")
    return "\n".join(text)


def _profile_section(points: list[Point]) -> str:
    out = []
    for p in points:
        if p.profile is None:
            continue
        raw = Path(p.profile)
        if not raw.exists():
            out.append(f"Profile of {p.target} at {p.listeners} {p.kind} listeners: {p.profile}")
            continue
        total, own, inclusive = profile.summarise(raw)
        if not total:
            out.append(f"Profile at {p.listeners} listeners: no samples")
            continue
        out.append(
            f"### py-spy: {p.target} at {p.listeners} {p.kind} listeners "
            f"({total} active samples at 100 Hz over the window; idle excluded)\n"
        )
        out.append(
            markdown_table(
                ["self time: function (file)", "% of active"],
                [[name, f"{100 * n / total:.1f}"] for name, n in own],
            )
        )
        out.append("")
        out.append(
            markdown_table(
                ["inclusive: function (file)", "% of active"],
                [[name, f"{100 * n / total:.1f}"] for name, n in inclusive],
            )
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> list[Point]:
    parser = argparse.ArgumentParser(description="fan-out CPU/memory per listener")
    parser.add_argument("--counts", default="50,100,200", help="WebRTC and HTTP listener counts")
    parser.add_argument("--http-extra", default="500,1000", help="extra counts for HTTP only")
    parser.add_argument("--frames-count", type=int, default=20, help="stock encode-per-listener")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--webrtc-per-proc", type=int, default=100)
    parser.add_argument("--http-per-proc", type=int, default=1000)
    parser.add_argument("--profile-at", type=int, default=100, help="0 disables py-spy")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument("--kinds", default="webrtc,http", help="listener kinds to measure")
    parser.add_argument(
        "--node-variants",
        default="node",
        help="comma-separated node settings to compare, e.g. node,uvloop+httptools+page200"
        " (tokens: asyncio|uvloop, h11|httptools, pageMS; 'node' is node.toml's defaults)",
    )
    parser.add_argument("--no-stock", dest="stock", action="store_false")
    parser.add_argument("--no-results", dest="write", action="store_false")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    extra = [int(c) for c in args.http_extra.split(",") if c.strip()]
    workdir = run_dir("fanout")

    variants = [v.strip() for v in args.node_variants.split(",") if v.strip()]
    nodes = ["node" if v == "node" else f"node:{v}" for v in variants]
    for target in nodes:
        node_variant(target)  # an unknown token stops the run before anything starts
    plan: list[tuple[str, str, int]] = [(target, "webrtc", 0) for target in nodes]
    if args.stock:
        plan.append(("stock", "webrtc", 0))
    kinds = {k.strip() for k in args.kinds.split(",")}
    for n in counts:
        if "webrtc" in kinds:
            plan += [(target, "webrtc", n) for target in nodes]
            if args.stock:
                plan.append(("stock", "webrtc", n))
        if "http" in kinds:
            plan += [(target, "http", n) for target in nodes]
    if "http" in kinds:
        plan += [(target, "http", n) for n in extra for target in nodes]
    if args.stock and args.frames_count:
        plan += [("stock-frames", "webrtc", 0), ("stock-frames", "webrtc", args.frames_count)]

    points: list[Point] = []
    for target, kind, n in plan:
        profiling = (
            target.startswith("node") and kind == "webrtc" and n == args.profile_at and n > 0
        )
        started = time.monotonic()
        point = measure(
            target,
            kind,
            n,
            args,
            workdir,
            profile_seconds=args.profile_seconds if profiling else 0,
        )
        points.append(point)
        summary = {
            "target": target,
            "kind": kind,
            "n": n,
            "cpu": round(point.cpu_percent, 1),
            "rss_mib": round(point.rss_kib / 1024, 1),
            "loadgen": point.loadgen_cpu_percent,
            "took_s": round(time.monotonic() - started, 1),
            "error": point.error,
            "results": point.results,
        }
        print(json.dumps(summary), flush=True)

    body = _report(points, args, workdir)
    profile_text = _profile_section(points)
    if profile_text:
        body += "\n\n" + profile_text
    print(body)
    if args.write:
        append_results("Fan-out: CPU and memory per listener", body)
    return points


if __name__ == "__main__":
    main()
