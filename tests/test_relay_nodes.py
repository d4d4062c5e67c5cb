"""Rooms across real node processes on loopback: relay, remote speakers, survival, faults.

Audio is decoded and checked by its dominant frequency (tests/tonekit.py); waits poll
with deadlines and assert nothing about timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection

from tests.conftest import Api, NodeProcess
from tests.test_signaling import Peer, whep, whip
from tests.tonekit import dominant_frequency, frequency_power

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]
T = TypeVar("T")


pytestmark = pytest.mark.usefixtures("loopback_ice")


async def until(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def post(url: str, token: str, body: dict[str, Any] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(url, json=body or {}, headers={"Authorization": f"Bearer {token}"})


async def relay_stats(node: NodeProcess) -> dict[str, Any]:
    stats = await get_json(f"{node.base_url}/api/v1/node/stats")
    return dict(stats["relay"])


async def join_remote(node: NodeProcess, token: str, url: str) -> dict[str, Any]:
    response = await post(f"{node.base_url}/api/v1/remote-rooms", token, {"url": url})
    assert response.status_code in (200, 201), response.text
    room = dict(response.json())
    assert room["remote"] is True
    assert room["whep_url"].startswith(node.base_url)
    return room


def assert_tone(samples: np.ndarray, hz: float) -> None:
    assert dominant_frequency(samples) == pytest.approx(hz, abs=15)
    assert frequency_power(samples, 48000, hz) > 0.5


async def hears(peer: Peer, hz: float, *, tries: int = 20) -> np.ndarray:
    """Record until the tone is there (audio may take a moment to start flowing)."""
    samples = np.zeros(0)
    for _ in range(tries):
        samples = await peer.heard(1.0)
        if (
            dominant_frequency(samples) == pytest.approx(hz, abs=15)
            and frequency_power(samples, 48000, hz) > 0.5
        ):
            return samples
    assert_tone(samples, hz)
    return samples


async def live_room_with_speaker(
    api: Api, a: NodeProcess, clients: list[RTCPeerConnection]
) -> tuple[str, dict[str, Any], Peer]:
    alice = api.signup("alice")
    room = api.live_room(alice, "Across nodes")
    speaker = await whip(room["whip_url"], alice, 440, clients)
    response = await post(f"{a.base_url}/api/v1/rooms/{room['id']}/mute", alice, {"muted": False})
    assert response.status_code == 200, response.text
    return alice, room, speaker


async def test_relay_chain_one_upstream_and_listener_counts(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    a, b, c = node_factory(), node_factory(), node_factory()
    _, room, _ = await live_room_with_speaker(api_factory(a), a, clients)
    bob = api_factory(b).signup("bob")
    carol = api_factory(c).signup("carol")

    mirror_b = await join_remote(b, bob, room["url"])
    assert mirror_b["origin"] == room["url"]
    assert mirror_b["title"] == "Across nodes"
    listener_b = await whep(mirror_b["whep_url"], clients)
    await hears(listener_b, 440)

    # A -> B -> C: C takes the room from B.
    mirror_c = await join_remote(c, carol, mirror_b["url"])
    assert mirror_c["origin"] == room["url"]
    listener_c = await whep(mirror_c["whep_url"], clients)
    await hears(listener_c, 440)

    async def one_upstream() -> bool:
        on_a = (await relay_stats(a))["rooms"][room["id"]]
        return bool(on_a["subscribers"] == 1)

    await until(one_upstream, what="one relay subscriber on A")

    async def total(expected: int) -> bool:
        doc = await get_json(f"{a.base_url}/api/v1/rooms/{room['id']}")
        return bool(doc["listener_count"] == expected)

    await until(lambda: total(2), what="A counts B's and C's listeners")

    # Twenty more listeners on B (Ogg over HTTP): still one upstream from B to A.
    async with httpx.AsyncClient(timeout=30) as http:
        streams = []
        for _ in range(20):
            request = http.build_request("GET", mirror_b["listen_url"])
            streams.append(await http.send(request, stream=True))
        try:
            assert all(s.status_code == 200 for s in streams)
            await until(lambda: total(22), what="22 listeners counted on A")
            stats_a = await relay_stats(a)
            assert stats_a["rooms"][room["id"]]["subscribers"] == 1
            stats_b = await relay_stats(b)
            assert stats_b["upstreams"] == 1
            assert stats_b["rooms"][mirror_b["id"]]["subscribers"] == 1  # C
        finally:
            for s in streams:
                await s.aclose()
    await until(lambda: total(2), what="the Ogg listeners left")


async def mixed(peer: Peer, *tones: float, tries: int = 20) -> np.ndarray:
    """Record until every tone is clearly present."""
    samples = np.zeros(0)
    for _ in range(tries):
        samples = await peer.heard(1.5)
        if all(frequency_power(samples, 48000, hz) > 0.2 for hz in tones):
            return samples
    raise AssertionError(
        f"not all of {tones} heard: {[frequency_power(samples, 48000, hz) for hz in tones]}"
    )


async def only(peer: Peer, hz: float, absent: float, *, tries: int = 20) -> None:
    for _ in range(tries):
        samples = await peer.heard(1.0)
        if (
            frequency_power(samples, 48000, hz) > 0.5
            and frequency_power(samples, 48000, absent) < 0.02
        ):
            return
    raise AssertionError(f"return does not hold only {hz} Hz")


async def watch(ws_url: str, token: str) -> Any:
    import websockets

    return await websockets.connect(
        ws_url, additional_headers={"Authorization": f"Bearer {token}"}
    )


async def member_on(node: NodeProcess, room_id: str, username: str) -> dict[str, Any] | None:
    doc = await get_json(f"{node.base_url}/api/v1/rooms/{room_id}")
    for member in [*doc["speakers"], *doc["audience"]]:
        if member["username"] == username:
            return dict(member)
    return None


async def remote_speaker_setup(
    node_factory: NodeFactory,
    api_factory: ApiFactory,
    clients: list[RTCPeerConnection],
    *,
    with_c: bool = True,
) -> dict[str, Any]:
    a, b = node_factory(), node_factory()
    c = node_factory() if with_c else None
    alice, room, alice_peer = await live_room_with_speaker(api_factory(a), a, clients)
    bob = api_factory(b).signup("bob")
    mirror_b = await join_remote(b, bob, room["url"])
    mirror_c = None
    if c is not None:
        carol = api_factory(c).signup("carol")
        mirror_c = await join_remote(c, carol, mirror_b["url"])
    bob_handle = f"bob@127.0.0.1:{b.port}"

    # Bob watches the room on B: A learns he is there (presence over the relay stream).
    socket = await watch(mirror_b["ws_url"], bob)
    await until(lambda: member_on(a, room["id"], bob_handle), what="bob present on A")

    # His hand goes to A as a signed parley:RaiseHand from his own actor.
    response = await post(f"{mirror_b['url'].replace('/rooms/', '/api/v1/rooms/')}/hand", bob)
    assert response.status_code == 202, response.text

    async def hand_on_a() -> bool:
        doc = await get_json(f"{a.base_url}/api/v1/rooms/{room['id']}")
        return bob_handle in doc["hands"]

    await until(hand_on_a, what="bob's hand on A")
    response = await post(
        f"{a.base_url}/api/v1/rooms/{room['id']}/members/{bob_handle}/invite", alice
    )
    assert response.status_code == 200, response.text

    async def invited_on_b() -> bool:
        member = await member_on(b, mirror_b["id"], "bob")
        return bool(member and member["invited"])

    await until(invited_on_b, what="the invitation reaches B")
    api_b = f"{b.base_url}/api/v1/rooms/{mirror_b['id']}"
    response = await post(f"{api_b}/invitation", bob, {"accept": True})
    assert response.status_code == 202, response.text

    async def speaker_on_b() -> bool:
        member = await member_on(b, mirror_b["id"], "bob")
        return bool(member and member["role"] == "speaker")

    await until(speaker_on_b, what="bob on stage (seen from B)")
    bob_peer = await whip(mirror_b["whip_url"], bob, 660, clients)
    response = await post(f"{api_b}/mute", bob, {"muted": False})
    assert response.status_code == 202, response.text

    async def unmuted_on_a() -> bool:
        member = await member_on(a, room["id"], bob_handle)
        return bool(member and not member["muted"] and member["publishing"])

    await until(unmuted_on_a, what="bob unmuted and publishing on A")
    return {
        "a": a,
        "b": b,
        "c": c,
        "alice": alice,
        "room": room,
        "mirror_b": mirror_b,
        "mirror_c": mirror_c,
        "alice_peer": alice_peer,
        "bob_peer": bob_peer,
        "bob_socket": socket,
        "bob_handle": bob_handle,
        "bob_token": bob,
    }


async def test_remote_speaker_is_heard_everywhere_with_mix_minus(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    s = await remote_speaker_setup(node_factory, api_factory, clients)
    listeners = [
        await whep(s["room"]["whep_url"], clients),
        await whep(s["mirror_b"]["whep_url"], clients),
        await whep(s["mirror_c"]["whep_url"], clients),
    ]
    for listener in listeners:
        await mixed(listener, 440, 660)
    await only(s["alice_peer"], 660, 440)
    await only(s["bob_peer"], 440, 660)
    await s["bob_socket"].close()


async def test_a_remote_speaker_who_publishes_again_is_heard_again(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    # A reconnect (a new WHIP session on B) must not look like old, late audio to A.
    s = await remote_speaker_setup(node_factory, api_factory, clients, with_c=False)
    on_a = await whep(s["room"]["whep_url"], clients)
    await mixed(on_a, 440, 660)
    await s["bob_peer"].pc.close()  # gone without a DELETE, like a closed tab
    await whip(s["mirror_b"]["whip_url"], s["bob_token"], 660, clients)
    await mixed(on_a, 440, 660)
    # Over TCP nothing arrives out of order: none of the new session's audio was dropped
    # as "late" (it would be, were its sequence to restart at 0).
    assert (await relay_stats(s["a"]))["late"] == 0
    await s["bob_socket"].close()


async def test_room_survives_kill_of_its_origin(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    s = await remote_speaker_setup(node_factory, api_factory, clients)
    b, c = s["b"], s["c"]
    on_b = await whep(s["mirror_b"]["whep_url"], clients)
    on_c = await whep(s["mirror_c"]["whep_url"], clients)
    await mixed(on_b, 440, 660)
    await mixed(on_c, 440, 660)

    killed = time.monotonic()
    s["a"].stop(kill=True)
    # Both listeners keep their sessions; they hear bob (660 Hz) again, now mixed on B.
    await asyncio.gather(hears(on_b, 660, tries=40), hears(on_c, 660, tries=40))
    gap = time.monotonic() - killed
    print(f"failover: audio back on B and C {gap:.2f} s after kill -9 of A (upper bound)")

    stats_b = await relay_stats(b)
    assert stats_b["rooms"][s["mirror_b"]["id"]]["promoted"] is True
    doc = await get_json(f"{b.base_url}/api/v1/rooms/{s['mirror_b']['id']}")
    assert doc["state"] == "live"
    assert doc["title"] == "Across nodes"
    assert doc["epoch"] == 1
    assert {m["username"]: m["role"] for m in doc["speakers"]} == {
        f"alice@127.0.0.1:{s['a'].port}": "host",
        "bob": "speaker",
    }

    async def c_follows_epoch_1() -> bool:
        doc_c = await get_json(f"{c.base_url}/api/v1/rooms/{s['mirror_c']['id']}")
        return bool(doc_c["epoch"] == 1 and doc_c["acting_origin"] == b.base_url)

    await until(c_follows_epoch_1, what="C follows B at epoch 1")
    await s["bob_socket"].close()


async def room_doc(node: NodeProcess, room_id: str) -> dict[str, Any] | None:
    """The room as ``node`` shows it, or None while it answers otherwise (e.g. 409 while
    a restarted origin asks the succession list)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{node.base_url}/api/v1/rooms/{room_id}")
    return dict(response.json()) if response.status_code == 200 else None


