"""Operators and survival across real node processes (FEDERATION.md "Operators and
survival"): an operator's action stops *their node* carrying a room; the other nodes
carry it on, and only the host's own end ends it everywhere.

A's admin ends alice's room (or suspends alice) while B and C carry it and bob, a cohost
of B, is on stage: B takes the room over, C re-attaches to it, listeners on B and C hear
bob again (decoded audio), bob keeps moderating, and every copy says who stopped what.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection

from federation.actors import ACTIVITY_JSON
from tests.conftest import Api
from tests.federation_helpers import follow, wait_accepted
from tests.moderation_helpers import admin_post, make_admin, node_on
from tests.test_relay_nodes import (
    ApiFactory,
    NodeFactory,
    get_json,
    hears,
    join_remote,
    member_on,
    mixed,
    post,
    remote_speaker_setup,
    room_doc,
    until,
    watch,
)
from tests.test_signaling import whep, whip

pytestmark = pytest.mark.usefixtures("loopback_ice")

REASON = "Spam, says the operator of A"


async def _carried_by_three(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> dict[str, Any]:
    """alice's live room on A (440 Hz), relayed by B and by C (both from A); bob of B on
    stage (660 Hz) and made cohost by alice; carol of C watching; a listener on B and C."""
    s = await remote_speaker_setup(node_factory, api_factory, clients, with_c=False)
    a, b = s["a"], s["b"]
    c = node_factory()
    carol = api_factory(c).signup("carol")
    mirror_c = await join_remote(c, carol, s["room"]["url"])
    made = await post(
        f"{a.base_url}/api/v1/rooms/{s['room']['id']}/members/{s['bob_handle']}/role",
        s["alice"],
        {"role": "cohost"},
    )
    assert made.status_code == 200, made.text

    async def cohost_on_b() -> bool:
        member = await member_on(b, s["mirror_b"]["id"], "bob")
        return bool(member and member["role"] == "cohost")

    await until(cohost_on_b, what="bob is cohost, seen from B")
    carol_socket = await watch(mirror_c["ws_url"], carol)
    on_b = await whep(s["mirror_b"]["whep_url"], clients)
    on_c = await whep(mirror_c["whep_url"], clients)
    await mixed(on_b, 440, 660)
    await mixed(on_c, 440, 660)
    return {
        **s,
        "c": c,
        "carol": carol,
        "mirror_c": mirror_c,
        "carol_socket": carol_socket,
        "on_b": on_b,
        "on_c": on_c,
        "carol_handle": f"carol@127.0.0.1:{c.port}",
    }


async def _event(socket: Any, kind: str, timeout: float = 30.0) -> dict[str, Any]:
    """The next event of ``kind`` on a room WebSocket."""
    async with asyncio.timeout(timeout):
        while True:
            event = json.loads(await socket.recv())
            if event.get("type") == kind:
                return dict(event)


@pytest.mark.parametrize("action", ["end_room", "suspend_host"])
async def test_an_operator_stops_only_their_node_and_the_room_goes_on(
    node_factory: NodeFactory,
    api_factory: ApiFactory,
    clients: list[RTCPeerConnection],
    action: str,
) -> None:
    s = await _carried_by_three(node_factory, api_factory, clients)
    a, b, c = s["a"], s["b"], s["c"]
    api_a: Api = api_factory(a)
    root = make_admin(a, api_a)
    room_id = s["room"]["id"]

    if action == "end_room":
        ended = admin_post(api_a, root, f"rooms/{room_id}/end", {"reason": REASON})
        assert ended["state"] == "ended"
    else:
        admin_post(api_a, root, "accounts/alice/suspend", {"reason": REASON})

    # Listeners on B and C keep their sessions and hear the cohost again, now mixed on B.
    await asyncio.gather(hears(s["on_b"], 660, tries=40), hears(s["on_c"], 660, tries=40))

    # A says what it did: its operator stopped carrying the room here, and where it goes on.
    on_a = await get_json(f"{a.base_url}/api/v1/rooms/{room_id}")
    assert on_a["state"] == "ended"
    assert on_a["ended_by"]["by"] == "operator"
    assert on_a["ended_by"]["reason"] == REASON
    assert on_a["ended_by"]["node"] == f"127.0.0.1:{a.port}"
    assert s["mirror_b"]["url"] in on_a["ended_by"]["carried_on"]
    assert s["mirror_c"]["url"] in on_a["ended_by"]["carried_on"]

    # B took the room over (the next node on the list); C re-attached to it.
    stopped_a = {"node": a.base_url, "by": "operator", "reason": REASON}
    doc_b = await get_json(f"{b.base_url}/api/v1/rooms/{s['mirror_b']['id']}")
    assert doc_b["state"] == "live"
    assert doc_b["promoted"] is True and doc_b["acting_origin"] == b.base_url
    assert doc_b["stopped"] == [stopped_a]

    async def c_follows_b() -> dict[str, Any] | None:
        doc = await get_json(f"{c.base_url}/api/v1/rooms/{s['mirror_c']['id']}")
        ok = doc["acting_origin"] == b.base_url and doc["stopped"] == [stopped_a]
        return dict(doc) if ok else None

    doc_c = await until(c_follows_b, what="C follows B and knows A stopped")
    assert doc_c["state"] == "live"
    # Watchers on C were told who stopped carrying the room, distinctly from an end.
    told = await _event(s["carol_socket"], "carriage")
    assert told["stopped"] == [stopped_a]

    # The cohost keeps moderating: carol (on C) raises her hand, bob (on B) invites her.
    raised = await post(f"{c.base_url}/api/v1/rooms/{s['mirror_c']['id']}/hand", s["carol"])
    assert raised.status_code == 202, raised.text

    async def hand_on_b() -> bool:
        doc = await get_json(f"{b.base_url}/api/v1/rooms/{s['mirror_b']['id']}")
        return s["carol_handle"] in doc["hands"]

    await until(hand_on_b, what="carol's hand reaches B, the acting origin now")
    invited = await post(
        f"{b.base_url}/api/v1/rooms/{s['mirror_b']['id']}/members/{s['carol_handle']}/invite",
        s["bob_token"],
    )
    assert invited.status_code == 200, invited.text

    async def carol_invited() -> bool:
        member = await member_on(c, s["mirror_c"]["id"], "carol")
        return bool(member and member["invited"])

    await until(carol_invited, what="bob's invitation reaches carol on C")

    if action == "suspend_host":
        # A suspended account: no sign-in, its sessions revoked, its actor gone (410).
        async with httpx.AsyncClient(timeout=10) as http:
            me = await http.get(
                f"{a.base_url}/api/v1/me", headers={"Authorization": f"Bearer {s['alice']}"}
            )
            assert me.status_code == 401
            login = await http.post(
                f"{a.base_url}/api/v1/sessions",
                json={"username": "alice", "password": "correct horse"},
            )
            assert login.status_code == 403
            actor = await http.get(f"{a.base_url}/users/alice", headers={"Accept": ACTIVITY_JSON})
            assert actor.status_code == 410
            finger = await http.get(
                f"{a.base_url}/.well-known/webfinger",
                params={"resource": f"acct:alice@127.0.0.1:{a.port}"},
            )
            assert finger.status_code == 410
    await s["bob_socket"].close()
    await s["carol_socket"].close()


async def test_the_hosts_own_end_ends_the_room_everywhere(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    s = await _carried_by_three(node_factory, api_factory, clients)
    ended = await post(f"{s['a'].base_url}/api/v1/rooms/{s['room']['id']}/end", s["alice"])
    assert ended.status_code == 200, ended.text
    assert ended.json()["ended_by"]["by"] == "host"

    # Watchers on B and C see the room end, and by whom.
    for socket in (s["bob_socket"], s["carol_socket"]):
        async with asyncio.timeout(30):
            while True:
                event = await _event(socket, "room")
                if event["room"]["state"] == "ended":
                    break
        assert event["room"]["ended_by"]["by"] == "host"
    await s["bob_socket"].close()
    await s["carol_socket"].close()


async def test_a_relays_domain_block_of_the_origin_stops_only_that_relay(
    tmp_path: Path,
    node_factory: NodeFactory,
    api_factory: ApiFactory,
    clients: list[RTCPeerConnection],
) -> None:
    # A lives on 127.0.0.2 so that B's block of it does not cover C (127.0.0.1).
    a = node_on(tmp_path / "origin", "127.0.0.2")
    try:
        b, c = node_factory(), node_factory()
        api_a, api_b = api_factory(a), api_factory(b)
        alice = api_a.signup("alice")
        bob = api_b.signup("bob")
        carol = api_factory(c).signup("carol")
        # bob follows alice: her room going live is announced to B and listed there.
        follow(api_b, bob, f"alice@127.0.0.2:{a.port}")
        wait_accepted(api_b, bob, f"{a.base_url}/users/alice")
        room = api_a.live_room(alice, "Carried by two")
        await whip(room["whip_url"], alice, 440, clients)
        unmuted = await post(
            f"{a.base_url}/api/v1/rooms/{room['id']}/mute", alice, {"muted": False}
        )
        assert unmuted.status_code == 200, unmuted.text
        mirror_b = await join_remote(b, bob, room["url"])
        mirror_c = await join_remote(c, carol, room["url"])
        on_b = await whep(mirror_b["whep_url"], clients)
        on_c = await whep(mirror_c["whep_url"], clients)
        await hears(on_b, 440)
        await hears(on_c, 440)

        def listed_on_b() -> list[str]:
            rooms = api_b.http.get("/api/v1/rooms").json()["rooms"]
            return [r["title"] for r in rooms]

        async def announced_on_b() -> bool:
            return "Carried by two" in listed_on_b()

        await until(announced_on_b, what="alice's room listed on B")

        root = make_admin(b, api_b)
        blocked = admin_post(
            api_b,
            root,
            "domain-blocks",
            {"domain": "127.0.0.2", "severity": "suspend", "public_comment": "spam"},
        )
        assert blocked["domain"] == "127.0.0.2"

        async def b_stopped() -> dict[str, Any] | None:
            doc = await room_doc(b, mirror_b["id"])
            return doc if doc and doc["state"] == "ended" else None

        doc_b = await until(b_stopped, what="B stops carrying the room")
        assert doc_b["ended_by"]["by"] == "operator"
        assert doc_b["ended_by"]["reason"] == "this node blocked 127.0.0.2"
        # At once: no room of A listed on B, bob's follow of alice severed.
        assert "Carried by two" not in listed_on_b()
        follows_b = api_b.request("GET", "/api/v1/follows", bob).json()["following"]
        assert follows_b == []
        # C carries on from A, untouched; A relays the room to C only.
        await hears(on_c, 440)
        doc_c = await get_json(f"{c.base_url}/api/v1/rooms/{mirror_c['id']}")
        assert doc_c["state"] == "live" and doc_c["acting_origin"] == a.base_url

        async def one_relay_left() -> bool:
            stats = await get_json(f"{a.base_url}/api/v1/node/stats")
            return bool(stats["relay"]["rooms"][room["id"]]["subscribers"] == 1)

        await until(one_relay_left, what="A relays to C only")
        # A's users cannot reach B any more: a follow from A is refused by B.
        refused = api_a.request(
            "POST", "/api/v1/follows", alice, json={"handle": f"bob@127.0.0.1:{b.port}"}
        )
        assert refused.status_code == 403, refused.text
    finally:
        a.stop()
