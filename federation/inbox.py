"""Incoming activities: verify, store, answer 202; a worker acts on them later.

``receive`` is all the web route does (Takahē/Mastodon style). ``InboxWorker.run_once``
picks one stored activity and hands it to the handler chosen for its type, Mastodon's
``ActivityPub::Activity.factory`` in miniature.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from federation import jsonlimits
from federation.activities import (
    Activity,
    RoomState,
    build_accept,
    parse_activity,
    room_from_note,
)
from federation.actors import RemoteActor, same_origin
from federation.errors import (
    ActivityParseError,
    FederationError,
    PayloadTooLarge,
    RemoteFetchError,
    SignatureError,
)
from federation.ports import (
    DeliveryStore,
    FollowState,
    FollowStore,
    InboxStore,
    KeyStore,
    RemoteActorCache,
    RoomActions,
    RoomDirectory,
)
from federation.signatures import identify_signature, verify_request

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000


class ActorLookup(Protocol):
    """Implemented by federation.client.ActorResolver; a seam for tests."""

    async def actor(self, actor_id: str, *, refresh: bool = False) -> RemoteActor: ...

    async def key_owner(self, key_id: str, *, refresh: bool = False) -> RemoteActor: ...


async def _key_owner(resolver: ActorLookup, key_id: str, refresh: bool) -> RemoteActor:
    try:
        return await resolver.key_owner(key_id, refresh=refresh)
    except (RemoteFetchError, ActivityParseError) as exc:
        raise SignatureError(f"cannot obtain key {key_id}: {exc}") from exc


async def verify_and_parse(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    resolver: ActorLookup,
    *,
    now: dt.datetime | None = None,
) -> Activity:
    """Authenticate an inbox POST and parse its activity.

    ``url`` is the absolute URL the sender addressed (needed by RFC 9421's ``@target-uri``).
    Raises PayloadTooLarge (413), ActivityParseError (400) or SignatureError (401).
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(MAX_BODY_BYTES)
    info = identify_signature(headers)
    owner = await _key_owner(resolver, info.key_id, refresh=False)
    try:
        verify_request(method, url, headers, body, owner.public_key_pem, now=now)
    except SignatureError as first:
        # The sender may have rotated its key since we cached it: fetch once more, then judge.
        refreshed = await _key_owner(resolver, info.key_id, refresh=True)
        if refreshed.public_key_pem == owner.public_key_pem:
            raise first
        owner = refreshed
        verify_request(method, url, headers, body, owner.public_key_pem, now=now)
    activity = parse_activity(jsonlimits.loads(body))
    # Mastodon's rule: whoever signed must be the activity's actor (no relayed forgeries;
    # LD-signature forwarding is not supported).
    if owner.id != activity.actor:
        raise SignatureError(f"key {info.key_id} does not belong to actor {activity.actor}")
    return activity


async def receive(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    resolver: ActorLookup,
    store: InboxStore,
    *,
    now: dt.datetime | None = None,
) -> Activity:
    """Verify, then store for the worker; the route answers 202 (also for duplicates)."""
    activity = await verify_and_parse(method, url, headers, body, resolver, now=now)
    if not await store.store(activity.id, activity.raw):
        log.debug("duplicate activity %s", activity.id)
    return activity


def http_status_for(error: FederationError) -> int:
    """The one place federation errors map to HTTP status codes for the inbox route."""
    if isinstance(error, PayloadTooLarge):
        return 413
    if isinstance(error, SignatureError):
        return 401
    if isinstance(error, ActivityParseError):
        return 400
    return 400


# --------------------------------------------------------------------------- handlers


def _new_activity_id(actor: str) -> str:
    return f"{actor}#activities/{uuid.uuid4()}"


@dataclass(slots=True)
class InboxContext:
    follows: FollowStore
    deliveries: DeliveryStore
    keys: KeyStore
    rooms: RoomDirectory
    actors: RemoteActorCache
    resolver: ActorLookup
    new_activity_id: Callable[[str], str] = field(default=_new_activity_id)
    room_actions: RoomActions | None = None


Handler = Callable[[Activity, InboxContext], Awaitable[None]]


async def handle_follow(activity: Activity, ctx: InboxContext) -> None:
    """Auto-accept: the product has no follow requests (manuallyApprovesFollowers false)."""
    local = activity.object_id
    if local is None or await ctx.keys.local_actor_key(local) is None:
        log.info("Follow of unknown actor %s ignored", local)
        return
    follower = await ctx.resolver.actor(activity.actor)
    await ctx.follows.add_follower(local, follower.id, activity.id, FollowState.ACCEPTED)
    accept = build_accept(ctx.new_activity_id(local), local, activity.raw)
    await ctx.deliveries.enqueue(json.dumps(accept), follower.inbox, local)


def _ref(value: object) -> str | None:
    """An IRI, or the id of an embedded object (Fedify embeds the whole actor in the Follow
    it echoes back inside Accept and Undo)."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


async def handle_undo(activity: Activity, ctx: InboxContext) -> None:
    inner = activity.object
    if inner is None or inner.get("type") != "Follow":
        log.info("Undo of %s ignored", activity.object_id)
        return
    if _ref(inner.get("actor")) != activity.actor:
        raise ActivityParseError("Undo of someone else's Follow", "object.actor")
    target = _ref(inner.get("object"))
    if isinstance(target, str):
        await ctx.follows.remove_follower(target, activity.actor)


async def _following_pair(activity: Activity, ctx: InboxContext) -> tuple[str, str] | None:
    inner = activity.object
    if inner is not None:
        if inner.get("type") != "Follow":
            return None
        local, remote = _ref(inner.get("actor")), _ref(inner.get("object"))
        if remote != activity.actor or not isinstance(local, str):
            raise ActivityParseError("answers a Follow of someone else", "object.object")
        return local, activity.actor
    if activity.object_id is None:
        return None
    pair = await ctx.follows.find_following(activity.object_id)
    if pair is not None and pair[1] != activity.actor:
        raise ActivityParseError("answers a Follow of someone else", "object")
    return pair


async def handle_accept(activity: Activity, ctx: InboxContext) -> None:
    pair = await _following_pair(activity, ctx)
    if pair is not None:
        await ctx.follows.set_following_state(pair[0], pair[1], FollowState.ACCEPTED)


async def handle_reject(activity: Activity, ctx: InboxContext) -> None:
    pair = await _following_pair(activity, ctx)
    if pair is not None:
        await ctx.follows.remove_following(pair[0], pair[1])


async def handle_note(activity: Activity, ctx: InboxContext) -> None:
    if activity.object is None:
        return  # a bare-IRI Create is not something Parley rooms ever send
    room = room_from_note(activity.object)
    if room is None:
        return
    if room.host != activity.actor:
        raise ActivityParseError("room hosted by someone other than the sender", "room.host")
    if room.state is RoomState.ENDED:
        await ctx.rooms.end(room.id, by=activity.actor)
    else:
        await ctx.rooms.upsert(room)


async def handle_delete(activity: Activity, ctx: InboxContext) -> None:
    if activity.object_id == activity.actor:
        await ctx.follows.remove_actor(activity.actor)
        await ctx.actors.remove(activity.actor)
        return
    if activity.object_id is not None:
        if not same_origin(activity.object_id, activity.actor):
            raise ActivityParseError("deletes an object on another origin", "object")
        # Only the announcement's own author may take it down (the directory checks the
        # room's host is the actor); a neighbour on the same server may not.
        await ctx.rooms.end_by_note(activity.object_id, by=activity.actor)


async def handle_room_action(activity: Activity, ctx: InboxContext) -> None:
    """A remote user's action in a room we carry; the node checks the room's rules."""
    if ctx.room_actions is not None:
        await ctx.room_actions.apply_activity(activity.actor, dict(activity.raw))


HANDLERS: Mapping[str, Handler] = {
    "Follow": handle_follow,
    "Undo": handle_undo,
    "Accept": handle_accept,
    "Reject": handle_reject,
    "Create": handle_note,
    "Update": handle_note,
    "Delete": handle_delete,
}


def handler_for(activity: Activity) -> Handler | None:
    """The handler for an activity's type, or None to ignore it (Like, Announce, ...)."""
    if activity.type in ("Create", "Update") and activity.object_type not in (None, "Note"):
        return None
    if activity.type.startswith("parley:"):
        return handle_room_action
    return HANDLERS.get(activity.type)


class InboxWorker:
    def __init__(self, store: InboxStore, context: InboxContext) -> None:
        self._store = store
        self._ctx = context

    async def run_once(self) -> bool:
        """Process one stored activity; False when there was nothing to do."""
        row = await self._store.claim_next()
        if row is None:
            return False
        try:
            activity = parse_activity(row.payload)
            handler = handler_for(activity)
            if handler is not None:
                await handler(activity, self._ctx)
        except FederationError as exc:
            log.info("inbox activity %s failed: %s", row.activity_id, exc)
            await self._store.mark_failed(row.row_id, str(exc))
            return True
        except Exception as exc:
            # A bug in one handler must not wedge the queue on the same row forever.
            log.exception("inbox activity %s crashed", row.activity_id)
            await self._store.mark_failed(row.row_id, f"{type(exc).__name__}: {exc}")
            return True
        await self._store.mark_processed(row.row_id)
        return True
