"""Attacks from other servers on real node processes, with real keys and signatures.

Each test is one hole found from outside (issue 9): a malicious server on the network
(tests/hostile.py) or a hostile user of another node tries it, and the node must refuse.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx

from federation.activities import AS_PUBLIC, build_follow
from federation.actors import ActorUrls, build_person
from federation.keys import generate_keypair
from tests.conftest import Api, NodeProcess
from tests.federation_helpers import (
    actor_url,
    db_rows,
    follow,
    private_key,
    remote_rooms,
    signed_post,
    wait_accepted,
    wait_for,
)
from tests.hostile import HostileServer, json_answer, redirect

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]


def _inbox_done(node: NodeProcess, activity_id: str) -> bool:
    rows = db_rows(node, "select state from fed_inbox where activity_id = ?", (activity_id,))
    return bool(rows) and rows[0][0] in ("done", "failed")


def _forged_person(victim_id: str, attacker: HostileServer, public_pem: str) -> dict:
    """An actor document that claims to be ``victim_id`` with the attacker's key and inbox."""
    urls = ActorUrls.for_user(victim_id.rsplit("/users/", 1)[0], victim_id.rsplit("/", 1)[1])
    doc = build_person(urls, username=urls.id.rsplit("/", 1)[1], name="Dave", summary="",
                       public_key_pem=public_pem)  # fmt: skip
    doc["inbox"] = f"{attacker.base_url}/inbox"
    doc["endpoints"] = {"sharedInbox": f"{attacker.base_url}/inbox"}
    return doc


# --------------------------------------------------------------------------- case 1


def test_a_document_cannot_claim_an_actor_of_another_origin(
    node_factory: NodeFactory, api_factory: ApiFactory, hostile_servers: Callable
) -> None:
    """Case 1: ``/evil`` on the attacker claims ``id: victim/users/dave`` with the
    attacker's key; the node must not cache it as dave, so the attacker's inbox POSTs
    signed as dave are refused and deliveries for dave do not go to the attacker."""
    victim, target = node_factory(), node_factory()
    api_v, api_t = api_factory(victim), api_factory(target)
    api_v.signup("dave")
    carol = api_t.signup("carol")
    room = api_t.create_room(carol)
    dave = actor_url(victim, "dave")
    attacker = hostile_servers()
    keys = generate_keypair()
    attacker.answers["/evil"] = json_answer(_forged_person(dave, attacker, keys.public_pem))

    # Anyone can make the node fetch a URL: "join from your server".
    joined = api_t.http.get(
        "/api/v1/remote-join", params={"handle": f"{attacker.base_url}/evil", "room": room["id"]}
    )
    assert joined.status_code in (200, 404), joined.text
    assert "/evil" in attacker.paths()
    cached = db_rows(target, "select inbox from fed_actors where id = ?", (dave,))
    assert all(inbox == f"{dave}/inbox" for (inbox,) in cached), cached

    # A signed-in user following the attacker's URL must not end up following "dave" at
    # the attacker's inbox either.
    api_t.request("POST", "/api/v1/follows", carol, json={"handle": f"{attacker.base_url}/evil"})
    assert not [s for s in attacker.seen if s.method == "POST"]

    # The attacker now signs as dave with its own key: refused.
    activity = build_follow(f"{dave}/follows/{uuid.uuid4()}", dave, actor_url(target, "carol"))
    response = signed_post(
        f"{target.base_url}/inbox",
        json.dumps(activity).encode(),
        key_id=f"{dave}#main-key",
        pem=keys.private_pem,
    )
    assert response.status_code == 401, response.text
    assert db_rows(target, "select count(*) from fed_followers")[0][0] == 0


# --------------------------------------------------------------------------- case 2


