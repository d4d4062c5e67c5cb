"""A scheduled room's start time: what the API accepts and how it is shown.

``starts_at`` is an instant (Unix seconds, like every other time in the room JSON). The
API takes it as RFC 3339 text with its offset (``2026-11-23T18:00:00+01:00``; a time
without an offset is refused: whose evening would it be?) or as Unix seconds. Clients show
it in the viewer's own time zone; announcements carry it in UTC.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from node.errors import InvalidInput

MAX_AHEAD_S = 366 * 24 * 3600
"""A room is scheduled at most a year ahead."""
PAST_SLACK_S = 300
"""A start a few minutes in the past is a room starting now (clocks, slow forms)."""


def parse_starts_at(value: Any, *, now: float) -> float | None:
    """None (no schedule) or a start time within a year from now."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput("starts_at", "must be an RFC 3339 time or Unix seconds")
    if isinstance(value, int | float):
        when = float(value)
        if not math.isfinite(when):
            raise InvalidInput("starts_at", "must be a finite number")
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 40:
            raise InvalidInput("starts_at", "must be an RFC 3339 time")
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput("starts_at", "must be an RFC 3339 time with an offset") from None
        if moment.tzinfo is None:
            raise InvalidInput("starts_at", "needs a time zone offset (Z or +01:00)")
        when = moment.timestamp()
    else:
        raise InvalidInput("starts_at", "must be an RFC 3339 time or Unix seconds")
    if when < now - PAST_SLACK_S:
        raise InvalidInput("starts_at", "is in the past")
    if when > now + MAX_AHEAD_S:
        raise InvalidInput("starts_at", "is more than a year ahead")
    return when


def iso_utc(when: float) -> str:
    moment = dt.datetime.fromtimestamp(when, dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def readable_utc(when: float) -> str:
    """For texts other servers show as they are (a Note): ``Mon 23 Nov 2026, 18:00 UTC``."""
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%a %d %b %Y, %H:%M UTC")
