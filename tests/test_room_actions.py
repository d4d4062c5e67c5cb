"""The one table of room actions (node/room_actions.py): every action a row, every row
a Room method, the same rules for local users and users of other nodes."""

from __future__ import annotations

import pytest

from node.errors import Forbidden, InvalidInput, NotFound
from node.room_actions import ACTIONS, BY_ACTIVITY, BY_NAME, Act, Who, action_named, apply
from node.rooms import Role, Room


def live_room() -> Room:
    room = Room(id="r", host="alice", host_display_name="Alice", title="T")
    room.start("alice")
    room.connect("bob", "Bob")
    room.connect("carol@b.example", "carol@b.example")
    return room


def test_every_action_is_one_row_with_a_unique_name_and_activity_type() -> None:
    assert len(BY_NAME) == len(ACTIONS)
    types = [a.activity for a in ACTIONS if a.activity is not None]
    assert len(types) == len(set(types)) == len(BY_ACTIVITY)
    assert all(t.startswith("parley:") for t in types)
    # The actions users of other nodes may do (FEDERATION.md "Remote speakers").
    assert set(BY_ACTIVITY) == {
        "parley:RaiseHand",
        "parley:LowerHand",
        "parley:AnswerInvitation",
        "parley:Mute",
        "parley:Invite",
        "parley:SetRole",
    }


def test_a_listener_of_another_node_raises_a_hand_and_is_invited_by_the_host() -> None:
    room = live_room()
    apply(room, BY_ACTIVITY["parley:RaiseHand"], Act("carol@b.example", "carol@b.example", {}))
    assert [m.username for m in room.hands] == ["carol@b.example"]
    apply(room, BY_NAME["invite"], Act("alice", "carol@b.example", {}))
    answer = BY_NAME["answer_invitation"]
    apply(room, answer, Act("carol@b.example", "carol@b.example", answer.parse({"accept": True})))
    assert room.role_of("carol@b.example") is Role.SPEAKER


def test_who_is_checked_first_and_the_room_checks_the_rest() -> None:
    room = live_room()
    with pytest.raises(Forbidden):
        apply(room, BY_NAME["invite"], Act("bob", "carol@b.example", {}))
    with pytest.raises(Forbidden):
        apply(room, BY_NAME["end"], Act("bob", "bob", {}))
    room.set_role("alice", "bob", Role.COHOST)
    # A cohost may mute a speaker, not unmute them (the Room's own rule).
    room.set_role("alice", "carol@b.example", Role.SPEAKER)
    mute = BY_NAME["mute"]
    apply(room, mute, Act("bob", "carol@b.example", mute.parse({"muted": True})))
    with pytest.raises(Forbidden):
        apply(room, mute, Act("bob", "carol@b.example", mute.parse({"muted": False})))
    assert BY_NAME["invite"].who is Who.MODERATOR


def test_arguments_are_validated_before_anything_happens() -> None:
    with pytest.raises(InvalidInput):
        BY_NAME["mute"].parse({"muted": "yes"})
    with pytest.raises(InvalidInput):
        BY_NAME["set_role"].parse({"role": "king"})
    with pytest.raises(NotFound):
        action_named("teleport")
    assert BY_NAME["update"].parse({"title": "New"}) == {"title": "New"}
