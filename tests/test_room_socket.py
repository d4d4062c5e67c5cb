"""The room WebSocket of a real node: snapshot, then events; moderation over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import Api, NodeProcess

HERE = Path(__file__).parent


PATHS = [("shared", 0), ("per_watcher", 0), ("shared", 1)]
"""[node] room_events, and [media] workers: with a worker, the node process hands each
room WebSocket's connection over to it (node/media/ws_fanout.py)."""


@pytest.fixture(params=PATHS, ids=["shared", "per_watcher", "in_a_worker"])
def node(request: pytest.FixtureRequest, node_factory: Callable[..., NodeProcess]) -> NodeProcess:
    """Every test here runs on each path of the room's events."""
    events, workers = request.param
    return node_factory(node={"room_events": events}, media={"workers": workers})


def socket(api: Api, room: dict[str, Any], token: str | None = None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return connect(room["ws_url"], additional_headers=headers, open_timeout=10)


def next_of(
    ws: ClientConnection, kind: str, match: Callable[[dict], bool] = lambda m: True
) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
        if message["type"] == kind and match(message):
            return message
    raise AssertionError(f"no {kind} message")


def member_event(username: str, **fields: Any) -> Callable[[dict], bool]:
    def match(message: dict) -> bool:
        member = message["member"]
        return member["username"] == username and all(member[k] == v for k, v in fields.items())

    return match


def websockets_in_workers(api: Api) -> int | None:
    """Room WebSockets the media workers hold (None: the node has no workers)."""
    stats = api.http.get("/api/v1/node/stats").json()
    return sum(stats["media_workers"]["websockets"]) if "media_workers" in stats else None


def test_snapshot_then_events_through_hand_invite_and_block(api: Api) -> None:
    host = api.signup("host")
    bob = api.signup("bob")
    room = api.live_room(host)
    with (
        socket(api, room, host) as host_ws,
        socket(api, room, bob) as bob_ws,
        socket(api, room) as guest_ws,
    ):
        snapshot = next_of(host_ws, "snapshot")
        assert snapshot["you"] == {"username": "host", "role": "host"}
        assert snapshot["room"]["speakers"][0]["username"] == "host"
        assert next_of(bob_ws, "snapshot")["you"]["role"] == "listener"
        assert next_of(guest_ws, "snapshot")["you"] is None
        next_of(host_ws, "member", member_event("bob", role="listener", connected=True))
        assert websockets_in_workers(api) in (None, 3)  # all three, when it has workers

        base = f"/api/v1/rooms/{room['id']}"
        assert api.request("POST", f"{base}/hand", bob).status_code == 200
        next_of(host_ws, "member", member_event("bob", hand_raised=True))
        assert api.http.get(base).json()["hands"] == ["bob"]
        assert api.request("POST", f"{base}/members/bob/invite", bob).status_code == 403
        assert api.request("POST", f"{base}/members/bob/invite", host).status_code == 200
        next_of(bob_ws, "member", member_event("bob", invited=True))
        assert (
            api.request("POST", f"{base}/invitation", bob, json={"accept": "yes"}).status_code
            == 422
        )
        assert (
            api.request("POST", f"{base}/invitation", bob, json={"accept": True}).status_code
            == 200
        )
        event = next_of(guest_ws, "member", member_event("bob", role="speaker"))
        assert event["member"]["muted"] is True and event["member"]["hand_raised"] is False
        assert api.request("POST", f"{base}/mute", bob, json={"muted": False}).status_code == 200
        next_of(host_ws, "member", member_event("bob", muted=False))
        assert (
            api.request("POST", f"{base}/members/bob/mute", host, json={"muted": True}).status_code
            == 200
        )
        refused = api.request("POST", f"{base}/members/bob/mute", host, json={"muted": False})
        assert refused.status_code == 403
        moved = api.request("POST", f"{base}/members/bob/role", host, json={"role": "listener"})
        assert moved.status_code == 200
        next_of(guest_ws, "member", member_event("bob", role="listener"))
        bad_role = api.request("POST", f"{base}/members/bob/role", host, json={"role": "host"})
        assert bad_role.status_code in (403, 422)

        assert api.request("POST", f"{base}/members/bob/block", host).status_code == 200
        assert next_of(host_ws, "kicked")["username"] == "bob"
        assert next_of(bob_ws, "kicked")["username"] == "bob"  # then the room closes it
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                bob_ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    # Blocked: the socket refuses with 4403, and WHEP too.
    with socket(api, room, bob) as again:
        error = json.loads(again.recv(timeout=10))
        assert error["type"] == "error" and error["error"] == "forbidden"
    # Nor may a blocked user act in the room at all.
    assert api.request("POST", f"{base}/hand", bob).status_code == 403


def test_listener_count_and_room_end_reach_watchers(api: Api) -> None:
    host = api.signup("host")
    room = api.live_room(host)
    with socket(api, room, host) as host_ws:
        next_of(host_ws, "snapshot")
        api.request("PATCH", f"/api/v1/rooms/{room['id']}", host, json={"title": "Renamed"})
        assert next_of(host_ws, "room")["room"]["title"] == "Renamed"
        api.request("POST", f"/api/v1/rooms/{room['id']}/end", host)
        ended = next_of(host_ws, "room", lambda m: m["room"]["state"] == "ended")
        assert ended["room"]["ended_at"] is not None
        assert ended["room"]["whep_url"].endswith("/whep")
        with pytest.raises(ConnectionClosed) as closed:  # the room ended: no more events
            while True:
                host_ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


@pytest.mark.parametrize("workers", [0, 1], ids=["node process", "in a worker"])
def test_host_who_leaves_without_ending_has_a_grace_period(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    workers: int,
) -> None:
    # In a worker, the host's leaving comes back to the node process as "gone".
    node = node_factory(media={"host_grace_s": 1.5, "workers": workers})
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host)
    url = f"/api/v1/rooms/{room['id']}"
    with socket(api, room, host) as ws:
        next_of(ws, "snapshot")
    # Back within the grace period: the room stays live.
    with socket(api, room, host) as ws:
        next_of(ws, "snapshot")
        time.sleep(2.5)
        assert api.http.get(url).json()["state"] == "live"
    state = "live"
    for _ in range(60):
        state = api.http.get(url).json()["state"]
        if state == "ended":
            break
        time.sleep(0.1)
    assert state == "ended"