def test_a_key_on_another_port_of_the_same_host_is_not_the_actors(
    node_factory: NodeFactory, api_factory: ApiFactory, hostile_servers: Callable
) -> None:
    """Case 2: the attacker runs on the victim's host, another port. Its key document
    says it belongs to ``host:PORT/users/alice``; ports differ, so it does not."""
    victim, target = node_factory(), node_factory()
    api_factory(victim).signup("alice")
    carol = api_factory(target).signup("carol")
    alice = actor_url(victim, "alice")
    attacker = hostile_servers()
    keys = generate_keypair()
    doc = _forged_person(alice, attacker, keys.public_pem)
    doc["publicKey"] = {
        "id": f"{attacker.base_url}/key",
        "owner": alice,
        "publicKeyPem": keys.public_pem,
    }
    attacker.answers["/key"] = json_answer(doc)
    activity = build_follow(f"{alice}/follows/{uuid.uuid4()}", alice, actor_url(target, "carol"))
    response = signed_post(
        f"{target.base_url}/users/carol/inbox",
        json.dumps(activity).encode(),
        key_id=f"{attacker.base_url}/key",
        pem=keys.private_pem,
    )
    assert response.status_code == 401, response.text
    assert carol
    assert db_rows(target, "select count(*) from fed_followers")[0][0] == 0


# --------------------------------------------------------------------------- case 3


def test_remote_rooms_cannot_reach_private_addresses(
    node_factory: NodeFactory, api_factory: ApiFactory, hostile_servers: Callable
) -> None:
    """Case 3: with the address policy on (only the attacker's loopback port allowed,
    standing in for a public server), no request a user causes reaches anything else: not
    directly, not through a redirect, not through the relay WebSocket the room JSON names;
    and errors say "unreachable", not what answered."""
    attacker, internal = hostile_servers(), hostile_servers()
    internal.answers["/api/v1/rooms/r1"] = json_answer({"secret": True}, "application/json")
    node = node_factory(
        federation={
            "allow_private_addresses": False,
            "allow_private_destinations": [attacker.netloc],
        }
    )
    api = api_factory(node)
    alice = api.signup("alice")

    def remote_room(url: str) -> httpx.Response:
        return api.request("POST", "/api/v1/remote-rooms", alice, json={"url": url})

    for url in (
        f"http://127.0.0.1:{internal.port}/rooms/r1",  # loopback service
        f"http://[::1]:{internal.port}/rooms/r1",  # IPv6 loopback
        "http://169.254.169.254/rooms/r1",  # cloud metadata
        f"http://localhost:{internal.port}/rooms/r1",  # a name for loopback
    ):
        response = remote_room(url)
        assert response.status_code == 404, (url, response.text)
        detail = response.json()["detail"]
        assert "unreachable" in detail and "404" not in detail and "Error" not in detail, detail

    # A "public" server redirecting to the internal one.
    attacker.answers["/api/v1/rooms/r2"] = redirect(f"{internal.base_url}/api/v1/rooms/r1")
    response = remote_room(f"{attacker.base_url}/rooms/r2")
    assert response.status_code == 404, response.text
    assert "302" not in response.json()["detail"]

    # A room JSON whose URL sends the relay WebSocket to the internal server.
    attacker.answers["/api/v1/rooms/r3"] = json_answer(
        {"id": "r1", "url": f"{internal.base_url}/rooms/r1", "state": "live", "title": "x"},
        "application/json",
    )
    response = remote_room(f"{attacker.base_url}/rooms/r3")
    time.sleep(1.0)  # the mirror retries its upstream meanwhile
    # Follows and WebFinger go through the same policy.
    followed = api.request(
        "POST", "/api/v1/follows", alice, json={"handle": f"bob@127.0.0.1:{internal.port}"}
    )
    assert followed.status_code in (403, 404), followed.text
    assert internal.seen == [], [s.path for s in internal.seen]
    assert any(path.startswith("/api/v1/rooms/r3") for path in attacker.paths())


# --------------------------------------------------------------------------- case 4


