"""Subscribing to a room's relay stream on a real node (federation/relay_subscription.py,
node/web/signaling.py): what may sign it and how, the refusals in the API's error
vocabulary, the close codes, and what the node reports (FEDERATION.md, "Subscribing")."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from federation.relay import CloseCode
from federation.signatures import sign_request, sign_request_rfc9421
from tests.conftest import Api, NodeProcess
from tests.federation_helpers import db_rows, private_key, wait_for

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]


def instance_key(node: NodeProcess) -> tuple[str, str]:
    rows = db_rows(node, "select value from fed_instance where name = 'private_pem'")
    return f"{node.base_url}/actor#main-key", str(rows[0][0])


def relay_of(node: NodeProcess, room_id: str = "copy1") -> str:
    return f"ws://127.0.0.1:{node.port}/relay/v1/rooms/{room_id}"


async def subscribe(
    origin: NodeProcess,
    room_id: str,
    key: tuple[str, str] | None,
    *,
    relay: str | None = None,
    rfc9421: bool = False,
    signed_url: str | None = None,
) -> Any:
    """Open a relay subscription; ``signed_url`` is the URL the signature covers (the
    URL dialled by default)."""
    url = f"ws://127.0.0.1:{origin.port}/relay/v1/rooms/{room_id}"
    if relay is not None:
        url += "?" + str(httpx.QueryParams({"relay": relay}))
    headers: dict[str, str] = {}
    if key is not None:
        sign = sign_request_rfc9421 if rfc9421 else sign_request
        signed = sign("GET", signed_url or url, {}, None, key[0], key[1])
        headers = {k: v for k, v in signed.items() if k.lower() != "host"}
    return await websockets.connect(
        url, additional_headers=headers, ping_interval=None, open_timeout=10, max_size=2**20
    )


async def refusal(origin: NodeProcess, room_id: str, key: Any, **kwargs: Any) -> tuple[int, Any]:
    try:
        ws = await subscribe(origin, room_id, key, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code, json.loads(exc.response.body or b"null")
    await ws.close()
    return 101, None


async def first_snapshot(ws: Any) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(message, str) and json.loads(message)["type"] == "snapshot":
            return dict(json.loads(message))


async def closed_with(ws: Any, timeout: float = 20) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the node closes the connection: its close code, and the text messages
    (other than pings) that came before."""
    texts = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await ws.recv()
                if isinstance(message, str) and '"ping"' not in message:
                    texts.append(json.loads(message))
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd else None), texts
    raise AssertionError("the node never closed the connection")


