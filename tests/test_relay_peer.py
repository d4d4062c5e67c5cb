"""A real node relaying a room of a minimal carrying node written from FEDERATION.md
(tests/relay_peer.py): discovery through ``relay_url``, what goes up, and what the
node does after each close code (FEDERATION.md, "Close codes")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from federation.relay import CloseCode
from federation.signatures import verify_request
from tests.conftest import Api, NodeProcess
from tests.relay_peer import CarryingPeer, Subscription

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]


@pytest.fixture
async def peer() -> AsyncIterator[CarryingPeer]:
    carrying = await CarryingPeer().start()
    yield carrying
    await carrying.stop()


async def room_on(node: NodeProcess, room_id: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{node.base_url}/api/v1/rooms/{room_id}")
    return dict(response.json()) if response.status_code == 200 else None


async def open_copy(node: NodeProcess, token: str, url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            f"{node.base_url}/api/v1/remote-rooms",
            json={"url": url},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def next_subscription(peer: CarryingPeer) -> Subscription:
    return await asyncio.wait_for(peer.subscriptions.get(), 20)


async def following(node: NodeProcess, room_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    doc = None
    while time.monotonic() < deadline:
        doc = await room_on(node, room_id)
        if doc and doc.get("carriage") == "following" and doc["title"] == "Peer room":
            return doc
        await asyncio.sleep(0.1)
    raise AssertionError(f"the copy never followed the peer: {doc}")


async def test_a_relay_subscribes_at_the_rooms_relay_url_and_reports_up(
    node_factory: NodeFactory, api_factory: ApiFactory, peer: CarryingPeer
) -> None:
    b = node_factory()
    bob = api_factory(b).signup("bob")
    copy = await open_copy(b, bob, peer.room_url)
    subscription = await next_subscription(peer)  # at the peer's own path, not Parley's
    await following(b, copy["id"])

    # Signed by B's instance actor; the signature covers the URL the peer was asked for.
    actor = httpx.get(f"{b.base_url}/actor", headers={"Accept": "application/activity+json"})
    assert subscription.headers["signature"].startswith(f'keyId="{b.base_url}/actor#main-key"')
    assert subscription.target.startswith(peer.relay_path + "?relay=")
    verify_request(
        "GET",
        f"{peer.base_url}{subscription.target}",
        subscription.headers,
        None,
        actor.json()["publicKey"]["publicKeyPem"],
    )
    assert subscription.query["relay"] == f"ws://127.0.0.1:{b.port}/relay/v1/rooms/{copy['id']}"

    # Up: listeners, presence (the full set) and relays at once, then pings well inside
    # the 5 s the carrying node waits; nothing malformed.
    await asyncio.sleep(2.5)
    kinds = [m["type"] for m in subscription.upward]
    assert {"listeners", "presence", "relays"} <= set(kinds[:3]), kinds
    assert kinds.count("ping") >= 3, kinds
    assert subscription.malformed == []
    first = {m["type"]: m for m in subscription.upward}
    assert first["presence"]["users"] == [] and first["relays"]["relays"] == []
    subscription.close.set_result(CloseCode.GOING_AWAY)


async def test_a_room_that_ended_upstream_ends_here_and_is_not_taken_over(
    node_factory: NodeFactory, api_factory: ApiFactory, peer: CarryingPeer
) -> None:
    """4902: the room ended; the relay must not walk its succession list (it would find
    itself next and carry on a room its host ended)."""
    b = node_factory()
    bob = api_factory(b).signup("bob")
    copy = await open_copy(b, bob, peer.room_url)
    subscription = await next_subscription(peer)
    await following(b, copy["id"])

    peer.refuse = 409  # as a node whose room ended answers a new subscription
    # Close without the "room ended" event before it: the close code alone must do.
    subscription.close.set_result(CloseCode.ROOM_ENDED)
    deadline = time.monotonic() + 20
    doc: dict[str, Any] | None = {}
    while time.monotonic() < deadline:
        doc = await room_on(b, copy["id"])
        assert doc is None or not doc.get("promoted"), doc
        if doc is None or doc["state"] == "ended":
            break
        await asyncio.sleep(0.1)
    assert doc is None or doc["state"] == "ended", doc
    assert peer.refused == 0  # it did not even try again


async def test_a_lost_upstream_is_tried_again_then_the_walk_takes_the_room_over(
    node_factory: NodeFactory, api_factory: ApiFactory, peer: CarryingPeer
) -> None:
    """1001 (or any close without a Parley code): the node is lost. The relay asks it
    once more, then walks the order; its own entry comes next, so it takes over at the
    next epoch of its slot (1)."""
    b = node_factory()
    bob = api_factory(b).signup("bob")
    copy = await open_copy(b, bob, peer.room_url)
    subscription = await next_subscription(peer)
    await following(b, copy["id"])

    peer.refuse = 503
    subscription.close.set_result(CloseCode.GOING_AWAY)
    deadline = time.monotonic() + 20
    doc: dict[str, Any] | None = {}
    while time.monotonic() < deadline:
        doc = await room_on(b, copy["id"])
        if doc and doc.get("promoted"):
            break
        await asyncio.sleep(0.1)
    assert doc and doc["promoted"] and doc["epoch"] == 1 and doc["state"] == "live", doc
    assert doc["acting_origin"] == b.base_url
    assert peer.refused >= 1  # asked once more before walking


async def test_a_replaced_connection_subscribes_again_and_never_walks(
    node_factory: NodeFactory, api_factory: ApiFactory, peer: CarryingPeer
) -> None:
    """4901: a newer subscription of the same node replaced this one; the relay subscribes
    again to the same node rather than walking."""
    b = node_factory()
    bob = api_factory(b).signup("bob")
    copy = await open_copy(b, bob, peer.room_url)
    first = await next_subscription(peer)
    await following(b, copy["id"])
    first.close.set_result(CloseCode.REPLACED)
    second = await next_subscription(peer)
    assert second.query["relay"] == first.query["relay"]
    doc = await following(b, copy["id"])
    assert not doc["promoted"] and doc["epoch"] == 0
    second.close.set_result(CloseCode.GOING_AWAY)
