"""Issue 12 in the domain and the pure codecs: reactions and their rate, comments, the
pin, the host leaving, the summary, schedules, the Ogg file and the replay playlist, the
Event, the RSVP, replies and the replay Note."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.activities import RoomAnnouncement, RoomState
from federation.errors import ActivityParseError
from federation.events import ScheduledRoom, build_event, event_room, rsvp_target
from federation.recordings import Replay, build_replay_note, iso_duration
from federation.replies import reply_from_note
from node.comments import Comment, comment_from_json
from node.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from node.media.oggfile import OggOpusWriter, packets_of
from node.media.replay import ReplayHls
from node.reactions import ReactionLimiter
from node.room_actions import BY_NAME, Act, apply
from node.room_copy import replicate
from node.rooms import Role, Room
from node.schedule import parse_starts_at

A = "https://a.example"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def live_room() -> tuple[Room, list[dict[str, Any]]]:
    room = Room(id="r1", host="alice", host_display_name="Alice", title="Show")
    events: list[dict[str, Any]] = []
    room.subscribe(events.append)
    room.start("alice")
    room.connect("alice", "Alice")
    room.connect("bob", "Bob")
    return room, events


def test_reactions_a_fixed_set_a_rate_and_counts() -> None:
    clock = Clock()
    room, events = live_room()
    room.reactions = ReactionLimiter(rate=2.0, burst=3.0, clock=clock)
    with pytest.raises(InvalidInput):
        room.react("bob", "💩")
    for _ in range(3):
        room.react("bob", "👏")
    with pytest.raises(RateLimited) as refused:
        room.react("bob", "👏")
    assert refused.value.retry_after == pytest.approx(0.5)
    room.react("alice", "🔥")  # one person's flood does not limit another
    clock.now += 0.5
    room.react("bob", "👏")
    assert [e["emoji"] for e in events if e["type"] == "reaction"] == ["👏"] * 3 + ["🔥", "👏"]
    room.raise_hand("bob")  # the raised hand floats and counts too
    room.end("alice")
    summary = room.summary
    assert summary is not None
    assert summary["reactions"] == {"👏": 4, "🔥": 1, "✋": 1}
    assert summary["reactions_dropped"] == 1


def test_hand_over_and_take_over_as_host() -> None:
    room, events = live_room()
    apply(room, BY_NAME["set_role"], Act("alice", "bob", {"role": Role.COHOST}))
    with pytest.raises(Conflict):
        apply(room, BY_NAME["take_host"], Act("bob", "bob", {}))  # the host is here
    room.set_host_away(2000.0)
    assert events[-1] == {"type": "host_away", "until": 2000.0}
    with pytest.raises(Forbidden):
        apply(room, BY_NAME["hand_over"], Act("bob", "alice", {}))
    apply(room, BY_NAME["take_host"], Act("bob", "bob", {}))
    assert room.host == "bob" and room.host_away_until is None
    assert room.members["alice"].role is Role.COHOST
    assert room.owner == "alice"  # the announcements and recording stay alice's
    apply(room, BY_NAME["hand_over"], Act("bob", "alice", {}))
    assert room.host == "alice" and room.members["bob"].role is Role.LISTENER


def test_comments_hide_pin_and_what_other_nodes_send() -> None:
    room, events = live_room()
    one = Comment(f"{A}/n/1", f"{A}/u/x", "x@a.example", "X", "<p>1</p>", f"{A}/n/1", "", 1.0)
    two = Comment(f"{A}/n/2", f"{A}/u/y", "y@a.example", "Y", "<p>2</p>", f"{A}/n/2", "", 2.0)
    room.add_comment(one)
    room.add_comment(two)
    assert [c["id"] for c in room.board.to_json()["items"]] == [two.id, one.id]  # newest first
    with pytest.raises(Forbidden):
        room.pin("bob", one.id, None, "")
    room.pin("alice", one.id, None, "")
    room.hide_comment("alice", one.id)
    assert room.board.pinned is None and room.board.to_json()["count"] == 1
    room.add_comment(one)  # a late copy of a hidden comment stays hidden
    assert room.board.to_json()["count"] == 1
    with pytest.raises(InvalidInput):
        room.pin("alice", None, "javascript:alert(1)", "x")
    room.pin("alice", None, "https://b.example/page", "<b>Read</b>")
    assert room.board.pinned == {"link": "https://b.example/page", "label": "Read"}
    assert comment_from_json({"id": "javascript:1"}) is None
    dirty = comment_from_json(
        {"id": f"{A}/n/3", "content": "<img src=x onerror=alert(1)>hi", "author": {"name": "<b>Z"}}
    )
    assert dirty is not None and dirty.content == "hi" and dirty.name == "Z"


def test_a_copy_takes_the_summary_and_comments_of_the_carrying_node() -> None:
    origin, _ = live_room()
    origin.add_comment(
        Comment(f"{A}/n/1", f"{A}/u/x", "x@a.example", "X", "<p>1</p>", f"{A}/n/1", "", 1.0)
    )
    origin.end("alice")
    copy = Room(id="c1", host="h", host_display_name="H", title="?")
    copy.start("h")
    events: list[dict[str, Any]] = []
    copy.subscribe(events.append)
    replicate(copy, origin.to_json(), lambda n: f"{n}@a.example")
    ended = next(e for e in events if e["type"] == "room")
    assert ended["room"]["summary"] == origin.summary
    assert copy.board.to_json()["count"] == 1


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2026-11-23T18:00:00Z", True),
        ("2026-11-23T19:00:00+01:00", True),
        ("2026-11-23T18:00:00", False),
        ("tomorrow", False),
        (True, False),
        (float("nan"), False),
    ],
)
def test_starts_at(value: Any, ok: bool) -> None:
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()
    if ok:
        assert (
            parse_starts_at(value, now=now)
            == dt.datetime(2026, 11, 23, 18, tzinfo=dt.UTC).timestamp()
        )
    else:
        with pytest.raises(InvalidInput):
            parse_starts_at(value, now=now)
    with pytest.raises(InvalidInput):
        parse_starts_at(now - 3600, now=now)


@given(st.lists(st.binary(min_size=1, max_size=700), max_size=130))
def test_ogg_file_round_trip(packets: list[bytes]) -> None:
    writer = OggOpusWriter(7, {"title": "T"})
    data = writer.header() + b"".join(writer.add(p) for p in packets) + writer.finish()
    assert packets_of(data) == packets
    assert writer.granule == 960 * len(packets)


def test_replay_playlist_lists_every_packet_once() -> None:
    replay = ReplayHls("tok", tuple(bytes([i % 250 + 1]) for i in range(250)), 0.0)
    text = replay.playlist()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.count("#EXTINF:") == 3
    assert "#EXTINF:1.000," in text  # 50 packets left for the last segment
    assert replay.segment(3) is None and replay.segment(2) is not None


def announcement(state: RoomState = RoomState.SCHEDULED) -> RoomAnnouncement:
    return RoomAnnouncement(
        id=f"{A}/rooms/r1",
        url=f"{A}/rooms/r1",
        state=state,
        title="Show",
        description="<b>about</b>",
        host=f"{A}/users/alice",
    )


def test_event_round_trip_and_cancel() -> None:
    starts = dt.datetime(2026, 11, 23, 18, tzinfo=dt.UTC)
    event = build_event(
        ScheduledRoom(announcement(), starts),
        event_id=f"{A}/users/alice/rooms/r1/event",
        host_name="Alice",
        followers_url=f"{A}/users/alice/followers",
        published=starts,
    )
    assert event["type"] == "Event" and event["startTime"] == "2026-11-23T18:00:00Z"
    assert "&lt;b&gt;" in event["content"]
    room = event_room(event)
    assert room is not None and room.starts_at == starts.timestamp()
    assert room.state is RoomState.SCHEDULED and room.event_id == event["id"]
    cancelled = build_event(
        ScheduledRoom(announcement(), starts, cancelled=True),
        event_id=event["id"],
        host_name="Alice",
        followers_url=f"{A}/users/alice/followers",
        published=starts,
    )
    assert event_room(cancelled).state is RoomState.ENDED  # type: ignore[union-attr]
    assert rsvp_target("Accept", event["id"]) == event["id"]
    assert rsvp_target("Accept", {"type": "Follow", "id": f"{A}/f"}) is None
    assert rsvp_target("Join", {"type": "Event", "id": event["id"]}) == event["id"]
    with pytest.raises(ActivityParseError):
        rsvp_target("Accept", "not a url")


def test_replies_are_the_actors_own_and_cleaned() -> None:
    actor = "https://m.example/users/zoe"
    note = {
        "id": "https://m.example/users/zoe/statuses/1",
        "inReplyTo": f"{A}/users/alice/rooms/r1",
        "content": '<p>hi <a href="javascript:x">x</a><script>1</script></p>',
        "published": "2099-01-01T00:00:00Z",
    }
    reply = reply_from_note(note, actor)
    assert (
        reply is not None
        and reply.content == '<p>hi <a rel="nofollow noopener noreferrer">x</a></p>'
    )
    assert reply.published <= dt.datetime.now(dt.UTC).timestamp()  # no future dates
    assert reply_from_note({**note, "inReplyTo": None}, actor) is None
    with pytest.raises(ActivityParseError):
        reply_from_note({**note, "id": "https://evil.example/1"}, actor)


def test_replay_note_has_the_audio_mastodon_plays() -> None:
    note = build_replay_note(
        Replay(announcement(RoomState.ENDED), f"{A}/r.ogg", 3725.4, 1000),
        note_id=f"{A}/users/alice/rooms/r1/replay",
        host_name="Alice",
        followers_url=f"{A}/users/alice/followers",
        published=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        base_url=A,
    )
    (audio,) = note["attachment"]
    assert audio == {
        "type": "Audio",
        "mediaType": "audio/ogg",
        "url": f"{A}/r.ogg",
        "name": "Show (replay)",
        "duration": "PT1H2M5S",
    }
    assert iso_duration(0) == "PT0S" and "(1:02:05)" in note["content"]
    with pytest.raises(NotFound):
        live_room()[0].hide_comment("alice", "https://nowhere.example/1")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(
            ["id", "type", "inReplyTo", "content", "url", "published", "room", "startTime",
             "author", "comment", "link", "label", "name", "items", "speakers", "reactions",
             "duration_s", "peak_listeners", "total_listeners", "reactions_total"]
        ) | st.text(max_size=5),
        inner,
        max_size=6,
    ),
    max_leaves=12,
)  # fmt: skip


@given(JSON, st.sampled_from(["Accept", "Reject", "Join", "TentativeAccept", "Like"]))
def test_outside_documents_parse_or_are_refused(doc: Any, kind: str) -> None:
    """What other servers send: parsed, or refused with ActivityParseError, never a crash."""
    from node.comments import pinned_from_json
    from node.room_summary import summary_from_json

    for parse in (
        lambda d: event_room(d) if isinstance(d, dict) else None,
        lambda d: reply_from_note(d, "https://m.example/users/z") if isinstance(d, dict) else None,
        lambda d: rsvp_target(kind, d),
    ):
        try:
            parse(doc)
        except ActivityParseError:
            pass
    comment_from_json(doc)
    pinned_from_json(doc)
    summary_from_json(doc)
    room = Room(id="r", host="h", host_display_name="H", title="T")
    replicate(room, {"title": "T", "comments": doc, "summary": doc, "starts_at": doc}, str)
