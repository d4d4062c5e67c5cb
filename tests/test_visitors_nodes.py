"""Joining as your fediverse self, with real processes: a node, and a Fedify peer (an
independent ActivityPub implementation) playing the visitor's server. The peer receives
the direct message; the test reads the code from the delivered Note, as its owner would.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import Api, NodeProcess, free_port
from tests.federation_helpers import wait_for
from tests.fedify_peer import FedifyPeer
from tests.test_room_socket import member_event, next_of

PeerFactory = Callable[..., FedifyPeer]
Clients = Callable[[NodeProcess], httpx.Client]
AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def mastodon_visibility(activity: dict[str, Any], followers: str | None) -> str:
    """How Mastodon files a Create{Note}, from its source (read, not copied):
    app/lib/activitypub/parser/status_parser.rb ``visibility``: public when ``to`` holds
    Public, unlisted when ``cc`` does, private when ``to`` holds the sender's followers
    collection, direct otherwise; and app/lib/activitypub/activity/create.rb
    ``process_audience``: an addressee in ``to``/``cc`` who has no Mention tag is a silent
    mention, which turns direct into limited."""
    note = activity["object"]

    def audience(key: str) -> list[str]:
        value = note.get(key, activity.get(key)) or []
        return [value] if isinstance(value, str) else list(value)

    to, cc = audience("to"), audience("cc")
    public = {AS_PUBLIC, "as:Public", "Public"}
    if public & set(to):
        return "public"
    if public & set(cc):
        return "unlisted"
    if followers is not None and followers in to:
        return "private"
    mentioned = {t.get("href") for t in note.get("tag", []) if t.get("type") == "Mention"}
    if any(actor not in mentioned for actor in to + cc):
        return "limited"
    return "direct"


def socket(room: dict[str, Any], token: str) -> ClientConnection:
    return connect(
        room["ws_url"], additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10
    )


def code_messages(peer: FedifyPeer) -> list[dict[str, Any]]:
    """Create activities the peer received, once its own verifier has judged each."""
    return [e for e in peer.inbox() if e.get("type") == "Create" and e.get("http_signature")]


@pytest.fixture
def http_clients() -> Iterator[Callable[[NodeProcess], httpx.Client]]:
    """Browser-like clients of a node (they keep cookies); closed after the test."""
    made: list[httpx.Client] = []

    def make(node: NodeProcess) -> httpx.Client:
        made.append(httpx.Client(base_url=node.base_url, timeout=15))
        return made[-1]

    yield make
    for client in made:
        client.close()


def code_of(entry: dict[str, Any]) -> tuple[str, str, str]:
    """(code, link, report link) as the person reads them in the delivered Note."""
    content = entry["activity"]["object"]["content"]
    code = re.search(r"<strong>([A-Z0-9]+)</strong>", content)
    links = re.findall(r'href="([^"]+#visitor[^"]*)"', content)
    assert code is not None, content
    link = next(html.unescape(x) for x in links if "#visitor=" in x)
    report = next(html.unescape(x) for x in links if "#visitor-report=" in x)
    return code.group(1), link, report


def ask(client: httpx.Client, peer: FedifyPeer, room: str) -> httpx.Response:
    return client.post("/api/v1/visitor/codes", json={"handle": f"@{peer.handle}", "room": room})


def test_code_by_direct_message_makes_a_visitor(
    node: NodeProcess, api: Api, fedify_peers: PeerFactory, http_clients: Clients
) -> None:
    peer = fedify_peers()
    alice = api.signup("alice")
    room = api.live_room(alice, "Ask me anything")
    guest = http_clients(node)

    asked = ask(guest, peer, room["id"])
    assert asked.status_code == 202, asked.text
    sent = asked.json()
    assert sent["handle"] == peer.handle
    assert sent["display_name"] == "bob (Fedify test peer)"

    entry = wait_for(lambda: code_messages(peer), what="the direct message at the peer")[0]
    # Fedify's own verifier accepted our instance actor's signature, and its inbox took it.
    assert entry["http_signature"]["verified"], entry["http_signature"]
    assert entry["status"] == 202 and entry["path"] == f"/users/{peer.username}/inbox"
    activity = entry["activity"]
    note = activity["object"]
    # What Mastodon needs to show a private mention: to the actor alone, a Mention tag
    # with href and name, no Public, no followers collection anywhere.
    assert activity["actor"] == f"{node.base_url}/actor"
    assert activity["to"] == [peer.actor_id] and note["to"] == [peer.actor_id]
    assert not activity.get("cc") and not note.get("cc")
    assert note["tag"] == [{"type": "Mention", "href": peer.actor_id, "name": f"@{peer.handle}"}]
    assert AS_PUBLIC not in str(activity) and "followers" not in str(activity)
    assert mastodon_visibility(activity, followers=None) == "direct"
    assert note["attributedTo"] == activity["actor"] and note["id"].startswith(node.base_url)
    # It says which room and node asked, and how to report it.
    assert "Ask me anything" in note["content"] and f"127.0.0.1:{node.port}" in note["content"]
    assert "Not you?" in note["content"]
    code, link, report = code_of(entry)
    assert link.startswith(f"{node.base_url}/rooms/{room['id']}#visitor={sent['request']}.")
    assert report.endswith(f"#visitor-report={sent['request']}")

    wrong = guest.post(
        "/api/v1/visitor/sessions", json={"request": sent["request"], "code": "ZZZZZZ"}
    )
    assert wrong.status_code == 401 and "wrong code" in wrong.json()["detail"]
    assert "parley_visitor" not in guest.cookies

    # Typed as people type it: lower case, with a space.
    typed = f"{code[:3].lower()} {code[3:]}"
    joined = guest.post(
        "/api/v1/visitor/sessions", json={"request": sent["request"], "code": typed}
    )
    assert joined.status_code == 201, joined.text
    visitor = joined.json()
    assert visitor["handle"] == peer.handle and visitor["visitor"] is True
    assert visitor["server"] == f"127.0.0.1:{peer.port}"
    cookie = joined.headers["set-cookie"]
    assert "parley_visitor=" in cookie and "HttpOnly" in cookie and "Domain" not in cookie
    assert "SameSite=lax" in cookie

    again = httpx.post(
        f"{node.base_url}/api/v1/visitor/sessions",
        json={"request": sent["request"], "code": code},
        timeout=15,
    )
    assert again.status_code == 401 and "already used" in again.json()["detail"]

    # The cookie is the visitor, for this node.
    me = guest.get("/api/v1/visitor")
    assert me.status_code == 200 and me.json()["handle"] == peer.handle
    # Their avatar came through the node: re-encoded PNG, served from here.
    avatar_url = wait_for(lambda: guest.get("/api/v1/visitor").json()["avatar_url"], what="avatar")
    assert avatar_url.startswith(node.base_url)
    image = guest.get(avatar_url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG") and image.headers["x-content-type-options"]
    assert any(r["path"] == "/avatar.png" for r in peer.requests())

    # A visitor is not an account.
    assert guest.get("/api/v1/me").status_code == 401
    assert guest.post("/api/v1/rooms", json={"title": "mine"}).status_code == 401

    # In the room as themselves: watching, raising a hand, invited, on stage; the host
    # sees their handle (with its server), display name and avatar.
    token = visitor["token"]
    base = f"/api/v1/rooms/{room['id']}"
    name = peer.handle
    with (
        socket(room, alice) as host_ws,
        socket(room, token) as bob_ws,
    ):
        assert next_of(bob_ws, "snapshot")["you"] == {
            "username": name,
            "role": "listener",
            "visitor": True,
        }
        seen = next_of(host_ws, "member", member_event(name, connected=True))["member"]
        assert seen["display_name"] == "bob (Fedify test peer)" and seen["visitor"] is True
        assert seen["avatar_url"] == avatar_url
        assert guest.post(f"{base}/hand").status_code == 200
        next_of(host_ws, "member", member_event(name, hand_raised=True))
        assert api.http.get(base).json()["hands"] == [name]
        invite = api.request("POST", f"{base}/members/{name}/invite", alice)
        assert invite.status_code == 200, invite.text
        next_of(bob_ws, "member", member_event(name, invited=True))
        accepted = guest.post(f"{base}/invitation", json={"accept": True})
        assert accepted.status_code == 200
        next_of(host_ws, "member", member_event(name, role="speaker", muted=True))
        # Moderated like anyone: blocked, the visitor is out and cannot come back.
        assert api.request("POST", f"{base}/members/{name}/block", alice).status_code == 200
        kicked = next_of(bob_ws, "kicked")
        assert kicked == {"type": "kicked", "username": name, "blocked": True}
    with socket(room, token) as again_ws:
        refused = json.loads(again_ws.recv(timeout=10))
        assert refused["type"] == "error" and refused["error"] == "forbidden"
    # A blocked person cannot act in the room (the moderation rules' 403, as for accounts).
    assert guest.post(f"{base}/hand").status_code == 403
    whep = guest.post(f"{base}/whep", content=b"v=0", headers={"content-type": "application/sdp"})
    assert whep.status_code == 403

    # Signing out revokes the session: the token stops working everywhere.
    out = guest.delete("/api/v1/visitor")
    assert out.status_code == 204
    assert (
        httpx.get(
            f"{node.base_url}/api/v1/visitor",
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        ).status_code
        == 401
    )


def test_flood_of_code_requests_sends_no_more_than_the_limit(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[..., Api],
    fedify_peers: PeerFactory,
    http_clients: Clients,
) -> None:
    node = node_factory(visitors={"codes_per_handle_per_hour": 3})
    api = api_factory(node)
    peer = fedify_peers()
    room = api.live_room(api.signup("alice"))
    answers = []
    for _ in range(12):
        # A new client each time (no cookies): the handle's own window caps it.
        answers.append(ask(http_clients(node), peer, room["id"]).status_code)
    assert answers[:3] == [202, 202, 202], answers
    assert set(answers[3:]) == {429}, answers
    wait_for(lambda: len(code_messages(peer)) >= 3, what="three messages")
    # Deliveries are rows: once none is left to send, the peer got exactly three.
    wait_for(
        lambda: (
            httpx.get(f"{node.base_url}/api/v1/node/stats", timeout=5).status_code == 200
            and len(code_messages(peer)) == 3
        ),
        what="no more than three",
    )
    refused = ask(http_clients(node), peer, room["id"])
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert len(code_messages(peer)) == 3


def test_reported_codes_stop_and_pause_the_handle(
    node: NodeProcess, api: Api, fedify_peers: PeerFactory, http_clients: Clients
) -> None:
    peer = fedify_peers()
    room = api.live_room(api.signup("alice"))
    guest = http_clients(node)
    sent = ask(guest, peer, room["id"]).json()
    code, _, _ = code_of(wait_for(lambda: code_messages(peer), what="message")[0])
    # The recipient follows "not me" (the room page posts this for the link).
    reported = httpx.post(
        f"{node.base_url}/api/v1/visitor/requests/{sent['request']}/report", timeout=15
    )
    assert reported.status_code == 204
    late = guest.post("/api/v1/visitor/sessions", json={"request": sent["request"], "code": code})
    assert late.status_code == 401 and "reported" in late.json()["detail"]
    paused = ask(guest, peer, room["id"])
    assert paused.status_code == 403 and "asked not to be sent codes" in paused.json()["detail"]


def test_hostile_and_mistaken_requests_get_clear_errors(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[..., Api],
    http_clients: Clients,
) -> None:
    node = node_factory(federation={"blocked_domains": ["spam.example"]})
    api = api_factory(node)
    token = api.signup("alice")
    room = api.live_room(token)
    guest = http_clients(node)
    port = free_port()  # nothing listens there
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"handle": "kim@social.example"}, 422, "room"),
        ({"handle": "kim", "room": room["id"]}, 422, "handle"),
        ({"handle": ["kim@x"], "room": room["id"]}, 422, "handle"),
        ({"handle": "kim@social.example", "room": "nope"}, 404, "no such room"),
        ({"handle": f"alice@127.0.0.1:{node.port}", "room": room["id"]}, 422, "sign in"),
        ({"handle": "kim@eu.spam.example", "room": room["id"]}, 403, "blocked"),
        ({"handle": f"kim@127.0.0.1:{port}", "room": room["id"]}, 404, "unreachable"),
    ]
    for body, status, words in cases:
        response = guest.post("/api/v1/visitor/codes", json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"], (body, response.text)
    assert guest.post("/api/v1/visitor/codes", content=b"[1]").status_code == 400
    signed_in = api.request(
        "POST", "/api/v1/visitor/codes", token, json={"handle": "k@s.example", "room": room["id"]}
    )
    assert signed_in.status_code == 409
    for body, status in [
        ({"request": "nope", "code": "AAAAAA"}, 404),
        ({"request": 5, "code": "AAAAAA"}, 422),
        ({"request": "nope", "code": None}, 422),
    ]:
        response = guest.post("/api/v1/visitor/sessions", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"] in ("not_found", "invalid_input")
    assert guest.get("/api/v1/visitor").status_code == 401
    bad = guest.get("/api/v1/visitor", headers={"Authorization": "Bearer pv_forged"})
    assert bad.status_code == 401
    assert guest.get("/api/v1/visitors/kim@social.example/avatar").status_code == 404
    assert guest.post(f"/api/v1/rooms/{room['id']}/hand").status_code == 401
    assert api.request("GET", "/api/v1/admin/visitor-reports", token).status_code == 403


@pytest.mark.usefixtures("loopback_ice")
async def test_a_visitor_speaks_over_webrtc_and_is_heard(
    node: NodeProcess,
    api: Api,
    fedify_peers: PeerFactory,
    clients: list[Any],
) -> None:
    from tests.test_relay_nodes import member_on, mixed, until, watch
    from tests.test_signaling import whep, whip
    from tests.test_visitors_across_nodes import post, verified_visitor

    peer = fedify_peers()
    alice = api.signup("alice")
    room = api.live_room(alice, "Open mic")
    visitor = await verified_visitor(node, room["id"], peer)
    token, name = visitor["token"], peer.handle
    socket = await watch(room["ws_url"], token)
    base = f"{node.base_url}/api/v1/rooms/{room['id']}"
    assert (await post(f"{base}/hand", token)).status_code == 200
    assert (await post(f"{base}/members/{name}/invite", alice)).status_code == 200
    assert (await post(f"{base}/invitation", token, {"accept": True})).status_code == 200
    await whip(room["whip_url"], token, 660, clients)
    assert (await post(f"{base}/mute", token, {"muted": False})).status_code == 200

    async def publishing() -> bool:
        member = await member_on(node, room["id"], name)
        return bool(member and member["publishing"] and not member["muted"])

    await until(publishing, what="the visitor publishing")
    await mixed(await whep(room["whep_url"], clients), 660)
    await socket.close()
