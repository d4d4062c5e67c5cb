"""Replies, likes and boosts of a room's announcements, and our users' comments: pure
build and parse.

Mastodon (or any server) answers a room's Note, Event or replay with a ``Create{Note}``
whose ``inReplyTo`` is that object's id; the host's node shows it in the room as a
comment. Its HTML is cleaned to Mastodon's allowed set (federation.sanitize) before
anyone sees it. A ``Like`` counts as a like and an ``Announce`` as a boost of the object
they name; ``Undo`` takes either back. Our own users comment the same way: their comment
is a ``Note`` replying to the room's announcement, sent to the room's host and to the
commenter's followers, so Mastodon users see it in the thread too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.actors import AS_CONTEXT, AS_PUBLIC, require_url, same_origin
from federation.errors import ActivityParseError
from federation.sanitize import clean_html, text_to_html

MAX_CONTENT = 5000
"""A reply's cleaned HTML is cut to this (Mastodon's own posts are 500 characters)."""
ENGAGEMENT_TYPES = {"Like": "like", "Announce": "boost"}


@dataclass(frozen=True, slots=True)
class Reply:
    id: str
    author: str
    in_reply_to: str
    content: str
    """Cleaned HTML."""
    url: str
    published: float


def _reference(value: Any, field: str) -> str:
    if isinstance(value, Mapping):
        value = value.get("id")
    return require_url(value, field)


def reply_from_note(note: Mapping[str, Any], actor: str) -> Reply | None:
    """The reply a Note is, or None when it replies to nothing. The Note must be the
    actor's own (its id on the actor's origin; ``attributedTo`` was checked with the
    envelope)."""
    target = note.get("inReplyTo")
    if target is None:
        return None
    in_reply_to = _reference(target, "inReplyTo")
    note_id = require_url(note.get("id"), "id")
    if not same_origin(note_id, actor):
        raise ActivityParseError("note is not on the actor's origin", "id")
    content = note.get("content")
    if not isinstance(content, str):
        content_map = note.get("contentMap")
        content = next(iter(content_map.values()), "") if isinstance(content_map, dict) else ""
    if not isinstance(content, str):
        raise ActivityParseError("not a string", "content")
    url = note.get("url")
    if isinstance(url, list):
        url = url[0] if url else None
    if isinstance(url, Mapping):
        url = url.get("href")
    if not isinstance(url, str) or not same_origin(url, actor):
        url = note_id
    published = _time(note.get("published"))
    return Reply(
        id=note_id,
        author=actor,
        in_reply_to=in_reply_to,
        content=clean_html(content)[:MAX_CONTENT],
        url=url,
        published=published,
    )


def _time(value: Any) -> float:
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return dt.datetime.now(dt.UTC).timestamp()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        # A date in the future (a wrong clock, or a trick to stay on top) is now.
        return min(moment.timestamp(), dt.datetime.now(dt.UTC).timestamp())
    return dt.datetime.now(dt.UTC).timestamp()


def engagement_kind(activity_type: str) -> str | None:
    """``like`` for a Like, ``boost`` for an Announce, else None."""
    return ENGAGEMENT_TYPES.get(activity_type)


def build_comment(
    note_id: str,
    *,
    author: str,
    followers_url: str,
    in_reply_to: str,
    reply_to_author: str,
    text: str,
    published: dt.datetime,
) -> dict[str, Any]:
    """Our user's comment in a room: a public reply to the room's announcement."""
    stamp = published.astimezone(dt.UTC).replace(microsecond=0).isoformat()
    return {
        "@context": AS_CONTEXT,
        "id": note_id,
        "type": "Note",
        "attributedTo": author,
        "inReplyTo": in_reply_to,
        "content": text_to_html(text),
        "published": stamp.replace("+00:00", "Z"),
        "to": [AS_PUBLIC],
        "cc": [followers_url, reply_to_author],
    }