def test_ws_ping_and_oversized_messages(api: Api) -> None:
    host = api.signup("host")
    room = api.live_room(host)
    with socket(api, room) as ws:
        next_of(ws, "snapshot")
        ws.send(json.dumps({"type": "ping"}))
        assert next_of(ws, "pong")["type"] == "pong"
        ws.send("not json")
        ws.send(json.dumps({"type": "ping"}))
        next_of(ws, "pong")
        # A WebRTC listener saying it reads levels from its audio (the hook for sending
        # it state only), then JSON that is no object: neither ends the socket.
        ws.send(json.dumps({"type": "levels_source", "source": "audio"}))
        ws.send("[1, 2]")
        ws.send(json.dumps({"type": "ping"}))
        next_of(ws, "pong")
    with socket(api, room) as ws:
        next_of(ws, "snapshot")
        with pytest.raises(ConnectionClosed):
            ws.send("x" * 20_000)
            while True:
                ws.recv(timeout=10)
    assert api.http.get(f"/api/v1/rooms/{room['id']}").status_code == 200


def types_for(ws: ClientConnection, seconds: float) -> list[str]:
    """The types of the messages ``ws`` receives over ``seconds``."""
    types = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            types.append(json.loads(ws.recv(timeout=left))["type"])
        except TimeoutError:
            break
    return types


@pytest.mark.parametrize("workers", [0, 1], ids=["node process", "in a worker"])
def test_a_watcher_that_reads_levels_from_its_audio_gets_state_only(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    workers: int,
) -> None:
    node = node_factory(media={"workers": workers})  # room_events = "shared", the default
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host)
    base = f"/api/v1/rooms/{room['id']}"
    assert api.request("POST", f"{base}/mute", host, json={"muted": False}).status_code == 200
    speaker = subprocess.Popen(
        [sys.executable, str(HERE / "speaker_client.py"), room["whip_url"], host, "440"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert speaker.stdout is not None
        assert speaker.stdout.readline().strip() == "publishing"
        with socket(api, room) as ringing, socket(api, room) as plain:
            next_of(ringing, "snapshot")
            next_of(plain, "snapshot")
            assert websockets_in_workers(api) == (2 if workers else None)
            # The node does not compress: the same bytes go to every socket.
            assert ringing.response is not None
            assert "Sec-WebSocket-Extensions" not in ringing.response.headers
            ringing.send(json.dumps({"type": "levels_source", "source": "audio"}))
            next_of(plain, "levels")  # the speaker is heard: levels flow
            types_for(ringing, 0.5)  # what was on its way before the node read the hook
            assert (
                api.request("POST", f"{base}/mute", host, json={"muted": True}).status_code == 200
            )
            assert (
                api.request("POST", f"{base}/mute", host, json={"muted": False}).status_code == 200
            )
            got = types_for(ringing, 3.0)
            assert "levels" not in got
            assert got.count("member") >= 2  # the mute and the unmute: state still comes
            assert "levels" in types_for(plain, 2.0)
            # Back to the WebSocket's levels (it listens over HLS now, say).
            ringing.send(json.dumps({"type": "levels_source", "source": "websocket"}))
            next_of(ringing, "levels")
    finally:
        speaker.send_signal(signal.SIGTERM)
        try:
            speaker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            speaker.kill()
            speaker.wait()
        if speaker.stdout is not None:
            speaker.stdout.close()
