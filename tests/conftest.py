"""Shared fixtures: real node processes on loopback ports, and API helpers."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from hypothesis import settings

from node.media.ice import IceSettings, install_ice_policy
from node.media.peers import PeerSessions
from tests.fedify_peer import FedifyPeer, check_installed
from tests.hostile import HostileServer

ROOT = Path(__file__).resolve().parents[1]

# Property tests: a short run in `make test`; HYPOTHESIS_PROFILE=long for a long one
# (docs/SECURITY.md). No deadline: the machine is shared and timing is not the property.
settings.register_profile("ci", max_examples=150, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=20_000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
ARTIFACTS = ROOT / "tests" / "artifacts"


RESERVED_PORTS = frozenset({38411, 38412, 38413})
"""Part of the identities in tests/fixtures/release_0_1: never handed out to other tests."""


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class NodeProcess:
    """A node started as users start it: `python -m node --config node.toml`."""

    directory: Path
    port: int
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "node.toml"

    def sections(self) -> dict[str, dict[str, Any]]:
        sections: dict[str, dict[str, Any]] = {
            "node": {"base_url": self.base_url, "port": self.port, "data_dir": "data"},
            "accounts": {"registration": "open", "auth_rate_per_minute": 1000},
            "media": {"host_addresses": ["127.0.0.1"]},
            "federation": {"allow_private_addresses": True},
        }
        for name, values in self.overrides.items():
            sections.setdefault(name, {}).update(values)
        return sections

    def start(self, timeout: float = 20.0) -> None:
        write_config(self.config_path, self.sections())
        if self._log is not None:
            self._log.close()
        self._log = open(self.directory / "node.log", "ab")  # noqa: SIM115 - lives with the process
        log = self._log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "node", "--config", str(self.config_path)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited at start-up:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/api/v1/config", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node did not start in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        path = self.directory / "node.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


LOOPBACK = IceSettings(host_addresses=("127.0.0.1",))
"""ICE on 127.0.0.1 only: aioice leaves loopback out of host candidates by default."""


@pytest.fixture
async def loopback_ice() -> AsyncIterator[None]:
    """aioice (process-wide) offers 127.0.0.1 while the test runs, its default after."""
    install_ice_policy(LOOPBACK, asyncio.get_running_loop())
    yield
    install_ice_policy(IceSettings(), asyncio.get_running_loop())


@pytest.fixture
async def sessions(loopback_ice: None) -> AsyncIterator[PeerSessions]:
    """The node's WebRTC sessions, in this process, on loopback."""
    peers = PeerSessions(LOOPBACK)
    yield peers
    await peers.close_all()


@pytest.fixture
async def clients() -> AsyncIterator[list[RTCPeerConnection]]:
    """aiortc peer connections a test opens; closed when it ends."""
    pcs: list[RTCPeerConnection] = []
    yield pcs
    for pc in pcs:
        await pc.close()


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def start(**overrides: dict[str, Any]) -> NodeProcess:
        directory = tmp_path / f"node{len(started)}"
        directory.mkdir()
        node = NodeProcess(directory, free_port(), overrides)
        started.append(node)
        node.start()
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def node(node_factory: Callable[..., NodeProcess]) -> NodeProcess:
    return node_factory()


class Api:
    """A thin client for one node's JSON API, as a script or app would use it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=15)

    def close(self) -> None:
        self.http.close()

    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def signup(self, username: str | None = None, password: str = "correct horse") -> str:
        username = username or f"u{secrets.token_hex(4)}"
        response = self.http.post(
            "/api/v1/accounts", json={"username": username, "password": password}
        )
        assert response.status_code == 201, response.text
        # Scripts authenticate with the token; keeping the cookie would hide 401s.
        self.http.cookies.clear()
        return str(response.json()["token"])

    def create_room(self, token: str, title: str = "Test room", **extra: Any) -> dict[str, Any]:
        response = self.request("POST", "/api/v1/rooms", token, json={"title": title, **extra})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def live_room(self, token: str, title: str = "Live room") -> dict[str, Any]:
        room = self.create_room(token, title)
        response = self.request("POST", f"/api/v1/rooms/{room['id']}/start", token)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def api_factory() -> Iterator[Callable[[NodeProcess], Api]]:
    clients: list[Api] = []

    def make(node: NodeProcess) -> Api:
        client = Api(node.base_url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def api(node: NodeProcess, api_factory: Callable[[NodeProcess], Api]) -> Api:
    return api_factory(node)


@pytest.fixture
def fedify_peers(tmp_path: Path) -> Iterator[Callable[..., FedifyPeer]]:
    """Start Fedify peers: `fedify_peers(authorized_fetch=True, first_knock=...)`; they
    stop after the test."""
    check_installed()
    started: list[FedifyPeer] = []

    def start(**options: Any) -> FedifyPeer:
        options.setdefault("log_path", tmp_path / f"fedify-peer{len(started)}.log")
        peer = FedifyPeer(**options)
        started.append(peer)
        return peer.start()

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture
def hostile_servers() -> Iterator[Callable[[], HostileServer]]:
    """Start attacker servers on loopback (tests/hostile.py); stopped after the test."""
    started: list[HostileServer] = []

    def start() -> HostileServer:
        server = HostileServer().start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
