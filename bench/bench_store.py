"""Storage: what ``synchronous = FULL`` costs per commit, and a backup of a node under
write load.

    .venv/bin/python -m bench.bench_store --commits 2000 --rooms 50000

1. Commits: single-row autocommit inserts (a delivery row, as the outbox writes them)
   through the node's own connection (node.store.database), FULL and NORMAL side by side
   in alternating rounds on the same file system, as commits per second and their ratio.
2. Backup: a real node process on a database filled with ``--rooms`` rooms and as many
   delivery rows, under the write load of tests/store_helpers.py (room creations and
   sign-ups through the API); ``python -m node backup`` timed as an operator runs it,
   with the size of the copy and the writes the node acknowledged while it ran; then the
   node is stopped and the backup restored, timed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import append_results, markdown_table
from node.store.database import DB_FILENAME, close_database, open_database
from tests.conftest import ROOT, NodeProcess, free_port
from tests.store_helpers import WriteLoad

_ACTIVITY = json.dumps({"type": "Create", "object": {"content": "x" * 600}})


def commits_per_second(directory: Path, synchronous: str, commits: int) -> float:
    db = open_database(directory)
    db.execute(f"PRAGMA synchronous = {synchronous}")
    started = time.perf_counter()
    for n in range(commits):
        db.execute(
            "insert into fed_deliveries (activity_json, inbox_url, signing_actor, next_try, "
            "created_at, updated_at) values (?, ?, ?, ?, ?, ?)",
            [_ACTIVITY, f"https://example.org/inbox/{n}", "a", 0.0, 0.0, 0.0],
        )
    elapsed = time.perf_counter() - started
    close_database(db)
    return commits / elapsed


def bench_commits(commits: int, rounds: int) -> str:
    results: dict[str, list[float]] = {"FULL": [], "NORMAL": []}
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        for _ in range(rounds):
            for mode in ("FULL", "NORMAL"):
                results[mode].append(commits_per_second(Path(tmp) / mode, mode, commits))
    best = {mode: max(values) for mode, values in results.items()}
    rows = [
        [mode, " / ".join(f"{v:.0f}" for v in values), f"{best[mode]:.0f}"]
        for mode, values in results.items()
    ]
    return (
        f"{commits} single-row commits per round, {rounds} rounds alternating, database "
        f"under the worktree (the machine's disk)\n\n"
        + markdown_table(["synchronous", "commits/s per round", "best"], rows)
        + f"\n\nNORMAL / FULL (best): **{best['NORMAL'] / best['FULL']:.1f}x** commits per second"
    )


def _prefill(data: Path, rooms: int) -> None:
    db = open_database(data)
    db.execute("insert into accounts (username, password_hash) values ('filler', 'x')")
    with db.atomic():
        for n in range(rooms):
            db.execute(
                "insert into rooms (id, host_id, title, description, visibility, state, "
                "created_at) values (?, 1, ?, ?, 'public', 'ended', ?)",
                [f"fill{n}", f"Room {n}", "d" * 200, time.time()],
            )
            db.execute(
                "insert into fed_deliveries (activity_json, inbox_url, signing_actor, state, "
                "next_try, created_at, updated_at) values (?, ?, 'a', 'delivered', 0, 0, 0)",
                [_ACTIVITY, f"https://example.org/inbox/{n}"],
            )
    close_database(db)


def _node_command(node: NodeProcess, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "node", "--config", str(node.config_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, done.stdout.strip()


def bench_backup(rooms: int, repeats: int) -> str:
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        node = NodeProcess(Path(tmp) / "node", free_port())
        node.directory.mkdir()
        _prefill(node.directory / "data", rooms)
        node.start()
        load = WriteLoad(node, room_writers=2, signup_writers=1).start()
        try:
            load.wait_for(signups=1, rooms=20)
            for n in range(repeats):
                before = load.snapshot().counts()
                seconds, out = _node_command(node, "backup", str(Path(tmp) / f"b{n}"))
                after = load.snapshot().counts()
                size = (Path(tmp) / f"b{n}" / DB_FILENAME).stat().st_size
                rows.append(
                    [
                        f"{seconds:.2f}",
                        f"{size / 1e6:.1f}",
                        f"{after[1] - before[1]} rooms, {after[0] - before[0]} sign-ups",
                    ]
                )
        finally:
            done = load.stop()
            node.stop()
        restore_seconds, _ = _node_command(node, "restore", str(Path(tmp) / "b0"))
    return (
        f"node database prefilled with {rooms} rooms and {rooms} delivery rows; write "
        f"load: 2 room writers + 1 sign-up writer through the API ({len(done.errors)} "
        f"errors); each backup is `python -m node backup PATH` (process start included)\n\n"
        + markdown_table(
            ["backup wall time (s)", "copy (MB)", "acknowledged by the node meanwhile"], rows
        )
        + f"\n\nrestore of the first (node stopped, `python -m node restore`): "
        f"{restore_seconds:.2f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rooms", type=int, default=50_000)
    parser.add_argument("--backups", type=int, default=3)
    args = parser.parse_args(argv)
    commits = bench_commits(args.commits, args.rounds)
    print(commits)
    backups = bench_backup(args.rooms, args.backups)
    print(backups)
    append_results(
        "Storage: commit cost of synchronous=FULL, backup under load",
        "### Commits\n\n" + commits + "\n\n### Backup under write load\n\n" + backups,
    )


if __name__ == "__main__":
    main()
