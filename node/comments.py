"""The fediverse in the room: replies to the room's announcements, shown as comments.

A comment is a reply (a ``Note`` with ``inReplyTo``) to one of the room's public objects
(its live Note, its scheduled Note and Event, its replay), from Mastodon or any server, or
from our own users (their comment is such a reply too: node.fediverse.comments). Its HTML
was cleaned (federation.sanitize) before it gets here. The host or a cohost hides a
comment (gone everywhere the room is carried) and pins one comment or one link at the top
of the room. Likes and boosts of the room's objects are counted.

``CommentBoard`` is that state in memory, newest first; node.store.comments keeps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from federation.sanitize import clean_html, plain_text
from node.errors import InvalidInput, NotFound

MAX_COMMENT_TEXT = 500
"""What our users may type in one comment (Mastodon's own default)."""
MAX_CONTENT_HTML = 5000
"""A comment's HTML from another server is cut to this (after cleaning)."""
MAX_NAME = 64
MAX_URL = 2048
MAX_LABEL = 120
BOARD_SIZE = 200
"""Comments kept in memory per room (older ones stay in the store)."""
SHOWN = 20
"""Comments in the room JSON (``GET /api/v1/rooms/{id}/comments`` pages further)."""


@dataclass(slots=True)
class Comment:
    id: str
    author: str
    """The author's actor id."""
    handle: str
    name: str
    content: str
    """Cleaned HTML."""
    url: str
    in_reply_to: str
    published: float
    hidden: bool = False
    local: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "author": {"actor": self.author, "handle": self.handle, "name": self.name},
            "content": self.content,
            "url": self.url,
            "published": self.published,
        }


def comment_from_json(doc: Any) -> Comment | None:
    """A comment as another node's room JSON carries it (re-cleaned: it is theirs)."""
    if not isinstance(doc, dict):
        return None
    found = doc.get("author")
    author: dict[str, Any] = found if isinstance(found, dict) else {}
    try:
        comment_id = str(doc["id"])
        published = float(doc.get("published") or 0.0)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(published):
        return None
    if not comment_id.startswith(("http://", "https://")) or len(comment_id) > MAX_URL:
        return None
    url = str(doc.get("url") or comment_id)
    return Comment(
        id=comment_id,
        author=str(author.get("actor") or "")[:MAX_URL],
        handle=plain_text(str(author.get("handle") or ""), 320),
        name=plain_text(str(author.get("name") or ""), MAX_NAME),
        content=clean_html(str(doc.get("content") or ""))[:MAX_CONTENT_HTML],
        url=url if url.startswith(("http://", "https://")) else comment_id,
        in_reply_to="",
        published=published,
    )


def validate_comment_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("text", "write something")
    value = value.strip()
    if len(value) > MAX_COMMENT_TEXT:
        raise InvalidInput("text", f"at most {MAX_COMMENT_TEXT} characters")
    return value


def validate_link(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise InvalidInput("link", "must be an http(s) URL")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("link", "must be an http(s) URL")
    return value.strip()


@dataclass
class CommentBoard:
    comments: list[Comment] = field(default_factory=list)
    """Newest first; hidden ones are kept (so a late copy does not bring them back)."""
    pinned: dict[str, Any] | None = None
    """``{"comment": {...}}`` or ``{"link": url, "label": text}``."""
    likes: int = 0
    boosts: int = 0

    def find(self, comment_id: str) -> Comment | None:
        return next((c for c in self.comments if c.id == comment_id), None)

    def add(self, comment: Comment) -> bool:
        """Add or replace (an edited reply); False when it was hidden or is older news."""
        existing = self.find(comment.id)
        if existing is not None:
            if existing.hidden:
                return False
            comment.hidden = existing.hidden
            self.comments.remove(existing)
        self.comments.append(comment)
        self.comments.sort(key=lambda c: c.published, reverse=True)
        del self.comments[BOARD_SIZE:]
        return True

    def remove(self, comment_id: str) -> bool:
        existing = self.find(comment_id)
        if existing is None:
            return False
        self.comments.remove(existing)
        if self.pinned and (self.pinned.get("comment") or {}).get("id") == comment_id:
            self.pinned = None
        return True

    def hide(self, comment_id: str) -> Comment:
        comment = self.find(comment_id)
        if comment is None:
            raise NotFound("no such comment in this room")
        comment.hidden = True
        if self.pinned and (self.pinned.get("comment") or {}).get("id") == comment_id:
            self.pinned = None
        return comment

    def pin(self, comment_id: str | None, link: str | None, label: str = "") -> None:
        if comment_id:
            comment = self.find(comment_id)
            if comment is None or comment.hidden:
                raise NotFound("no such comment in this room")
            self.pinned = {"comment": comment.to_json()}
        elif link:
            self.pinned = {"link": validate_link(link), "label": plain_text(label, MAX_LABEL)}
        else:
            self.pinned = None

    def visible(self) -> list[Comment]:
        return [c for c in self.comments if not c.hidden]

    def to_json(self, limit: int = SHOWN) -> dict[str, Any]:
        shown = self.visible()
        return {
            "items": [c.to_json() for c in shown[:limit]],
            "count": len(shown),
            "pinned": self.pinned,
            "likes": self.likes,
            "boosts": self.boosts,
        }

    def replicate(self, doc: Any) -> None:
        """What another node's room JSON says (names and HTML re-cleaned)."""
        if not isinstance(doc, dict):
            return
        raw = doc.get("items")
        items = [c for c in map(comment_from_json, raw if isinstance(raw, list) else []) if c]
        hidden = {c.id for c in self.comments if c.hidden}
        self.comments = [c for c in items if c.id not in hidden][:BOARD_SIZE]
        self.pinned = pinned_from_json(doc.get("pinned"))
        self.likes = _count(doc.get("likes"))
        self.boosts = _count(doc.get("boosts"))


def pinned_from_json(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("comment"), dict):
        comment = comment_from_json(doc["comment"])
        return None if comment is None else {"comment": comment.to_json()}
    if isinstance(doc.get("link"), str):
        try:
            link = validate_link(doc["link"])
        except InvalidInput:
            return None
        return {"link": link, "label": plain_text(str(doc.get("label") or ""), MAX_LABEL)}
    return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
