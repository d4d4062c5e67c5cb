"""What the federation package needs from the node, stated as Protocols.

The node implements these on SQLite; tests implement them in memory. All methods are
async so an implementation may hop to a thread for blocking I/O. ``federation`` never
imports ``node``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from federation.activities import RemoteRoom
from federation.actors import RemoteActor


class FollowState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class StoredActivity:
    """An inbox row: a verified activity waiting for (or done with) processing."""

    row_id: int
    activity_id: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """An outbox row: one activity for one inbox. ``tries`` counts attempts already made."""

    row_id: int
    activity_json: str
    inbox_url: str
    signing_actor: str
    tries: int


class KeyStore(Protocol):
    async def local_actor_key(self, actor_id: str) -> tuple[str, str] | None:
        """(key_id, private_pem) of a local actor, or None if the actor is not ours."""
        ...


class FollowStore(Protocol):
    async def add_follower(
        self, local_actor: str, remote_actor: str, follow_id: str, state: FollowState
    ) -> None: ...

    async def remove_follower(self, local_actor: str, remote_actor: str) -> bool: ...

    async def followers(self, local_actor: str) -> list[str]:
        """Accepted followers' actor ids."""
        ...

    async def add_following(
        self, local_actor: str, remote_actor: str, follow_id: str, state: FollowState
    ) -> None: ...

    async def set_following_state(
        self, local_actor: str, remote_actor: str, state: FollowState
    ) -> bool: ...

    async def remove_following(self, local_actor: str, remote_actor: str) -> bool: ...

    async def find_following(self, follow_id: str) -> tuple[str, str] | None:
        """(local_actor, remote_actor) of the Follow we sent with this id."""
        ...

    async def following(self, local_actor: str) -> list[str]: ...

    async def remove_actor(self, remote_actor: str) -> int:
        """Forget every follow to or from a remote actor (it was deleted); return the count."""
        ...


class InboxStore(Protocol):
    async def store(self, activity_id: str, payload: Mapping[str, Any]) -> bool:
        """Store if the id is new; False for a duplicate (redeliveries are common)."""
        ...

    async def claim_next(self) -> StoredActivity | None: ...

    async def mark_processed(self, row_id: int) -> None: ...

    async def mark_failed(self, row_id: int, reason: str) -> None: ...


class DeliveryStore(Protocol):
    async def enqueue(self, activity_json: str, inbox_url: str, signing_actor: str) -> None:
        """One row per target inbox, due immediately."""
        ...

    async def claim_due(self, now: dt.datetime, limit: int) -> list[DeliveryAttempt]: ...

    async def mark_delivered(self, row_id: int) -> None: ...

    async def mark_retry(self, row_id: int, next_try: dt.datetime, error: str) -> None:
        """Count one more try and wait until ``next_try``."""
        ...

    async def postpone(self, row_id: int, next_try: dt.datetime) -> None:
        """Wait until ``next_try`` without counting a try (the host's circuit is open)."""
        ...

    async def mark_dead(self, row_id: int, reason: str) -> None: ...


class RemoteActorCache(Protocol):
    async def get(self, actor_id: str) -> RemoteActor | None: ...

    async def get_by_key_id(self, key_id: str) -> RemoteActor | None: ...

    async def put(self, actor: RemoteActor) -> None: ...

    async def remove(self, actor_id: str) -> None: ...


class RoomDirectory(Protocol):
    """Rooms on other nodes that were announced to us.

    Only a room's own host changes or ends it: ``by`` is the actor of the activity, and a
    room hosted by someone else is left alone (another user of the same server cannot end
    it).
    """

    async def upsert(self, room: RemoteRoom) -> None: ...

    async def end(self, room_id: str, by: str) -> bool: ...

    async def end_by_note(self, note_id: str, by: str) -> bool: ...

    async def list_rooms(self) -> list[RemoteRoom]: ...


@dataclass(frozen=True, slots=True)
class LocalAccount:
    """What the federation routes publish about one of the node's own accounts."""

    username: str
    display_name: str
    summary: str
    public_key_pem: str


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """NodeInfo's usage block and registration policy."""

    users_total: int
    users_active_month: int
    users_active_halfyear: int
    local_posts: int
    open_registrations: bool


class LocalActors(Protocol):
    """The node's own accounts, as the actor, WebFinger and NodeInfo routes need them."""

    async def account(self, username: str) -> LocalAccount | None:
        """An active account by username, or None."""
        ...

    async def instance_public_key(self) -> str: ...

    async def usage(self) -> NodeUsage: ...


class OutboxStore(Protocol):
    """Activities our actors published, for their outbox collections."""

    async def add(self, actor: str, activity: Mapping[str, Any]) -> None: ...

    async def count(self, actor: str) -> int: ...

    async def page(self, actor: str, offset: int, limit: int) -> list[Mapping[str, Any]]:
        """Newest first."""
        ...

    async def latest_object(self, object_id: str) -> Mapping[str, Any] | None:
        """The newest version of an object our actors published (a room's Note, as its
        last Create or Update carried it), so its id can be fetched like Mastodon's."""
        ...


class RoomActions(Protocol):
    """Applies room actions of remote users (``parley:RaiseHand`` ...; FEDERATION.md)."""

    async def apply_activity(self, actor_id: str, activity: dict[str, Any]) -> None: ...