async def test_rfc9421_may_sign_the_ws_or_the_http_form_of_the_url(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    room = api_factory(a).live_room(api_factory(a).signup("alice"))
    api_factory(b).signup("bob")
    key = instance_key(b)
    assert room["relay_url"] == relay_of(a, room["id"])
    for form in ("ws", "http"):
        url = room["relay_url"]
        signed = url if form == "ws" else url.replace("ws://", "http://", 1)
        ws = await subscribe(a, room["id"], key, rfc9421=True, signed_url=signed)
        assert (await first_snapshot(ws))["epoch"] == 0
        await ws.close()
    # A signature over another URL: 401, and the detail says what did not match.
    wrong = room["relay_url"] + "x"
    status, body = await refusal(a, room["id"], key, rfc9421=True, signed_url=wrong)
    assert status == 401 and body["error"] == "unauthorized"
    assert "does not match" in body["detail"] and "@target-uri" in body["detail"], body
    assert room["relay_url"] in body["detail"]


async def test_refusals_speak_the_api_error_vocabulary(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a = api_factory(a)
    room = api_a.live_room(api_a.signup("alice"))
    scheduled = api_a.create_room(api_a.signup("ann"))
    api_factory(b).signup("bob")
    key = instance_key(b)
    bob_key = (f"{b.base_url}/users/bob#main-key", private_key(b, "bob"))
    http_relay = f"http://127.0.0.1:{b.port}/x"
    wss_relay = relay_of(b).replace("ws:", "wss:")  # b is an http node: ws only
    cases: list[tuple[str, dict[str, Any], int, str, str]] = [
        (room["id"], {"key": None}, 401, "unauthorized", "not signed"),
        (room["id"], {"key": bob_key}, 403, "forbidden", "instance actor"),
        (room["id"], {"key": key, "relay": http_relay}, 400, "invalid_input", "relay"),
        (room["id"], {"key": key, "relay": relay_of(a)}, 403, "forbidden", "signing node"),
        (room["id"], {"key": key, "relay": wss_relay}, 403, "forbidden", "signing node"),
        ("nothing", {"key": key}, 404, "not_found", ""),
        (scheduled["id"], {"key": key}, 409, "conflict", "not live"),
    ]
    for room_id, kwargs, status, code, detail in cases:
        found = await refusal(a, room_id, **kwargs)
        assert found[0] == status and found[1]["error"] == code, (kwargs, found)
        assert detail in found[1]["detail"], found
    # Blocked: the one bare refusal, 403 blocked_domain.
    c = node_factory(federation={"blocked_domains": ["127.0.0.1"]})
    room_c = api_factory(c).live_room(api_factory(c).signup("cora"))
    status, body = await refusal(c, room_c["id"], key)
    assert (status, body["error"]) == (403, "blocked_domain")
    stats = httpx.get(f"{a.base_url}/api/v1/node/stats").json()["relay"]
    assert stats["refused_subscriptions"] == len(cases)


async def test_close_codes_say_why_and_stats_show_every_key(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a = api_factory(a)
    alice = api_a.signup("alice")
    room = api_a.live_room(alice)
    api_factory(b).signup("bob")
    key = instance_key(b)

    # Replaced by a newer subscription of the same node: 4901.
    old = await subscribe(a, room["id"], key, relay=relay_of(b))
    await first_snapshot(old)
    new = await subscribe(a, room["id"], key, relay=relay_of(b))
    await first_snapshot(new)
    assert (await closed_with(old))[0] == CloseCode.REPLACED

    # The origin's stats: every key, for a room it acts as origin for.
    def stats_of_room() -> dict[str, Any] | None:
        relay = httpx.get(f"{a.base_url}/api/v1/node/stats").json()["relay"]
        entry = relay["rooms"].get(room["id"])
        return entry if entry and entry["subscribers"] == 1 else None

    assert wait_for(stats_of_room, what="one subscriber") == {
        "subscribers": 1,
        "remote_speakers": [],
        "upstream": None,
        "upstream_connects": 0,
        "acting_origin": a.base_url,
        "epoch": 0,
        "promoted": False,
        "carriage": "acting_origin",
    }

    # Moved: the handover message, then 4903.
    response = api_a.request(
        "POST", f"/api/v1/rooms/{room['id']}/move", alice, json={"to": b.base_url}
    )
    assert response.status_code == 200, response.text
    code, texts = await closed_with(new)
    assert code == CloseCode.HANDED_OVER
    assert texts[-1] == {
        "type": "handover",
        "epoch": 1,
        "acting_origin": b.base_url,
        "relay": relay_of(b),
    }


async def test_presence_and_a_room_that_ends_closing_its_relays_with_4902(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a = api_factory(a)
    alice = api_a.signup("alice")
    room = api_a.live_room(alice)
    api_factory(b).signup("bob")
    ws = await subscribe(a, room["id"], instance_key(b))
    await first_snapshot(ws)

    # presence is the whole set each time: bob comes, then the empty set makes him leave;
    # a handle of another host is ignored.
    def audience() -> set[str]:
        doc = api_a.request("GET", f"/api/v1/rooms/{room['id']}").json()
        return {m["username"] for m in doc["audience"]}

    async def until(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while not await asyncio.to_thread(check):
            assert time.monotonic() < deadline, audience()
            await ws.send('{"type":"ping"}')  # a relay that waits still pings
            await asyncio.sleep(0.2)

    bob, eve = f"bob@127.0.0.1:{b.port}", "eve@elsewhere.example"
    await ws.send(json.dumps({"type": "presence", "users": [bob, eve]}))
    await until(lambda: audience() == {bob})
    await ws.send(json.dumps({"type": "presence", "users": []}))
    await until(lambda: not audience())

    assert api_a.request("POST", f"/api/v1/rooms/{room['id']}/end", alice).status_code == 200
    code, texts = await closed_with(ws)
    assert code == CloseCode.ROOM_ENDED
    assert texts[-1]["type"] == "room" and texts[-1]["room"]["state"] == "ended"


async def test_a_relay_that_sends_nothing_for_5_s_is_closed_with_4905(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    room = api_factory(a).live_room(api_factory(a).signup("alice"))
    api_factory(b).signup("bob")
    ws = await subscribe(a, room["id"], instance_key(b))
    await first_snapshot(ws)
    started = time.monotonic()
    code, _ = await closed_with(ws, timeout=30)
    assert code == CloseCode.SILENT
    assert time.monotonic() - started >= 4.0  # not before its 5 s (less the snapshot wait)


async def test_a_relay_that_pings_stays(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    """The other side of 4905: a relay that sends only pings, every 2 s, is kept; and
    the size limit of what goes up."""
    a, b = node_factory(), node_factory()
    room = api_factory(a).live_room(api_factory(a).signup("alice"))
    api_factory(b).signup("bob")
    ws = await subscribe(a, room["id"], instance_key(b))
    await first_snapshot(ws)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        await ws.send('{"type":"ping"}')
        end = time.monotonic() + 2
        while time.monotonic() < end:
            await asyncio.wait_for(ws.recv(), 5)  # raises if the node closed it
    # A message up over 16 KiB closes the connection (1009, message too big).
    users = [f"user{n:05d}@127.0.0.1:{b.port}" for n in range(700)]
    await ws.send(json.dumps({"type": "presence", "users": users}))
    assert (await closed_with(ws))[0] == 1009
