from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from federation.activities import (
    LIVE_HASHTAG,
    RoomAnnouncement,
    RoomState,
    build_accept,
    build_create,
    build_delete,
    build_follow,
    build_reject,
    build_room_note,
    build_undo,
    build_update,
    parse_activity,
    room_from_note,
)
from federation.actors import AS_CONTEXT, AS_PUBLIC
from federation.context import PARLEY_NS
from federation.errors import ActivityParseError

ALICE = "https://parley.example/users/alice"
BOB = "https://mastodon.example/users/bob"
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def room(state: RoomState = RoomState.LIVE, title: str = "Fediverse <3 audio") -> RoomAnnouncement:
    return RoomAnnouncement(
        id="https://parley.example/rooms/r1",
        url="https://parley.example/rooms/r1",
        state=state,
        title=title,
        description="Talking about relays & survival",
        host=ALICE,
        listen_url="https://parley.example/rooms/r1/listen.ogg",
        whep_url="https://parley.example/rooms/r1/whep",
        speakers=(ALICE, BOB),
        relay_url="wss://parley.example/relay/v1/rooms/r1",
    )


def note(state: RoomState = RoomState.LIVE, **kw: Any) -> dict[str, Any]:
    return build_room_note(
        room(state),
        note_id="https://parley.example/notes/n1",
        host_name="Alice",
        followers_url=f"{ALICE}/followers",
        published=T0,
        base_url="https://parley.example",
        **kw,
    )


def test_follow_accept_reject_undo() -> None:
    follow = build_follow(f"{BOB}#follows/1", BOB, ALICE)
    assert follow == {
        "@context": AS_CONTEXT,
        "id": f"{BOB}#follows/1",
        "type": "Follow",
        "actor": BOB,
        "object": ALICE,
    }
    accept = build_accept(f"{ALICE}#accepts/1", ALICE, follow)
    assert accept["type"] == "Accept"
    assert accept["object"] == {k: v for k, v in follow.items() if k != "@context"}
    assert build_reject(f"{ALICE}#rejects/1", ALICE, follow)["type"] == "Reject"
    undo = build_undo(f"{BOB}#undo/1", BOB, follow)
    assert undo["object"]["type"] == "Follow"
    assert parse_activity(undo).object_type == "Follow"


def test_room_note_for_mastodon() -> None:
    doc = note()
    assert doc["type"] == "Note"
    assert doc["to"] == [AS_PUBLIC]
    assert doc["cc"] == [f"{ALICE}/followers"]
    assert doc["attributedTo"] == ALICE
    assert doc["published"] == "2025-03-01T12:00:00Z"
    assert "Alice is live: Fediverse &lt;3 audio" in doc["content"]
    assert "relays &amp; survival" in doc["content"]
    link = '<a href="https://parley.example/rooms/r1" rel="nofollow noopener noreferrer">'
    assert link in doc["content"]
    assert "#<span>ParleyLive</span>" in doc["content"]
    assert doc["tag"] == [
        {
            "type": "Hashtag",
            "href": "https://parley.example/tags/ParleyLive",
            "name": f"#{LIVE_HASHTAG}",
        }
    ]
    assert doc["@context"][1]["parley"] == PARLEY_NS == "https://w3id.org/parley#"
    assert doc["room"]["type"] == "ParleyRoom"
    assert doc["room"]["roomState"] == "live"


def test_create_wraps_note_with_same_audience() -> None:
    create = build_create("https://parley.example/notes/n1/activity", ALICE, note())
    assert create["type"] == "Create"
    assert create["to"] == [AS_PUBLIC]
    assert create["cc"] == [f"{ALICE}/followers"]
    assert "@context" not in create["object"]
    activity = parse_activity(create)
    assert activity.object_id == "https://parley.example/notes/n1"
    assert activity.to == (AS_PUBLIC,)


def test_room_round_trip() -> None:
    parsed = room_from_note(note())
    assert parsed is not None
    assert parsed.id == "https://parley.example/rooms/r1"
    assert parsed.state is RoomState.LIVE
    assert parsed.title == "Fediverse <3 audio"
    assert parsed.host == ALICE
    assert parsed.listen_url == "https://parley.example/rooms/r1/listen.ogg"
    assert parsed.whep_url == "https://parley.example/rooms/r1/whep"
    assert parsed.speakers == (ALICE, BOB)
    assert parsed.note_id == "https://parley.example/notes/n1"
    assert parsed.relay_url == "wss://parley.example/relay/v1/rooms/r1"


