"""WHIP, WHEP and the Ogg stream of a real node process, with aiortc clients; the audio
is decoded and checked as audio."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from tests.conftest import Api, NodeProcess
from tests.tonekit import (
    ToneTrack,
    accept_answer,
    decode_ogg,
    dominant_frequency,
    frequency_power,
    make_offer,
    record_track,
)

HERE = Path(__file__).resolve().parent


pytestmark = pytest.mark.usefixtures("loopback_ice")


@dataclass
class Peer:
    pc: RTCPeerConnection
    location: str
    csrcs: set[int] = field(default_factory=set)
    """Every contributing source (CSRC) the RTP packets received so far listed."""

    async def heard(self, seconds: float = 2.0) -> np.ndarray:
        track = self.pc.getTransceivers()[0].receiver.track
        return await record_track(track, seconds, skip=0.6)


async def whip(url: str, token: str | None, hz: float, pcs: list[RTCPeerConnection]) -> Peer:
    pc, offer = await make_offer("sendrecv", ToneTrack(hz))
    pcs.append(pc)
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(url, content=offer, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/sdp")
    await accept_answer(pc, response.text)
    return Peer(pc, response.headers["location"])


async def whep(url: str, pcs: list[RTCPeerConnection]) -> Peer:
    pc, offer = await make_offer("recvonly")
    pcs.append(pc)
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(url, content=offer, headers={"Content-Type": "application/sdp"})
    assert response.status_code == 201, response.text
    receiver = (await accept_answer(pc, response.text)).receiver
    peer = Peer(pc, response.headers["location"])
    original = receiver._handle_rtp_packet

    async def record(packet: RtpPacket, arrival_time_ms: int) -> None:
        peer.csrcs.update(packet.csrc)
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = record  # type: ignore[method-assign]
    return peer


def put_on_stage(api: Api, room_id: str, host: str, speaker: str, username: str) -> None:
    import websockets.sync.client as ws_client

    # Presence comes from the room's WebSocket: the speaker is in the room while connected.
    ws_url = api.base_url.replace("http", "ws") + f"/api/v1/rooms/{room_id}/ws"
    with ws_client.connect(ws_url, additional_headers={"Authorization": f"Bearer {speaker}"}):
        for path, token, body in [
            (f"/api/v1/rooms/{room_id}/hand", speaker, None),
            (f"/api/v1/rooms/{room_id}/members/{username}/invite", host, None),
            (f"/api/v1/rooms/{room_id}/invitation", speaker, {"accept": True}),
            (f"/api/v1/rooms/{room_id}/mute", speaker, {"muted": False}),
        ]:
            response = api.request("POST", path, token, json=body)
            assert response.status_code == 200, response.text


def assert_tone(samples: np.ndarray, hz: float) -> None:
    assert abs(dominant_frequency(samples) - hz) < 15, dominant_frequency(samples)


async def test_a_speaker_is_heard_over_whep_and_the_ogg_stream(api: Api, clients: list) -> None:
    host = api.signup("host")
    room = api.live_room(host)
    await whip(room["whip_url"], host, 440, clients)
    api.request("POST", f"/api/v1/rooms/{room['id']}/mute", host, json={"muted": False})
    listener = await whep(room["whep_url"], clients)
    assert_tone(await listener.heard(), 440)

    room_url = f"/api/v1/rooms/{room['id']}"
    before = api.http.get(room_url).json()["listener_count"]
    received = bytearray()
    async with httpx.AsyncClient(timeout=20) as http:
        # HEAD gives the headers and ends: the GET can follow on the same connection.
        head = await http.head(room["listen_url"])
        assert head.status_code == 200
        assert head.headers["content-type"] == "audio/ogg"
        assert head.content == b""
        async with http.stream("GET", room["listen_url"]) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "audio/ogg"
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > 20_000:
                    break
    samples = decode_ogg(bytes(received))
    assert len(samples) > 48_000
    assert_tone(samples[9600:], 440)
    # The Ogg listener hung up: the node notices (at its next page) and stops counting it.
    for _ in range(100):
        if api.http.get(room_url).json()["listener_count"] == before:
            break
        await asyncio.sleep(0.1)
    assert api.http.get(room_url).json()["listener_count"] == before >= 1


async def test_two_speakers_mix_and_mix_minus(api: Api, clients: list) -> None:
    host = api.signup("host")
    guest = api.signup("guest")
    room = api.live_room(host)
    put_on_stage(api, room["id"], host, guest, "guest")
    api.request("POST", f"/api/v1/rooms/{room['id']}/mute", host, json={"muted": False})
    host_peer = await whip(room["whip_url"], host, 440, clients)
    # The guest's WebSocket closed above; their seat on stage stays (speakers keep it).
    guest_peer = await whip(room["whip_url"], guest, 660, clients)
    listener = await whep(room["whep_url"], clients)

    heard, host_return, guest_return = await asyncio.gather(
        listener.heard(), host_peer.heard(), guest_peer.heard()
    )
    rate = 48_000
    assert frequency_power(heard, rate, 440) > 0.2 and frequency_power(heard, rate, 660) > 0.2
    assert_tone(host_return, 660)
    assert frequency_power(host_return, rate, 440) < 0.02
    assert_tone(guest_return, 440)
    assert frequency_power(guest_return, rate, 660) < 0.02

    # The host mutes the guest: the server drops that audio.
    muted = api.request(
        "POST", f"/api/v1/rooms/{room['id']}/members/guest/mute", host, json={"muted": True}
    )
    assert muted.status_code == 200
    await asyncio.sleep(0.3)
    after = await listener.heard()
    assert_tone(after, 440)
    assert frequency_power(after, rate, 660) < 0.02


async def test_who_may_publish(api: Api, clients: list) -> None:
    host = api.signup("host")
    other = api.signup("other")
    room = api.create_room(host)
    pc, offer = await make_offer("sendrecv", ToneTrack(440))
    clients.append(pc)
    sdp = {"Content-Type": "application/sdp"}
    async with httpx.AsyncClient(timeout=20) as http:
        not_live = await http.post(
            room["whip_url"], content=offer, headers={**sdp, "Authorization": f"Bearer {host}"}
        )
        assert not_live.status_code == 409
        api.request("POST", f"/api/v1/rooms/{room['id']}/start", host)
        anonymous = await http.post(room["whip_url"], content=offer, headers=sdp)
        assert anonymous.status_code == 401
        listener = await http.post(
            room["whep_url"].replace("whep", "whip"),
            content=offer,
            headers={**sdp, "Authorization": f"Bearer {other}"},
        )
        assert listener.status_code == 403
        assert listener.json()["error"] == "forbidden"
    assert api.http.get("/api/v1/node/stats").json()["peer_connections"] == 0


@pytest.mark.parametrize(
    ("offer", "content_type", "status"),
    [
        ("this is not sdp", "application/sdp", 400),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "application/sdp", 400),
        ("VIDEO", "application/sdp", 400),
        ("v=0\r\n" + "a=x\r\n" * 8000, "application/sdp", 400),
        ("v=0\r\n", "application/json", 415),
    ],
)
async def test_bad_offers_get_400_and_leak_nothing(
    api: Api, clients: list, offer: str, content_type: str, status: int
) -> None:
    host = api.signup("host")
    room = api.live_room(host)
    if offer == "VIDEO":
        pc = RTCPeerConnection()
        clients.append(pc)
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
    async with httpx.AsyncClient(timeout=20) as http:
        for url, token in ((room["whep_url"], None), (room["whip_url"], host)):
            headers = {"Content-Type": content_type}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            response = await http.post(url, content=offer, headers=headers)
            assert response.status_code == status, response.text
            assert set(response.json()) - {"field"} == {"error", "detail"}
    stats = api.http.get("/api/v1/node/stats").json()
    assert stats["peer_connections"] == 0
    assert api.http.get(f"/api/v1/rooms/{room['id']}").json()["listener_count"] == 0


async def test_sessions_end_by_delete_and_listener_count_follows(api: Api, clients: list) -> None:
    host = api.signup("host")
    room = api.live_room(host)
    peer = await whep(room["whep_url"], clients)
    assert api.http.get(f"/api/v1/rooms/{room['id']}").json()["listener_count"] == 1
    assert api.http.delete(peer.location).status_code == 200
    assert api.http.get(f"/api/v1/rooms/{room['id']}").json()["listener_count"] == 0
    assert api.http.delete(peer.location).status_code == 404
    assert api.http.get("/api/v1/node/stats").json()["peer_connections"] == 0


async def test_a_speaker_who_vanishes_is_cleaned_up(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    node = node_factory(media={"speaker_timeout_s": 2.0})
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host)
    speaker = subprocess.Popen(
        [sys.executable, str(HERE / "speaker_client.py"), room["whip_url"], host, "440"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert speaker.stdout is not None
        assert speaker.stdout.readline().strip() == "publishing"
        stage = api.http.get(f"/api/v1/rooms/{room['id']}").json()["speakers"]
        assert stage[0]["publishing"] is True
        speaker.send_signal(signal.SIGKILL)  # no goodbye: no DTLS close, no DELETE
        speaker.wait(timeout=10)
        for _ in range(100):
            stage = api.http.get(f"/api/v1/rooms/{room['id']}").json()["speakers"]
            if not stage[0]["publishing"]:
                break
            await asyncio.sleep(0.1)
        assert stage[0]["publishing"] is False
        assert api.http.get("/api/v1/node/stats").json()["peer_connections"] == 0
    finally:
        speaker.kill()
        speaker.wait()
        if speaker.stdout is not None:
            speaker.stdout.close()
