"""What the relay ends drop and refuse, counted for ``GET /api/v1/node/stats``."""

from __future__ import annotations

from dataclasses import dataclass

from federation.relay import SequenceFilter


@dataclass
class RelayCounters:
    malformed: int = 0
    duplicates: int = 0
    late: int = 0
    uplink_refused: int = 0
    slow_dropped: int = 0
    refused_subscriptions: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)

    def take_filtered(self, seen: SequenceFilter) -> None:
        """Add what ``seen`` refused since the last call (the uplink filter of the service
        and every mirror's filter feed the same two counters)."""
        self.duplicates += seen.duplicates
        self.late += seen.late
        seen.duplicates = seen.late = 0
