"""A room WebSocket read in the background, for tests that wait for events (no tests here)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class Watch:
    """Collects every message of a WebSocket; ``until`` waits for one that matches."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self._new = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                self.messages.append(json.loads(text))
                self._new.set()

    def seen(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda m: True) -> list:
        return [m for m in self.messages if m.get("type") == kind and match(m)]

    async def until(
        self,
        kind: str,
        match: Callable[[dict[str, Any]], bool] = lambda m: True,
        *,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.seen(kind, match)
            if found:
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0:
                kinds = [m.get("type") for m in self.messages[-20:]]
                raise AssertionError(f"no {kind} message in {timeout} s (last: {kinds})")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), min(left, 0.5))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()


async def watch(url: str, token: str | None = None) -> Watch:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await connect(url, additional_headers=headers, open_timeout=10, close_timeout=2)
    return Watch(ws)