def test_a_neighbour_cannot_end_someone_elses_room(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    """Case 4: mallory, on the same server as alice, sends Delete{Note} of alice's room
    announcement and an Update that says alice's room ended; the other node keeps it."""
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice, bob = api_a.signup("alice"), api_b.signup("bob")
    api_a.signup("mallory")
    follow(api_b, bob, f"alice@127.0.0.1:{a.port}")
    wait_accepted(api_b, bob, actor_url(a, "alice"))
    room = api_a.live_room(alice, "Alice's show")
    wait_for(lambda: remote_rooms(api_b), what="alice's room listed on B")
    (note_id,) = db_rows(b, "select note_id from fed_remote_rooms where state = 'live'")[0]
    mallory = actor_url(a, "mallory")
    key_id, pem = f"{mallory}#main-key", private_key(a, "mallory")

    delete = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{mallory}/activities/{uuid.uuid4()}",
        "type": "Delete",
        "actor": mallory,
        "to": [AS_PUBLIC],
        "object": {"id": note_id, "type": "Tombstone"},
    }
    room_url = f"{a.base_url}/rooms/{room['id']}"
    update = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{mallory}/activities/{uuid.uuid4()}",
        "type": "Update",
        "actor": mallory,
        "object": {
            "id": f"{mallory}/rooms/{room['id']}",
            "type": "Note",
            "attributedTo": mallory,
            "content": "ended",
            "room": {"type": "ParleyRoom", "id": room_url, "url": room_url, "name": "x",
                     "roomState": "ended", "host": mallory, "speakers": []},
        },
    }  # fmt: skip
    for activity in (delete, update):
        body = json.dumps(activity).encode()
        response = signed_post(f"{b.base_url}/inbox", body, key_id=key_id, pem=pem)
        assert response.status_code == 202, response.text
        wait_for(lambda a_id=activity["id"]: _inbox_done(b, a_id), what="B processed it")
    assert [r["title"] for r in remote_rooms(api_b)] == ["Alice's show"]

    # Alice herself may end it.
    api_a.request("POST", f"/api/v1/rooms/{room['id']}/end", alice)
    wait_for(lambda: not remote_rooms(api_b), what="alice's own end reaches B")


# --------------------------------------------------------------------------- case 5


def test_html_is_sanitised_going_out_and_coming_in(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    """Case 5: a bio with <script>/<img onerror> goes out as escaped text in the actor's
    summary; a room title and a display name with markup from another server are shown
    as plain text."""
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice, bob = api_a.signup("alice"), api_b.signup("bob")
    patched = api_a.request(
        "PATCH",
        "/api/v1/me",
        alice,
        json={
            "bio": '<script>alert(1)</script><img src=x onerror="alert(2)">hi',
            "display_name": "<b>Alice</b><img src=x onerror=alert(3)>",
        },
    )
    assert patched.status_code == 200, patched.text
    doc = httpx.get(
        actor_url(a, "alice"), headers={"Accept": "application/activity+json"}, timeout=10
    ).json()
    summary = doc["summary"]
    assert "<script" not in summary and "<img" not in summary, summary
    assert "&lt;script&gt;" in summary

    follow(api_b, bob, f"alice@127.0.0.1:{a.port}")
    wait_accepted(api_b, bob, actor_url(a, "alice"))
    api_a.live_room(alice, '<img src=x onerror="alert(4)">Morning show')
    listed = wait_for(lambda: remote_rooms(api_b), what="alice's room listed on B")
    assert listed[0]["title"] == "Morning show"
    assert "<" not in listed[0]["host"]["display_name"], listed[0]["host"]
    notes = db_rows(a, "select activity from fed_outbox")
    content = json.loads(notes[-1][0])["object"]["content"]
    assert "<img" not in content and "&lt;img" in content, content


async def test_a_signed_relay_subscription_with_a_broken_relay_url_is_a_400(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    """Found while closing case 3: ``relay=http://[::1`` (signed by a real node) made the
    subscription handler raise httpx.InvalidURL instead of answering."""
    import websockets
    from websockets.exceptions import InvalidStatus

    from federation.signatures import sign_request

    a, b = node_factory(), node_factory()
    room = api_factory(a).live_room(api_factory(a).signup("alice"))
    api_factory(b).signup("bob")
    (pem,) = db_rows(b, "select value from fed_instance where name = 'private_pem'")[0]
    for relay in ("http://[::1", f"http://127.0.0.1:{b.port}/x"):
        url = f"ws://127.0.0.1:{a.port}/relay/v1/rooms/{room['id']}?" + str(
            httpx.QueryParams({"relay": relay})
        )
        signed = sign_request("GET", url.replace("ws://", "http://"), {}, None,
                              f"{b.base_url}/actor#main-key", pem)  # fmt: skip
        headers = {k: v for k, v in signed.items() if k.lower() != "host"}
        try:
            ws = await websockets.connect(url, additional_headers=headers, open_timeout=10)
        except InvalidStatus as exc:
            assert exc.response.status_code == 400, exc.response.body
        else:
            await ws.close()
            raise AssertionError(f"relay={relay} was accepted")
