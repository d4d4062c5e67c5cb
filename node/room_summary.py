"""What a room did, for its end-of-room summary: duration, listeners, speakers, reactions.

The acting origin counts: peak listeners is the highest ``listener_count`` the room had
(its own listeners plus every relay's, node.relaying.hub); total listeners is every
listening session (WebRTC or Ogg) started on any node carrying the room, as the relays
report it; speakers everyone who was on stage; reactions every reaction that got
through (dropped ones are counted apart). HLS listeners behind a cache are not seen by
any node and are not in these numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from federation.sanitize import plain_text


@dataclass
class RoomStats:
    peak_listeners: int = 0
    total_listeners: int = 0
    speakers: dict[str, str] = field(default_factory=dict)
    """Username -> display name, in the order they first came on stage."""
    reactions: Counter[str] = field(default_factory=Counter)
    reactions_dropped: int = 0

    def listeners(self, count: int, total: int | None = None) -> None:
        self.peak_listeners = max(self.peak_listeners, count)
        if total is not None:
            self.total_listeners = max(self.total_listeners, total)
        self.total_listeners = max(self.total_listeners, self.peak_listeners)

    def on_stage(self, username: str, display_name: str) -> None:
        self.speakers.setdefault(username, display_name)

    def summary(self, started_at: float | None, ended_at: float | None) -> dict[str, Any]:
        duration = 0.0
        if started_at is not None and ended_at is not None:
            duration = max(0.0, ended_at - started_at)
        return {
            "duration_s": round(duration, 1),
            "peak_listeners": self.peak_listeners,
            "total_listeners": self.total_listeners,
            "speakers": [
                {"username": name, "display_name": shown} for name, shown in self.speakers.items()
            ],
            "reactions": dict(self.reactions.most_common()),
            "reactions_total": sum(self.reactions.values()),
            "reactions_dropped": self.reactions_dropped,
        }


def summary_from_json(doc: Any) -> dict[str, Any] | None:
    """A summary another node (or the store) gave, kept only if it has the right shape."""
    if not isinstance(doc, dict):
        return None
    keys = ("duration_s", "peak_listeners", "total_listeners", "reactions_total")
    if not all(
        isinstance(doc.get(k), int | float) and not isinstance(doc.get(k), bool) for k in keys
    ):
        return None
    raw_speakers = doc.get("speakers")
    raw_reactions = doc.get("reactions")
    speakers = [
        {
            "username": plain_text(str(s.get("username")), 320),
            "display_name": plain_text(str(s.get("display_name") or ""), 64),
        }
        for s in (raw_speakers if isinstance(raw_speakers, list) else [])
        if isinstance(s, dict)
    ][:100]
    reactions = {
        str(k)[:8]: int(v)
        for k, v in (raw_reactions if isinstance(raw_reactions, dict) else {}).items()
        if isinstance(v, int) and not isinstance(v, bool)
    }
    kept = {k: doc[k] for k in keys}
    kept.update(
        speakers=speakers,
        reactions=reactions,
        reactions_dropped=_count(doc.get("reactions_dropped")),
    )
    if isinstance(doc.get("replay_url"), str):
        kept["replay_url"] = doc["replay_url"]
    return kept


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _number(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return value >= 0 and math.isfinite(value)