def test_update_and_ended() -> None:
    with pytest.raises(ValueError):
        build_update("https://parley.example/u/1", ALICE, note())
    ended = note(RoomState.ENDED, updated=T0 + dt.timedelta(hours=1))
    update = build_update("https://parley.example/u/1", ALICE, ended)
    assert update["type"] == "Update"
    assert update["object"]["updated"] == "2025-03-01T13:00:00Z"
    assert "has ended" in update["object"]["content"]
    parsed = room_from_note(update["object"])
    assert parsed is not None and parsed.state is RoomState.ENDED


def test_delete() -> None:
    delete = build_delete("https://parley.example/d/1", ALICE, "https://parley.example/notes/n1")
    assert delete["object"] == {"id": "https://parley.example/notes/n1", "type": "Tombstone"}
    assert parse_activity(delete).object_id == "https://parley.example/notes/n1"


def test_plain_note_has_no_room() -> None:
    assert room_from_note({"id": "https://m.example/n/1", "type": "Note", "content": "hi"}) is None


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.update(roomState="paused"), "room.roomState"),
        (lambda r: r.pop("name"), "room.name"),
        (lambda r: r.update(id="https://evil.example/rooms/x"), "room.id"),
        (lambda r: r.update(speakers="x"), "room.speakers"),
        (lambda r: r.update(listenUrl="javascript:alert(1)"), "room.listenUrl"),
        (lambda r: r.update(relayUrl="https://parley.example/relay"), "room.relayUrl"),
        (lambda r: r.update(relayUrl="wss://evil.example/relay/v1/rooms/r1"), "room.relayUrl"),
        (lambda r: r.update(relayUrl="ws://parley.example/relay/v1/rooms/r1"), "room.relayUrl"),
    ],
)
def test_room_validation(mutate: Any, field: str) -> None:
    doc = note()
    mutate(doc["room"])
    with pytest.raises(ActivityParseError) as info:
        room_from_note(doc)
    assert info.value.field == field


def test_parse_accepts_embedded_actor_and_compact_public() -> None:
    activity = parse_activity(
        {
            "id": f"{BOB}#likes/1",
            "type": "Like",
            "actor": {"id": BOB, "type": "Person"},
            "object": "https://parley.example/notes/n1",
            "to": "as:Public",
        }
    )
    assert activity.actor == BOB
    assert activity.to == (AS_PUBLIC,)


BASE_DOC: dict[str, Any] = {
    "id": f"{BOB}#follows/1",
    "type": "Follow",
    "actor": BOB,
    "object": ALICE,
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": None}, "type"),
        ({"id": None}, "id"),
        ({"id": "not a url"}, "id"),
        ({"id": "https://other.example/x"}, "id"),
        ({"actor": 3}, "actor"),
        ({"actor": {"type": "Person"}}, "actor.id"),
        ({"object": 5}, "object"),
        ({"object": {"type": "Note"}}, "object.id"),
        ({"to": [1]}, "to"),
    ],
)
def test_parse_activity_rejects(change: dict[str, Any], field: str) -> None:
    doc = {**BASE_DOC, **change}
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(ActivityParseError) as info:
        parse_activity(doc)
    assert info.value.field == field


def test_parse_activity_missing_actor_and_object() -> None:
    for key in ("actor", "object"):
        doc = {k: v for k, v in BASE_DOC.items() if k != key}
        with pytest.raises(ActivityParseError) as info:
            parse_activity(doc)
        assert info.value.field == key


def test_parse_rejects_create_attributed_to_other() -> None:
    create = build_create("https://parley.example/c/1", ALICE, note())
    create["object"]["attributedTo"] = "https://parley.example/users/mallory"
    with pytest.raises(ActivityParseError) as info:
        parse_activity(create)
    assert info.value.field == "object.attributedTo"


def test_parse_not_an_object() -> None:
    with pytest.raises(ActivityParseError):
        parse_activity("nope")
