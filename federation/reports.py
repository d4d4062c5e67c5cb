"""Reports across servers: the ``Flag`` activity, built and parsed (pure, no I/O).

Mastodon forwards a report about an account of another server as a ``Flag`` sent by its
instance actor to that account's inbox: ``object`` lists the reported account's actor id
and, after it, the reported posts; ``content`` is the reporter's comment (the reporter
stays anonymous). Parley does the same; the reported room's URL goes where Mastodon puts
posts. Receivers keep what they can use: actors and rooms of their own.

    {"@context": "https://www.w3.org/ns/activitystreams",
     "id": "https://a.example/flags/5f0c...", "type": "Flag",
     "actor": "https://a.example/actor",
     "object": ["https://b.example/users/bob", "https://a.example/rooms/k3J9xq0aZ1bC"],
     "content": "Shouting slurs on stage.\\n\\nRule broken: Be kind"}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.actors import AS_CONTEXT, require_url, same_origin
from federation.errors import ActivityParseError
from federation.sanitize import plain_text

MAX_FLAG_CONTENT = 5000
"""Characters of a Flag's ``content`` that are kept (Mastodon allows 1,000 of comment)."""
MAX_FLAG_OBJECTS = 50


@dataclass(frozen=True, slots=True)
class Flag:
    id: str
    actor: str
    objects: tuple[str, ...]
    """Actor ids and object URLs the report is about, in the sender's order."""
    content: str
    """The comment, as plain text."""


def build_flag(
    activity_id: str, actor: str, objects: Sequence[str], content: str
) -> dict[str, Any]:
    if not objects:
        raise ValueError("a Flag names at least the reported account")
    return {
        "@context": AS_CONTEXT,
        "id": activity_id,
        "type": "Flag",
        "actor": actor,
        "object": list(objects),
        "content": content,
    }


def parse_flag(doc: Mapping[str, Any]) -> Flag:
    """A received ``Flag`` (whose signature was checked: ``actor`` signed it)."""
    if doc.get("type") != "Flag":
        raise ActivityParseError("not a Flag", "type")
    activity_id = require_url(doc.get("id"), "id")
    raw_actor = doc.get("actor")
    actor = require_url(
        raw_actor.get("id") if isinstance(raw_actor, Mapping) else raw_actor, "actor"
    )
    if not same_origin(activity_id, actor):
        raise ActivityParseError("activity id is not on the actor's origin", "id")
    raw = doc.get("object")
    items = raw if isinstance(raw, list) else [raw]
    objects: list[str] = []
    for item in items[:MAX_FLAG_OBJECTS]:
        value = item.get("id") if isinstance(item, Mapping) else item
        objects.append(require_url(value, "object"))
    if not objects:
        raise ActivityParseError("names nothing", "object")
    content = doc.get("content")
    if content is not None and not isinstance(content, str):
        raise ActivityParseError("must be a string", "content")
    return Flag(
        id=activity_id,
        actor=actor,
        objects=tuple(dict.fromkeys(objects)),
        content=plain_text(content or "", MAX_FLAG_CONTENT),
    )
