"""Reactions in a room: a small fixed set of emoji, and a per-person rate limit.

A reaction is an ephemeral event (``{"type": "reaction", "username", "emoji"}``): it floats
over the sender's avatar on every node carrying the room and is counted in the room's
summary, never stored. Each person gets a token bucket (``RATE`` a second, bursts of
``BURST``); a reaction beyond it is dropped and counted, and the sender is told when to
try again. A flood from one account therefore costs the room a few counters, never a
slower mixer or a flood of events to every listener and relay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

REACTIONS: tuple[str, ...] = ("👏", "❤️", "😂", "🔥", "💯", "🙌")
"""What the reaction bar offers (a raised hand, the seventh, floats like them: node.rooms)."""
RAISED_HAND = "✋"
RATE = 3.0
"""Reactions a person may send per second, sustained."""
BURST = 6.0
MAX_TRACKED = 10_000
"""People tracked at once; idle buckets are forgotten beyond this."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass
class ReactionLimiter:
    """Token buckets per person; ``take`` says how long to wait (0: allowed)."""

    rate: float = RATE
    burst: float = BURST
    clock: Callable[[], float] = time.monotonic
    dropped: int = 0
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, who: str) -> float:
        now = self.clock()
        bucket = self._buckets.get(who)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_full(now)
            bucket = self._buckets[who] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        self.dropped += 1
        return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        for name, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.at) * self.rate >= self.burst:
                del self._buckets[name]
