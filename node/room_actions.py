"""The one table of room actions: name <-> ``parley:*`` activity type <-> ``Room`` method
<-> who may do it.

The web API (a user of this node) and the inbox (a user of another node, through a signed
activity; federation/room_activities.py is its codec) both apply actions through
``apply``. A room carried from another node forwards the actions that have an activity
type to its acting origin; the others (``activity`` None) are done on the acting origin's
own node only.

Adding an action: one row here and its ``Room`` method (node/rooms.py), plus its route in
node/web/api.py. The ``Room`` method checks the finer rules (a cohost cannot act on the
host, only the speaker unmutes themselves ...); ``who`` is the coarse gate, checked first.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from node.errors import Forbidden, InvalidInput, NotFound
from node.rooms import MODERATORS, Role, Room


class Who(enum.StrEnum):
    ANYONE = "anyone in the room, for themselves"
    SELF_OR_MODERATOR = "the member themselves, or the host or a cohost"
    MODERATOR = "the host or a cohost"
    HOST = "the host"


@dataclass(frozen=True, slots=True)
class Act:
    """One action to apply: who does it, to whom, with which arguments."""

    actor: str
    target: str
    arguments: Mapping[str, Any]

    def flag(self, name: str) -> bool:
        return bool(self.arguments.get(name))


def _role(value: Any) -> Role:
    try:
        role = Role(str(value))
    except ValueError:
        raise InvalidInput("role", "must be cohost, speaker or listener") from None
    return role  # the host role: the room refuses it (Forbidden)


def _bool(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidInput(name, "must be true or false")
        return value

    return check


@dataclass(frozen=True, slots=True)
class RoomAction:
    name: str
    activity: str | None
    """``parley:*`` type when users of other nodes may do it; None: on its node only."""
    who: Who
    apply: Callable[[Room, Act], None]
    arguments: Mapping[str, Callable[[Any], Any]]
    """Argument name -> validator (raises InvalidInput)."""
    joins: bool = False
    """From another node, the actor joins the room first if not yet in it (their hand
    may arrive before their presence does)."""
    whole_body: bool = False
    """The arguments are the request body as it is (an edit of the room's fields)."""

    def check(self, room: Room, actor: str, target: str) -> None:
        role = room.role_of(actor)
        if self.who is Who.HOST and actor != room.host:
            raise Forbidden("only the host may do this")
        if self.who is Who.MODERATOR and role not in MODERATORS:
            raise Forbidden("only the host or a cohost may do this")
        if self.who is Who.SELF_OR_MODERATOR and actor != target and role not in MODERATORS:
            raise Forbidden("only the host or a cohost may do this")

    def parse(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The action's arguments from a request body or an activity, validated."""
        if self.whole_body:
            return dict(body)
        return {name: check(body.get(name)) for name, check in self.arguments.items()}


ACTIONS: tuple[RoomAction, ...] = (
    RoomAction(
        "raise_hand",
        "parley:RaiseHand",
        Who.ANYONE,
        lambda room, a: room.raise_hand(a.actor),
        {},
        joins=True,
    ),
    RoomAction(
        "lower_hand",
        "parley:LowerHand",
        Who.SELF_OR_MODERATOR,
        lambda room, a: room.lower_hand(a.actor, a.target),
        {},
    ),
    RoomAction(
        "answer_invitation",
        "parley:AnswerInvitation",
        Who.ANYONE,
        lambda room, a: room.answer_invitation(a.actor, a.flag("accept")),
        {"accept": _bool("accept")},
    ),
    RoomAction(
        "mute",
        "parley:Mute",
        Who.SELF_OR_MODERATOR,
        lambda room, a: room.set_muted(a.actor, a.target, a.flag("muted")),
        {"muted": _bool("muted")},
    ),
    RoomAction(
        "invite",
        "parley:Invite",
        Who.MODERATOR,
        lambda room, a: room.invite(a.actor, a.target),
        {},
    ),
    RoomAction(
        "set_role",
        "parley:SetRole",
        Who.SELF_OR_MODERATOR,
        lambda room, a: room.set_role(a.actor, a.target, a.arguments["role"]),
        {"role": _role},
    ),
    RoomAction("remove", None, Who.MODERATOR, lambda room, a: room.remove(a.actor, a.target), {}),
    RoomAction(
        "block",
        None,
        Who.MODERATOR,
        lambda room, a: room.remove(a.actor, a.target, block=True),
        {},
    ),
    RoomAction(
        "update",
        None,
        Who.MODERATOR,
        lambda room, a: room.update(a.actor, dict(a.arguments)),
        {},
        whole_body=True,
    ),
    RoomAction("start", None, Who.HOST, lambda room, a: room.start(a.actor), {}),
    RoomAction("end", None, Who.HOST, lambda room, a: room.end(a.actor), {}),
)

BY_NAME: Mapping[str, RoomAction] = {action.name: action for action in ACTIONS}
BY_ACTIVITY: Mapping[str, RoomAction] = {
    action.activity: action for action in ACTIONS if action.activity is not None
}


def action_named(name: str) -> RoomAction:
    try:
        return BY_NAME[name]
    except KeyError:
        raise NotFound(f"no action {name}") from None


def apply(room: Room, action: RoomAction, act: Act) -> None:
    """Apply ``act`` to ``room``: the coarse gate, then the ``Room`` method (which checks
    the rest and emits the events)."""
    action.check(room, act.actor, act.target)
    action.apply(room, act)
