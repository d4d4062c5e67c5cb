"""Helpers for the storage tests against real node processes (no tests live here): the
node's CLI, a write load that records what the node acknowledged, reading a database."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, NodeProcess


def node_command(
    node: NodeProcess, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m node --config <the node's node.toml> ARGS`` as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "node", "--config", str(node.config_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path, timeout=10)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def tables(path: Path) -> list[str]:
    return [
        r[0]
        for r in read_rows(
            path,
            "select name from sqlite_master where type = 'table' "
            "and name not like 'sqlite_%' order by name",
        )
    ]


def all_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(read_rows(path, f'select * from "{t}"'), key=repr) for t in tables(path)}


@dataclass
class Acknowledged:
    """What the node answered 2xx to, per kind, in order."""

    signups: list[str] = field(default_factory=list)
    rooms: list[tuple[int, int, str]] = field(default_factory=list)
    """(writer, its sequence number, room id)"""
    follows: list[tuple[str, str]] = field(default_factory=list)
    """(local username, follow id as the following row holds it)"""
    errors: list[str] = field(default_factory=list)

    def counts(self) -> tuple[int, int, int]:
        return len(self.signups), len(self.rooms), len(self.follows)


class WriteLoad:
    """Threads writing to a node through its API as users do: sign-ups, rooms, and (with
    ``follow_handle``) each new account following someone on another node. Only 2xx
    answers count as acknowledged; a refused connection (the node killed) ends a thread."""

    def __init__(
        self,
        node: NodeProcess,
        *,
        room_writers: int = 2,
        signup_writers: int = 2,
        follow_handle: str | None = None,
    ) -> None:
        self.base = node.base_url
        self.done = Acknowledged()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follow = follow_handle
        token = self._signup(f"host{secrets.token_hex(3)}")
        assert token is not None, "the node refused the load's first sign-up"
        self._token = token
        self._threads = [
            threading.Thread(target=self._rooms, args=(n,), daemon=True)
            for n in range(room_writers)
        ] + [
            threading.Thread(target=self._signups, args=(n,), daemon=True)
            for n in range(signup_writers)
        ]

    def _signup(self, username: str) -> str | None:
        response = httpx.post(
            f"{self.base}/api/v1/accounts",
            json={"username": username, "password": "correct horse battery"},
            timeout=30,
        )
        if response.status_code != 201:
            with self._lock:
                self.done.errors.append(f"sign-up {response.status_code} {response.text}")
            return None
        return str(response.json()["token"])

    def _run(self, step: Callable[[int], None]) -> None:
        seq = 0
        while not self._stop.is_set():
            try:
                step(seq)
            except httpx.TransportError:
                return  # the node is gone (killed): what it acknowledged is recorded
            seq += 1

    def _rooms(self, writer: int) -> None:
        def step(seq: int) -> None:
            response = httpx.post(
                f"{self.base}/api/v1/rooms",
                headers={"Authorization": f"Bearer {self._token}"},
                json={"title": f"w{writer}-{seq}", "description": "x" * 200},
                timeout=30,
            )
            if response.status_code == 201:
                with self._lock:
                    self.done.rooms.append((writer, seq, str(response.json()["id"])))
            else:
                with self._lock:
                    self.done.errors.append(f"room {response.status_code} {response.text}")

        self._run(step)

    def _signups(self, writer: int) -> None:
        prefix = secrets.token_hex(2)

        def step(seq: int) -> None:
            username = f"u{prefix}{writer}x{seq}"
            token = self._signup(username)
            if token is None:
                return
            with self._lock:
                self.done.signups.append(username)
            if self._follow is None:
                return
            response = httpx.post(
                f"{self.base}/api/v1/follows",
                headers={"Authorization": f"Bearer {token}"},
                json={"handle": self._follow},
                timeout=30,
            )
            if response.status_code == 201:
                with self._lock:
                    self.done.follows.append((username, str(response.json()["actor"])))
            else:
                with self._lock:
                    self.done.errors.append(f"follow {response.status_code} {response.text}")

        self._run(step)

    def start(self) -> WriteLoad:
        for thread in self._threads:
            thread.start()
        return self

    def snapshot(self) -> Acknowledged:
        with self._lock:
            return Acknowledged(
                list(self.done.signups),
                list(self.done.rooms),
                list(self.done.follows),
                list(self.done.errors),
            )

    def wait_for(self, signups: int, rooms: int, follows: int = 0, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.snapshot().counts()
            if got[0] >= signups and got[1] >= rooms and got[2] >= follows:
                return
            time.sleep(0.05)
        raise AssertionError(
            f"the load did not reach {signups} sign-ups, {rooms} rooms, {follows} follows "
            f"in {timeout} s: {self.snapshot().counts()}; errors: {self.done.errors[:3]}"
        )

    def stop(self) -> Acknowledged:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.snapshot()
