"""A full disk: a real node whose data dir is on a small tmpfs (mounted here; the tests run
as root) refuses what it cannot save with a 507 JSON error, tells the admin, keeps a live
room on air (its audio decoded at a listener), and takes writes again once there is room.
The data dir's file writer (node.store.files) leaves no partial file behind."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiortc import RTCPeerConnection

from node.errors import InsufficientStorage
from node.store.files import TEMP_PREFIX, DataFiles
from node.store.health import StorageHealth
from tests.conftest import ROOT, NodeProcess, free_port, write_config
from tests.tonekit import (
    ToneTrack,
    accept_answer,
    decode_ogg,
    dominant_frequency,
    make_offer,
    wait_connected,
)

PASSWORD = "correct horse battery"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs, unmounted after the test whatever happens."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"this test mounts a small tmpfs and must run as root with mount allowed: "
            f"{mounted.stderr.strip()}"
        )
    try:
        yield mount_point
    finally:
        done = subprocess.run(["umount", str(mount_point)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(directory: Path) -> Path:
    """Write a file until the file system refuses another byte."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            chunk = b"\0" * size
            while True:
                try:
                    handle.write(chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


def test_data_files_leave_nothing_half_written_on_a_full_disk(small_disk: Path) -> None:
    health = StorageHealth(small_disk)
    files = DataFiles(small_disk, health)
    files.write("avatars", "before.png", b"p" * 1000)
    filler = fill(small_disk)
    with pytest.raises(InsufficientStorage) as refused:
        files.write("avatars", "alice.png", b"a" * 200_000)
    assert refused.value.status == 507 and refused.value.feature == "avatars"
    assert sorted(p.name for p in (small_disk / "avatars").iterdir()) == ["before.png"]
    recording = files.growing("recordings", "room.ogg")
    with pytest.raises(InsufficientStorage):
        for _ in range(1000):
            recording.write(b"OggS" * 1000)
    assert not list((small_disk / "recordings").iterdir())
    problems = {p.feature: p for p in health.problems()}
    assert set(problems) == {"avatars", "recordings"}
    assert health.to_json()["ok"] is False
    filler.unlink()
    files.write("avatars", "alice.png", b"a" * 200_000)
    assert {p.feature for p in health.problems()} == {"recordings"}
    with files.growing("recordings", "room.ogg") as again:
        again.write(b"OggS" * 1000)
    assert health.problems() == []
    assert (small_disk / "recordings" / "room.ogg").stat().st_size == 4000
    assert not list(small_disk.rglob(f"{TEMP_PREFIX}*"))


class OggListener:
    """Reads a room's Ogg stream in the background, as a player does."""

    def __init__(self, url: str) -> None:
        self.received = bytearray()
        self._task = asyncio.get_running_loop().create_task(self._listen(url))

    async def _listen(self, url: str) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream("GET", url) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_bytes():
                    self.received += chunk

    async def tone_from(self, start: int, size: int = 40_000, timeout: float = 60) -> float:
        """The dominant frequency of what arrives after byte ``start``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < start + size:
            assert not self._task.done(), "the listener's stream ended"
            assert asyncio.get_running_loop().time() < deadline, "audio stopped arriving"
            await asyncio.sleep(0.1)
        samples = decode_ogg(bytes(self.received))
        heard_before = len(decode_ogg(bytes(self.received[:start]))) if start else 0
        return dominant_frequency(samples[heard_before + 9600 :])

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


@pytest.fixture
async def node_on_small_disk(small_disk: Path, tmp_path: Path) -> AsyncIterator[NodeProcess]:
    node = NodeProcess(
        tmp_path / "node", free_port(), {"node": {"data_dir": str(small_disk / "data")}}
    )
    node.directory.mkdir()
    write_config(node.config_path, node.sections())
    subprocess.run(
        [sys.executable, "-m", "node", "--config", str(node.config_path), "create-user"]
        + ["root", "--admin"],
        input=f"{PASSWORD}\n",
        text=True,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.mark.usefixtures("loopback_ice")
async def test_a_full_disk_refuses_writes_and_keeps_the_room_on_air(
    node_on_small_disk: NodeProcess, small_disk: Path, clients: list[RTCPeerConnection]
) -> None:
    node = node_on_small_disk
    base = node.base_url
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        login = await http.post(
            "/api/v1/sessions", json={"username": "root", "password": PASSWORD}
        )
        admin = {"Authorization": f"Bearer {login.json()['token']}"}
        signup = await http.post(
            "/api/v1/accounts", json={"username": "host", "password": PASSWORD}
        )
        host = {"Authorization": f"Bearer {signup.json()['token']}"}
        room = (await http.post("/api/v1/rooms", headers=host, json={"title": "On air"})).json()
        assert (
            await http.post(f"/api/v1/rooms/{room['id']}/start", headers=host)
        ).status_code == 200
        pc, offer = await make_offer("sendonly", ToneTrack(440))
        clients.append(pc)
        whip = await http.post(
            room["whip_url"],
            content=offer,
            headers={**host, "Content-Type": "application/sdp"},
        )
        assert whip.status_code == 201, whip.text
        await accept_answer(pc, whip.text)
        await wait_connected(pc)
        unmute = await http.post(
            f"/api/v1/rooms/{room['id']}/mute", headers=host, json={"muted": False}
        )
        assert unmute.status_code == 200
        listener = OggListener(room["listen_url"])
        try:
            assert abs(await listener.tone_from(0) - 440) < 15
            storage = (await http.get("/api/v1/admin/storage", headers=admin)).json()
            assert storage["ok"] is True and storage["problems"] == []

            filler = fill(small_disk)
            # What must be saved is refused, with a JSON error saying why ...
            refused = await http.post(
                "/api/v1/accounts", json={"username": "late", "password": PASSWORD}
            )
            assert refused.status_code == 507, refused.text
            assert refused.json()["error"] == "insufficient_storage"
            assert "disk is full" in refused.json()["detail"]
            new_room = await http.post("/api/v1/rooms", headers=host, json={"title": "Another"})
            assert new_room.status_code == 507
            # ... the admin is told ...
            assert (await http.get("/api/v1/admin/storage", headers=host)).status_code == 403
            storage = (await http.get("/api/v1/admin/storage", headers=admin)).json()
            assert storage["ok"] is False
            [problem] = storage["problems"]
            assert problem["feature"] == "the database" and problem["failures"] >= 2
            assert "full" in problem["message"]
            assert storage["free_bytes"] < 64 * 1024
            # ... and the live room goes on: its audio, reads, and a change of its state
            # (kept in memory while it cannot be saved).
            mark = len(listener.received)
            assert abs(await listener.tone_from(mark) - 440) < 15
            retitled = await http.patch(
                f"/api/v1/rooms/{room['id']}", headers=host, json={"title": "Still on air"}
            )
            assert retitled.status_code == 200, retitled.text
            shown = (await http.get(f"/api/v1/rooms/{room['id']}")).json()
            assert shown["state"] == "live" and shown["title"] == "Still on air"
            assert node.process is not None and node.process.poll() is None

            # Room again: writes are taken, the problem clears.
            filler.unlink()
            username = f"back{secrets.token_hex(2)}"
            back = await http.post(
                "/api/v1/accounts", json={"username": username, "password": PASSWORD}
            )
            assert back.status_code == 201, back.text
            storage = (await http.get("/api/v1/admin/storage", headers=admin)).json()
            assert storage["ok"] is True and storage["problems"] == []
            mark = len(listener.received)
            assert abs(await listener.tone_from(mark) - 440) < 15
        finally:
            await listener.close()
    log = (node.directory / "node.log").read_text()
    assert log.count("storage: the database cannot write") == 1
    assert "storage: the database writes again" in log
    assert f"room {room['id']} not saved: the disk is full; it goes on in memory" in log
    assert os.path.exists(small_disk / "data" / "parley.db")
