"""A visitor verified by node B, in a room B carries from node A, with real processes:
A knows them by their fediverse handle (B vouches for it), moderation on A applies to
them, and their voice goes up the relay (FEDERATION.md "Visitors across nodes")."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection

from federation.room_activities import RoomActivity, build_room_activity
from tests.conftest import Api, NodeProcess
from tests.federation_helpers import db_rows, signed_post
from tests.fedify_peer import FedifyPeer
from tests.test_relay_nodes import (
    get_json,
    instance_key,
    join_remote,
    live_room_with_speaker,
    member_on,
    mixed,
    until,
    watch,
)
from tests.test_signaling import whep, whip

pytestmark = pytest.mark.usefixtures("loopback_ice")

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]


async def verified_visitor(node: NodeProcess, room_id: str, peer: FedifyPeer) -> dict[str, Any]:
    """The peer's bob becomes a visitor of ``node`` as a person would: asks, reads the
    direct message the peer received, types the code."""
    async with httpx.AsyncClient(base_url=node.base_url, timeout=20) as http:
        asked = await http.post(
            "/api/v1/visitor/codes", json={"handle": f"@{peer.handle}", "room": room_id}
        )
        assert asked.status_code == 202, asked.text

        async def delivered() -> str | None:
            for entry in await asyncio.to_thread(peer.inbox):
                if entry.get("type") == "Create":
                    found = re.search(
                        r"<strong>(\w+)</strong>", entry["activity"]["object"]["content"]
                    )
                    return found.group(1) if found else None
            return None

        code = await until(delivered, what="the code at the peer")
        joined = await http.post(
            "/api/v1/visitor/sessions", json={"request": asked.json()["request"], "code": code}
        )
        assert joined.status_code == 201, joined.text
        return dict(joined.json())


async def post(url: str, token: str, body: dict[str, Any] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(url, json=body or {}, headers={"Authorization": f"Bearer {token}"})


async def test_a_visitor_of_b_speaks_in_a_room_of_a_and_a_moderates_them(
    node_factory: NodeFactory,
    api_factory: ApiFactory,
    clients: list[RTCPeerConnection],
    fedify_peers: Callable[..., FedifyPeer],
) -> None:
    a, b = node_factory(), node_factory()
    peer = fedify_peers()
    alice, room, _ = await live_room_with_speaker(api_factory(a), a, clients)
    carol = api_factory(b).signup("carol")
    mirror = await join_remote(b, carol, room["url"])
    visitor = await verified_visitor(b, mirror["id"], peer)
    token, handle = visitor["token"], peer.handle
    b_host = f"127.0.0.1:{b.port}"

    # Watching on B: A sees the visitor under the fediverse handle, vouched for by B.
    socket = await watch(mirror["ws_url"], token)
    seen = await until(lambda: member_on(a, room["id"], handle), what="the visitor on A")
    assert seen["visitor"] is True and seen["verified_by"] == b_host
    assert seen["display_name"] == "bob (Fedify test peer)"
    assert await member_on(a, room["id"], f"{handle}@{b_host}") is None  # not B's user

    # Their hand goes to A as an activity of B's instance actor naming them.
    api_b = f"{b.base_url}/api/v1/rooms/{mirror['id']}"
    raised = await post(f"{api_b}/hand", token)
    assert raised.status_code == 202, raised.text

    async def hand_on_a() -> bool:
        return handle in (await get_json(f"{a.base_url}/api/v1/rooms/{room['id']}"))["hands"]

    await until(hand_on_a, what="the visitor's hand on A")
    api_a = f"{a.base_url}/api/v1/rooms/{room['id']}"
    assert (await post(f"{api_a}/members/{handle}/invite", alice)).status_code == 200

    async def invited_on_b() -> bool:
        member = await member_on(b, mirror["id"], handle)
        return bool(member and member["invited"])

    await until(invited_on_b, what="the invitation on B")
    assert (await post(f"{api_b}/invitation", token, {"accept": True})).status_code == 202

    async def on_stage_on_b() -> bool:
        member = await member_on(b, mirror["id"], handle)
        return bool(member and member["role"] == "speaker")

    await until(on_stage_on_b, what="the visitor on stage")
    speaker = await whip(mirror["whip_url"], token, 660, clients)
    assert (await post(f"{api_b}/mute", token, {"muted": False})).status_code == 202

    async def publishing_on_a() -> bool:
        member = await member_on(a, room["id"], handle)
        return bool(member and member["publishing"] and not member["muted"])

    await until(publishing_on_a, what="the visitor's voice on A")
    listener = await whep(room["whep_url"], clients)
    await mixed(listener, 440, 660)
    assert speaker.pc.connectionState == "connected"

    # Moderation on A reaches them: blocked on A, kicked on B, and B's word no longer
    # brings them back.
    assert (await post(f"{api_a}/members/{handle}/block", alice)).status_code == 200
    kicked = None
    while kicked is None:
        message = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if message["type"] == "kicked" and message["username"] == handle:
            kicked = message
    assert kicked["blocked"] is True
    await socket.close()
    again = await watch(mirror["ws_url"], token)
    refused = json.loads(await asyncio.wait_for(again.recv(), 10))
    assert refused["type"] == "error" and refused["error"] == "forbidden"
    await again.close()
    assert await member_on(a, room["id"], handle) is None


async def test_a_node_may_not_vouch_for_the_origins_users_or_its_own(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    a, b = node_factory(), node_factory()
    api_a = api_factory(a)
    alice, room, _ = await live_room_with_speaker(api_a, a, clients)
    eve = api_a.signup("eve")
    carol = api_factory(b).signup("carol")
    await join_remote(b, carol, room["url"])
    eve_socket = await watch(room["ws_url"], eve)
    await until(lambda: member_on(a, room["id"], "eve"), what="eve in the room")

    key_id, pem = instance_key(b)
    forged = []
    for who in (f"eve@127.0.0.1:{a.port}", f"carol@127.0.0.1:{b.port}"):
        activity = RoomActivity(
            "parley:RaiseHand", f"{b.base_url}/actor", room["url"], visitor=who
        )
        doc = build_room_activity(f"{b.base_url}/actor/activities/{uuid.uuid4()}", activity)
        response = signed_post(
            f"{a.base_url}/inbox", json.dumps(doc).encode(), key_id=key_id, pem=pem
        )
        assert response.status_code == 202, response.text
        forged.append(doc["id"])

    async def processed() -> bool:
        rows = db_rows(a, "select activity_id, state from fed_inbox")
        return all(any(r == (i, "done") for r in rows) for i in forged)

    await until(processed, what="A's inbox worker took both")
    doc = await get_json(f"{a.base_url}/api/v1/rooms/{room['id']}")
    assert doc["hands"] == []
    assert all("@" not in m["username"] for m in doc["audience"])
    await eve_socket.close()
