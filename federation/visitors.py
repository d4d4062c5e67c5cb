"""The direct message that carries a visitor's one-time code: pure build, no I/O.

FEDERATION.md "Visitors". A ``Create{Note}`` from the node's instance actor addressed to
one actor only, which Mastodon files as a private mention ("direct" visibility):

- ``to`` is the recipient's actor id and nothing else; no ``cc``: Mastodon's status
  parser (``app/lib/activitypub/parser/status_parser.rb``, ``visibility``) makes a Note
  public when ``to`` holds Public, unlisted when ``cc`` does, followers-only when ``to``
  holds the sender's followers, and direct otherwise;
- a ``Mention`` tag with the recipient's ``href`` and ``name`` (``@user@host``): Mastodon
  (``app/lib/activitypub/activity/create.rb``, ``process_mention``) resolves ``href`` to
  the account and notifies it; an addressee who is not mentioned only gets a silent
  mention, and the Note becomes "limited" instead of direct (``process_audience``);
- the ``content`` starts with the same mention as an ``h-card`` link, as Mastodon writes
  its own (``app/serializers/activitypub/note_serializer.rb``, ``MentionSerializer``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape
from typing import Any

from federation.actors import AS_CONTEXT
from federation.sanitize import clean_html


@dataclass(frozen=True, slots=True)
class CodeMessage:
    """What the direct message says."""

    recipient: str
    """The visitor's actor id (the only addressee)."""
    recipient_handle: str
    """``user@host``, without the leading ``@``."""
    recipient_url: str
    """Where the mention links (the actor's profile page, or its id)."""
    code: str
    node_host: str
    room_title: str
    link: str
    """Opens the room page with the code filled in (the code rides in the fragment)."""
    report_link: str
    """"It was not me": stops the code and pauses codes to this handle."""
    expires_minutes: int
    contact: str = ""
    """The operator's address for abuse reports, if they gave one."""


def _content(message: CodeMessage) -> str:
    user = message.recipient_handle.partition("@")[0]
    mention = (
        f'<span class="h-card" translate="no"><a href="{escape(message.recipient_url)}" '
        f'class="u-url mention">@<span>{escape(user)}</span></a></span>'
    )
    link = f'<a href="{escape(message.link)}">{escape(message.link)}</a>'
    report = f'<a href="{escape(message.report_link)}">{escape(message.report_link)}</a>'
    contact = f" or write to {escape(message.contact)}" if message.contact else ""
    return clean_html(
        f"<p>{mention} Your code to join the room “{escape(message.room_title)}” on "
        f"{escape(message.node_host)} as @{escape(message.recipient_handle)}:</p>"
        f"<p><strong>{escape(message.code)}</strong></p>"
        f"<p>Type it on the room page, or open {link} in the browser where you asked. "
        f"It works once and expires in {message.expires_minutes} minutes. "
        "Never give it to anyone.</p>"
        f"<p>Not you? Someone typed your handle on {escape(message.node_host)}. Nobody "
        "gets in without this code, so you can ignore this message; to stop these "
        f"messages for a day and tell the operator, open {report}{contact}.</p>"
    )


def build_code_message(
    message: CodeMessage,
    *,
    actor: str,
    activity_id: str,
    note_id: str,
    published: dt.datetime,
) -> dict[str, Any]:
    """``Create{Note}`` from ``actor`` (the node's instance actor) to the visitor alone."""
    when = published.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    note = {
        "id": note_id,
        "type": "Note",
        "attributedTo": actor,
        "content": _content(message),
        "published": when,
        "to": [message.recipient],
        "cc": [],
        "tag": [
            {
                "type": "Mention",
                "href": message.recipient,
                "name": f"@{message.recipient_handle}",
            }
        ],
    }
    return {
        "@context": AS_CONTEXT,
        "id": activity_id,
        "type": "Create",
        "actor": actor,
        "published": when,
        "to": [message.recipient],
        "cc": [],
        "object": note,
    }
