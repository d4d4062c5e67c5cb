"""Outbox delivery throughput and shared-inbox fan-in, on loopback only.

    .venv/bin/python -m bench.bench_delivery [--activities 20] [--append]

1. Deliveries per second: one sender (the node's own DeliveryWorker over its SQLite
   delivery rows, signing every POST with draft-cavage rsa-sha256) to 50 inbox endpoints
   served by a separate receiver process that verifies every signature and answers 202.
2. Fan-in: 1,000 followers spread over 20 servers, each server advertising a shared
   inbox, published with OutboxPublisher: the receiver must count 20 requests, not 1,000.

The receiver listens on 127.0.0.1 only and exits when the benchmark ends; every phase has a
deadline. ``--append`` adds the figures to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from federation.actors import RemoteActor
from federation.client import FederationClient
from federation.delivery import DeliveryWorker
from federation.keys import generate_keypair
from federation.outbox import OutboxPublisher
from federation.ports import FollowState
from federation.signatures import verify_request

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SENDER = "http://127.0.0.1:1/users/bench"
DEADLINE_S = 120.0

# --------------------------------------------------------------------------- receiver


async def _serve(ports: list[int], public_pem: str) -> None:
    hits: Counter[int] = Counter()
    bad: Counter[int] = Counter()

    async def handle(
        port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "GET" and target == "/_count":
                    payload = json.dumps({"hits": dict(hits), "bad": dict(bad)}).encode()
                    status = "200 OK"
                else:
                    try:
                        url = f"http://{headers['host']}{target}"
                        verify_request(method, url, headers, body, public_pem)
                        hits[port] += 1
                        status, payload = "202 Accepted", b""
                    except Exception:
                        bad[port] += 1
                        status, payload = "401 Unauthorized", b""
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Length: {len(payload)}\r\n"
                    "Content-Type: application/json\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    servers = []
    for port in ports:
        servers.append(
            await asyncio.start_server(
                lambda r, w, p=port: handle(p, r, w), "127.0.0.1", port, backlog=512
            )
        )
    print("READY", flush=True)
    # Bounded: the receiver never outlives a forgotten benchmark.
    await asyncio.sleep(DEADLINE_S * 3)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --------------------------------------------------------------------------- sender side


class _Keys:
    def __init__(self, pem: str) -> None:
        self._pem = pem

    async def local_actor_key(self, actor_id: str) -> tuple[str, str] | None:
        return f"{actor_id}#main-key", self._pem


class _Follows:
    def __init__(self, followers: list[str]) -> None:
        self._followers = followers

    async def followers(self, local_actor: str) -> list[str]:
        return list(self._followers)

    async def add_follower(self, *args: object) -> None: ...

    async def remove_follower(self, local_actor: str, remote_actor: str) -> bool:
        return False

    async def add_following(
        self, local_actor: str, remote_actor: str, follow_id: str, state: FollowState
    ) -> None: ...

    async def set_following_state(
        self, local_actor: str, remote_actor: str, state: FollowState
    ) -> bool:
        return False

    async def remove_following(self, local_actor: str, remote_actor: str) -> bool:
        return False

    async def find_following(self, follow_id: str) -> tuple[str, str] | None:
        return None

    async def following(self, local_actor: str) -> list[str]:
        return []

    async def remove_actor(self, remote_actor: str) -> int:
        return 0


class _Directory:
    """Followers as cached actors: ``server`` of them share one shared inbox."""

    def __init__(self, actors: dict[str, RemoteActor]) -> None:
        self._actors = actors

    async def actor(self, actor_id: str, *, refresh: bool = False) -> RemoteActor:
        return self._actors[actor_id]

    async def key_owner(self, key_id: str, *, refresh: bool = False) -> RemoteActor:
        raise KeyError(key_id)


async def _drain(worker: DeliveryWorker, store: object, total: int) -> float:
    from node.store.federation import SqliteDeliveries

    assert isinstance(store, SqliteDeliveries)
    started = time.perf_counter()
    deadline = time.monotonic() + DEADLINE_S
    while store.counts().get("delivered", 0) + store.counts().get("dead", 0) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"deliveries did not finish in {DEADLINE_S} s: {store.counts()}")
        if not await worker.run_once():
            await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def _bench(activities: int) -> dict[str, object]:
    import sqlite_utils

    from node.store.federation import SqliteDeliveries, SqliteOutbox
    from node.store.migrate import migrate

    keys = generate_keypair()
    ports = _free_ports(50)
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_delivery", "--serve", ",".join(map(str, ports))],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "BENCH_PUBLIC_PEM": keys.public_pem},
    )
    try:
        assert receiver.stdout is not None
        if receiver.stdout.readline().strip() != b"READY":
            raise SystemExit("receiver did not start")
        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite_utils.Database(Path(tmp) / "bench.db")
            db.enable_wal()
            migrate(db)
            store = SqliteDeliveries(db, lambda: None)
            async with FederationClient(allow_private_addresses=True) as client:
                worker = DeliveryWorker(store, _Keys(keys.private_pem), client, batch=100)
                inboxes = [f"http://127.0.0.1:{p}/inbox" for p in ports]
                for n in range(activities):
                    body = json.dumps(
                        {"id": f"{SENDER}/activities/{n}", "type": "Create", "actor": SENDER}
                    )
                    for inbox in inboxes:
                        await store.enqueue(body, inbox, SENDER)
                total = activities * len(inboxes)
                elapsed = await _drain(worker, store, total)
                delivered = store.counts().get("delivered", 0)

                # Fan-in: 1,000 followers on 20 servers.
                servers = ports[:20]
                actors = {}
                for i in range(1000):
                    port = servers[i % len(servers)]
                    actor_id = f"http://127.0.0.1:{port}/users/f{i}"
                    actors[actor_id] = RemoteActor(
                        id=actor_id,
                        inbox=f"{actor_id}/inbox",
                        shared_inbox=f"http://127.0.0.1:{port}/shared",
                        preferred_username=f"f{i}",
                        public_key_id=f"{actor_id}#main-key",
                        public_key_pem=keys.public_pem,
                        followers=None,
                        url=None,
                        name=None,
                    )
                before = _count(ports[0])
                publisher = OutboxPublisher(
                    _Follows(list(actors)), _Directory(actors), store, SqliteOutbox(db)
                )
                targets = await publisher.publish(
                    SENDER, {"id": f"{SENDER}/activities/fanin", "type": "Create"}
                )
                await _drain(worker, store, total + len(targets))
                after = _count(ports[0])
            db.close()
        requests = sum(after["hits"].values()) - sum(before["hits"].values())
        return {
            "deliveries": delivered,
            "seconds": elapsed,
            "per_second": delivered / elapsed,
            "rejected": sum(after["bad"].values()),
            "fanin_targets": len(targets),
            "fanin_requests": requests,
        }
    finally:
        receiver.kill()
        receiver.wait(timeout=10)


def _count(port: int) -> dict[str, dict[str, int]]:
    import httpx

    data = httpx.get(f"http://127.0.0.1:{port}/_count", timeout=10).json()
    return {k: {str(p): int(n) for p, n in v.items()} for k, v in data.items()}


def _machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc {os.cpu_count()}, {model}"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--activities", type=int, default=20, help="activities per inbox")
    parser.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    if args.serve:
        ports = [int(p) for p in args.serve.split(",")]
        asyncio.run(_serve(ports, os.environ["BENCH_PUBLIC_PEM"]))
        return 0
    result = asyncio.run(_bench(args.activities))
    lines = [
        f"## Federation delivery ({dt.date.today().isoformat()})",
        "",
        f"- commit: {_commit()}; machine: {_machine()}",
        f"- command: `.venv/bin/python -m bench.bench_delivery --activities {args.activities}`",
        f"- deliveries to 50 loopback inboxes (signed draft-cavage, verified by the "
        f"receiver): {result['deliveries']} in {result['seconds']:.2f} s = "
        f"**{result['per_second']:.0f} deliveries/s** (one DeliveryWorker loop, sequential; "
        f"rejected: {result['rejected']})",
        f"- 1,000 followers on 20 servers with shared inboxes: "
        f"{result['fanin_targets']} delivery rows, **{result['fanin_requests']} requests**",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)
    ok = result["fanin_requests"] == 20 and result["rejected"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
