"""The node's side of federation: ``Fediverse`` runs the inbox and delivery workers over
the SQLite ports (node.store.federation), serves the federation routes' needs, follows
across nodes for the JSON API, lists rooms announced to us, and signs what node.relaying
sends (it implements node.relaying.ports.RelaySigner).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import sqlite_utils

from federation.activities import build_follow, build_undo
from federation.actors import ActorUrls, RemoteActor, parse_acct, parse_webfinger
from federation.client import ActorResolver, FederationClient, domain_is_blocked
from federation.delivery import DeliveryWorker
from federation.egress import AddressPolicy, hostname_of, is_host_and_port
from federation.errors import (
    ActivityParseError,
    BlockedDomain,
    FederationError,
    PrivateAddress,
    RemoteFetchError,
)
from federation.inbox import InboxContext, InboxWorker
from federation.outbox import OutboxPublisher
from federation.ports import FollowState, RoomActions
from federation.routes import FederationSite
from node.accounts import Account
from node.config import Config
from node.errors import Forbidden, InvalidInput, NotFound
from node.fediverse.announcer import RoomAnnouncer
from node.fediverse.local_follows import LocalFollows
from node.onair.stage import Stage
from node.store.accounts import AccountDirectory
from node.store.actors import NodeActors
from node.store.federation import (
    SqliteActorCache,
    SqliteDeliveries,
    SqliteFollows,
    SqliteInbox,
    SqliteOutbox,
    SqliteRoomDirectory,
    SqliteRoomNotes,
)

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.5


def address_policy(config: Config) -> AddressPolicy:
    federation = config.federation
    return AddressPolicy.build(
        allow_private=federation.allow_private_addresses,
        allowlist=federation.allow_private_destinations,
    )


def _software_version() -> str:
    try:
        return importlib.metadata.version("parley")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


class Fediverse:
    def __init__(
        self,
        config: Config,
        db: sqlite_utils.Database,
        accounts: AccountDirectory,
        stage: Stage,
    ) -> None:
        self.config = config
        self.stage = stage
        self.base_url = config.node.base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc.lower()
        self.blocked_domains = frozenset(d.lower() for d in config.federation.blocked_domains)
        self._inbox_wake = asyncio.Event()
        self._delivery_wake = asyncio.Event()
        self.follows = SqliteFollows(db)
        self.inbox = SqliteInbox(db, self._inbox_wake.set)
        self.deliveries = SqliteDeliveries(db, self._delivery_wake.set)
        self.actor_cache = SqliteActorCache(db)
        self.remote_room_directory = SqliteRoomDirectory(db)
        self.outbox = SqliteOutbox(db)
        self.actors = NodeActors(db, accounts, config)
        self.accounts = accounts
        self.local_follows = LocalFollows(self.follows, accounts, self.base_url)
        self.site: FederationSite | None = None
        self.publisher: OutboxPublisher | None = None
        self.client: FederationClient | None = None
        self.resolver: ActorResolver | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.announcer = RoomAnnouncer(
            self.base_url, SqliteRoomNotes(db), stage, lambda: self.publisher
        )
        stage.on_air(self.announcer.watch)
        for on_air in list(stage.rooms_on_air.values()):
            self.announcer.watch(on_air)

    async def start(self, room_actions: RoomActions | None = None) -> None:
        """Start the inbox and delivery workers; ``room_actions`` applies the room actions
        of remote users (node.relaying)."""
        self.actors.ensure_instance_key()
        key_id, pem = self.actors.instance_key()
        self.client = FederationClient(
            user_agent=f"Parley/{_software_version()} (+{self.base_url}/)",
            blocked_domains=self.blocked_domains,
            policy=address_policy(self.config),
        )
        self.resolver = ActorResolver(
            self.client, self.actor_cache, signing_key_id=key_id, signing_private_pem=pem
        )
        self.publisher = OutboxPublisher(
            self.follows,
            self.resolver,
            self.deliveries,
            self.outbox,
            blocked_domains=self.blocked_domains,
            is_local_actor=self.local_follows.is_local_actor,
        )
        context = InboxContext(
            follows=self.follows,
            deliveries=self.deliveries,
            keys=self.actors,
            rooms=self.remote_room_directory,
            actors=self.actor_cache,
            resolver=self.resolver,
            room_actions=room_actions,
        )
        inbox_worker = InboxWorker(self.inbox, context)
        delivery_worker = DeliveryWorker(
            self.deliveries, self.actors, self.client, on_gone=self._inbox_gone
        )
        self.site = FederationSite(
            base_url=self.base_url,
            actors=self.actors,
            follows=self.follows,
            outbox=self.outbox,
            inbox=self.inbox,
            resolver=self.resolver,
            authorized_fetch=self.config.federation.authorized_fetch,
            blocked_domains=self.blocked_domains,
            software_version=_software_version(),
            on_stored=self._inbox_wake.set,
        )
        self._tasks = [
            asyncio.create_task(self._loop(inbox_worker.run_once, self._inbox_wake), name="inbox"),
            asyncio.create_task(
                self._loop(delivery_worker.run_once, self._delivery_wake), name="delivery"
            ),
        ]
        await self.announcer.recover()

    async def _loop(self, step: Any, wake: asyncio.Event) -> None:
        while True:
            wake.clear()
            try:
                busy = bool(await step())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("federation worker step failed")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), IDLE_WAIT_S)

    async def _inbox_gone(self, inbox_url: str) -> None:
        for actor in self.actor_cache.actors_with_inbox(inbox_url):
            removed = await self.follows.remove_actor(actor)
            log.info("inbox %s is gone: dropped %d follows of %s", inbox_url, removed, actor)

    async def stop(self) -> None:
        await self.announcer.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.client is not None:
            await self.client.aclose()

    # ------------------------------------------------------------------ listing

    def remote_rooms(self) -> list[dict[str, Any]]:
        """Live rooms announced by accounts our users follow, shaped like local rooms."""
        result = []
        for row in self.remote_room_directory.followed_live_rooms():
            doc = row["host_doc"] or {}
            origin = urlsplit(row["url"]).netloc
            username = doc.get("preferred_username") or row["host"].rsplit("/", 1)[-1]
            result.append(
                {
                    "id": row["id"],
                    "title": row["title"],
                    "description": "",
                    "visibility": "public",
                    "state": row["state"],
                    "url": row["url"],
                    # Where this node's client opens it: our relayed copy (node.relaying).
                    "local_url": f"{self.base_url}/rooms/remote?origin="
                    + quote(row["url"], safe=""),
                    "origin": origin,
                    "remote": True,
                    "host": {
                        "username": username,
                        "display_name": doc.get("name") or username,
                        "handle": f"{username}@{urlsplit(row['host']).netloc}",
                        "actor": row["host"],
                    },
                    "speakers": [{"actor": s} for s in row["speakers"]],
                    "listen_url": row["listen_url"],
                    "whep_url": row["whep_url"],
                }
            )
        return result

    # ------------------------------------------------------------------ signing for relays

    def actor_id(self, username: str) -> str:
        return ActorUrls.for_user(self.base_url, username).id

    def instance_key(self) -> tuple[str, str]:
        return self.actors.instance_key()

    async def post_as(self, username: str, inbox: str, activity: dict[str, Any]) -> int:
        client, _, _ = self._ready()
        key = await self.actors.local_actor_key(self.actor_id(username))
        if key is None:
            raise Forbidden("this account cannot act across nodes now")
        result = await client.post_activity(
            inbox, json.dumps(activity).encode(), key_id=key[0], private_pem=key[1]
        )
        return int(result.status)

    async def handle_of(self, actor_id: str) -> str:
        _, resolver, _ = self._ready()
        remote = await resolver.actor(actor_id)
        return self.handle_of_actor(remote.id, remote.preferred_username)

    # ------------------------------------------------------------------ follows (JSON API)

    def federation_client(self) -> FederationClient:
        """The one outgoing client (address policy, blocklist); the relay uses it too."""
        return self._ready()[0]

    def _ready(self) -> tuple[FederationClient, ActorResolver, OutboxPublisher]:
        if self.client is None or self.resolver is None or self.publisher is None:
            raise RuntimeError("Fediverse.start() has not run")
        return self.client, self.resolver, self.publisher

    async def _webfinger(self, user: str, host: str) -> str:
        client, _, _ = self._ready()
        key_id, pem = self.actors.instance_key()
        resource = quote(f"acct:{user}@{host}", safe=":@")
        # https first; plain http only where private addresses are allowed (tests, LANs).
        schemes = ["https", "http"] if client.policy.plain_http_allowed(host) else ["https"]
        last: FederationError | None = None
        for scheme in schemes:
            url = f"{scheme}://{host}/.well-known/webfinger?resource={resource}"
            try:
                jrd = await client.get_json(url, key_id=key_id, private_pem=pem)
            except RemoteFetchError as exc:
                last = exc
                if exc.status is not None:
                    break
                continue
            if not isinstance(jrd, Mapping):
                raise ActivityParseError("WebFinger answer is not an object", None)
            return parse_webfinger(jrd)
        assert last is not None
        raise last

    async def resolve_handle(self, handle: Any) -> RemoteActor:
        """``alice@host``, ``@alice@host`` or an actor URL -> the remote actor (fetched)."""
        if not isinstance(handle, str) or not handle.strip():
            raise InvalidInput("handle", "must be a handle like alice@example.org")
        text = handle.strip()
        _, resolver, _ = self._ready()
        try:
            if text.startswith(("http://", "https://")):
                host = hostname_of(text)
                if domain_is_blocked(host, self.blocked_domains):
                    raise BlockedDomain(host)
                return await resolver.actor(text, refresh=True)
            try:
                user, host = parse_acct(text)
            except ActivityParseError:
                raise InvalidInput("handle", "must be a handle like alice@example.org") from None
            if not is_host_and_port(host):
                raise InvalidInput("handle", "must be a handle like alice@example.org")
            if domain_is_blocked(hostname_of(f"//{host}") or host, self.blocked_domains):
                raise BlockedDomain(host)
            return await resolver.actor(await self._webfinger(user, host), refresh=True)
        except BlockedDomain as exc:
            raise Forbidden(f"{text}: {exc}") from None
        except (RemoteFetchError, PrivateAddress) as exc:
            log.info("look-up of %s failed: %s", text, exc)
            if isinstance(exc, RemoteFetchError) and exc.status in (401, 403):
                # A public server that checked our signature and said no (a block).
                raise Forbidden(f"{text}: the other server refuses us") from None
            # Otherwise "unreachable", never the status or the error: an answer per
            # address would turn the node into a port scanner for anyone with an account.
            raise NotFound(f"cannot find {text}: unreachable") from None
        except ActivityParseError as exc:
            raise NotFound(f"{text} is not a usable ActivityPub actor: {exc}") from None

    @staticmethod
    def handle_of_actor(actor_id: str, preferred_username: str | None) -> str:
        username = preferred_username or actor_id.rstrip("/").rsplit("/", 1)[-1]
        return f"{username}@{urlsplit(actor_id).netloc}"

    async def follow(self, account: Account, handle: Any) -> dict[str, Any]:
        _, _, publisher = self._ready()
        remote = await self.resolve_handle(handle)
        local = self.actor_id(account.username)
        if remote.id == local:
            raise InvalidInput("handle", "you cannot follow yourself")
        existing = self.follows.follow_row(local, remote.id)
        state = FollowState.PENDING
        if existing is not None and existing[1] == FollowState.ACCEPTED.value:
            state = FollowState.ACCEPTED
        else:
            follow_id = f"{local}/follows/{uuid.uuid4()}"
            await self.follows.add_following(local, remote.id, follow_id, FollowState.PENDING)
            await publisher.send(local, build_follow(follow_id, local, remote.id), remote.inbox)
        return {
            "handle": self.handle_of_actor(remote.id, remote.preferred_username),
            "actor": remote.id,
            "state": state.value,
        }

    async def _following_actor(self, local: str, handle: str) -> str | None:
        text = handle.strip()
        if text.startswith(("http://", "https://")):
            return text
        try:
            user, host = parse_acct(text)
        except ActivityParseError:
            raise InvalidInput("handle", "must be a handle like alice@example.org") from None
        for row in self.follows.rows("fed_following", local):
            if self.handle_of_actor(row["actor"], row["preferred_username"]).lower() == (
                f"{user}@{host}".lower()
            ):
                return str(row["actor"])
        return None

    async def unfollow(self, account: Account, handle: Any) -> dict[str, Any]:
        _, resolver, publisher = self._ready()
        if not isinstance(handle, str) or not handle.strip():
            raise InvalidInput("handle", "must be a handle like alice@example.org")
        local = self.actor_id(account.username)
        remote_id = await self._following_actor(local, handle)
        found = None if remote_id is None else self.follows.follow_row(local, remote_id)
        if remote_id is None or found is None:
            raise NotFound(f"you do not follow {handle}")
        follow_id, _ = found
        await self.follows.remove_following(local, remote_id)
        cached = await self.actor_cache.get(remote_id)
        try:
            remote = cached or await resolver.actor(remote_id)
        except FederationError as exc:
            log.info("Undo{Follow} of %s not sent: %s", remote_id, exc)
            remote = None
        if remote is not None:
            undo = build_undo(
                f"{local}#undo/{uuid.uuid4()}", local, build_follow(follow_id, local, remote_id)
            )
            await publisher.send(local, undo, remote.inbox)
        return {
            "handle": self.handle_of_actor(
                remote_id, cached.preferred_username if cached else None
            ),
            "actor": remote_id,
            "state": "removed",
        }

    def _listing(self, table: str, username: str) -> list[dict[str, Any]]:
        return [
            {
                "handle": self.handle_of_actor(row["actor"], row["preferred_username"]),
                "actor": row["actor"],
                "state": row["state"],
            }
            for row in self.follows.rows(table, self.actor_id(username))
        ]

    def following_of(self, username: str) -> list[dict[str, Any]]:
        return self._listing("fed_following", username)

    def followers_of(self, username: str) -> list[dict[str, Any]]:
        return self._listing("fed_followers", username)
