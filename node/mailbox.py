"""A bounded queue of messages for one consumer that may be slow (a WebSocket client, a
relaying node): sending never blocks the room, and closing always reaches the consumer."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Generic, TypeVar

__all__ = ["Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Messages for one consumer task, which reads ``queue`` until it gets ``None``."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=maxsize)
        self.closed = False

    def send(self, message: T) -> bool:
        """Queue ``message``; False when closed or full (the caller drops the consumer)."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            return False

    def close(self) -> None:
        """End the consumer's stream, even when the queue is full (what was queued is
        lost then: a consumer that fell that far behind is being dropped anyway)."""
        self.closed = True
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
