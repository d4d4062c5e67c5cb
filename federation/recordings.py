"""A recorded room's replay as a post: a ``Note`` with an ``Audio`` attachment.

Mastodon plays an attachment in its timeline when it can download it and its type is one
it knows: it reads the attachment's ``url`` (a string or a ``Link``), ``mediaType``
(``audio/ogg`` is in its ``MediaAttachment`` audio types) and ``name`` (the description,
cut to 1,500 characters), ignores the attachment's ``type`` and ``duration`` (it measures
the file itself), fetches the file with a plain GET that must answer 200, and refuses a
file over its size limit for audio and video (99 MB since Mastodon 4.2, 40 MB before;
larger files stay a link). FEDERATION.md, "Replays", says where this was checked. Other
servers (Fedify, Pleroma, Misskey) read ``Audio`` with ``duration`` as ActivityStreams
defines it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape
from typing import Any

from federation.activities import (
    NOTE_CONTEXT,
    RoomAnnouncement,
    _iso,
    _room_object,
    hashtag_url,
)
from federation.actors import AS_PUBLIC
from federation.sanitize import clean_html

AUDIO_TYPE = "audio/ogg"
REPLAY_HASHTAG = "ParleyReplay"


@dataclass(frozen=True, slots=True)
class Replay:
    room: RoomAnnouncement
    audio_url: str
    duration_s: float
    bytes: int


def iso_duration(seconds: float) -> str:
    """xsd:duration as ActivityStreams' ``duration`` wants it: ``PT1H2M3S``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if secs or text == "PT":
        text += f"{secs}S"
    return text


def _clock(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def build_replay_note(
    replay: Replay,
    *,
    note_id: str,
    host_name: str,
    followers_url: str,
    published: dt.datetime,
    base_url: str,
) -> dict[str, Any]:
    room = replay.room
    tag = (REPLAY_HASHTAG, hashtag_url(base_url, REPLAY_HASHTAG))
    html = (
        f"<p>Replay of {escape(host_name)}’s room: {escape(room.title)} "
        f"({_clock(replay.duration_s)})</p>"
        f'<p><a href="{escape(room.url)}">{escape(room.url)}</a></p>'
        f'<p><a href="{escape(tag[1])}" class="mention hashtag" rel="tag">'
        f"#<span>{escape(tag[0])}</span></a></p>"
    )
    return {
        "@context": NOTE_CONTEXT,
        "id": note_id,
        "type": "Note",
        "attributedTo": room.host,
        "content": clean_html(html),
        "url": room.url,
        "published": _iso(published),
        "to": [AS_PUBLIC],
        "cc": [followers_url],
        "sensitive": False,
        "tag": [{"type": "Hashtag", "href": tag[1], "name": f"#{tag[0]}"}],
        "attachment": [
            {
                "type": "Audio",
                "mediaType": AUDIO_TYPE,
                "url": replay.audio_url,
                "name": f"{room.title} (replay)",
                "duration": iso_duration(replay.duration_s),
            }
        ],
        "room": _room_object(room),
    }
