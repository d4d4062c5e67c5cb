"""Reports across servers: ours forwarded as a ``Flag`` (as Mastodon does), theirs filed
in our queue; between two Parley nodes and with Fedify, the independent peer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import Api, NodeProcess
from tests.federation_helpers import wait_for
from tests.fedify_peer import FedifyPeer
from tests.moderation_helpers import make_admin
from tests.test_signaling import put_on_stage

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]
PeerFactory = Callable[..., FedifyPeer]


def _queue(api: Api, admin: str) -> list[dict[str, Any]]:
    response = api.request("GET", "/api/v1/admin/reports", admin)
    assert response.status_code == 200, response.text
    return list(response.json()["reports"])


def test_a_user_reports_a_remote_speaker_and_it_reaches_their_servers_queue(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    root_a = make_admin(a, api_a)
    alice = api_a.signup("alice")
    dave = api_a.signup("dave")
    room = api_a.live_room(alice, "Open mic")
    put_on_stage(api_a, room["id"], alice, dave, "dave")
    bob = api_b.signup("bob")
    mirror = api_b.request("POST", "/api/v1/remote-rooms", bob, json={"url": room["url"]})
    assert mirror.status_code == 201, mirror.text
    copy = mirror.json()
    dave_handle = f"dave@127.0.0.1:{a.port}"
    assert dave_handle in [m["username"] for m in copy["speakers"]]

    filed = api_b.request(
        "POST",
        "/api/v1/reports",
        bob,
        json={
            "target": "speaker",
            "room": copy["id"],
            "account": dave_handle,
            "comment": "Shouting slurs on stage.",
            "forward": True,
        },
    )
    assert filed.status_code == 201, filed.text
    report_b = filed.json()
    assert report_b["forward"] is True and report_b["target"]["local"] is False
    # B keeps it in its own queue too.
    root_b = make_admin(b, api_b)
    assert [r["id"] for r in _queue(api_b, root_b)] == [report_b["id"]]

    def arrived() -> dict[str, Any] | None:
        reports = _queue(api_a, root_a)
        return reports[0] if reports else None

    report_a = wait_for(arrived, what="the Flag filed in A's queue")
    assert report_a["forwarded_from"] == f"127.0.0.1:{b.port}"
    assert report_a["reporter"] is None  # other servers keep their reporters anonymous
    assert report_a["target"]["kind"] == "speaker"
    assert report_a["target"]["account"] == "dave"
    assert report_a["target"]["room_url"] == room["url"]
    assert report_a["comment"] == "Shouting slurs on stage."
    # A's moderator acts on it: dave is suspended, and the report says so.
    resolved = api_a.request(
        "POST",
        f"/api/v1/admin/reports/{report_a['id']}/resolve",
        root_a,
        json={"action": "suspend"},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["action_taken"] == "suspended dave"


def test_fedify_receives_our_flag_and_we_receive_its(
    node: NodeProcess, api: Api, fedify_peers: PeerFactory
) -> None:
    peer = fedify_peers()
    root = make_admin(node, api)
    alice = api.signup("alice")
    room = api.live_room(alice, "Reported room")

    # Fedify reports alice (and her room) to us: filed in our queue.
    sent = peer.flag(f"alice@127.0.0.1:{node.port}", "Spam in her room", objects=[room["url"]])
    assert sent["delivered"] is True, sent
    report = wait_for(lambda: _queue(api, root), what="Fedify's Flag in our queue")[0]
    assert report["forwarded_from"] == peer.base_url.split("//", 1)[1]
    assert report["target"] == {
        "kind": "room",
        "account": "alice",
        "actor": f"{node.base_url}/users/alice",
        "room_url": room["url"],
        "room_title": "Reported room",
        "local": True,
    }
    assert report["comment"] == "Spam in her room"

    # One of our users reports Fedify's bob and forwards it: a Flag reaches Fedify,
    # signed by our instance actor, naming bob, verified by Fedify's own verifier.
    rita = api.signup("rita")
    filed = api.request(
        "POST",
        "/api/v1/reports",
        rita,
        json={
            "target": "account",
            "account": peer.handle,
            "comment": "Impersonates a friend",
            "forward": True,
        },
    )
    assert filed.status_code == 201, filed.text

    def flag_at_peer() -> dict[str, Any] | None:
        for entry in peer.inbox():
            if entry.get("type") == "Flag" and entry.get("http_signature") is not None:
                return dict(entry)
        return None

    entry = wait_for(flag_at_peer, what="our Flag at Fedify")
    assert entry["http_signature"]["verified"] is True
    assert entry["http_signature"]["owner"] == f"{node.base_url}/actor"
    assert entry["status"] == 202
    assert entry["handled_by"] == "Flag"
    flag = entry["activity"]
    objects = flag["object"] if isinstance(flag["object"], list) else [flag["object"]]
    assert peer.actor_id in objects
    assert flag["content"] == "Impersonates a friend"
    assert flag["actor"] == f"{node.base_url}/actor"


def test_a_suspension_tells_no_one_until_it_is_made_final(
    node: NodeProcess, api: Api, fedify_peers: PeerFactory
) -> None:
    peer = fedify_peers()
    root = make_admin(node, api)
    api.signup("alice")
    result = peer.follow(f"alice@127.0.0.1:{node.port}")
    assert result["delivered"], result
    wait_for(
        lambda: any(f["state"] == "accepted" for f in peer.following()),
        what="Fedify follows alice",
    )
    # The peer checks each inbox POST's signature again after Fedify handled it (and keeps
    # the key it fetched): wait for that check of alice's Accept, so alice's key is fetched
    # before her actor answers 410, as a server that got her Accept would have it.
    wait_for(
        lambda: any(
            e.get("type") == "Accept" and (e.get("http_signature") or {}).get("verified")
            for e in peer.inbox()
        ),
        what="alice's Accept verified at Fedify",
    )
    suspended = api.request("POST", "/api/v1/admin/accounts/alice/suspend", root, json={})
    assert suspended.status_code == 200, suspended.text
    # Fedify looking alice up now hears she is gone (410), and nothing was sent to it.
    lookup = peer.http.post("/_control/lookup", json={"handle": f"alice@127.0.0.1:{node.port}"})
    assert lookup.status_code != 200
    assert not [e for e in peer.inbox() if e.get("type") == "Delete"]
    deleted = api.request("POST", "/api/v1/admin/accounts/alice/delete", root)
    assert deleted.status_code == 200, deleted.text

    def delete_at_peer() -> dict[str, Any] | None:
        for entry in peer.inbox():
            if entry.get("type") == "Delete" and entry.get("http_signature") is not None:
                return dict(entry)
        return None

    entry = wait_for(delete_at_peer, what="the Delete at Fedify")
    actor = f"{node.base_url}/users/alice"
    assert entry["actor"] == actor and entry["object_id"] == actor
    # Signed with alice's key (kept until this Delete went out), checked by Fedify.
    assert entry["http_signature"]["verified"] is True, entry["http_signature"]
    assert entry["http_signature"]["owner"] == actor
