"""Where a WebRTC listener's memory goes: tracemalloc in a node with N listeners.

    .venv/bin/python -m bench.memory_profile --listeners 100

The node runs in this process (its app from ``create_app``, served by uvicorn on a free
port) with tracemalloc on; a live room gets a speaker process and a load-generator process
opens N WebRTC listeners. Python allocations are compared before and after the listeners
joined, grouped by file and by line; RSS growth is shown beside them (RSS also counts C
allocations tracemalloc cannot see: OpenSSL, libsrtp, libopus).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import threading
import time
import tracemalloc
from pathlib import Path

import uvicorn

from bench.harness import (
    LoadGen,
    NodeUnderTest,
    SpeakerProcess,
    append_results,
    markdown_table,
    rss_kib,
    run_dir,
    write_toml,
)
from node.config import load_config
from node.web.app import create_app

__all__ = ["main"]


def _serve(config_path: Path, port: int, started: threading.Event) -> uvicorn.Server:
    config = load_config(config_path)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        task = loop.create_task(server.serve())
        while not server.started and not task.done():
            loop.run_until_complete(asyncio.sleep(0.05))
        started.set()
        loop.run_until_complete(task)

    threading.Thread(target=run, daemon=True, name="node").start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-results", dest="write", action="store_false")
    args = parser.parse_args(argv)
    workdir = run_dir("memory")
    # NodeUnderTest is used only for its node.toml, account and room helpers.
    node = NodeUnderTest(workdir)
    write_toml(
        workdir / "node.toml",
        {
            "node": {"base_url": node.base_url, "port": node.port, "data_dir": str(workdir)},
            "accounts": {"registration": "open", "auth_rate_per_minute": 100000},
            "media": {"host_addresses": ["127.0.0.1"]},
        },
    )
    tracemalloc.start(1)
    started = threading.Event()
    server = _serve(workdir / "node.toml", node.port, started)
    started.wait(30)
    speaker: SpeakerProcess | None = None
    generator: LoadGen | None = None
    try:
        room = node.live_room()
        speaker = SpeakerProcess(workdir, room)
        speaker.start()
        time.sleep(3)
        gc.collect()
        before, rss_before = tracemalloc.take_snapshot(), rss_kib(os.getpid())
        generator = LoadGen(
            workdir,
            kind="webrtc",
            count=args.listeners,
            url=room.whep_url,
            name="memory",
            max_seconds=300,
            canary=False,
        )
        connected = generator.expect("connected", timeout=240)
        time.sleep(5)
        gc.collect()
        after, rss_after = tracemalloc.take_snapshot(), rss_kib(os.getpid())
        generator.send("quit")
        generator.expect("closed", timeout=60)
    finally:
        if generator is not None:
            generator.stop()
        if speaker is not None:
            speaker.stop()
        server.should_exit = True
        time.sleep(1)
    n = max(int(connected["ok"]), 1)
    by_file = after.compare_to(before, "filename")
    by_line = after.compare_to(before, "lineno")
    traced = sum(d.size_diff for d in by_file)
    root = str(Path(__file__).resolve().parents[1]) + "/"

    def short(name: str) -> str:
        name = name.replace(root, "")
        return name.split("site-packages/")[-1]

    rows_file = [
        [
            short(d.traceback[0].filename),
            f"{d.size_diff / n / 1024:.1f}",
            f"{d.count_diff / n:.1f}",
        ]
        for d in by_file[: args.top]
    ]
    rows_line = [
        [
            f"{short(d.traceback[0].filename)}:{d.traceback[0].lineno}",
            f"{d.size_diff / n / 1024:.1f}",
            f"{d.count_diff / n:.1f}",
        ]
        for d in by_line[: args.top]
    ]
    body = "\n".join(
        [
            f"{n} WebRTC listeners joined a node running in-process with tracemalloc; logs in "
            f"`{workdir}`. RSS grew {(rss_after - rss_before) / n:.0f} KiB per listener "
            f"(tracemalloc itself inflates it), of which Python objects traced: "
            f"{traced / n / 1024:.0f} KiB per listener; the rest is C (OpenSSL DTLS, "
            "libsrtp, sockets) and allocator slack.\n",
            markdown_table(["file", "KiB / listener", "blocks / listener"], rows_file),
            "",
            markdown_table(["line", "KiB / listener", "blocks / listener"], rows_line),
        ]
    )
    print(body)
    if args.write:
        append_results("Memory per WebRTC listener: tracemalloc", body)


if __name__ == "__main__":
    main()
