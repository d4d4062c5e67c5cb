"""Failover gap: how long listeners on relaying nodes hear nothing of a room whose acting
origin dies (kill -9) or freezes (SIGSTOP: what a cut network link looks like to its
peers: sockets open, nothing arrives).

Three real node processes on loopback, A -> B -> C: alice speaks on A (440 Hz, WHIP),
bob, a user of B, speaks in the room from B (660 Hz, his audio goes up the relay to A).
A WebRTC listener on B and one on C record what they receive, every frame stamped with
its arrival time. Then A is killed (or stopped); B takes the room over and mixes bob
itself. The *gap* on a listener is the longest stretch, around the fault, without bob's
660 Hz in 100 ms blocks of received audio, or without any packet at all: what a
listener hears as silence. Fresh nodes for every run.

    .venv/bin/python -m bench.bench_failover [--runs 3] [--faults kill,stop] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection

from bench.harness import append_results, markdown_table
from node.media.ice import install_ice_policy
from tests.conftest import LOOPBACK, Api, NodeProcess, free_port
from tests.test_relay_nodes import remote_speaker_setup
from tests.test_signaling import Peer, whep
from tests.tonekit import frames_to_mono, frequency_power

BLOCK_FRAMES = 5  # 100 ms of 20 ms frames
WATCH_S = 25.0


class Recorder:
    """Every frame a listener receives, with its arrival time."""

    def __init__(self, peer: Peer) -> None:
        self.frames: list[tuple[float, av.AudioFrame]] = []
        track = peer.pc.getTransceivers()[0].receiver.track
        self._task = asyncio.create_task(self._run(track))

    async def _run(self, track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.frames.append((time.monotonic(), frame))

    def stop(self) -> None:
        self._task.cancel()

    def gap(self, fault_at: float, hz: float = 660) -> float:
        """How long the listener went without hearing ``hz`` around the fault: the longest
        stretch between two 100 ms blocks with ``hz`` in them (counted from the fault if
        none came just before it), or without any packet at all, whichever is longer."""
        frames = [(t, f) for t, f in self.frames if t >= fault_at - 1.0]
        present: list[float] = []
        for i in range(0, len(frames) - BLOCK_FRAMES + 1, BLOCK_FRAMES):
            block = frames[i : i + BLOCK_FRAMES]
            samples = frames_to_mono([f for _, f in block])
            if frequency_power(samples, 48000, hz) > 0.2:
                present.append(block[-1][0])
        if not any(t > fault_at + 0.2 for t in present):
            return float("inf")
        times = (
            sorted({*present, fault_at})
            if not any(fault_at - 0.5 <= t <= fault_at for t in present)
            else sorted(present)
        )
        heard = max(b - a for a, b in zip(times, times[1:], strict=False))
        arrivals = [t for t, _ in frames]
        silent = max((b - a for a, b in zip(arrivals, arrivals[1:], strict=False)), default=0.0)
        return max(heard, silent)


class Factory:
    """node_factory / api_factory without pytest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[NodeProcess] = []
        self.apis: list[Api] = []

    def node(self, **overrides: Any) -> NodeProcess:
        directory = self.root / f"node{len(self.nodes)}"
        directory.mkdir()
        node = NodeProcess(directory, free_port(), overrides)
        self.nodes.append(node)
        node.start()
        return node

    def api(self, node: NodeProcess) -> Api:
        api = Api(node.base_url)
        self.apis.append(api)
        return api

    def close(self) -> None:
        for api in self.apis:
            api.close()
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                os.kill(node.process.pid, signal.SIGCONT)
            node.stop()


async def one_run(fault: str, root: Path) -> dict[str, float]:
    factory = Factory(root)
    clients: list[RTCPeerConnection] = []
    recorders: list[Recorder] = []
    try:
        s = await remote_speaker_setup(factory.node, factory.api, clients)
        on_b = await whep(s["mirror_b"]["whep_url"], clients)
        on_c = await whep(s["mirror_c"]["whep_url"], clients)
        recorders = [Recorder(on_b), Recorder(on_c)]
        await asyncio.sleep(4.0)  # both hear the mix before the fault
        a: NodeProcess = s["a"]
        assert a.process is not None
        fault_at = time.monotonic()
        if fault == "kill":
            a.process.send_signal(signal.SIGKILL)
        else:
            a.process.send_signal(signal.SIGSTOP)
        await _until(lambda: all(r.gap(fault_at) < float("inf") for r in recorders), WATCH_S)
        await asyncio.sleep(2.0)
        gaps = {"B": recorders[0].gap(fault_at), "C": recorders[1].gap(fault_at)}
        await s["bob_socket"].close()
        return gaps
    finally:
        for recorder in recorders:
            recorder.stop()
        for pc in clients:
            await pc.close()
        factory.close()


async def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        await asyncio.sleep(0.25)


def _fmt(values: list[float]) -> str:
    return " / ".join("never" if v == float("inf") else f"{v:.2f}" for v in values)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--faults", default="kill,stop")
    parser.add_argument("--label", default="", help="what code was measured (for RESULTS.md)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' directories")
    args = parser.parse_args()
    install_ice_policy(LOOPBACK, asyncio.get_running_loop())
    rows = []
    for fault in args.faults.split(","):
        gaps: dict[str, list[float]] = {"B": [], "C": []}
        for run in range(args.runs):
            if args.keep:
                result = await one_run(fault, Path(tempfile.mkdtemp(prefix="parley-failover-")))
            else:
                with tempfile.TemporaryDirectory(prefix="parley-failover-") as tmp:
                    result = await one_run(fault, Path(tmp))
            print(f"{fault} run {run + 1}: gap on B {result['B']:.2f} s, C {result['C']:.2f} s")
            for name, value in result.items():
                gaps[name].append(value)
        for name, values in gaps.items():
            finite = [v for v in values if v != float("inf")]
            median = statistics.median(finite) if finite else float("inf")
            label = "kill -9 of A" if fault == "kill" else "SIGSTOP of A"
            rows.append([label, name, f"{median:.2f}", f"{max(values):.2f}", _fmt(values)])
    table = markdown_table(["fault", "listener on", "median gap s", "max s", "runs"], rows)
    print(table)
    if not args.no_record:
        body = (
            f"{args.label}\n\nA -> B -> C, alice speaking on A, bob (a user of B) speaking "
            "from B; gap = longest time without bob's tone in 100 ms blocks received by a "
            f"WebRTC listener, {args.runs} fresh runs per fault.\n\n{table}\n"
        )
        append_results("Failover gap: kill -9 and SIGSTOP of the acting origin", body)


if __name__ == "__main__":
    asyncio.run(main())
