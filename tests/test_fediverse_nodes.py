"""Federation between real node processes on loopback: follows, announcements, delivery."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from federation.activities import build_follow
from federation.signatures import sign_request
from tests.conftest import Api, NodeProcess, free_port
from tests.federation_helpers import (
    actor_url,
    deliveries,
    follow,
    follows,
    handle,
    inbox_rows,
    private_key,
    remote_rooms,
    signed_get,
    signed_post,
    wait_accepted,
    wait_for,
)

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]


def _listing(api: Api, path: str, key: str) -> list[dict[str, Any]]:
    response = api.http.get(path)
    assert response.status_code == 200, response.text
    return list(response.json()[key])


def test_webfinger_actor_round_trip(node_factory: NodeFactory, api_factory: ApiFactory) -> None:
    a = node_factory()
    api = api_factory(a)
    api.signup("alice")
    jrd = httpx.get(
        f"{a.base_url}/.well-known/webfinger", params={"resource": f"acct:{handle(a, 'alice')}"}
    ).json()
    self_link = next(link for link in jrd["links"] if link["rel"] == "self")
    actor = httpx.get(self_link["href"], headers={"Accept": "application/activity+json"}).json()
    # Mastodon's check: the actor's preferredUsername and host give back the same acct.
    host = httpx.URL(actor["id"]).netloc.decode()
    assert f"acct:{actor['preferredUsername']}@{host}" == jrd["subject"]


def test_follow_announce_update_end_undo(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    bob = api_b.signup("bob")

    created = follow(api_b, bob, f"@{handle(a, 'alice')}")
    assert created == {
        "handle": handle(a, "alice"),
        "actor": actor_url(a, "alice"),
        "state": "pending",
    }
    wait_accepted(api_b, bob, actor_url(a, "alice"))

    # Both sides show the follow.
    followers = _listing(api_a, "/api/v1/accounts/alice/followers", "followers")
    assert [f["handle"] for f in followers] == [handle(b, "bob")]
    following = _listing(api_b, "/api/v1/accounts/bob/following", "following")
    assert [(f["handle"], f["state"]) for f in following] == [(handle(a, "alice"), "accepted")]
    collection = httpx.get(
        f"{a.base_url}/users/alice/followers?page=1",
        headers={"Accept": "application/activity+json"},
    ).json()
    assert collection["orderedItems"] == [actor_url(b, "bob")]

    # Alice goes live: B lists the room, with its origin.
    room = api_a.live_room(alice, "Morning show")
    listed = wait_for(lambda: remote_rooms(api_b), what="room listed on B")
    assert listed[0]["title"] == "Morning show"
    assert listed[0]["origin"] == f"127.0.0.1:{a.port}"
    assert listed[0]["url"] == room["url"]
    assert listed[0]["host"]["handle"] == handle(a, "alice")

    # A title change reaches B as an Update.
    response = api_a.request(
        "PATCH", f"/api/v1/rooms/{room['id']}", alice, json={"title": "Evening show"}
    )
    assert response.status_code == 200, response.text
    wait_for(
        lambda: [r for r in remote_rooms(api_b) if r["title"] == "Evening show"],
        what="Update on B",
    )
    assert deliveries(a, "Update"), "the title change went out as an Update"

    # The end: B stops listing it.
    response = api_a.request("POST", f"/api/v1/rooms/{room['id']}/end", alice)
    assert response.status_code == 200, response.text
    wait_for(lambda: not remote_rooms(api_b), what="room gone from B")

    # The outbox holds the Create.
    outbox = httpx.get(
        f"{a.base_url}/users/alice/outbox?page=1", headers={"Accept": "application/activity+json"}
    ).json()
    assert "Create" in {item["type"] for item in outbox["orderedItems"]}

    # Undo removes the follow on both sides.
    response = api_b.request(
        "DELETE", "/api/v1/follows", bob, params={"handle": handle(a, "alice")}
    )
    assert response.status_code == 200, response.text
    assert follows(api_b, bob) == []
    wait_for(
        lambda: not _listing(api_a, "/api/v1/accounts/alice/followers", "followers"),
        what="follower removed on A",
    )


def test_three_followers_on_one_server_get_one_request(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    for name in ("carol", "dave", "erin"):
        token = api_b.signup(name)
        follow(api_b, token, handle(a, "alice"))
        wait_accepted(api_b, token, actor_url(a, "alice"))
    assert len(_listing(api_a, "/api/v1/accounts/alice/followers", "followers")) == 3

    api_a.live_room(alice, "One for all")
    wait_for(lambda: remote_rooms(api_b), what="room listed on B")

    # B may list the room before A's worker has recorded B's answer: wait for the record.
    def settled() -> list[dict[str, Any]] | None:
        rows = deliveries(a, "Create")
        return rows if rows and all(d["state"] != "queued" for d in rows) else None

    creates = wait_for(settled, what="A's Create deliveries recorded")
    assert [(d["inbox"], d["state"]) for d in creates] == [(f"{b.base_url}/inbox", "delivered")]
    (state, receipts), *_ = inbox_rows(b, creates[0]["activity"]["id"])
    assert receipts == 1


def test_delivery_survives_kill_9(node_factory: NodeFactory, api_factory: ApiFactory) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    bob = api_b.signup("bob")
    follow(api_b, bob, handle(a, "alice"))
    wait_accepted(api_b, bob, actor_url(a, "alice"))

    b.stop()
    api_a.live_room(alice, "Through the outage")
    # Wait until A has tried (and failed) once, so the row is queued for a retry.
    create = wait_for(
        lambda: [d for d in deliveries(a, "Create") if d["tries"] >= 1 and d["state"] == "queued"],
        what="failed first attempt",
    )[0]
    a.stop(kill=True)

    b.start()
    a.start()
    activity_id = create["activity"]["id"]
    wait_for(lambda: inbox_rows(b, activity_id), what="Create arrives after restart")
    wait_for(
        lambda: [d for d in deliveries(a, "Create") if d["state"] == "delivered"],
        what="delivery row marked delivered",
    )
    assert [d["state"] for d in deliveries(a, "Create")] == ["delivered"]
    (_, receipts), *_ = inbox_rows(b, activity_id)
    assert receipts == 1  # exactly once
    # The room ended with A's restart; B heard that too and lists nothing.
    wait_for(lambda: deliveries(a, "Update"), what="ended Update queued on restart")
    wait_for(lambda: not remote_rooms(api_b), what="ended room not listed")


# --------------------------------------------------------------------------- inbox safety


def _bob_signer(b: NodeProcess) -> tuple[str, str]:
    return f"{actor_url(b, 'bob')}#main-key", private_key(b, "bob")


def _follow_body(a: NodeProcess, b: NodeProcess) -> bytes:
    bob = actor_url(b, "bob")
    return json.dumps(
        build_follow(f"{bob}/follows/{uuid.uuid4()}", bob, actor_url(a, "alice"))
    ).encode()


@pytest.fixture
def two_nodes(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> tuple[NodeProcess, NodeProcess]:
    a, b = node_factory(), node_factory()
    api_factory(a).signup("alice")
    api_factory(b).signup("bob")
    return a, b


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": 5, "id": "x"}', "type"),
        (b'{"type": "Follow", "id": "http://127.0.0.1/x"}', "actor"),
    ],
)
def test_inbox_malformed_body_is_400_with_reason(
    two_nodes: tuple[NodeProcess, NodeProcess], body: bytes, reason: str
) -> None:
    a, b = two_nodes
    key_id, pem = _bob_signer(b)
    response = signed_post(f"{a.base_url}/inbox", body, key_id=key_id, pem=pem)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_activity"
    assert reason in response.json()["detail"]


def test_inbox_signatures(two_nodes: tuple[NodeProcess, NodeProcess]) -> None:
    a, b = two_nodes
    key_id, pem = _bob_signer(b)
    inbox = f"{a.base_url}/users/alice/inbox"
    unsigned = httpx.post(inbox, content=_follow_body(a, b))
    assert unsigned.status_code == 401
    assert unsigned.json()["error"] == "unauthorized"

    wrong_key = private_key(a, "alice")  # right key id, someone else's key
    forged = signed_post(inbox, _follow_body(a, b), key_id=key_id, pem=wrong_key)
    assert forged.status_code == 401, forged.text

    body = _follow_body(a, b)
    signed = signed_post(inbox, body, key_id=key_id, pem=pem)
    assert signed.status_code == 202, signed.text
    # A body that does not match the signed digest.
    headers = sign_request(
        "POST", inbox, {"Content-Type": "application/activity+json"}, body, key_id, pem
    )
    tampered = httpx.post(inbox, content=body.replace(b"Follow", b"Folloq"), headers=headers)
    assert tampered.status_code == 401, tampered.text

    rfc9421 = signed_post(inbox, _follow_body(a, b), key_id=key_id, pem=pem, rfc9421=True)
    assert rfc9421.status_code == 202, rfc9421.text
    wait_for(
        lambda: _listing_http(a, "/api/v1/accounts/alice/followers", "followers"),
        what="the signed Follow processed",
    )


def _listing_http(node: NodeProcess, path: str, key: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{node.base_url}{path}").json()[key])


def test_inbox_over_1mb_is_413(two_nodes: tuple[NodeProcess, NodeProcess]) -> None:
    a, b = two_nodes
    key_id, pem = _bob_signer(b)
    body = b'{"pad": "' + b"x" * 1_100_000 + b'"}'
    response = signed_post(f"{a.base_url}/inbox", body, key_id=key_id, pem=pem)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    unsigned = httpx.post(f"{a.base_url}/inbox", content=body)
    assert unsigned.status_code == 413


# --------------------------------------------------------------------------- blocking


class NodeAt(NodeProcess):
    """A node on another loopback address (127.0.0.2): a different domain to block."""

    address: str = "127.0.0.2"

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def sections(self) -> dict[str, dict[str, Any]]:
        sections = super().sections()
        sections["node"].update(base_url=self.base_url, host=self.address)
        return sections


def test_blocked_domain_refused_both_ways(
    tmp_path: Path, node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a = node_factory(federation={"blocked_domains": ["127.0.0.2"]})
    directory = tmp_path / "blocked"
    directory.mkdir()
    b = NodeAt(directory, free_port())
    b.start()
    try:
        api_a, api_b = api_factory(a), api_factory(b)
        alice = api_a.signup("alice")
        bob = api_b.signup("bob")
        # Incoming: a request signed by the blocked domain is refused before any fetch.
        key_id, pem = f"{b.base_url}/users/bob#main-key", private_key(b, "bob")
        body = json.dumps(
            build_follow(f"{b.base_url}/f/1", f"{b.base_url}/users/bob", actor_url(a, "alice"))
        ).encode()
        response = signed_post(f"{a.base_url}/inbox", body, key_id=key_id, pem=pem)
        assert response.status_code == 403
        assert response.json()["error"] == "blocked_domain"
        fetched = signed_get(f"{a.base_url}/users/alice", key_id=key_id, pem=pem)
        assert fetched.status_code == 403
        # B cannot even look alice up: A refuses the blocked node's signed GETs.
        response = api_b.request(
            "POST", "/api/v1/follows", bob, json={"handle": handle(a, "alice")}
        )
        assert response.status_code == 403, response.text
        assert _listing_http(a, "/api/v1/accounts/alice/followers", "followers") == []
        # Outgoing: A will not look up or follow anyone there.
        response = api_a.request(
            "POST", "/api/v1/follows", alice, json={"handle": f"bob@{b.address}:{b.port}"}
        )
        assert response.status_code == 403, response.text
        assert deliveries(a, "Follow") == []
    finally:
        b.stop()


# --------------------------------------------------------------------------- authorized fetch


def test_authorized_fetch(node_factory: NodeFactory, api_factory: ApiFactory) -> None:
    secure = {"federation": {"authorized_fetch": True}}
    a, b = node_factory(**secure), node_factory(**secure)
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    bob = api_b.signup("bob")
    accept = {"Accept": "application/activity+json"}
    for path in ("/users/alice", "/users/alice/followers", "/users/alice/outbox"):
        response = httpx.get(f"{a.base_url}{path}", headers=accept)
        assert response.status_code == 401, path
    assert httpx.get(f"{a.base_url}/actor", headers=accept).status_code == 200
    assert httpx.get(
        f"{a.base_url}/.well-known/webfinger?resource=acct:{handle(a, 'alice')}"
    ).is_success
    key_id, pem = f"{actor_url(b, 'bob')}#main-key", private_key(b, "bob")
    for rfc9421 in (False, True):
        response = signed_get(f"{a.base_url}/users/alice", key_id=key_id, pem=pem, rfc9421=rfc9421)
        assert response.status_code == 200, response.text
        assert response.json()["preferredUsername"] == "alice"

    # Two secure-mode nodes still federate (keys come from the unsigned instance actor).
    follow(api_b, bob, handle(a, "alice"))
    wait_accepted(api_b, bob, actor_url(a, "alice"))
    api_a.live_room(alice, "Secure room")
    wait_for(lambda: remote_rooms(api_b), what="room listed on B")


def test_remote_join_sends_a_visitor_to_their_own_node(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    api_b.signup("bob")
    room = api_a.live_room(alice, "Visitors welcome")

    def join(**params: str) -> httpx.Response:
        return api_a.http.get("/api/v1/remote-join", params=params)

    for given in (handle(b, "bob"), "@" + handle(b, "bob")):
        response = join(handle=given, room=room["id"])
        assert response.status_code == 200, response.text
        origin = httpx.QueryParams(httpx.URL(response.json()["redirect"]).query)["origin"]
        assert response.json()["redirect"].startswith(f"{b.base_url}/rooms/remote?origin=")
        assert origin == room["url"]
        assert response.json()["handle"] == handle(b, "bob")
    # Someone of A itself stays on the room's own page.
    response = join(handle=handle(a, "alice"), room=room["id"])
    assert response.json()["redirect"] == room["url"]

    errors = [
        (join(handle=handle(b, "nobody"), room=room["id"]), 404),
        (join(handle="not a handle", room=room["id"]), 422),
        (join(handle=handle(b, "bob")), 422),
        (join(room=room["id"]), 422),
        (join(handle=handle(b, "bob"), room="nosuchroom"), 404),
    ]
    for response, status in errors:
        assert response.status_code == status, response.text
        assert set(response.json()) - {"field"} == {"error", "detail"}


def test_a_listed_room_this_node_relays_has_links_to_its_copy(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    # The links of a relayed room point here, so they work even when its node is gone.
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    bob = api_b.signup("bob")
    follow(api_b, bob, handle(a, "alice"))
    wait_accepted(api_b, bob, actor_url(a, "alice"))
    room = api_a.live_room(alice, "Relayed here")
    listed = wait_for(lambda: remote_rooms(api_b), what="room listed on B")
    assert listed[0]["whep_url"].startswith(a.base_url)
    response = api_b.request("POST", "/api/v1/remote-rooms", bob, json={"url": room["url"]})
    assert response.status_code in (200, 201), response.text
    copy = response.json()
    listed = remote_rooms(api_b)
    assert listed[0]["url"] == room["url"]
    assert listed[0]["whep_url"] == copy["whep_url"]
    assert listed[0]["listen_url"] == copy["listen_url"]
    assert listed[0]["local_url"] == copy["url"]
