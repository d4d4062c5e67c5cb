"""Rooms across nodes: added latency per relay hop, failover gap, upstreams per room.

Real node processes on loopback (bench.harness.NodeUnderTest): A hosts a live room with a
speaker process (440 Hz over WHIP), B relays it from A and C from B (A -> B -> C).

- **Latency per hop**: one process opens a signed relay WebSocket (as a fourth node D, so
  it replaces nobody's connection) to A's room, B's copy and C's copy. Relays forward the
  program without re-encoding, so the same Opus payload arrives on all three; the
  difference of its arrival times (one clock) is the added latency of the hop A -> B and
  B -> C, including one extra hop from each node to the probe.
- **Upstreams**: with 1 and with N Ogg/HTTP listeners on B, B's upstream count and A's
  relay subscribers for the room (the probe is not connected then).
- **Failover gap**: fresh A and B per run; the probe reads B's copy; kill -9 of A; the gap
  is from the kill to the first program packet from B after the stream stopped (B's mixer,
  promoted, epoch 1). With a speaker on B that packet carries their voice
  (tests/test_relay_nodes.py checks the tone); here A's speaker died with A.
- **Relay tree model** from the listeners-per-core figures in bench/RESULTS.md.

    .venv/bin/python -m bench.bench_relay [--seconds 20] [--failover-runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.harness import (
    NodeUnderTest,
    SpeakerProcess,
    append_results,
    markdown_table,
    run_dir,
)
from federation.relay import AudioFrame, FrameKind
from federation.signatures import sign_request

FEDERATION = {"federation": {"allow_private_addresses": True}}
WEBRTC_PER_CORE = 606
"""bench/RESULTS.md, "Fan-out ... 18:38 UTC": node, webrtc (batched), listeners / core."""
HTTP_PER_CORE = 3440
"""bench/RESULTS.md, "Fan-out ... 18:31 UTC": node, http (Ogg), listeners / core."""
TARGET_LISTENERS = 1_500_000


def _signup(node: NodeUnderTest, name: str) -> str:
    with httpx.Client(base_url=node.base_url, timeout=30) as http:
        response = http.post("/api/v1/accounts", json={"username": name, "password": "bench pw"})
        response.raise_for_status()
        return str(response.json()["token"])


def _join(node: NodeUnderTest, token: str, url: str) -> dict[str, Any]:
    response = httpx.post(
        f"{node.base_url}/api/v1/remote-rooms",
        json={"url": url},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return dict(response.json())


def _instance_key(node: NodeUnderTest) -> tuple[str, str]:
    conn = sqlite3.connect(node.directory / "data" / "parley.db", timeout=10)
    try:
        row = conn.execute("select value from fed_instance where name = 'private_pem'").fetchone()
    finally:
        conn.close()
    return f"{node.base_url}/actor#main-key", str(row[0])


def _relay_url(room_url: str) -> str:
    return room_url.replace("http://", "ws://").replace("/rooms/", "/relay/v1/rooms/")


async def _probe(url: str, key: tuple[str, str]) -> Any:
    signed = sign_request("GET", url.replace("ws://", "http://"), {}, None, key[0], key[1])
    headers = {k: v for k, v in signed.items() if k.lower() != "host"}
    return await websockets.connect(
        url, additional_headers=headers, ping_interval=None, max_size=2**20
    )


async def _record(ws: Any, arrivals: dict[bytes, float], repeated: set[bytes], until: float):
    while time.monotonic() < until:
        try:
            message = await asyncio.wait_for(ws.recv(), max(0.01, until - time.monotonic()))
        except TimeoutError:
            return
        now = time.monotonic()
        if isinstance(message, bytes):
            frame = AudioFrame.parse(message)
            if frame.kind is FrameKind.PROGRAM:
                if frame.payload in arrivals:
                    repeated.add(frame.payload)
                else:
                    arrivals[frame.payload] = now


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_hops(
    urls: list[str], key: tuple[str, str], seconds: float
) -> list[tuple[str, int, float, float, float]]:
    sockets = [await _probe(url, key) for url in urls]
    arrivals: list[dict[bytes, float]] = [{} for _ in urls]
    repeated: set[bytes] = set()
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(_record(ws, a, repeated, until) for ws, a in zip(sockets, arrivals, strict=True))
    )
    for ws in sockets:
        await ws.close()
    rows = []
    names = ["A -> B", "B -> C"]
    for hop in range(len(urls) - 1):
        before, after = arrivals[hop], arrivals[hop + 1]
        deltas = [
            (after[p] - t) * 1000 for p, t in before.items() if p in after and p not in repeated
        ]
        rows.append((names[hop], len(deltas), _pct(deltas, 0.5), _pct(deltas, 0.99), max(deltas)))
    return rows


async def _ogg_listeners(url: str, count: int) -> list[asyncio.StreamWriter]:
    parts = httpx.URL(url)
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        request = f"GET {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.netloc.decode()}"
        writer.write(request.encode() + b"\r\n\r\n")
        await writer.drain()
        writers.append(writer)
        # Keep reading in the background so the node never sees a stalled client.
        asyncio.get_running_loop().create_task(_drain(reader))
    return writers


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


def _stats(node: NodeUnderTest) -> dict[str, Any]:
    return dict(node.stats()["relay"])


async def measure_upstreams(
    a: NodeUnderTest, b: NodeUnderTest, room: dict[str, Any], mirror_b: dict[str, Any], many: int
) -> list[tuple[int, int, int, int]]:
    rows = []
    writers: list[asyncio.StreamWriter] = []
    for count in (1, many):
        writers += await _ogg_listeners(mirror_b["listen_url"], count - len(writers))
        deadline = time.monotonic() + 30
        listeners_b = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            doc = httpx.get(f"{b.base_url}/api/v1/rooms/{mirror_b['id']}", timeout=10).json()
            listeners_a = httpx.get(f"{a.base_url}/api/v1/rooms/{room['id']}", timeout=10).json()
            listeners_b = doc["listener_count"]
            if listeners_a["listener_count"] >= count:
                break
        stats_a, stats_b = _stats(a), _stats(b)
        rows.append(
            (
                count,
                int(stats_b["upstreams"]),
                int(stats_a["rooms"][room["id"]]["subscribers"]),
                int(listeners_a["listener_count"]),
            )
        )
        del listeners_b
    for writer in writers:
        writer.close()
    return rows


async def measure_failover(directory: Path, runs: int) -> list[float]:
    gaps = []
    for run in range(runs):
        a = NodeUnderTest(run_subdir(directory, f"fa{run}"), FEDERATION)
        b = NodeUnderTest(run_subdir(directory, f"fb{run}"), FEDERATION)
        d = NodeUnderTest(run_subdir(directory, f"fd{run}"), FEDERATION)
        speaker = None
        try:
            for node in (a, b, d):
                node.start()
            room = a.live_room()
            speaker = SpeakerProcess(a.directory, room)
            speaker.start()
            room_url = f"{a.base_url}/rooms/{room.id}"
            mirror_b = _join(b, _signup(b, "bob"), room_url)
            _signup(d, "dora")
            ws = await _probe(_relay_url(mirror_b["url"]), _instance_key(d))
            last = time.monotonic()
            start = last + 3.0
            killed = None
            gap = None
            while time.monotonic() < start + 15 and gap is None:
                message = await asyncio.wait_for(ws.recv(), 10)
                now = time.monotonic()
                if not isinstance(message, bytes):
                    continue
                if killed is None and now >= start:
                    os.kill(a.pid, signal.SIGKILL)
                    killed = time.monotonic()
                elif killed is not None and now - last > 0.2:
                    gap = now - killed
                last = now
            await ws.close()
            if gap is not None:
                gaps.append(gap)
        finally:
            if speaker is not None:
                speaker.stop()
            for node in (a, b, d):
                node.stop()
    return gaps


def run_subdir(directory: Path, name: str) -> Path:
    path = directory / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def tree_model() -> tuple[str, list[tuple[Any, ...]]]:
    """Leaves serve listeners, inner nodes only relays (fan-out f, at most 32 per room).
    leaves = ceil(L / (c * cores)); hops = ceil(log_f(leaves)); nodes = leaves + inner
    levels ceil(leaves / f), ceil(leaves / f^2), ... up to the origin."""
    rows = []
    for kind, per_core in (("WebRTC", WEBRTC_PER_CORE), ("Ogg/HTTP", HTTP_PER_CORE)):
        for cores in (2, 8):
            capacity = per_core * cores
            leaves = math.ceil(TARGET_LISTENERS / capacity)
            for fanout in (8, 32):
                hops = max(1, math.ceil(math.log(leaves, fanout)))
                nodes, level = leaves, leaves
                while level > 1:
                    level = math.ceil(level / fanout)
                    nodes += level
                rows.append((kind, cores, capacity, fanout, leaves, nodes, hops))
    formula = (
        "C = listeners/core × cores (bench/RESULTS.md: WebRTC "
        f"{WEBRTC_PER_CORE}/core, Ogg/HTTP {HTTP_PER_CORE}/core); leaves = ⌈L / C⌉ with "
        f"L = {TARGET_LISTENERS:,}; hops from the origin to a leaf = ⌈log_f(leaves)⌉; "
        "nodes = leaves + ⌈leaves/f⌉ + ⌈leaves/f²⌉ + … + 1 (inner nodes only relay)."
    )
    return formula, rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--failover-runs", type=int, default=5)
    parser.add_argument("--ogg-listeners", type=int, default=200)
    args = parser.parse_args()
    directory = run_dir("relay")
    a, b, c, d = (NodeUnderTest(run_subdir(directory, n), FEDERATION) for n in "abcd")
    speaker = None
    try:
        for node in (a, b, c, d):
            node.start()
        room_obj = a.live_room()
        speaker = SpeakerProcess(a.directory, room_obj)
        speaker.start()
        room = httpx.get(f"{a.base_url}/api/v1/rooms/{room_obj.id}", timeout=10).json()
        mirror_b = _join(b, _signup(b, "bob"), room["url"])
        mirror_c = _join(c, _signup(c, "carol"), mirror_b["url"])
        _signup(d, "dora")
        await asyncio.sleep(3)
        upstreams = await measure_upstreams(a, b, room, mirror_b, args.ogg_listeners)
        await asyncio.sleep(2)
        hops = await measure_hops(
            [_relay_url(room["url"]), _relay_url(mirror_b["url"]), _relay_url(mirror_c["url"])],
            _instance_key(d),
            args.seconds,
        )
        problems = [line for n in (a, b, c) for line in n.log_problems()]
    finally:
        if speaker is not None:
            speaker.stop()
        for node in (a, b, c, d):
            node.stop()
    gaps = await measure_failover(directory, args.failover_runs)
    formula, model = tree_model()
    body = [
        "A hosts a live room (speaker process, 440 Hz WHIP); B relays it from A, C from B. "
        f"Logs: `{directory}`.",
        "",
        "### Added latency per relay hop (same program payload, one clock)",
        "",
        markdown_table(["hop", "packets", "p50 ms", "p99 ms", "max ms"], hops),
        "",
        "Target p99 ≤ 20 ms. Each figure includes the relay's receive, republish and send "
        "and the probe's own extra hop from that node; 4 nodes, a speaker and the probe share "
        "2 cores.",
        "",
        "### Upstream connections on B",
        "",
        markdown_table(
            [
                "Ogg listeners on B",
                "B upstreams",
                "A relay subscribers (room)",
                "A listener_count",
            ],
            upstreams,
        ),
        "",
        "### Failover gap: kill -9 of A → program flowing again from B (promoted)",
        "",
        markdown_table(
            ["runs", "median s", "max s", "all s"],
            [
                (
                    len(gaps),
                    statistics.median(gaps) if gaps else "-",
                    max(gaps) if gaps else "-",
                    ", ".join(f"{g:.2f}" for g in gaps),
                )
            ],
        ),
        "",
        "Target ≤ 3 s. Detection is 1.5 s of upstream silence (`UPSTREAM_SILENCE_S`), then "
        "one reconnect attempt to A and the walk of the succession list.",
        "",
        "### Relay tree model for 1.5 M listeners",
        "",
        formula,
        "",
        markdown_table(
            ["listeners", "cores/node", "C per node", "fan-out f", "leaves", "nodes", "hops"],
            model,
        ),
        "",
        f"Log lines that look like trouble during the latency run: {len(problems)}.",
    ]
    append_results("Relay: latency per hop, upstreams, failover, tree model", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    asyncio.run(main())
