"""Scheduled rooms as ``Event`` objects, and RSVPs to them: pure build and parse.

A public room scheduled for a time is announced to the host's followers as a
``Create{Event}`` (FEP-8a8e, "A common approach to using the Event object type"):
``name``, ``startTime`` (UTC), ``url`` (the room page), ``content``, ``summary`` (the start
time as text) and ``ical:status``. Mastodon shows an Event as a post of its name,
summary and link (it converts Event objects it does not render: its
``ActivityPub::Activity::CONVERTED_TYPES``); event software (Mobilizon, Gancio,
Friendica) shows an event. The Event carries the Parley ``room`` object too, so a Parley
node knows the room and its state. It is updated when the schedule changes, when the room
goes live (``room.roomState`` ``live``) and when it is cancelled (``ical:status``
``CANCELLED``).

Someone on another server who wants to be reminded answers with ``Accept{Event}`` (an
RSVP, FEP-8a8e; ``TentativeAccept`` and Mobilizon's ``Join`` count the same), undone with
``Undo{Accept}`` or a ``Reject``. The host's node records it and sends that actor the
Event's updates, the one at go-live included.

No ``endTime``: a room has no planned end; consumers that need one take the start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from federation.activities import (
    RemoteRoom,
    RoomAnnouncement,
    RoomState,
    _iso,
    _room_object,
    room_from_note,
)
from federation.actors import AS_CONTEXT, AS_PUBLIC, require_url, same_origin
from federation.context import PARLEY_CONTEXT_TERMS
from federation.errors import ActivityParseError
from federation.sanitize import clean_html

ICAL_NS = "http://www.w3.org/2002/12/cal/ical#"
EVENT_CONTEXT: list[Any] = [AS_CONTEXT, {**PARLEY_CONTEXT_TERMS, "ical": ICAL_NS}]
RSVP_TYPES = frozenset({"Accept", "TentativeAccept", "Join"})
"""Activities that say "remind me" / "I'll be there" about an Event."""
CONFIRMED = "CONFIRMED"
CANCELLED = "CANCELLED"


def _readable(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%a %d %b %Y, %H:%M UTC")


@dataclass(frozen=True, slots=True)
class ScheduledRoom:
    """What an Event says about a room: the room, and when it starts."""

    room: RoomAnnouncement
    starts_at: dt.datetime
    cancelled: bool = False


def build_event(
    scheduled: ScheduledRoom,
    *,
    event_id: str,
    host_name: str,
    followers_url: str,
    published: dt.datetime,
    updated: dt.datetime | None = None,
) -> dict[str, Any]:
    room = scheduled.room
    when = _readable(scheduled.starts_at)
    if scheduled.cancelled:
        summary = f"Cancelled (was {when})"
    elif room.state is RoomState.LIVE:
        summary = f"Live now (scheduled for {when})"
    else:
        summary = f"Starts {when}"
    parts = [f"<p>{escape(host_name)}’s audio room: {escape(room.title)}</p>"]
    if room.description:
        parts.append(f"<p>{escape(room.description)}</p>")
    parts.append(f"<p>{escape(summary)}</p>")
    parts.append(f'<p><a href="{escape(room.url)}">{escape(room.url)}</a></p>')
    event: dict[str, Any] = {
        "@context": EVENT_CONTEXT,
        "id": event_id,
        "type": "Event",
        "attributedTo": room.host,
        "name": room.title,
        "summary": summary,
        "content": clean_html("".join(parts)),
        "url": room.url,
        "startTime": _iso(scheduled.starts_at),
        "published": _iso(published),
        "to": [AS_PUBLIC],
        "cc": [followers_url],
        "ical:status": CANCELLED if scheduled.cancelled else CONFIRMED,
        "room": _room_object(room),
    }
    if updated is not None:
        event["updated"] = _iso(updated)
    return event


def event_room(event: Mapping[str, Any]) -> RemoteRoom | None:
    """The Parley room an Event announces (None for another server's ordinary event)."""
    room = room_from_note(event)
    if room is None:
        return None
    starts = event.get("startTime")
    starts_at = None
    if isinstance(starts, str):
        try:
            moment = dt.datetime.fromisoformat(starts.replace("Z", "+00:00"))
        except ValueError:
            raise ActivityParseError("not an ISO 8601 time", "startTime") from None
        if moment.tzinfo is None:
            raise ActivityParseError("needs a time zone", "startTime")
        starts_at = moment.timestamp()
    state = room.state
    if event.get("ical:status") == CANCELLED or event.get("status") == CANCELLED:
        state = RoomState.ENDED
    return RemoteRoom(
        id=room.id,
        url=room.url,
        state=state,
        title=room.title,
        host=room.host,
        note_id=room.note_id,
        listen_url=room.listen_url,
        whep_url=room.whep_url,
        speakers=room.speakers,
        starts_at=starts_at,
        event_id=room.note_id,
    )


def build_rsvp(activity_id: str, actor: str, event_id: str, host: str) -> dict[str, Any]:
    """``Accept{Event}``: ``actor`` wants to be there (and to be told when it starts)."""
    return {
        "@context": AS_CONTEXT,
        "id": activity_id,
        "type": "Accept",
        "actor": actor,
        "object": event_id,
        "to": [host],
    }


def rsvp_target(activity_type: str, obj: Any) -> str | None:
    """The Event id an RSVP-like activity answers, or None when it answers something else
    (an Accept of a Follow). An embedded object must be an Event."""
    if activity_type not in RSVP_TYPES and activity_type != "Reject":
        return None
    if isinstance(obj, Mapping):
        if obj.get("type") != "Event":
            return None
        return require_url(obj.get("id"), "object.id")
    if isinstance(obj, str):
        return require_url(obj, "object")
    return None


def same_host_event(event_id: str, actor: str) -> bool:
    return same_origin(event_id, actor)
