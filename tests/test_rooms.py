from __future__ import annotations

from typing import Any

import pytest

from node.errors import Conflict, Forbidden, IllegalTransition
from node.rooms import Role, Room, RoomState


def make_room(max_speakers: int = 3) -> tuple[Room, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    room = Room(
        id="r1", host="alice", host_display_name="Alice", title="T", max_speakers=max_speakers
    )
    room.subscribe(events.append)
    room.connect("alice", "Alice")
    return room, events


def live_room(max_speakers: int = 3) -> tuple[Room, list[dict[str, Any]]]:
    room, events = make_room(max_speakers)
    room.start("alice")
    for name in ("bob", "carol", "dave"):
        room.connect(name, name.title())
    return room, events


def test_life_cycle_graph_refuses_undeclared_moves() -> None:
    room, events = make_room()
    with pytest.raises(Forbidden):
        room.start("bob")
    room.start("alice")
    assert room.state is RoomState.LIVE and room.started_at is not None
    with pytest.raises(IllegalTransition):
        room.start("alice")
    room.end("alice")
    assert room.state is RoomState.ENDED
    with pytest.raises(IllegalTransition):
        room.end("alice")
    assert [e["room"]["state"] for e in events if e["type"] == "room"] == ["live", "ended"]


def test_hand_invite_accept_brings_listener_on_stage_muted() -> None:
    room, events = live_room()
    room.raise_hand("bob")
    assert [m.username for m in room.hands] == ["bob"]
    with pytest.raises(Forbidden):
        room.invite("carol", "bob")
    room.invite("alice", "bob")
    room.answer_invitation("bob", accept=True)
    bob = room.member("bob")
    assert bob.role is Role.SPEAKER and bob.muted and bob.hand_raised_at is None
    assert room.can_publish("bob") and not room.can_publish("carol")
    assert events[-1] == {"type": "member", "member": bob.to_json()}


def test_decline_and_accept_without_invitation() -> None:
    room, _ = live_room()
    with pytest.raises(Conflict):
        room.answer_invitation("bob", accept=True)
    room.invite("alice", "bob")
    room.answer_invitation("bob", accept=False)
    assert room.member("bob").role is Role.LISTENER


def test_stage_is_limited_by_max_speakers() -> None:
    room, _ = live_room(max_speakers=2)
    room.invite("alice", "bob")
    room.invite("alice", "carol")
    room.answer_invitation("bob", accept=True)
    with pytest.raises(Conflict):
        room.answer_invitation("carol", accept=True)
    with pytest.raises(Conflict):
        room.invite("alice", "dave")


def test_moderation_rules() -> None:
    room, _ = live_room()
    room.set_role("alice", "bob", Role.COHOST)
    room.set_role("bob", "carol", Role.SPEAKER)  # cohost brings someone up
    room.set_muted("bob", "carol", True)
    with pytest.raises(Forbidden):
        room.set_muted("bob", "carol", False)  # only carol unmutes herself
    room.set_muted("carol", "carol", False)
    with pytest.raises(Forbidden):
        room.set_role("bob", "carol", Role.COHOST)  # only the host makes cohosts
    with pytest.raises(Forbidden):
        room.remove("bob", "alice")
    with pytest.raises(Forbidden):
        room.set_role("carol", "bob", Role.LISTENER)  # a speaker has no power
    room.set_role("carol", "carol", Role.LISTENER)  # stepping down is always allowed
    room.remove("bob", "dave", block=True)
    assert "dave" in room.blocked and "dave" not in room.members
    with pytest.raises(Forbidden):
        room.connect("dave", "Dave")
    with pytest.raises(Forbidden):
        room.set_role("alice", "alice", Role.LISTENER)


def test_listeners_leave_but_speakers_keep_their_seat() -> None:
    room, events = live_room()
    room.invite("alice", "bob")
    room.answer_invitation("bob", accept=True)
    room.disconnect("bob")
    room.disconnect("carol")
    assert "bob" in room.members and not room.member("bob").to_json()["connected"]
    assert "carol" not in room.members
    assert {"type": "member_left", "username": "carol"} in events


def test_host_presence() -> None:
    room, _ = make_room()
    assert room.host_present
    room.disconnect("alice")
    assert not room.host_present
    room.set_publishing("alice", True)
    assert room.host_present


def test_csrcs_name_speakers_for_the_room_s_life() -> None:
    room, events = live_room()
    assert room.members["bob"].to_json()["csrc"] is None
    assert room.csrc_for("alice") == 1
    assert room.csrc_for("bob") == 2
    assert room.csrc_for("alice") == 1
    assert events[-1] == {"type": "member", "member": room.members["bob"].to_json()}
    assert room.to_json()["speakers"][0]["csrc"] == 1
    # Bob leaves (his member goes) and comes back: the same number names him.
    room.disconnect("bob")
    assert "bob" not in room.members
    room.connect("bob", "Bob")
    assert room.members["bob"].csrc == 2
    # Someone mixed before joining (a remote speaker) gets theirs when they join.
    assert room.csrc_for("erin@b.example") == 3
    room.connect("erin@b.example", "Erin")
    assert room.members["erin@b.example"].csrc == 3


def test_a_copy_of_a_room_keeps_the_origin_s_csrcs() -> None:
    room, _ = make_room()
    room.replicate_member({"username": "bob", "role": "speaker", "csrc": 5})
    room.replicate_member({"username": "carol", "role": "speaker", "csrc": "6"})
    room.replicate_member({"username": "dave", "role": "speaker", "csrc": True})
    assert room.members["bob"].csrc == 5
    assert room.members["carol"].csrc is None and room.members["dave"].csrc is None
    # Promoted, its own mixer keeps bob's and numbers newcomers after the highest.
    assert room.csrc_for("bob") == 5
    assert room.csrc_for("carol") == 6
