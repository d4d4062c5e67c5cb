"""Activities we send and receive: pure builders and a strict parser.

A room going live is a ``Create{Note}`` (the thing Mastodon renders: "alice is live: <title>")
that also carries a machine-readable ``room`` object in the Parley namespace, so other Parley
nodes learn the listen and WHEP URLs without scraping HTML. Servers that do not know the
namespace ignore the extra property (JSON-LD processors drop unknown terms; Mastodon reads
only the properties it knows).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from federation.actors import AS_CONTEXT, AS_PUBLIC, require_url, same_origin
from federation.context import NOTE_CONTEXT
from federation.errors import ActivityParseError
from federation.relay import WS_SCHEMES, is_url
from federation.relay_subscription import other_form
from federation.sanitize import clean_html, plain_text

LIVE_HASHTAG = "ParleyLive"
MAX_TITLE = 200
"""Longest remote room name kept (ours are at most 120)."""


class RoomState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class RoomAnnouncement:
    """What a node says publicly about one of its rooms."""

    id: str  # the room's canonical URL (also its HTML page unless ``url`` differs)
    url: str
    state: RoomState
    title: str
    description: str
    host: str  # actor id of the room's host
    listen_url: str | None = None  # HTTP Ogg/Opus stream
    whep_url: str | None = None  # WebRTC-HTTP egress endpoint
    speakers: tuple[str, ...] = ()
    relay_url: str | None = None  # the node-to-node relay stream of the room (ws/wss)


@dataclass(frozen=True, slots=True)
class RemoteRoom:
    """A room another node told us about (parsed from its Note)."""

    id: str
    url: str
    state: RoomState
    title: str
    host: str
    note_id: str
    listen_url: str | None
    whep_url: str | None
    speakers: tuple[str, ...]
    relay_url: str | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    id: str
    type: str
    actor: str
    object_id: str | None
    object: Mapping[str, Any] | None  # the embedded object, when one was sent
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def object_type(self) -> str | None:
        if self.object is None:
            return None
        value = self.object.get("type")
        return value if isinstance(value, str) else None


def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- follow graph


def build_follow(activity_id: str, actor: str, target: str) -> dict[str, Any]:
    return {
        "@context": AS_CONTEXT,
        "id": activity_id,
        "type": "Follow",
        "actor": actor,
        "object": target,
    }


def _strip_context(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "@context"}


def build_accept(activity_id: str, actor: str, follow: Mapping[str, Any]) -> dict[str, Any]:
    """Accept{Follow}: the Follow is embedded whole, since Mastodon matches it by id but some
    servers (and Mastodon for follows it has forgotten) need actor/object to act on it."""
    return {
        "@context": AS_CONTEXT,
        "id": activity_id,
        "type": "Accept",
        "actor": actor,
        "object": _strip_context(follow),
    }


def build_reject(activity_id: str, actor: str, follow: Mapping[str, Any]) -> dict[str, Any]:
    return {**build_accept(activity_id, actor, follow), "type": "Reject"}


def build_undo(activity_id: str, actor: str, inner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "@context": AS_CONTEXT,
        "id": activity_id,
        "type": "Undo",
        "actor": actor,
        "object": _strip_context(inner),
    }


# --------------------------------------------------------------------------- rooms as notes


def hashtag_url(base_url: str, tag: str) -> str:
    return f"{base_url.rstrip('/')}/tags/{quote(tag)}"


def _room_object(room: RoomAnnouncement) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "ParleyRoom",
        "id": room.id,
        "url": room.url,
        "roomState": room.state.value,
        "name": room.title,
        "host": room.host,
        "speakers": list(room.speakers),
    }
    if room.listen_url:
        obj["listenUrl"] = room.listen_url
    if room.whep_url:
        obj["whepUrl"] = room.whep_url
    if room.relay_url:
        obj["relayUrl"] = room.relay_url
    return obj


def _room_html(room: RoomAnnouncement, host_name: str, tags: Sequence[tuple[str, str]]) -> str:
    link = f'<a href="{escape(room.url)}">{escape(room.url)}</a>'
    tag_links = " ".join(
        f'<a href="{escape(href)}" class="mention hashtag" rel="tag">'
        f"#<span>{escape(name)}</span></a>"
        for name, href in tags
    )
    if room.state is RoomState.ENDED:
        head = f"<p>{escape(host_name)}’s room has ended: {escape(room.title)}</p>"
    elif room.state is RoomState.SCHEDULED:
        head = f"<p>{escape(host_name)} scheduled a room: {escape(room.title)}</p>"
    else:
        head = f"<p>{escape(host_name)} is live: {escape(room.title)}</p>"
    parts = [head]
    if room.description:
        parts.append(f"<p>{escape(room.description)}</p>")
    parts.append(f"<p>{link}</p>")
    if tag_links:
        parts.append(f"<p>{tag_links}</p>")
    return "".join(parts)


def build_room_note(
    room: RoomAnnouncement,
    *,
    note_id: str,
    host_name: str,
    followers_url: str,
    published: dt.datetime,
    base_url: str,
    hashtags: Sequence[str] = (LIVE_HASHTAG,),
    updated: dt.datetime | None = None,
) -> dict[str, Any]:
    """The Note a Mastodon user sees, with the room object for Parley nodes.

    Public addressing (``to`` Public, ``cc`` followers) is what makes Mastodon show it on
    followers' home timelines and on the hashtag page.
    """
    tags = [(tag, hashtag_url(base_url, tag)) for tag in hashtags]
    note: dict[str, Any] = {
        "@context": NOTE_CONTEXT,
        "id": note_id,
        "type": "Note",
        "attributedTo": room.host,
        "content": clean_html(_room_html(room, host_name, tags)),
        "url": room.url,
        "published": _iso(published),
        "to": [AS_PUBLIC],
        "cc": [followers_url],
        "sensitive": False,
        "tag": [{"type": "Hashtag", "href": href, "name": f"#{name}"} for name, href in tags],
        "room": _room_object(room),
    }
    if updated is not None:
        note["updated"] = _iso(updated)
    return note


def _wrap(kind: str, activity_id: str, actor: str, note: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "@context": NOTE_CONTEXT,
        "id": activity_id,
        "type": kind,
        "actor": actor,
        "published": note.get("updated", note.get("published")),
        "to": list(note.get("to", [])),
        "cc": list(note.get("cc", [])),
        "object": _strip_context(note),
    }


def build_create(activity_id: str, actor: str, note: Mapping[str, Any]) -> dict[str, Any]:
    return _wrap("Create", activity_id, actor, note)


def build_update(activity_id: str, actor: str, note: Mapping[str, Any]) -> dict[str, Any]:
    """Update{Note}: Mastodon only applies it when the note carries a newer ``updated``."""
    if "updated" not in note:
        raise ValueError("an updated Note needs an 'updated' timestamp for Mastodon to apply it")
    return _wrap("Update", activity_id, actor, note)


def build_delete(
    activity_id: str, actor: str, object_id: str, *, to: Sequence[str] = (AS_PUBLIC,)
) -> dict[str, Any]:
    return {
        "@context": AS_CONTEXT,
        "id": activity_id,
        "type": "Delete",
        "actor": actor,
        "to": list(to),
        "object": {"id": object_id, "type": "Tombstone"},
    }


# --------------------------------------------------------------------------- parsing


def _id_of(value: Any, field_name: str) -> str:
    """A reference may be an IRI string or an embedded object with an ``id``."""
    if isinstance(value, Mapping):
        return require_url(value.get("id"), f"{field_name}.id")
    return require_url(value, field_name)


def _audience(value: Any, field_name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            # Some servers abbreviate Public as "as:Public" or "Public" (compacted JSON-LD).
            out.append(AS_PUBLIC if item in ("as:Public", "Public") else item)
        elif isinstance(item, Mapping) and isinstance(item.get("id"), str):
            out.append(str(item["id"]))
        else:
            raise ActivityParseError("audience entries must be IRIs", field_name)
    return tuple(out)


def parse_activity(doc: Any) -> Activity:
    """Validate the envelope of an incoming activity; raise ActivityParseError with the field.

    Mastodon's rule that an activity's id lives on its actor's origin (scheme, host and
    port) is enforced here: it stops one server from minting activities in another's name
    with its own signature.
    """
    if not isinstance(doc, Mapping):
        raise ActivityParseError("activity is not a JSON object", None)
    kind = doc.get("type")
    if not isinstance(kind, str) or not kind:
        raise ActivityParseError("missing or not a string", "type")
    activity_id = require_url(doc.get("id"), "id")
    if "actor" not in doc:
        raise ActivityParseError("missing", "actor")
    actor = _id_of(doc["actor"], "actor")
    if not same_origin(activity_id, actor):
        raise ActivityParseError("activity id is not on the actor's origin", "id")
    if "object" not in doc:
        raise ActivityParseError("missing", "object")
    raw_object = doc["object"]
    embedded: Mapping[str, Any] | None = None
    if isinstance(raw_object, Mapping):
        embedded = raw_object
        object_id: str | None = (
            _id_of(raw_object, "object") if raw_object.get("id") is not None else None
        )
        if object_id is None and kind not in ("Undo",):
            raise ActivityParseError("embedded object has no id", "object.id")
    elif isinstance(raw_object, str):
        object_id = require_url(raw_object, "object")
    else:
        raise ActivityParseError("must be an IRI or an object", "object")
    if kind in ("Create", "Update") and embedded is not None and "attributedTo" in embedded:
        if _id_of(embedded["attributedTo"], "object.attributedTo") != actor:
            raise ActivityParseError("object is attributed to someone else", "object.attributedTo")
    return Activity(
        id=activity_id,
        type=kind,
        actor=actor,
        object_id=object_id,
        object=embedded,
        to=_audience(doc.get("to"), "to"),
        cc=_audience(doc.get("cc"), "cc"),
        raw=doc,
    )


def room_from_note(note: Mapping[str, Any]) -> RemoteRoom | None:
    """The Parley room carried by a Note, or None for an ordinary note.

    A Note that carries a room object which is malformed raises: that is a broken peer,
    not a plain post.
    """
    room = note.get("room", note.get("parley:room"))
    if room is None:
        return None
    if not isinstance(room, Mapping):
        raise ActivityParseError("not an object", "room")
    note_id = require_url(note.get("id"), "id")
    room_id = require_url(room.get("id"), "room.id")
    state_value = room.get("roomState", room.get("state"))
    try:
        state = RoomState(state_value)
    except ValueError as exc:
        raise ActivityParseError(f"unknown room state {state_value!r}", "room.roomState") from exc
    title = room.get("name", room.get("title"))
    if not isinstance(title, str):
        raise ActivityParseError("missing or not a string", "room.name")
    # A room's name is plain text; another server's markup never reaches our listing.
    title = plain_text(title, MAX_TITLE)
    host = _id_of(room.get("host"), "room.host")
    # The room must belong to whoever sent the note: no announcing rooms on another server.
    if not same_origin(room_id, note_id) or not same_origin(host, note_id):
        raise ActivityParseError("room is not on the note's origin", "room.id")
    speakers_raw = room.get("speakers", [])
    if not isinstance(speakers_raw, list):
        raise ActivityParseError("not a list", "room.speakers")
    speakers = tuple(_id_of(item, "room.speakers") for item in speakers_raw)
    listen = room.get("listenUrl")
    whep = room.get("whepUrl")
    relay = room.get("relayUrl")
    # The relay stream is the room's own node's: a note cannot send relays elsewhere.
    if relay is not None and (
        not is_url(relay, WS_SCHEMES) or not same_origin(other_form(relay), note_id)
    ):
        raise ActivityParseError("not a ws(s) URL on the note's origin", "room.relayUrl")
    return RemoteRoom(
        id=room_id,
        url=require_url(room.get("url", room_id), "room.url"),
        state=state,
        title=title,
        host=host,
        note_id=note_id,
        listen_url=None if listen is None else require_url(listen, "room.listenUrl"),
        whep_url=None if whep is None else require_url(whep, "room.whepUrl"),
        speakers=speakers,
        relay_url=relay,
    )
