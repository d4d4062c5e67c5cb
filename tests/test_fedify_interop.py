"""Interop with an independent implementation: a Fedify 2.3.6 peer (tests/fedify)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from federation.activities import build_follow
from tests.conftest import Api, NodeProcess
from tests.federation_helpers import (
    actor_url,
    follow,
    handle,
    private_key,
    remote_rooms,
    signed_post,
    wait_accepted,
    wait_for,
)
from tests.fedify_peer import FedifyPeer

PeerFactory = Callable[..., FedifyPeer]


CAVAGE = "draft-cavage-http-signatures-12"


def _verified(entry: dict[str, Any]) -> bool:
    return bool((entry.get("http_signature") or {}).get("verified"))


def _entry(peer: FedifyPeer, activity_type: str, timeout: float = 20.0) -> dict[str, Any]:
    """The first inbox entry of a type once the peer's own verifier has judged it."""

    def find(p: FedifyPeer) -> dict[str, Any] | None:
        for entry in p.inbox():
            if entry.get("type") == activity_type and entry.get("http_signature") is not None:
                return entry
        return None

    return dict(peer.wait_for(find, timeout, f"verified {activity_type}"))


def _followers(api: Api, username: str) -> list[str]:
    response = api.http.get(f"/api/v1/accounts/{username}/followers")
    return [f["actor"] for f in response.json()["followers"]]


@pytest.mark.parametrize("first_knock", ["rfc9421", CAVAGE])
def test_fedify_follows_us_and_hears_the_room(
    node: NodeProcess,
    api: Api,
    fedify_peers: PeerFactory,
    first_knock: str,
) -> None:
    peer = fedify_peers(first_knock=first_knock)
    alice = api.signup("alice")

    found = peer.lookup(handle(node, "alice"))
    assert found["is_actor"] and found["id"] == actor_url(node, "alice")

    result = peer.follow(handle(node, "alice"))
    assert result["delivered"], result
    assert result["actor"]["preferredUsername"] == "alice"
    wait_for(lambda: peer.actor_id in _followers(api, "alice"), what="Fedify listed as follower")
    # Our inbox verified Fedify's Follow in its first-knock format.
    follow_out = [o for o in peer.outgoing() if o["method"] == "POST"]
    assert follow_out and follow_out[0]["signature_format"] == first_knock

    accept = _entry(peer, "Accept")
    assert _verified(accept), accept["http_signature"]
    assert accept["signature_format"] == CAVAGE  # what we try first
    assert accept["handled_by"] is not None
    wait_for(
        lambda: any(
            f["actor"] == actor_url(node, "alice") and f["state"] == "accepted"
            for f in peer.following()
        ),
        what="peer sees the Accept",
    )

    api.live_room(alice, "Interop hour")
    create = _entry(peer, "Create")
    assert _verified(create), create["http_signature"]
    note = create["activity"]["object"]
    assert note["type"] == "Note"
    assert "Interop hour" in note["content"]
    assert "https://www.w3.org/ns/activitystreams#Public" in create["activity"]["to"]


@pytest.mark.parametrize("authorized_fetch", [False, True])
def test_we_follow_fedify(
    node: NodeProcess,
    api: Api,
    fedify_peers: PeerFactory,
    authorized_fetch: bool,
) -> None:
    peer = fedify_peers(authorized_fetch=authorized_fetch)
    bob = api.signup("carol")
    created = follow(api, bob, f"@{peer.handle}")
    assert created["actor"] == peer.actor_id
    wait_accepted(api, bob, peer.actor_id)
    assert actor_url(node, "carol") in peer.followers()
    # The Accept Fedify sent us was verified by our inbox and processed.
    if authorized_fetch:
        # Fedify's signed GETs of our actor passed our checks, and ours of Fedify's.
        assert any(r["method"] == "GET" and r["signature_format"] for r in peer.requests()), (
            peer.requests()
        )


@pytest.mark.parametrize("rfc9421", [False, True])
def test_our_signatures_verify_in_fedify(
    node: NodeProcess,
    api: Api,
    fedify_peers: PeerFactory,
    rfc9421: bool,
) -> None:
    peer = fedify_peers()
    api.signup("dave")
    me = actor_url(node, "dave")
    body = json.dumps(build_follow(f"{me}/follows/{uuid.uuid4()}", me, peer.actor_id)).encode()
    response = signed_post(
        peer.inbox_url,
        body,
        key_id=f"{me}#main-key",
        pem=private_key(node, "dave"),
        rfc9421=rfc9421,
    )
    assert response.status_code < 300, response.text
    entry = _entry(peer, "Follow")
    assert _verified(entry), entry["http_signature"]
    assert entry["signature_format"] == ("rfc9421" if rfc9421 else CAVAGE)
    # Fedify accepts; our inbox verifies its Accept and records the follower relation.
    wait_for(lambda: me in peer.followers(), what="Fedify lists dave")


def test_following_a_fedify_actor_lists_no_rooms(
    node: NodeProcess,
    api: Api,
    fedify_peers: PeerFactory,
) -> None:
    """A plain Note from Fedify's actor is not a room: nothing is listed."""
    peer = fedify_peers()
    token = api.signup("erin")
    follow(api, token, peer.handle)
    wait_accepted(api, token, peer.actor_id)
    assert remote_rooms(api) == []
