"""A room as another node's room JSON says it is: the copy a relaying node keeps.

Everything in the document is another server's: texts become plain text, comment HTML is
cleaned again (federation.sanitize), numbers are checked. node.relaying applies snapshots
and ``room`` events with ``replicate``; the ``Room`` methods it calls emit the same events
as local changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from federation.sanitize import plain_text
from node.comments import comment_from_json, pinned_from_json
from node.reactions import RAISED_HAND, REACTIONS
from node.room_summary import summary_from_json
from node.rooms import (
    MAX_DESCRIPTION,
    MAX_MEMBER_NAME,
    MAX_TITLE,
    Ending,
    Member,
    Role,
    Room,
    RoomState,
    Visibility,
    valid_csrc,
)


def replicate(room: Room, doc: dict[str, Any], name: Callable[[str], str]) -> None:
    """Make ``room`` what ``doc`` (a room JSON from the carrying node) says. Its texts are
    another server's: plain text only (federation.sanitize)."""
    members = []
    hands = [name(h) for h in doc.get("hands", []) if isinstance(h, str)]
    for raw in [*doc.get("speakers", []), *doc.get("audience", [])]:
        if not isinstance(raw, dict) or not isinstance(raw.get("username"), str):
            continue
        members.append(member_from_json({**raw, "username": name(raw["username"])}, hands))
    host = doc.get("host") or {}
    # First what issue 12 added (the carrying node's summary, if it ended, must be there
    # before the copy moves to ended and tells its watchers).
    replicate_extras(room, doc)
    room.replicate(
        title=plain_text(str(doc.get("title") or room.title), MAX_TITLE),
        description=plain_text(str(doc.get("description") or ""), MAX_DESCRIPTION),
        state=RoomState(doc.get("state", room.state.value)),
        host=name(str(host.get("username") or room.host)),
        host_display_name=plain_text(
            str(host.get("display_name") or room.host_display_name), MAX_MEMBER_NAME
        ),
        members=members,
        listener_count=int(doc.get("listener_count") or 0),
        started_at=doc.get("started_at"),
        ending=Ending.from_json(doc.get("ended_by")),
    )


def _time(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def replicate_extras(room: Room, doc: dict[str, Any]) -> None:
    """What issue 12 added to the room JSON: schedule, recording, comments, the host's
    absence, the summary. Events follow for what changed."""
    room.starts_at = _time(doc.get("starts_at"))
    room.recording = doc.get("recording") is True
    room.cancelled = doc.get("cancelled") is True
    announcement = doc.get("announcement")
    room.announcement = announcement if isinstance(announcement, str) else None
    room.board.replicate(doc.get("comments"))
    summary = summary_from_json(doc.get("summary"))
    if summary is not None:
        room.summary = summary
    room.set_host_away(_time(doc.get("host_away_until")))


def member_from_json(raw: dict[str, Any], hands: list[str]) -> Member:
    username = str(raw["username"])
    try:
        role = Role(str(raw.get("role")))
    except ValueError:
        role = Role.LISTENER
    hand = float(hands.index(username) + 1) if username in hands else None
    if hand is None and raw.get("hand_raised"):
        hand = float(len(hands) + 1)
    return Member(
        username=username,
        display_name=plain_text(str(raw.get("display_name") or username), MAX_MEMBER_NAME),
        role=role,
        muted=bool(raw.get("muted")),
        hand_raised_at=hand,
        invited=bool(raw.get("invited")),
        connections=1 if raw.get("connected") else 0,
        publishing=bool(raw.get("publishing")),
        csrc=valid_csrc(raw.get("csrc")),
    )


def visibility_of(doc: dict[str, Any]) -> Visibility:
    try:
        return Visibility(str(doc.get("visibility")))
    except ValueError:
        return Visibility.PUBLIC


class EventBus(Protocol):
    def publish(self, event: dict[str, Any]) -> None: ...


def replicate_event(
    room: Room, bus: EventBus, message: dict[str, Any], name: Callable[[str], str]
) -> None:
    """The events of issue 12 from the carrying node: reactions (ephemeral: onto our bus
    only), comments, hidden comments, the pin, likes and boosts, the host's absence."""
    kind = message.get("type")
    if kind == "reaction":
        emoji = message.get("emoji")
        username = message.get("username")
        if isinstance(username, str) and (emoji in REACTIONS or emoji == RAISED_HAND):
            bus.publish({"type": "reaction", "username": name(username), "emoji": emoji})
    elif kind == "comment":
        comment = comment_from_json(message.get("comment"))
        if comment is not None:
            room.add_comment(comment)
    elif kind == "comment_hidden":
        room.remove_comment(str(message.get("id")))
    elif kind == "pinned":
        pinned = pinned_from_json(message.get("pinned"))
        if pinned != room.board.pinned:
            room.board.pinned = pinned
            bus.publish({"type": "pinned", "pinned": pinned})
    elif kind == "engagement":
        likes, boosts = message.get("likes"), message.get("boosts")
        if isinstance(likes, int) and isinstance(boosts, int) and min(likes, boosts) >= 0:
            room.set_engagement(likes, boosts)
    elif kind == "host_away":
        room.set_host_away(_time(message.get("until")))
