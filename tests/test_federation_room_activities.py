"""Room actions as activities (federation/room_activities.py): built and parsed back, and
a parser that refuses what does not fit with ActivityParseError, never anything else."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.context import ROOM_ACTIVITY_CONTEXT
from federation.errors import ActivityParseError
from federation.room_activities import (
    RoomActivity,
    build_room_activity,
    parse_room_activity,
)


def test_a_mute_of_a_member_round_trips() -> None:
    activity = RoomActivity(
        type="parley:Mute",
        actor="https://b.example/users/bob",
        room="https://a.example/rooms/r1",
        member="dave@a.example",
        arguments={"muted": True},
    )
    doc = build_room_activity("https://b.example/users/bob/activities/1", activity)
    assert doc == {
        "@context": ROOM_ACTIVITY_CONTEXT,
        "id": "https://b.example/users/bob/activities/1",
        "type": "parley:Mute",
        "actor": "https://b.example/users/bob",
        "object": "https://a.example/rooms/r1",
        "parley:member": "dave@a.example",
        "parley:muted": True,
    }
    assert parse_room_activity(doc, ("muted",)) == activity


@pytest.mark.parametrize(
    "change",
    [
        {"type": "Follow"},
        {"object": 7},
        {"object": "not a url"},
        {"parley:member": ["x"]},
        {"parley:muted": {"deep": True}},
        {"parley:muted": "x" * 100},
    ],
)
def test_what_does_not_fit_is_refused(change: dict[str, Any]) -> None:
    doc = {
        "type": "parley:Mute",
        "actor": "https://b.example/users/bob",
        "object": "https://a.example/rooms/r1",
        "parley:muted": True,
        **change,
    }
    with pytest.raises(ActivityParseError):
        parse_room_activity(doc, ("muted",))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["type", "actor", "object", "parley:member", "parley:muted", "x"]),
        JSON | st.sampled_from(["parley:Mute", "https://a.example/rooms/r1"]),
    )
)
def test_the_parser_never_fails_otherwise(doc: dict[str, Any]) -> None:
    try:
        parsed = parse_room_activity(doc, ("muted",))
    except ActivityParseError:
        return
    assert parsed.type.startswith("parley:")
    assert all(isinstance(v, bool | str) for v in parsed.arguments.values())
