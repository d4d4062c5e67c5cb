"""Our users' "Remind me": for a scheduled room here, a stored reminder; for one on another
server (announced to us by an ``Event``), a stored reminder and an RSVP, ``Accept{Event}``
signed by the user and sent to the room's host, so the host's node sends us the Event's
update when the room goes live (node.notifications then tells the user)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from federation.activities import build_undo
from federation.actors import ActorUrls
from federation.errors import FederationError
from federation.events import build_rsvp
from federation.inbox import ActorLookup
from federation.outbox import OutboxPublisher
from node.accounts import Account
from node.errors import Conflict, InvalidInput, NotFound
from node.onair.stage import Stage
from node.rooms import RoomState
from node.store.federation import SqliteRoomDirectory
from node.store.reminders import Reminders

log = logging.getLogger(__name__)


class ReminderService:
    def __init__(
        self,
        base_url: str,
        stage: Stage,
        reminders: Reminders,
        directory: SqliteRoomDirectory,
        publisher: Callable[[], OutboxPublisher | None],
        resolver: Callable[[], ActorLookup | None],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.stage = stage
        self.reminders = reminders
        self.directory = directory
        self._publisher = publisher
        self._resolver = resolver

    def _local_id(self, url: str) -> str | None:
        prefix = f"{self.base_url}/rooms/"
        if url.startswith(prefix):
            rest = url[len(prefix) :].split("?", 1)[0].strip("/")
            return rest if rest and "/" not in rest else None
        return None

    async def add(self, account: Account, room: Any) -> dict[str, Any]:
        if not isinstance(room, str) or not room.startswith(("http://", "https://")):
            raise InvalidInput("room", "must be the room's URL")
        local_id = self._local_id(room)
        if local_id is not None:
            found = self.stage.get(local_id).room
            if found.state is not RoomState.SCHEDULED:
                raise Conflict(f"the room is {found.state.value}, not upcoming")
            url = f"{self.base_url}/rooms/{found.id}"
            self.reminders.add(url, account.id, None)
            return {"room": url, "remote": False}
        row = self.directory.by_url(room)
        if row is None or row["state"] != "scheduled":
            raise NotFound("no upcoming room at that URL is known here (follow its host first)")
        event_id = row["event_id"]
        if self.reminders.add(row["url"], account.id, event_id) and event_id:
            await self._send(account, event_id, str(row["host"]), undo=False)
        return {"room": row["url"], "remote": True, "event": event_id}

    async def remove(self, account: Account, room: str) -> dict[str, Any]:
        local_id = self._local_id(room)
        url = f"{self.base_url}/rooms/{local_id}" if local_id is not None else room
        row = None if local_id is not None else self.directory.by_url(room)
        if row is not None:
            url = str(row["url"])
        event_id = self.reminders.remove(url, account.id)
        if event_id is None:
            raise NotFound("you asked for no reminder of that room")
        if event_id and row is not None:
            await self._send(account, event_id, str(row["host"]), undo=True)
        return {"room": url, "removed": True}

    def of(self, account: Account) -> list[dict[str, Any]]:
        return [
            {"room": url, "remote": self._local_id(url) is None, "event": event}
            for url, event in self.reminders.of_account(account.id)
        ]

    async def _send(self, account: Account, event_id: str, host: str, *, undo: bool) -> None:
        publisher, resolver = self._publisher(), self._resolver()
        if publisher is None or resolver is None:
            return
        actor = ActorUrls.for_user(self.base_url, account.username).id
        rsvp = build_rsvp(
            f"{actor}/rsvps/{uuid.uuid5(uuid.NAMESPACE_URL, event_id)}", actor, event_id, host
        )
        activity = build_undo(f"{actor}#undo/{uuid.uuid4()}", actor, rsvp) if undo else rsvp
        try:
            remote = await resolver.actor(host)
        except FederationError as exc:
            log.info("RSVP for %s not sent: %s", event_id, exc)
            return
        await publisher.send(actor, activity, remote.delivery_inbox)
