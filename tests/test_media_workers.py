"""Listeners in worker processes ([media] workers): a real node with two workers, aiortc
WHEP clients and HTTP Ogg clients, the audio decoded and checked as audio."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.media.packets import Contributors, OpusPacket
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
from tests.tonekit import decode_ogg, rms

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
    doc = api.http.get(f"/api/v1/rooms/{room['id']}").json()
    assert doc["listener_count"] == 4
    # The workers send on the native step, with the speakers heard as CSRCs (the room
    # JSON names the host's), which crossed the pipe from the node process.
    host_csrc = doc["speakers"][0]["csrc"]
    assert isinstance(host_csrc, int)
    assert all(listener.csrcs == {host_csrc} for listener in listeners)
    log = workers_node.log()
    assert log.count("WebRTC fan-out of a stream started (native step)") == 2
    assert "on the Python step" not in log and "fan-out in Python" not in log
    assert stats(api)["webrtc_fanout"] == "native"

    # A mute in the node process is silence in the workers' streams.
    api.request("POST", f"/api/v1/rooms/{room['id']}/mute", host, json={"muted": True})
    # Audio decoded before the mute may still be in the client's buffer on a loaded
    # machine: listen in one-second windows until one is silent, within a deadline.
    quiet = [rms(await listeners[0].heard(1.0))]
    while quiet[-1] >= 0.001 and len(quiet) < 8:
        quiet.append(rms(await listeners[0].heard(1.0)))
    assert quiet[-1] < 0.001, f"still sounding after the mute: rms per second {quiet}"

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


class OggClient:
    """One HTTP listener of the Ogg stream, reading in the background."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.received = bytearray()
        self.headers: httpx.Headers | None = None
        self.ended = asyncio.Event()
        self._task = asyncio.create_task(self._read(http, url))

    async def _read(self, http: httpx.AsyncClient, url: str) -> None:
        try:
            async with http.stream("GET", url) as response:
                assert response.status_code == 200
                self.headers = response.headers
                async for chunk in response.aiter_bytes():
                    self.received += chunk
        finally:
            self.ended.set()

    async def heard(self, seconds: float) -> Any:
        """Decoded audio once ``seconds`` more of it arrived (Opus at ~32 kbit/s)."""
        start = len(self.received)
        await until(lambda: len(self.received) > start + seconds * 4500, "Ogg audio")
        return decode_ogg(bytes(self.received))

    async def hang_up(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_ogg_listeners_are_handed_to_workers_and_hear_the_room(
    workers_node: NodeProcess, api_factory: Callable[[NodeProcess], Api], clients: list
) -> None:
    api = api_factory(workers_node)
    room, host = await speaking(api, 440, clients)
    room_url = f"/api/v1/rooms/{room['id']}"
    webrtc = await whep(room["whep_url"], clients)
    async with httpx.AsyncClient(timeout=20) as http:
        # HEAD stays in the node process (nothing to stream).
        head = await http.head(room["listen_url"])
        assert head.status_code == 200
        assert head.headers["content-type"] == "audio/ogg"

        ogg = [OggClient(http, room["listen_url"]) for _ in range(3)]
        # The least loaded worker takes each; an Ogg listener weighs about a seventh of a
        # WebRTC one (what each costs a worker), so all three go beside the WebRTC one.
        await until(
            lambda: sorted(stats(api)["media_workers"]["http_listeners"]) == [0, 3],
            "three Ogg listeners in the other worker",
        )
        doc = stats(api)
        assert doc["http_listeners"] == 0  # none in the node process
        assert sorted(doc["media_workers"]["listeners"]) == [1, 3]
        assert doc["peer_connections"] == 2  # the speaker, and the WHEP listener
        assert api.http.get(room_url).json()["listener_count"] == 4
        for client in ogg:
            samples = await client.heard(2.0)
            assert len(samples) > 48_000
            assert_tone(samples[9600:], 440)
            assert client.headers is not None
            assert client.headers["content-type"] == "audio/ogg"
            assert client.headers["cache-control"] == "no-store"
        assert_tone(await webrtc.heard(1.0), 440)

        # A mute in the node process is silence in the workers' Ogg pages too.
        api.request("POST", f"{room_url}/mute", host, json={"muted": True})
        deadline = asyncio.get_running_loop().time() + 15
        while True:  # what was on its way when the mute came plays out first
            mark = len(decode_ogg(bytes(ogg[0].received)))
            if rms((await ogg[0].heard(1.0))[mark:]) < 0.001:
                break
            assert asyncio.get_running_loop().time() < deadline, "still hearing the host"

        # A listener who hangs up is noticed by its worker, and the count follows.
        await ogg[0].hang_up()
        await until(lambda: api.http.get(room_url).json()["listener_count"] == 3, "count 3")
        assert sum(stats(api)["media_workers"]["http_listeners"]) == 2

        # The room ends: the workers end the others' streams (close-delimited bodies).
        assert api.request("POST", f"{room_url}/end", host).status_code == 200
        for client in ogg[1:]:
            await asyncio.wait_for(client.ended.wait(), 20)
        assert stats(api)["media_workers"]["listeners"] == [0, 0]
    log = workers_node.log()
    assert "Traceback" not in log
    assert "ASGI callable" not in log  # uvicorn sent nothing for a handed-over connection


async def test_an_ogg_listener_s_worker_dying_ends_its_stream(
    workers_node: NodeProcess, api_factory: Callable[[NodeProcess], Api], clients: list
) -> None:
    api = api_factory(workers_node)
    room, _host = await speaking(api, 660, clients)
    room_url = f"/api/v1/rooms/{room['id']}"
    async with httpx.AsyncClient(timeout=20) as http:
        client = OggClient(http, room["listen_url"])
        assert_tone((await client.heard(1.5))[9600:], 660)
        os.kill(min(workers_of(workers_node)), signal.SIGKILL)
        os.kill(max(workers_of(workers_node)), signal.SIGKILL)
        await asyncio.wait_for(client.ended.wait(), 20)
        await until(lambda: api.http.get(room_url).json()["listener_count"] == 0, "count 0")
        # Workers started again take new listeners.
        await until(lambda: stats(api)["media_workers"]["restarts"] == 2, "two restarts")
        await until(lambda: len(workers_of(workers_node)) == 2, "two workers")
        again = OggClient(http, room["listen_url"])
        assert_tone((await again.heard(1.5))[9600:], 660)
        await again.hang_up()


async def test_ogg_handoff_on_the_asyncio_loop_and_the_h11_parser(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    clients: list,
) -> None:
    # The other transports the node can run on: asyncio's selector loop and h11.
    node = node_factory(node={"event_loop": "asyncio", "http_parser": "h11"}, media={"workers": 1})
    api = api_factory(node)
    room, _host = await speaking(api, 440, clients)
    async with httpx.AsyncClient(timeout=20) as http:
        client = OggClient(http, room["listen_url"])
        assert_tone((await client.heard(1.5))[9600:], 440)
        assert stats(api)["media_workers"]["http_listeners"] == [1]
        await client.hang_up()
        await until(lambda: stats(api)["media_workers"]["http_listeners"] == [0], "gone")
    assert "Traceback" not in node.log()


@pytest.mark.parametrize(
    "contributors",
    [None, Contributors(), Contributors(3, ((1, 3), (0xFFFFFFFF, 127)))],
)
async def test_frames_round_trip_and_bad_lengths_are_refused(
    contributors: Contributors | None,
) -> None:
    packet = OpusPacket(70000, 960 * 70000, b"\xfc\x01\x02", contributors)
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
