"""WebRTC listeners in worker processes ([media] workers): a real node with two workers,
aiortc clients, the audio decoded and checked as audio."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.media.packets import OpusPacket
from node.media.workers import (
    MAX_FRAME,
    PACKET,
    decode_packet,
    encode_frame,
    encode_packet,
    read_frame,
)
from tests.conftest import Api, NodeProcess
from tests.test_signaling import assert_tone, whep, whip
from tests.tonekit import rms

pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
def workers_node(node_factory: Callable[..., NodeProcess]) -> NodeProcess:
    return node_factory(media={"workers": 2})


def stats(api: Api) -> dict[str, Any]:
    return dict(api.http.get("/api/v1/node/stats").json())


def workers_of(node: NodeProcess) -> set[int]:
    """PIDs of the node's media worker processes, from /proc."""
    assert node.process is not None
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == node.process.pid and b"node.media.worker" in cmdline:
            found.add(int(entry))
    return found


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def speaking(api: Api, hz: float, clients: list) -> tuple[dict[str, Any], str]:
    """A live room whose host is on the air with a tone; the room and the host's token."""
    host = api.signup("host")
    room = api.live_room(host)
    await whip(room["whip_url"], host, hz, clients)
    api.request("POST", f"/api/v1/rooms/{room['id']}/mute", host, json={"muted": False})
    return room, host


async def test_listeners_in_two_workers_hear_the_room(
    workers_node: NodeProcess, api_factory: Callable[[NodeProcess], Api], clients: list
) -> None:
    api = api_factory(workers_node)
    room, host = await speaking(api, 440, clients)

    listeners = [await whep(room["whep_url"], clients) for _ in range(4)]
    doc = stats(api)
    assert doc["media_workers"]["listeners"] == [2, 2]  # the least loaded worker takes each
    assert doc["peer_connections"] == 5  # the speaker in the node process, 4 in workers
    assert len(workers_of(workers_node)) == 2
    for listener in listeners:
        assert_tone(await listener.heard(1.5), 440)
    assert api.http.get(f"/api/v1/rooms/{room['id']}").json()["listener_count"] == 4

    # A mute in the node process is silence in the workers' streams.
    api.request("POST", f"/api/v1/rooms/{room['id']}/mute", host, json={"muted": True})
    await asyncio.sleep(0.5)
    assert rms(await listeners[0].heard(1.0)) < 0.001

    # DELETE ends a worker's session; the count follows.
    assert api.http.delete(listeners[0].location).status_code == 200
    assert api.http.delete(listeners[0].location).status_code == 404
    assert api.http.get(f"/api/v1/rooms/{room['id']}").json()["listener_count"] == 3
    assert stats(api)["media_workers"]["listeners"] in ([1, 2], [2, 1])


async def test_a_worker_that_dies_is_replaced_and_its_listeners_are_let_go(
    workers_node: NodeProcess, api_factory: Callable[[NodeProcess], Api], clients: list
) -> None:
    api = api_factory(workers_node)
    room, host = await speaking(api, 660, clients)
    first = await whep(room["whep_url"], clients)
    second = await whep(room["whep_url"], clients)
    assert stats(api)["media_workers"]["listeners"] == [1, 1]
    victim = min(workers_of(workers_node))

    os.kill(victim, signal.SIGKILL)
    await until(
        lambda: len(workers_of(workers_node) - {victim}) == 2, "a worker started in its place"
    )
    after = stats(api)["media_workers"]
    assert after["restarts"] == 1
    assert after["listeners"] in ([0, 1], [1, 0])
    assert api.http.get(f"/api/v1/rooms/{room['id']}").json()["listener_count"] == 1
    # The listener on the other worker never noticed; a new one lands on the new worker.
    survivor = second if after["listeners"][1] else first
    assert_tone(await survivor.heard(1.5), 660)
    newcomer = await whep(room["whep_url"], clients)
    assert_tone(await newcomer.heard(1.5), 660)
    assert stats(api)["media_workers"]["listeners"] == [1, 1]
    assert "Traceback" not in workers_node.log()


async def test_bad_offers_to_workers_get_400_and_leave_nothing(
    workers_node: NodeProcess, api_factory: Callable[[NodeProcess], Api]
) -> None:
    api = api_factory(workers_node)
    host = api.signup("host")
    room = api.live_room(host)
    # Checked in the node process, and (an offer that parses but cannot be negotiated) in
    # the worker, whose refusal comes back as the same 400.
    broken_fingerprint = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
        "a=rtpmap:111 opus/48000/2\r\na=recvonly\r\na=mid:0\r\n"
    )
    async with httpx.AsyncClient(timeout=20) as http:
        for offer in ("not sdp", broken_fingerprint):
            response = await http.post(
                room["whep_url"], content=offer, headers={"Content-Type": "application/sdp"}
            )
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid_input"
    doc = stats(api)
    assert doc["peer_connections"] == 0
    assert doc["media_workers"]["listeners"] == [0, 0]


async def test_frames_round_trip_and_bad_lengths_are_refused() -> None:
    packet = OpusPacket(70000, 960 * 70000, b"\xfc\x01\x02")
    reader = asyncio.StreamReader()
    reader.feed_data(encode_packet(7, packet))
    frame = await read_frame(reader)
    assert frame is not None and frame[0] == PACKET
    assert decode_packet(frame[1]) == (7, packet)

    reader = asyncio.StreamReader()
    reader.feed_data(encode_frame(PACKET, b"x" * 8)[:3])
    reader.feed_eof()
    assert await read_frame(reader) is None  # a torn frame is the end, not garbage

    reader = asyncio.StreamReader()
    reader.feed_data((MAX_FRAME + 1).to_bytes(4, "big") + PACKET)
    with pytest.raises(ValueError, match="bad frame length"):
        await read_frame(reader)
