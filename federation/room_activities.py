"""Room actions as activities (``parley:RaiseHand``, ``parley:Mute`` ...): pure build and
parse, no I/O. FEDERATION.md "Remote speakers".

A user of one node acts in a room carried by another through an activity signed with the
user's key and posted to the acting origin's shared inbox. ``object`` is the room's
``origin`` URL; ``parley:member`` names the member acted upon (a handle
``user@host[:port]``) when it is not the actor; the action's one argument, if any, is a
``parley:<name>`` property (``parley:muted``, ``parley:accept``, ``parley:role``). Which
types exist and what they do is the node's table of room actions (node/room_actions.py):
this codec knows the envelope, not the actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from federation.actors import require_url
from federation.context import ROOM_ACTIVITY_CONTEXT
from federation.errors import ActivityParseError

PREFIX = "parley:"
MAX_MEMBER = 320
MAX_TEXT_ARGUMENT = 64

Argument = bool | str


@dataclass(frozen=True, slots=True)
class RoomActivity:
    type: str
    """``parley:RaiseHand`` ..."""
    actor: str
    room: str
    """The room's origin URL (the activity's ``object``)."""
    member: str | None = None
    arguments: Mapping[str, Argument] = field(default_factory=dict)
    """Short names (``muted``) to values."""


def is_room_activity(kind: object) -> bool:
    return isinstance(kind, str) and kind.startswith(PREFIX)


def build_room_activity(activity_id: str, activity: RoomActivity) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": ROOM_ACTIVITY_CONTEXT,
        "id": activity_id,
        "type": activity.type,
        "actor": activity.actor,
        "object": activity.room,
    }
    if activity.member is not None:
        doc[f"{PREFIX}member"] = activity.member
    for name, value in activity.arguments.items():
        doc[f"{PREFIX}{name}"] = value
    return doc


def parse_room_activity(doc: Mapping[str, Any], arguments: tuple[str, ...]) -> RoomActivity:
    """A room activity whose envelope was checked (federation.activities.parse_activity);
    ``arguments``: the short names of the arguments its type takes."""
    kind = doc.get("type")
    if not is_room_activity(kind):
        raise ActivityParseError("not a parley: activity", "type")
    assert isinstance(kind, str)
    actor = doc.get("actor")
    if isinstance(actor, Mapping):
        actor = actor.get("id")
    room = require_url(doc.get("object"), "object")
    member = doc.get(f"{PREFIX}member")
    if member is not None and (not isinstance(member, str) or len(member) > MAX_MEMBER):
        raise ActivityParseError("must be a handle", f"{PREFIX}member")
    values: dict[str, Argument] = {}
    for name in arguments:
        value = doc.get(f"{PREFIX}{name}")
        if value is None:
            continue
        if isinstance(value, str) and len(value) > MAX_TEXT_ARGUMENT:
            raise ActivityParseError("too long", f"{PREFIX}{name}")
        if not isinstance(value, bool | str):
            raise ActivityParseError("must be a boolean or a string", f"{PREFIX}{name}")
        values[name] = value
    return RoomActivity(kind, require_url(actor, "actor"), room, member, values)
