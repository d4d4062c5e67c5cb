"""Finding a room of another node by its URL or its host's handle (plain HTTP GETs of
the other node's JSON API: rooms are public there)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from federation.client import domain_is_blocked
from node.errors import Forbidden, InvalidInput, NotFound
from node.rooms import RoomState


class RoomFinder:
    def __init__(self, *, blocked_domains: frozenset[str], allow_private_addresses: bool) -> None:
        self._blocked = blocked_domains
        self._scheme = "http" if allow_private_addresses else "https"
        self._http = httpx.AsyncClient(timeout=10)

    async def close(self) -> None:
        await self._http.aclose()

    async def _get_json(self, url: str) -> Any:
        if domain_is_blocked(urlsplit(url).hostname or "", self._blocked):
            raise Forbidden("that server is blocked here")
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise NotFound(f"cannot reach {url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise NotFound(f"{url} answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise NotFound(f"{url} did not answer JSON") from None

    async def room_at(self, url: str) -> dict[str, Any]:
        """The room JSON of a room URL like https://node/rooms/ID."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or "/rooms/" not in parts.path:
            raise InvalidInput("url", "must be a room URL like https://node/rooms/ID")
        room_id = parts.path.rstrip("/").rsplit("/", 1)[-1]
        base = f"{parts.scheme}://{parts.netloc}"
        doc = await self._get_json(f"{base}/api/v1/rooms/{room_id}")
        if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
            raise NotFound("that is not a Parley room")
        return doc

    async def live_room_of(self, handle: str) -> dict[str, Any]:
        """The live room of ``user@host``."""
        user, _, host = handle.lstrip("@").rpartition("@")
        if not user or not host:
            raise InvalidInput("handle", "must be a handle like alice@example.org")
        doc = await self._get_json(f"{self._scheme}://{host}/api/v1/accounts/{user}/rooms")
        for room in doc.get("rooms", []) if isinstance(doc, dict) else []:
            if isinstance(room, dict) and room.get("state") == RoomState.LIVE:
                return room
        raise NotFound(f"{handle} has no live room")
