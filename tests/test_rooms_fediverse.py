"""Issue 12 against an independent implementation (Fedify, tests/fedify): a scheduled
room's Event and an RSVP (Accept{Event}), a reply shown in the room on A and B, likes
and boosts, and a recorded 20 s room: its file decodes to the speaker's tone, it seeks
with Range, and its Audio attachment reaches a follower on B and the Fedify peer."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from collections.abc import Callable
from typing import Any

import av
import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection

from tests.conftest import Api, NodeProcess
from tests.federation_helpers import (
    actor_url,
    db_rows,
    follow,
    handle,
    wait_accepted,
    wait_for,
)
from tests.fedify_peer import FedifyPeer
from tests.room_watch import watch
from tests.test_relay_nodes import join_remote, post
from tests.test_signaling import whip
from tests.tonekit import dominant_frequency, frames_to_mono, frequency_power

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]
PeerFactory = Callable[..., FedifyPeer]

pytestmark = pytest.mark.usefixtures("loopback_ice")


def _entry(peer: FedifyPeer, kind: str, match: Callable[[dict[str, Any]], bool]) -> Any:
    def find(p: FedifyPeer) -> dict[str, Any] | None:
        for entry in p.inbox():
            if entry.get("type") == kind and entry.get("http_signature") and match(entry):
                return entry
        return None

    return peer.wait_for(find, 30, f"{kind} at the Fedify peer")


def _followed_by(peer: FedifyPeer, api: Api, username: str) -> None:
    result = peer.follow(handle_of(api, username))
    assert result["delivered"], result
    wait_for(
        lambda: (
            peer.actor_id
            in [
                f["actor"]
                for f in api.http.get(f"/api/v1/accounts/{username}/followers").json()["followers"]
            ]
        ),
        what="Fedify follows",
    )


def handle_of(api: Api, username: str) -> str:
    return f"{username}@{httpx.URL(api.base_url).netloc.decode()}"


async def test_event_rsvp_replies_and_engagement_with_fedify(
    node_factory: NodeFactory, api_factory: ApiFactory, fedify_peers: PeerFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    follower = fedify_peers()  # follows alice: gets the Event
    stranger = fedify_peers(username="erin")  # follows nobody: only answers the Event
    _followed_by(follower, api_a, "alice")
    # alice is told she has a new follower.
    notes = wait_for(
        lambda: api_a.request("GET", "/api/v1/notifications", alice).json()["notifications"],
        what="the new-follower notification",
    )
    assert [(n["kind"], n["text"]) for n in notes] == [
        ("new_follower", f"{follower.handle} follows you")
    ]

    starts = int(time.time()) + 7200
    room = api_a.create_room(alice, "Interop evening", starts_at=starts)
    alice_actor = actor_url(a, "alice")
    event_id = f"{alice_actor}/rooms/{room['id']}/event"
    note_id = f"{alice_actor}/rooms/{room['id']}/scheduled"

    # Fedify reads our Event: its name, start time and page.
    created = _entry(follower, "Create", lambda e: (e.get("parsed") or {}).get("type") == "Event")
    event = created["parsed"]
    assert event["id"] == event_id
    assert event["name"] == "Interop evening"
    assert event["url"] == room["url"]
    assert (
        dt.datetime.fromisoformat(event["startTime"].replace("Z", "+00:00")).timestamp() == starts
    )
    assert created["activity"]["object"]["ical:status"] == "CONFIRMED"
    note = _entry(follower, "Create", lambda e: (e.get("parsed") or {}).get("id") == note_id)
    assert "Interop evening" in note["parsed"]["content"]

    # An RSVP from Fedify (Accept{Event}) is recorded on A.
    rsvp = stranger.rsvp(event_id, alice_actor)
    assert rsvp["delivered"], rsvp
    wait_for(
        lambda: db_rows(a, "select actor from event_rsvps where room_id = ?", (room["id"],)),
        what="the RSVP on A",
    )

    # A reply from Fedify to the announcement is a comment; its HTML is cleaned.
    reply = follower.reply(
        note_id, "<p>See you <b>there</b><script>alert(1)</script></p>", alice_actor
    )
    assert reply["delivered"], reply
    comments = wait_for(
        lambda: api_a.http.get(f"/api/v1/rooms/{room['id']}/comments").json()["comments"],
        what="the reply in the room",
    )
    assert comments[0]["id"] == reply["note"]
    assert comments[0]["content"] == "<p>See you <b>there</b></p>"
    assert comments[0]["author"]["handle"] == follower.handle

    # Likes and boosts of the announcement are counted.
    assert follower.like(note_id, alice_actor)["delivered"]
    assert stranger.announce(event_id, alice_actor)["delivered"]
    counted = wait_for(
        lambda: (lambda c: c if (c["likes"], c["boosts"]) == (1, 1) else None)(
            api_a.http.get(f"/api/v1/rooms/{room['id']}").json()["comments"]
        ),
        what="a like and a boost",
    )
    assert counted["count"] == 1

    # Live: the Event's update reaches the follower and the stranger who answered it.
    response = api_a.request("POST", f"/api/v1/rooms/{room['id']}/start", alice)
    assert response.status_code == 200, response.text
    for peer in (follower, stranger):
        update = _entry(peer, "Update", lambda e: (e.get("parsed") or {}).get("id") == event_id)
        assert update["activity"]["object"]["room"]["roomState"] == "live"

    # The room on B shows the comment too, and a new reply reaches both.
    bob = api_b.signup("bob")
    mirror = await join_remote(b, bob, room["url"])
    assert [c["id"] for c in mirror["comments"]["items"]] == [reply["note"]]
    watch_b = await watch(mirror["ws_url"], bob)
    try:
        live_note = f"{alice_actor}/rooms/{room['id']}"
        second = follower.reply(live_note, "<p>Listening from Fedify</p>", alice_actor)
        assert second["delivered"], second
        shown = await watch_b.until("comment", lambda m: m["comment"]["id"] == second["note"])
        assert shown["comment"]["content"] == "<p>Listening from Fedify</p>"
    finally:
        await watch_b.close()


def _decode(data: bytes) -> tuple[np.ndarray, float]:
    with av.open(io.BytesIO(data), mode="r", format="ogg") as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(audio=0))
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
    return frames_to_mono(frames), duration


async def test_a_recorded_room_replays_seeks_and_reaches_followers_as_audio(
    node_factory: NodeFactory,
    api_factory: ApiFactory,
    fedify_peers: PeerFactory,
    clients: list[RTCPeerConnection],
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    bob = api_b.signup("bob")
    follow(api_b, bob, handle(a, "alice"))
    wait_accepted(api_b, bob, actor_url(a, "alice"))
    peer = fedify_peers()
    _followed_by(peer, api_a, "alice")

    room = api_a.create_room(alice, "Recorded hour", recording=True)
    watcher = await watch(room["ws_url"])
    try:
        response = api_a.request("POST", f"/api/v1/rooms/{room['id']}/start", alice)
        assert response.status_code == 200 and response.json()["recording"] is True
        live = await watcher.until("room", lambda m: m["room"]["state"] == "live")
        assert live["room"]["recording"] is True  # everyone sees the badge
        await whip(room["whip_url"], alice, 440, clients)
        response = await post(
            f"{a.base_url}/api/v1/rooms/{room['id']}/mute", alice, {"muted": False}
        )
        assert response.status_code == 200, response.text
        await asyncio.sleep(20)  # the length of the recording under test, not a wait
        response = await post(f"{a.base_url}/api/v1/rooms/{room['id']}/end", alice)
        assert response.status_code == 200, response.text
    finally:
        await watcher.close()

    info = wait_for(
        lambda: (lambda r: r.json() if r.status_code == 200 else None)(
            api_a.http.get(f"/api/v1/rooms/{room['id']}/recording")
        ),
        what="the recording",
    )
    assert 19 < info["duration"] < 25
    data = httpx.get(info["recording_url"]).content
    assert len(data) == info["bytes"]
    samples, duration = _decode(data)
    assert duration == pytest.approx(info["duration"], abs=0.1)
    # The speaker's tone, second by second, from the moment they were heard to the end.
    seconds = [samples[i * 48000 : (i + 1) * 48000] for i in range(len(samples) // 48000)]
    tone = [
        dominant_frequency(s) == pytest.approx(440, abs=15)
        and frequency_power(s, 48000, 440) > 0.5
        for s in seconds
    ]
    first = tone.index(True)
    assert first <= 3, f"no tone in the first {first} s: the speaker joined after going live"
    assert all(tone[first:]), tone
    assert len(tone) - first >= 17

    # Seeking: a Range request answers the bytes asked for.
    ranged = httpx.get(info["recording_url"], headers={"Range": "bytes=1000-1999"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert ranged.content == data[1000:2000]
    assert httpx.get(info["download_url"]).headers["content-disposition"].startswith("attachment")
    playlist = httpx.get(info["replay_hls_url"]).text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and "#EXT-X-ENDLIST" in playlist

    # The replay as a Note with an Audio attachment: Fedify reads it...
    replay_id = f"{actor_url(a, 'alice')}/rooms/{room['id']}/replay"
    entry = _entry(peer, "Create", lambda e: (e.get("parsed") or {}).get("id") == replay_id)
    (audio,) = entry["parsed"]["attachments"]
    assert audio["type"] == "Audio"
    assert audio["mediaType"] == "audio/ogg"
    assert audio["url"] == info["recording_url"]
    assert audio["name"] == "Recorded hour (replay)"
    assert audio["duration"] == f"PT{round(info['duration'])}S"
    # ... and so does the follower's node B (delivered, verified, processed).
    rows = wait_for(
        lambda: db_rows(
            b,
            "select state from fed_inbox where json_extract(payload, '$.object.id') = ?",
            (replay_id,),
        ),
        what="the replay in B's inbox",
    )
    assert rows == [("done",)]
    # The summary links the replay.
    summary = api_a.http.get(f"/api/v1/rooms/{room['id']}").json()["summary"]
    assert summary["replay_url"] == info["replay_url"]

    # The host deletes it: gone, and the post is deleted for followers.
    response = api_a.request("DELETE", f"/api/v1/rooms/{room['id']}/recording", bob)
    assert response.status_code == 401
    response = api_a.request("DELETE", f"/api/v1/rooms/{room['id']}/recording", alice)
    assert response.status_code == 204
    assert httpx.get(info["recording_url"]).status_code == 404
    _entry(peer, "Delete", lambda e: e["object_id"] == replay_id)
