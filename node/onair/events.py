"""One event bus per room on air.

Every event of a room goes through its bus: state events the ``Room`` emits (``member``,
``member_left``, ``room``, ``listeners``, ``kicked``) and ephemeral ones that are never
stored (``levels``; reactions later). Local watchers (room WebSockets), the relay hub
(node.relaying.hub: the relays subscribed to this room), the media reactions and the
announcer subscribe to it; each decides what it does with an event. An event is a JSON
object with a ``type``, as sent on the room WebSocket (docs/API.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Event = dict[str, Any]
EPHEMERAL = frozenset({"levels"})
"""Event types that are not room state: nobody stores or replays them."""


class RoomEvents:
    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns the unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for callback in list(self._subscribers):
            callback(event)