async def test_a_crashed_origin_comes_back_as_a_relay_of_its_successor(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    from tests.federation_helpers import db_rows

    s = await remote_speaker_setup(node_factory, api_factory, clients, with_c=False)
    a, b, room = s["a"], s["b"], s["room"]
    on_b = await whep(s["mirror_b"]["whep_url"], clients)
    await mixed(on_b, 440, 660)

    a.stop(kill=True)
    await hears(on_b, 660, tries=40)

    async def b_took_over() -> bool:
        doc = await room_doc(b, s["mirror_b"]["id"])
        return bool(doc and doc["epoch"] == 1 and doc["promoted"])

    await until(b_took_over, what="B acting origin at epoch 1")

    a.start()  # same data directory

    async def a_follows_b() -> dict[str, Any] | None:
        doc = await room_doc(a, room["id"])
        ok = (
            doc is not None
            and doc["state"] == "live"
            and doc["remote"] is True
            and doc["epoch"] == 1
            and doc["acting_origin"] == b.base_url
            and doc["upstream"]
            == s["mirror_b"]["url"]
            .replace("http://", "ws://")
            .replace("/rooms/", "/relay/v1/rooms/")
        )
        return doc if ok else None

    doc = await until(a_follows_b, what="A's room follows B at epoch 1")
    assert {m["username"]: m["role"] for m in doc["speakers"]} == {
        "alice": "host",
        f"bob@127.0.0.1:{b.port}": "speaker",
    }
    # A's own listeners hear the room as B mixes it (bob; alice's session died with A).
    on_a = await whep(room["whep_url"], clients)
    await hears(on_a, 660)
    # B counts A as a relay now; no second acting origin anywhere.
    stats_b = await relay_stats(b)
    assert stats_b["rooms"][s["mirror_b"]["id"]]["subscribers"] == 1
    assert (await room_doc(b, s["mirror_b"]["id"]) or {})["epoch"] == 1
    # Nothing announced the room ended: its note is still live, the room row too.
    assert db_rows(a, "select state from fed_room_notes where room_id = ?", (room["id"],)) == [
        ("live",)
    ]
    assert db_rows(a, "select state from rooms where id = ?", (room["id"],)) == [("live",)]
    assert "ended" not in a.log().split("Parley node starting")[-1].lower()
    # The host's own node lists her live room, carried on by B.
    rooms_on_a = await get_json(f"{a.base_url}/api/v1/rooms")
    assert room["id"] in [r["id"] for r in rooms_on_a["rooms"]]
    await s["bob_socket"].close()


async def test_moving_a_live_room_to_one_of_its_relays(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    a, b, c = node_factory(), node_factory(), node_factory()
    alice, room, _ = await live_room_with_speaker(api_factory(a), a, clients)
    bob = api_factory(b).signup("bob")
    carol = api_factory(c).signup("carol")
    mirror_b = await join_remote(b, bob, room["url"])
    mirror_c = await join_remote(c, carol, room["url"])
    listeners = {
        "A": await whep(room["whep_url"], clients),
        "B": await whep(mirror_b["whep_url"], clients),
        "C": await whep(mirror_c["whep_url"], clients),
    }
    for peer in listeners.values():
        await hears(peer, 440)

    move = f"{a.base_url}/api/v1/rooms/{room['id']}/move"
    # Only the host or a cohost, only to a node that relays the room now.
    mallory = api_factory(a).signup("mallory")
    assert (await post(move, mallory, {"to": b.base_url})).status_code == 403
    assert (await post(move, alice, {"to": "http://127.0.0.1:9"})).status_code == 409
    assert (await post(move, alice, {"to": 7})).status_code == 422
    response = await post(move, alice, {"to": b.base_url})
    assert response.status_code == 200, response.text

    async def moved(node: NodeProcess, room_id: str) -> bool:
        doc = await room_doc(node, room_id)
        return bool(doc and doc["epoch"] == 1 and doc["acting_origin"] == b.base_url)

    await until(lambda: moved(b, mirror_b["id"]), what="B acting origin at epoch 1")
    await until(lambda: moved(a, room["id"]), what="A follows B")
    await until(lambda: moved(c, mirror_c["id"]), what="C follows B")
    assert (await room_doc(b, mirror_b["id"]) or {})["promoted"] is True
    b_relay = mirror_b["url"].replace("http://", "ws://").replace("/rooms/", "/relay/v1/rooms/")
    assert (await room_doc(c, mirror_c["id"]) or {})["upstream"] == b_relay
    assert (await room_doc(a, room["id"]) or {})["upstream"] == b_relay

    async def both_relay_from_b() -> bool:
        stats = await relay_stats(b)
        return bool(stats["rooms"][mirror_b["id"]].get("subscribers") == 2)

    await until(both_relay_from_b, what="A and C relay from B")
    # Alice's session on A fed A's mixer and was closed by the move; her client publishes
    # again (to A, which sends it up to B).
    await whip(room["whip_url"], alice, 440, clients)
    for peer in listeners.values():
        await hears(peer, 440, tries=30)
    # A is no longer an acting origin: a second move from A is refused.
    assert (await post(move, alice, {"to": c.base_url})).status_code == 403
    # Alice's own node still lists her live room.
    rooms_on_a = await get_json(f"{a.base_url}/api/v1/rooms")
    assert room["id"] in [r["id"] for r in rooms_on_a["rooms"]]


# --------------------------------------------------------------------------- faults


def instance_key(node: NodeProcess) -> tuple[str, str]:
    from tests.federation_helpers import db_rows

    rows = db_rows(node, "select value from fed_instance where name = 'private_pem'")
    return f"{node.base_url}/actor#main-key", str(rows[0][0])


async def relay_connect(
    origin: NodeProcess, room_id: str, signer: NodeProcess | None, **kwargs: Any
) -> Any:
    import websockets

    from federation.signatures import sign_request

    url = f"ws://127.0.0.1:{origin.port}/relay/v1/rooms/{room_id}"
    headers: dict[str, str] = {}
    if signer is not None:
        key_id, pem = instance_key(signer)
        signed = sign_request("GET", url.replace("ws://", "http://"), {}, None, key_id, pem)
        headers = {k: v for k, v in signed.items() if k.lower() != "host"}
    return await websockets.connect(
        url, additional_headers=headers, ping_interval=None, max_size=2**20, **kwargs
    )


async def refused_status(origin: NodeProcess, room_id: str, signer: NodeProcess | None) -> int:
    from websockets.exceptions import InvalidStatus

    try:
        ws = await relay_connect(origin, room_id, signer)
    except InvalidStatus as exc:
        return int(exc.response.status_code)
    await ws.close()
    return 101


async def test_relay_refuses_unsigned_and_blocked_subscribers(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a = node_factory(federation={"blocked_domains": ["127.0.0.1"]})
    b = node_factory()
    room = api_factory(a).live_room(api_factory(a).signup("alice"))
    api_factory(b).signup("bob")  # B's instance key exists once it started
    assert await refused_status(a, room["id"], None) == 401
    assert await refused_status(a, room["id"], b) == 403
    assert (await relay_stats(a))["refused_subscriptions"] == 2


async def test_relay_survives_bad_frames_slow_relays_and_reconnect_storms(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    from federation.relay import AudioFrame, FrameKind

    a, b = node_factory(), node_factory()
    _, room, _ = await live_room_with_speaker(api_factory(a), a, clients)
    stranger = f"mallory@127.0.0.1:{b.port}"

    ws = await relay_connect(a, room["id"], b)
    snapshot = await ws.recv()
    assert '"type":"snapshot"' in snapshot
    # Garbage, an unknown control message, uplink for someone not on stage, and the same
    # uplink packet again plus an older one: all dropped and counted, the stream goes on.
    await ws.send(b"\x07garbage")
    await ws.send('{"type":"snapshot","room":{},"epoch":9}')
    await ws.send("not json")
    for seq in (5, 5, 3):
        await ws.send(AudioFrame(FrameKind.UPLINK, stranger, seq, 0, b"\xf8\xff\xfe").serialize())
    # Someone else's user: refused even if the frame is well formed.
    other = AudioFrame(FrameKind.UPLINK, "eve@elsewhere.example", 1, 0, b"\xf8\xff\xfe")
    await ws.send(other.serialize())

    async def counted() -> dict[str, Any] | None:
        stats = await relay_stats(a)
        ok = (
            stats["malformed"] >= 3
            and stats["duplicates"] >= 1
            and stats["late"] >= 1
            and stats["uplink_refused"] >= 2
        )
        return stats if ok else None

    await until(counted, what="bad frames counted")
    program = 0
    while program < 10:
        message = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(message, bytes):
            frame = AudioFrame.parse(message)
            assert frame.kind is FrameKind.PROGRAM
            program += 1
    await ws.close()

    # A reconnect storm: 50 signed and 50 unsigned attempts, each closed at once.
    for _ in range(50):
        storm = await relay_connect(a, room["id"], b)
        await storm.close()
        assert await refused_status(a, room["id"], None) == 401

    async def no_subscribers() -> bool:
        stats = await relay_stats(a)
        return bool(stats["rooms"].get(room["id"], {}).get("subscribers", 0) == 0)

    await until(no_subscribers, what="no relay connection left over")
    # The node still serves the room.
    listener = await whep(room["whep_url"], clients)
    await hears(listener, 440)


async def test_a_slow_relay_is_dropped_not_waited_for() -> None:
    """In-process: a subscriber whose bounded queue is full is closed and removed, and
    the others keep getting every packet (the kernel's socket buffers make this hard to
    provoke deterministically between processes)."""
    from types import SimpleNamespace

    from federation.relay import CloseCode, SequenceFilter, SuccessionEntry
    from node.onair.events import RoomEvents
    from node.relaying.counters import RelayCounters
    from node.relaying.hub import SUBSCRIBER_QUEUE, RelayHub, RelaySubscriber
    from node.relaying.names import Names
    from node.succession import Carriage

    counters = RelayCounters()
    own = SuccessionEntry("http://a.example", "ws://a.example/relay/v1/rooms/r1")
    on_air = SimpleNamespace(
        room=SimpleNamespace(id="r1"),
        events=RoomEvents(),
        carriage=Carriage.origin_of(own, "http://a.example/rooms/r1"),
        relayed_listeners=0,
        count_listeners=lambda: None,
        source=None,
    )
    hub = RelayHub(
        on_air,  # type: ignore[arg-type]
        names=Names("a.example"),
        counters=counters,
        uplink_filter=SequenceFilter(),
        room_json=lambda o: {"url": "http://a.example/rooms/r1"},
        changed=lambda o: None,
    )
    slow, fast = RelaySubscriber("slow.example", None), RelaySubscriber("fast.example", None)
    hub.subscribers = [slow, fast]
    for _ in range(SUBSCRIBER_QUEUE + 5):
        for subscriber in list(hub.subscribers):
            hub._send(subscriber, b"packet")
        fast.queue.get_nowait()  # the fast one keeps up
    assert hub.subscribers == [fast]
    assert slow.closed and counters.slow_dropped == 1
    assert slow.close_code == CloseCode.TOO_SLOW
    # What is left for the fast one: the new snapshot (the succession list changed).
    left = [fast.queue.get_nowait() for _ in range(fast.queue.qsize())]
    assert len(left) <= 1


# --------------------------------------------------------------------------- survival


async def levels_seen(ws_url: str, token: str | None, name: str) -> dict[str, float]:
    """The first ``levels`` event on a room WebSocket in which ``name`` speaks."""
    import json

    import websockets

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with websockets.connect(ws_url, additional_headers=headers) as socket:
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), 30))
            if message["type"] == "levels" and message["levels"].get(name, 0) > 0.01:
                return dict(message["levels"])


async def test_speaking_levels_reach_watchers_of_every_relay(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    s = await remote_speaker_setup(node_factory, api_factory, clients)
    a, b = s["a"], s["b"]
    # On C (A -> B -> C), alice of A and bob of B both light up, named as C names them.
    levels = await levels_seen(s["mirror_c"]["ws_url"], None, f"alice@127.0.0.1:{a.port}")
    assert set(levels) >= {f"alice@127.0.0.1:{a.port}", f"bob@127.0.0.1:{b.port}"}
    levels = await levels_seen(s["mirror_b"]["ws_url"], s["bob_token"], "bob")
    assert f"alice@127.0.0.1:{a.port}" in levels
    await s["bob_socket"].close()


async def test_room_survives_a_frozen_origin_and_tells_the_truth(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    import os
    import signal

    s = await remote_speaker_setup(node_factory, api_factory, clients)
    a, b, c = s["a"], s["b"], s["c"]
    on_b = await whep(s["mirror_b"]["whep_url"], clients)
    on_c = await whep(s["mirror_c"]["whep_url"], clients)
    await mixed(on_b, 440, 660)
    await mixed(on_c, 440, 660)
    alice_on_b = f"alice@127.0.0.1:{a.port}"

    assert a.process is not None
    os.kill(a.process.pid, signal.SIGSTOP)  # sockets open, nothing arrives: a cut link
    try:
        await asyncio.gather(hears(on_b, 660, tries=40), hears(on_c, 660, tries=40))

        async def truthful() -> dict[str, Any] | None:
            doc = await room_doc(b, s["mirror_b"]["id"])
            if doc is None or not doc["promoted"] or doc["epoch"] != 1:
                return None
            nodes = [e["node"] for e in doc["succession"]]
            alice = next(m for m in doc["speakers"] if m["username"] == alice_on_b)
            ok = (
                nodes == [b.base_url, c.base_url]  # A dropped, C present
                and not alice["publishing"]
                and not alice["connected"]
                and doc["whep_url"].startswith(b.base_url)
            )
            return doc if ok else None

        await until(truthful, what="B's room JSON: acting origin, A gone, C listed")
    finally:
        os.kill(a.process.pid, signal.SIGCONT)

    # A wakes up thinking it is the origin; it finds B carrying the room at a higher
    # epoch and follows it; its own room list still shows its host's live room.
    async def a_follows_b() -> bool:
        doc = await room_doc(a, s["room"]["id"])
        return bool(
            doc
            and doc.get("remote") is True
            and doc["epoch"] == 1
            and doc["acting_origin"] == b.base_url
        )

    await until(a_follows_b, what="A steps down and follows B")
    rooms_on_a = await get_json(f"{a.base_url}/api/v1/rooms")
    assert s["room"]["id"] in [r["id"] for r in rooms_on_a["rooms"]]
    # Alice's session on A outlived the freeze: her voice now goes up the relay to B,
    # and everyone hears both of them again, as B mixes them.
    on_a = await whep(s["room"]["whep_url"], clients)
    await mixed(on_a, 440, 660)
    await mixed(on_b, 440, 660)
    await s["bob_socket"].close()
