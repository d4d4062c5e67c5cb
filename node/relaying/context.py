"""What the parts of node.relaying share: the service (node.relaying.service) is it."""

from __future__ import annotations

from typing import Protocol

from websockets.asyncio.client import ClientConnection

from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.relaying.counters import RelayCounters
from node.relaying.hub import RelayHub
from node.relaying.mirror import Upstream
from node.relaying.names import Names


class RelayContext(Protocol):
    @property
    def stage(self) -> Stage: ...

    @property
    def names(self) -> Names: ...

    @property
    def counters(self) -> RelayCounters: ...

    @property
    def hubs(self) -> dict[str, RelayHub]: ...

    async def open_relay(self, url: str, room_id: str | None) -> ClientConnection:
        """A signed relay subscription to ``url``; with ``room_id`` it names our copy's
        relay URL (we join the succession list), without it is a probe."""
        ...

    def upstream_source(self, on_air: OnAir) -> Upstream: ...

    def changed(self, on_air: OnAir) -> None:
        """The room's carriage changed: persist it."""
        ...
