"""Publishing: one activity from a local actor to its followers, as delivery rows.

Nothing is sent here. ``OutboxPublisher.publish`` resolves the followers (cache first),
collapses them to one inbox per server (shared inboxes), enqueues one ``DeliveryStore`` row
per inbox and keeps the activity for the actor's outbox collection; the DeliveryWorker
does the sending, retrying and giving up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from federation.actors import RemoteActor
from federation.client import domain_is_blocked
from federation.delivery import delivery_targets
from federation.errors import FederationError
from federation.inbox import ActorLookup
from federation.ports import DeliveryStore, FollowStore, OutboxStore

log = logging.getLogger(__name__)


class OutboxPublisher:
    def __init__(
        self,
        follows: FollowStore,
        resolver: ActorLookup,
        deliveries: DeliveryStore,
        outbox: OutboxStore,
        *,
        blocked_domains: Iterable[str] = (),
        is_local_actor: Callable[[str], bool] = lambda actor_id: False,
    ) -> None:
        self._follows = follows
        self._resolver = resolver
        self._deliveries = deliveries
        self._outbox = outbox
        self._blocked = frozenset(blocked_domains)
        # Followers on the publishing server itself share its database: delivering to its
        # own inbox over the network would be a wasted round trip (or refused on loopback).
        self._is_local = is_local_actor

    async def _followers(self, actor: str) -> list[RemoteActor]:
        resolved: list[RemoteActor] = []
        for follower in await self._follows.followers(actor):
            if self._is_local(follower):
                continue
            try:
                remote = await self._resolver.actor(follower)
            except FederationError as exc:
                # One unreachable follower must not stop the others from hearing about it.
                log.info("follower %s of %s skipped: %s", follower, actor, exc)
                continue
            if domain_is_blocked(remote.host, self._blocked):
                continue
            resolved.append(remote)
        return resolved

    async def publish(self, actor: str, activity: Mapping[str, Any]) -> list[str]:
        """Queue ``activity`` for every follower's server; return the target inboxes."""
        targets = delivery_targets(await self._followers(actor))
        body = json.dumps(activity)
        for inbox in targets:
            await self._deliveries.enqueue(body, inbox, actor)
        await self._outbox.add(actor, activity)
        log.info(
            "%s %s queued for %d inboxes", activity.get("type"), activity.get("id"), len(targets)
        )
        return targets

    async def send(self, actor: str, activity: Mapping[str, Any], inbox: str) -> None:
        """Queue a directed activity (Follow, Undo, Accept) for one inbox; not in the outbox."""
        await self._deliveries.enqueue(json.dumps(activity), inbox, actor)
