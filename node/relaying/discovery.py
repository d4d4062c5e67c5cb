"""Finding a room of another node by its URL or its host's handle (GETs of the other
node's JSON API: rooms are public there), through the node's one outgoing client, so the
address policy and the blocklist apply (federation.egress)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from federation.actors import parse_acct
from federation.client import FederationClient
from federation.errors import ActivityParseError, BlockedDomain, FederationError
from federation.relay import RELAY_PATH, WS_SCHEMES, is_url
from federation.relay_subscription import other_form
from node.errors import Forbidden, InvalidInput, NotFound
from node.relaying.names import netloc
from node.rooms import RoomState

logger = logging.getLogger(__name__)


def room_url_parts(url: str) -> tuple[str, str]:
    """(base URL, room id) of a room URL like https://node/rooms/ID; InvalidInput else
    (``urlsplit`` raises ValueError on input like ``http://[::1``: a user's must not)."""
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and "/rooms/" in parts.path
    except ValueError:
        usable = False
    if not usable:
        raise InvalidInput("url", "must be a room URL like https://node/rooms/ID")
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/").rsplit("/", 1)[-1]


def relay_url_of(doc: dict[str, Any]) -> str:
    """The relay endpoint of a room JSON: its ``relay_url``, which must be on the node that
    serves the room (same host and port, ws for http, wss for https); a node that does not
    give one (an older Parley) serves the default path."""
    base = str(doc["url"]).split("/rooms/")[0]
    given = doc.get("relay_url")
    if is_url(given, WS_SCHEMES) and other_form(str(given)).startswith(base + "/"):
        return str(given)
    return other_form(base) + RELAY_PATH.format(room_id=quote(str(doc["id"]), safe=""))


class RoomFinder:
    def __init__(self, client: Callable[[], FederationClient]) -> None:
        self._client = client

    async def _get_json(self, url: str) -> Any:
        """The user learns "unreachable", never what answered: a status or an error per
        address would make this a port scanner."""
        try:
            fetched = await self._client().fetch(url, accept="application/json")
        except BlockedDomain:
            raise Forbidden("that server is blocked here") from None
        except FederationError as exc:
            logger.info("fetching %s for a user failed: %s", url, exc)
            raise NotFound(f"{netloc(url)} is unreachable or not a Parley node") from None
        return fetched.doc

    async def room_at(self, url: str) -> dict[str, Any]:
        """The room JSON of a room URL like https://node/rooms/ID."""
        base, room_id = room_url_parts(url)
        doc = await self._get_json(f"{base}/api/v1/rooms/{quote(room_id, safe='')}")
        if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
            raise NotFound("that is not a Parley room")
        return doc

    async def live_room_of(self, handle: str) -> dict[str, Any]:
        """The live room of ``user@host``."""
        try:
            user, host = parse_acct(handle)
        except ActivityParseError:
            raise InvalidInput("handle", "must be a handle like alice@example.org") from None
        scheme = "http" if self._client().policy.plain_http_allowed(host) else "https"
        doc = await self._get_json(
            f"{scheme}://{host}/api/v1/accounts/{quote(user, safe='')}/rooms"
        )
        for room in doc.get("rooms", []) if isinstance(doc, dict) else []:
            if isinstance(room, dict) and room.get("state") == RoomState.LIVE:
                return room
        raise NotFound(f"{handle} has no live room")
