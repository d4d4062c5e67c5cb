"""Issue 12 across real nodes A and B: reactions and a reaction flood (the audio keeps
flowing), comments and a hidden comment, the pin, the summary with listeners of both
nodes, reminders and the notification at start, and the host leaving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection

from tests.conftest import Api, NodeProcess
from tests.federation_helpers import actor_url, db_rows, follow, handle, wait_accepted
from tests.room_watch import watch
from tests.test_relay_nodes import join_remote, live_room_with_speaker, post, until
from tests.test_signaling import whep
from tests.tonekit import dominant_frequency, frequency_power

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]

pytestmark = pytest.mark.usefixtures("loopback_ice")


async def flood(url: str, token: str, count: int) -> list[int]:
    """``count`` reactions as fast as one client sends them; their status codes."""
    async with httpx.AsyncClient(timeout=20) as http:
        codes = []
        for _ in range(count):
            response = await http.post(
                url, json={"emoji": "🔥"}, headers={"Authorization": f"Bearer {token}"}
            )
            codes.append(response.status_code)
        return codes


async def test_reactions_flood_comments_and_summary_across_nodes(
    node_factory: NodeFactory, api_factory: ApiFactory, clients: list[RTCPeerConnection]
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice, room, _speaker = await live_room_with_speaker(api_a, a, clients)
    bob = api_b.signup("bob")
    mirror = await join_remote(b, bob, room["url"])
    bob_on_a = handle(b, "bob")

    listener_a = await whep(room["whep_url"], clients)
    listener_b = await whep(mirror["whep_url"], clients)
    watch_a = await watch(room["ws_url"])
    watch_b = await watch(mirror["ws_url"], bob)
    try:
        # bob, watching on B, is a member of the room on A.
        await watch_a.until("member", lambda m: m["member"]["username"] == bob_on_a)

        # A listener on B reacts; a listener on A sees it float (the WebSocket event).
        response = await post(
            f"{b.base_url}/api/v1/rooms/{mirror['id']}/reactions", bob, {"emoji": "👏"}
        )
        assert response.status_code == 202, response.text
        seen = await watch_a.until("reaction", lambda m: m["username"] == bob_on_a)
        assert seen["emoji"] == "👏"
        # and B's own watchers too, with B's name for bob.
        await watch_b.until("reaction", lambda m: m["username"] == "bob")

        # A flood from one account on each node: capped, and the audio keeps flowing.
        recording = asyncio.create_task(listener_a.heard(6.0))
        codes_a, codes_b = await asyncio.gather(
            flood(f"{a.base_url}/api/v1/rooms/{room['id']}/reactions", alice, 150),
            flood(f"{b.base_url}/api/v1/rooms/{mirror['id']}/reactions", bob, 150),
        )
        heard = await recording
        for codes in (codes_a, codes_b):
            assert set(codes) <= {200, 202, 429}
            assert codes.count(429) > 100, codes  # dropped and counted, not applied
        windows = np.array_split(heard, 6)
        for window in windows:
            assert dominant_frequency(window) == pytest.approx(440, abs=15)
            assert frequency_power(window, 48000, 440) > 0.5
        b_heard = await listener_b.heard(1.0)
        assert dominant_frequency(b_heard) == pytest.approx(440, abs=15)
        floated = len(watch_a.seen("reaction"))
        assert floated < 60, f"{floated} reactions reached A's watchers: the cap did not hold"

        # alice invites bob to speak: his own node notifies him.
        response = await post(
            f"{a.base_url}/api/v1/rooms/{room['id']}/members/{bob_on_a}/invite", alice
        )
        assert response.status_code == 200, response.text
        invited = await until(
            lambda: _notifications(api_b, bob, "invited"), what="bob's invitation notice"
        )
        assert "Across nodes" in invited[0]["text"]
        assert invited[0]["url"] == mirror["url"]

        # bob comments from B: a federated reply to the room's Note, shown on A and B.
        response = await post(
            f"{b.base_url}/api/v1/rooms/{mirror['id']}/comments", bob, {"text": "Hi from B <3"}
        )
        assert response.status_code == 202, response.text
        comment = (await watch_a.until("comment"))["comment"]
        assert comment["author"]["handle"] == bob_on_a
        assert comment["content"] == "<p>Hi from B &lt;3</p>"
        await watch_b.until("comment", lambda m: m["comment"]["id"] == comment["id"])
        # alice pins it, then hides it: it disappears everywhere.
        nothing = await post(f"{a.base_url}/api/v1/rooms/{room['id']}/comments/hide", alice, {})
        assert nothing.status_code == 422, nothing.text
        async with httpx.AsyncClient(timeout=20) as http:
            pinned = await http.put(
                f"{a.base_url}/api/v1/rooms/{room['id']}/pin",
                json={"comment": comment["id"]},
                headers={"Authorization": f"Bearer {alice}"},
            )
        assert pinned.status_code == 200, pinned.text
        await watch_b.until("pinned", lambda m: (m["pinned"] or {}).get("comment"))
        response = await post(
            f"{a.base_url}/api/v1/rooms/{room['id']}/comments/hide",
            alice,
            {"comment": comment["id"]},
        )
        assert response.status_code == 200, response.text
        await watch_b.until("comment_hidden", lambda m: m["id"] == comment["id"])
        for node, room_id in ((a, room["id"]), (b, mirror["id"])):
            listed = httpx.get(f"{node.base_url}/api/v1/rooms/{room_id}/comments").json()
            assert listed["comments"] == [] and listed["pinned"] is None

        # The end: the summary counts both nodes' listeners and the reactions let through.
        response = await post(f"{a.base_url}/api/v1/rooms/{room['id']}/end", alice)
        assert response.status_code == 200, response.text
        ended = await watch_b.until("room", lambda m: m["room"]["state"] == "ended")
        summary = ended["room"]["summary"]
        assert summary["total_listeners"] >= 2
        assert summary["peak_listeners"] >= 2
        assert summary["reactions"]["👏"] == 1
        assert 1 < summary["reactions"]["🔥"] < 60
        assert summary["reactions_dropped"] > 100
        assert [s["username"] for s in summary["speakers"]] == ["alice"]
        assert summary["duration_s"] > 5
    finally:
        await watch_a.close()
        await watch_b.close()


async def test_a_user_of_b_is_reminded_when_a_scheduled_room_of_a_starts(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    bob = api_b.signup("bob")
    carol = api_b.signup("carol")
    follow(api_b, bob, handle(a, "alice"))
    wait_accepted(api_b, bob, actor_url(a, "alice"))

    starts = time.time() + 3600
    room = api_a.create_room(alice, "Tomorrow's show", starts_at=starts, recording=False)
    assert room["starts_at"] == pytest.approx(starts)
    # B learns of it from the Event and lists it as upcoming (the scheduled Note may come
    # first: listed, its start known once the Event is in).
    upcoming = await until(
        lambda: _upcoming_with_start(api_b, room["url"]), what="the Event on B", timeout=30
    )
    assert upcoming["starts_at"] == pytest.approx(starts, abs=1)

    # carol (on B, not following alice) asks to be reminded: B sends Accept{Event} to A.
    response = api_b.request("POST", "/api/v1/reminders", carol, json={"room": room["url"]})
    assert response.status_code == 201, response.text
    await until(lambda: _rsvps(a, room["id"]), what="the RSVP recorded on A", timeout=30)
    # A local user of A asks too.
    dave = api_a.signup("dave")
    response = api_a.request("POST", "/api/v1/reminders", dave, json={"room": room["url"]})
    assert response.status_code == 201, response.text

    notes_b = await watch(b.base_url.replace("http", "ws") + "/api/v1/notifications/ws", carol)
    try:
        assert (await notes_b.until("hello"))["unread"] == 0
        response = api_a.request("POST", f"/api/v1/rooms/{room['id']}/start", alice)
        assert response.status_code == 200, response.text
        pushed = await notes_b.until("notification", timeout=30)
        assert pushed["notification"]["kind"] == "room_started"
        assert "Tomorrow's show" in pushed["notification"]["text"]
        assert pushed["unread"] == 1
    finally:
        await notes_b.close()
    # bob follows alice: he hears she went live; dave (on A) his reminder.
    await until(lambda: _kinds(api_b, bob), what="bob's notification", timeout=30)
    assert _kinds_now(api_b, bob) == ["followed_live"]
    assert _kinds_now(api_a, dave) == ["room_started"]
    listed = api_b.request("GET", "/api/v1/notifications", carol).json()
    assert listed["unread"] == 1
    first = listed["notifications"][0]
    assert first["url"].startswith(b.base_url)  # opens B's copy of the room
    response = api_b.request("POST", "/api/v1/notifications/read", carol, json={})
    assert response.json() == {"marked": 1, "unread": 0}


async def _upcoming(api: Api, url: str) -> dict[str, Any] | None:
    rows = api.http.get("/api/v1/rooms", params={"state": "scheduled"}).json()["rooms"]
    return next((r for r in rows if r.get("url") == url), None)


async def _upcoming_with_start(api: Api, url: str) -> dict[str, Any] | None:
    found = await _upcoming(api, url)
    return found if found is not None and found.get("starts_at") is not None else None


async def _rsvps(node: NodeProcess, room_id: str) -> list[Any]:
    return db_rows(node, "select actor from event_rsvps where room_id = ?", (room_id,))


async def _kinds(api: Api, token: str) -> list[str]:
    return _kinds_now(api, token)


def _kinds_now(api: Api, token: str) -> list[str]:
    found = api.request("GET", "/api/v1/notifications", token).json()["notifications"]
    return [n["kind"] for n in found]


async def test_the_host_is_away_and_a_cohost_of_another_node_takes_over(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a = node_factory(media={"host_grace_s": 60.0})
    b = node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    bob = api_b.signup("bob")
    room = api_a.live_room(alice, "Who hosts")
    host_ws = await watch(room["ws_url"], alice)
    mirror = await join_remote(b, bob, room["url"])
    watch_b = await watch(mirror["ws_url"], bob)
    bob_on_a, alice_on_b = handle(b, "bob"), handle(a, "alice")
    try:
        await host_ws.until("member", lambda m: m["member"]["username"] == bob_on_a)
        response = api_a.request(
            "POST",
            f"/api/v1/rooms/{room['id']}/members/{bob_on_a}/role",
            alice,
            json={"role": "cohost"},
        )
        assert response.status_code == 200, response.text
        await watch_b.until(
            "member", lambda m: m["member"] == {**m["member"], "username": "bob", "role": "cohost"}
        )
        # alice's page closes: everyone sees "the host is away" and until when.
        await host_ws.close()
        away = await watch_b.until("host_away", lambda m: m["until"] is not None)
        assert 30 < away["until"] - time.time() <= 60
        # bob, a cohost on B, takes over as host (a signed parley:TakeHost to A).
        response = api_b.request("POST", f"/api/v1/rooms/{mirror['id']}/take-host", bob)
        assert response.status_code == 202, response.text
        await watch_b.until("room", lambda m: m["room"]["host"]["username"] == "bob")
        state = httpx.get(f"{a.base_url}/api/v1/rooms/{room['id']}").json()
        assert state["host"]["username"] == bob_on_a and state["host_away_until"] is None
        assert state["state"] == "live"
        # Leaving, bob hands the room back to alice (a cohost now).
        response = api_b.request(
            "POST", f"/api/v1/rooms/{mirror['id']}/hand-over", bob, json={"to": alice_on_b}
        )
        assert response.status_code == 202, response.text
        await watch_b.until("room", lambda m: m["room"]["host"]["username"] == alice_on_b)
    finally:
        await watch_b.close()


async def _notifications(api: Api, token: str, kind: str) -> list[dict[str, Any]]:
    found = api.request("GET", "/api/v1/notifications", token).json()["notifications"]
    return [n for n in found if n["kind"] == kind]
