"""Attacks by clients on a real node process: deep JSON, WebFinger edge cases, forged
X-Forwarded-For, stream keys, and look-ups made on someone's behalf (issue 9)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from aiortc import RTCPeerConnection

from federation.activities import build_follow
from tests.conftest import Api, NodeProcess
from tests.federation_helpers import actor_url, private_key, signed_post
from tests.tonekit import ToneTrack, accept_answer, decode_ogg, dominant_frequency, make_offer

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]

DEEP_ARRAYS = b"[" * 100_000 + b"]" * 100_000  # 200 KB: under the inbox's 1 MB
API_DEEP_ARRAYS = b"[" * 30_000 + b"]" * 30_000  # 60 KB: under the API's 64 KiB


JSON = {"Content-Type": "application/json"}


def _nested(depth: int) -> dict:
    doc: dict = {"leaf": True}
    for _ in range(depth):
        doc = {"a": doc}
    return doc


# --------------------------------------------------------------------------- case 6


def test_deeply_nested_json_is_a_400_not_a_500(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api = api_factory(a)
    alice = api.signup("alice")
    api_factory(b).signup("bob")
    for path, method in (("/api/v1/rooms", "POST"), ("/api/v1/me", "PATCH")):
        response = api.request(method, path, alice, content=API_DEEP_ARRAYS, headers=JSON)
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
        assert response.json()["error"] == "invalid_input"
    too_deep = json.dumps({"title": "x", "more": _nested(200)})
    response = api.request(
        "POST",
        "/api/v1/rooms",
        alice,
        content=too_deep,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text

    # Signed by a real actor of node B, so it passes the signature and reaches the parser.
    bob = actor_url(b, "bob")
    key = {"key_id": f"{bob}#main-key", "pem": private_key(b, "bob")}
    response = signed_post(f"{a.base_url}/inbox", DEEP_ARRAYS, **key)
    assert response.status_code == 400, response.text[:200]
    assert response.json()["error"] == "invalid_activity"
    follow = build_follow(f"{bob}/follows/{uuid.uuid4()}", bob, actor_url(a, "alice"))
    follow["extra"] = _nested(500)  # parses in Python, but nothing we accept nests so deep
    response = signed_post(f"{a.base_url}/inbox", json.dumps(follow).encode(), **key)
    assert response.status_code == 400, response.text[:200]


# --------------------------------------------------------------------------- case 7


WEBFINGER_CASES = [
    ("resource=alice@{host}", 400),  # no scheme: not a URI (RFC 7033 4.5)
    ("resource==acct:alice@{host}", 400),  # "=acct:..." has no valid scheme either
    ("resource=acct:alice", 400),  # malformed acct URI (RFC 7565)
    ("resource=acct:@{host}", 400),
    ("resource=acct:alice@", 400),
    ("resource=acct:a@b@{host}", 400),
    ("resource=acct%3Aalice%40{host}%20x", 400),  # whitespace
    ("resource=", 400),
    ("", 400),
    ("resource=acct:alice@{host}&resource=acct:alice@{host}", 400),
    ("resource=foo://{host}", 404),  # a URI, of a scheme we do not serve
    ("resource=mailto:alice@{host}", 404),
    ("resource=urn:ietf:rfc:7033", 404),
    ("resource=acct:nobody@{host}", 404),
    ("resource=acct:alice@elsewhere.example", 404),
    ("resource={base}/nothing", 404),
    ("resource=acct:alice@{host}", 200),
    ("resource=acct:ALICE@{host}", 200),
    ("resource=ACCT:alice@{host}", 200),  # schemes are case-insensitive
    ("resource={base}/users/alice", 200),
    ("resource=acct:{host}@{host}", 200),  # the instance actor
]


def test_webfinger_follows_rfc_7033(node: NodeProcess, api: Api) -> None:
    """Case 7: 400 for a missing or malformed resource (section 4.2), 404 for a URI this
    server has nothing for, the JRD otherwise; CORS on every answer (section 5)."""
    api.signup("alice")
    host = f"127.0.0.1:{node.port}"
    for query, status in WEBFINGER_CASES:
        url = "/.well-known/webfinger?" + query.format(host=host, base=node.base_url)
        response = api.http.get(url)
        assert response.status_code == status, (query, response.text)
        assert response.headers.get("access-control-allow-origin") == "*", query
        if status == 200:
            assert response.headers["content-type"].startswith("application/jrd+json")
            assert response.json()["subject"].startswith("acct:")
        else:
            assert response.json()["error"] in ("bad_request", "not_found"), query


# --------------------------------------------------------------------------- case 8


def _login(api: Api, forwarded_for: str | None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = api.http.post(
        "/api/v1/sessions",
        json={"username": "nobody", "password": "wrong password"},
        headers=headers,
    )
    return response.status_code


def test_forwarded_for_is_ignored_unless_from_a_trusted_proxy(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    """Case 8: without [node] trusted_proxies, a client cannot escape the log-in limit by
    sending X-Forwarded-For itself."""
    node = node_factory(accounts={"auth_rate_per_minute": 3})
    api = api_factory(node)
    assert [_login(api, None) for _ in range(3)] == [401, 401, 401]
    assert _login(api, "203.0.113.9") == 429
    assert _login(api, "203.0.113.10, 198.51.100.1") == 429


def test_trusted_proxy_addresses_key_the_limits(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    node = node_factory(
        node={"trusted_proxies": ["127.0.0.1", "::1"]}, accounts={"auth_rate_per_minute": 3}
    )
    api = api_factory(node)
    assert [_login(api, "203.0.113.9") for _ in range(3)] == [401, 401, 401]
    assert _login(api, "203.0.113.9") == 429
    # Another client behind the same proxy has its own window.
    assert _login(api, "198.51.100.7") == 401
    # What a client prepends itself is not believed: the proxy's own entry (the last
    # untrusted address) is the client.
    assert _login(api, "198.51.100.99, 203.0.113.9") == 429


def test_bad_trusted_proxies_stop_start_up(tmp_path, node_factory: NodeFactory) -> None:
    with pytest.raises(RuntimeError, match="node.trusted_proxies"):
        node_factory(node={"trusted_proxies": ["not an address"]})


# --------------------------------------------------------------------------- case 9


async def _whip(url: str, token: str, pcs: list[RTCPeerConnection]) -> httpx.Response:
    pc, offer = await make_offer("sendonly", ToneTrack(440))
    pcs.append(pc)
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            url,
            content=offer,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
    if response.status_code == 201:
        await accept_answer(pc, response.text)
    return response


async def _ogg_tone(listen_url: str) -> float:
    received = bytearray()
    async with httpx.AsyncClient(timeout=20) as http:
        async with http.stream("GET", listen_url) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > 20_000:
                    break
    return dominant_frequency(decode_ogg(bytes(received))[9600:])


@pytest.mark.usefixtures("loopback_ice")
async def test_a_publish_key_publishes_and_does_nothing_else(
    api: Api, clients: list[RTCPeerConnection]
) -> None:
    """Case 9: OBS gets a key that only publishes (WHIP), for one account and optionally
    one room, revocable on its own; the account session is never handed out."""
    alice = api.signup("alice")
    room = api.live_room(alice, "With OBS")
    other = api.live_room(alice, "Another room")
    body = {"room": room["id"], "label": "OBS"}
    created = api.request("POST", "/api/v1/publish-keys", alice, json=body)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("pk_") and created.json()["room"] == room["id"]

    # Nothing but WHIP: not the API, not key management, not the room socket's account.
    assert api.request("GET", "/api/v1/me", key).status_code == 401
    assert api.request("GET", "/api/v1/publish-keys", key).status_code == 401
    assert api.request("POST", "/api/v1/rooms", key, json={"title": "x"}).status_code == 401
    assert (await _whip(other["whip_url"], key, clients)).status_code == 403

    published = await _whip(room["whip_url"], key, clients)
    assert published.status_code == 201, published.text
    unmuted = api.request("POST", f"/api/v1/rooms/{room['id']}/mute", alice, json={"muted": False})
    assert unmuted.status_code == 200
    assert abs(await _ogg_tone(room["listen_url"]) - 440) < 15
    listed = api.request("GET", "/api/v1/publish-keys", alice).json()["keys"]
    assert [k["id"] for k in listed] == [created.json()["id"]]
    assert "key" not in listed[0] and listed[0]["last_used_at"] is not None

    # The encoder ends its session with the same key (OBS sends DELETE on "stop").
    location = api.base_url + published.headers["location"]
    ended = httpx.delete(location, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert ended.status_code == 200, ended.text

    revoked = api.request("DELETE", f"/api/v1/publish-keys/{created.json()['id']}", alice)
    assert revoked.status_code == 204
    assert (await _whip(room["whip_url"], key, clients)).status_code == 401
    assert api.request("GET", "/api/v1/publish-keys", alice).json()["keys"] == []

    # A key for any room works in any room the account may speak in.
    anywhere = api.request("POST", "/api/v1/publish-keys", alice, json={}).json()["key"]
    assert (await _whip(other["whip_url"], anywhere, clients)).status_code == 201
    bob = api.signup("bob")
    assert (await _whip(room["whip_url"], bob, clients)).status_code == 403
    await asyncio.sleep(0)


# --------------------------------------------------------------------------- look-ups


def test_lookups_for_users_are_rate_limited_per_account_and_address(
    node_factory: NodeFactory, api_factory: ApiFactory, hostile_servers: Callable
) -> None:
    """Follows, remote-join, remote-rooms and search by handle make the node fetch from
    outside; each account and each client address gets [federation] fetch_rate_per_minute
    of them. (A trusted proxy lets the test speak from several client addresses.)"""
    remote = hostile_servers()
    node = node_factory(
        node={"trusted_proxies": ["127.0.0.1"]}, federation={"fetch_rate_per_minute": 3}
    )
    api = api_factory(node)
    alice, bob = api.signup("alice"), api.signup("bob")
    room = api.create_room(alice)
    handle = f"x@{remote.netloc}"

    def follow(token: str, address: str) -> httpx.Response:
        return api.request(
            "POST",
            "/api/v1/follows",
            token,
            json={"handle": handle},
            headers={"X-Forwarded-For": address},
        )

    statuses = [follow(alice, "203.0.113.1").status_code for _ in range(3)]
    assert 429 not in statuses, statuses
    # The account's window is full, whatever address it comes from.
    limited = follow(alice, "203.0.113.2")
    assert limited.status_code == 429 and "retry-after" in limited.headers
    # The first address's window is full, whichever account asks.
    assert follow(bob, "203.0.113.1").status_code == 429
    joined = api.http.get(
        "/api/v1/remote-join",
        params={"handle": handle, "room": room["id"]},
        headers={"X-Forwarded-For": "203.0.113.1"},
    )
    assert joined.status_code == 429
    # A search by handle looks the person up: the same window (local results still come).
    searched = api.http.get(
        "/api/v1/search", params={"q": handle}, headers={"X-Forwarded-For": "203.0.113.1"}
    )
    assert searched.status_code == 200, searched.text
    assert searched.json()["lookup"]["error"] == "rate_limited", searched.json()
    mirrored = api.request(
        "POST",
        "/api/v1/remote-rooms",
        alice,
        json={"url": f"{remote.base_url}/rooms/r1"},
        headers={"X-Forwarded-For": "203.0.113.3"},
    )
    assert mirrored.status_code == 429
    # Another account from another address is not affected.
    assert follow(bob, "203.0.113.4").status_code != 429


# Handles whose host is no host: the look-up must not even be tried (the signer refused
# the URL built from such a host, an uncaught error: a 500, found by schemathesis on search).
BAD_HOST_HANDLES = [
    ",./;'[]\\-=<>?:\"{}|_+!@#$%^&*()`~",
    "alice@#fragment",
    "alice@?query",
    "alice@ho st.example",
    "alice@[::1",
    "alice@example.org:99999",
    "alice@example.org:port",
]


@pytest.mark.parametrize("text", BAD_HOST_HANDLES)
def test_a_handle_without_a_usable_host_is_a_422_not_a_500(
    node: NodeProcess, api: Api, text: str
) -> None:
    token = api.signup()
    room = api.create_room(token)
    follow = api.request("POST", "/api/v1/follows", token, json={"handle": text})
    assert follow.status_code == 422, follow.text
    assert follow.json()["field"] == "handle"
    join = api.http.get("/api/v1/remote-join", params={"handle": text, "room": room["id"]})
    assert join.status_code == 422, join.text
    found = api.http.get("/api/v1/search", params={"q": text})
    assert found.status_code == 200, found.text
    assert found.json()["lookup"]["error"] == "invalid_input", found.json()
