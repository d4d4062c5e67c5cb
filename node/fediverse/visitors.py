"""Visitors' side of federation: look a handle up, send its one-time code as a direct
message, fetch its avatar through the node, and turn a redeemed code into a session.

FEDERATION.md "Visitors" and docs/SECURITY.md "Visitors" state the rules; node.visitors
the code's; node.store.visitors keeps the rows. Look-ups go through Fediverse's
``resolve_handle`` (WebFinger, then the actor, both through the one outgoing client with
its address policy and blocked domains); the message is a delivery row signed by the
instance actor, retried like every delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from federation.actors import ActorUrls
from federation.errors import FederationError
from federation.visitors import CodeMessage, build_code_message
from node.config import VisitorSettings
from node.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from node.fediverse.service import Fediverse
from node.images import ACCEPT, ICON_SIZE, remake_square
from node.rooms import MAX_MEMBER_NAME, Room, RoomState
from node.store.visitors import CodeRequest, VisitorStore
from node.visitors import (
    CODE_TTL_S,
    SendLimits,
    Visitor,
    normalize_code,
    parse_handle,
)

log = logging.getLogger(__name__)

AVATAR_TIMEOUT_S = 10.0
MAX_PENDING_AVATARS = 256


@dataclass(frozen=True, slots=True)
class CodeSent:
    request: CodeRequest

    def to_json(self) -> dict[str, object]:
        return {
            "request": self.request.id,
            "handle": self.request.handle,
            "display_name": self.request.display_name,
            "expires_at": self.request.expires_at,
        }


class Visitors:
    def __init__(
        self, settings: VisitorSettings, store: VisitorStore, fediverse: Fediverse
    ) -> None:
        self.settings = settings
        self.store = store
        self.fediverse = fediverse
        self.base_url = fediverse.base_url
        self.own_host = fediverse.host
        self.limits = SendLimits(
            per_handle=settings.codes_per_handle_per_hour,
            per_server=settings.codes_per_server_per_hour,
            per_address=settings.codes_per_address_per_hour,
        )
        self._avatars: dict[str, asyncio.Task[bytes | None]] = {}
        """Avatars being fetched for code requests, by request id (used at redemption)."""

    # -- asking for a code --------------------------------------------------------------

    def _blocked(self, server: str) -> bool:
        """``server`` (``host[:port]``) is on a domain this node blocks."""
        host = urlsplit(f"//{server}").hostname or server
        return self.fediverse.domains.is_blocked(host)

    def _check_server(self, host: str) -> None:
        if host == self.own_host:
            raise InvalidInput("handle", "that is an account of this node: sign in instead")
        if self._blocked(host):
            raise Forbidden(f"{host} is blocked on this node")

    async def ask_code(self, handle_text: object, room: Room, client: str) -> CodeSent:
        """Look the handle up and send its owner a code to join ``room`` here."""
        if not self.settings.enabled:
            raise Forbidden("this node does not take visitors")
        if room.state is RoomState.ENDED:
            raise Conflict("the room has ended")
        user, host = parse_handle(handle_text)
        self._check_server(host)
        # Cheap refusals first: the typed handle's window, before any look-up.
        self.store.check_limits(self.limits, handle=f"{user}@{host}", server=host, client=client)
        remote = await self.fediverse.resolve_handle(f"{user}@{host}")
        server = (urlsplit(remote.id).netloc or "").lower()
        self._check_server(server)
        handle = f"{remote.preferred_username}@{server}"
        request, code = self.store.issue(
            self.limits,
            handle=handle,
            server=server,
            actor=remote.id,
            display_name=remote.name or remote.preferred_username,
            icon=remote.icon,
            client=client,
            room_id=room.id,
        )
        await self._send(request, code, room, remote.url or remote.id, remote.inbox)
        if remote.icon:
            self._fetch_avatar_later(request.id, remote.icon)
        log.info("sent a visitor code to %s for room %s", handle, room.id)
        return CodeSent(request)

    async def _send(
        self, request: CodeRequest, code: str, room: Room, profile: str, inbox: str
    ) -> None:
        instance = ActorUrls.for_instance(self.base_url).id
        room_url = f"{self.base_url}/rooms/{room.id}"
        message = CodeMessage(
            recipient=request.actor,
            recipient_handle=request.handle,
            recipient_url=profile,
            code=code,
            node_host=self.own_host,
            room_title=room.title,
            link=f"{room_url}#visitor={request.id}.{code}",
            report_link=f"{room_url}#visitor-report={request.id}",
            expires_minutes=int(CODE_TTL_S // 60),
            contact=self.settings.abuse_contact,
        )
        activity = build_code_message(
            message,
            actor=instance,
            activity_id=f"{instance}/activities/{uuid.uuid4()}",
            note_id=f"{instance}/notes/{uuid.uuid4()}",
            published=dt.datetime.now(dt.UTC),
        )
        publisher = self.fediverse.publisher
        if publisher is None:
            raise Conflict("federation is not running")
        # A direct message goes to the actor's own inbox, never a shared one.
        await publisher.send(instance, activity, inbox)

    def _fetch_avatar_later(self, request_id: str, url: str) -> None:
        if len(self._avatars) >= MAX_PENDING_AVATARS:
            oldest = next(iter(self._avatars))
            self._avatars.pop(oldest).cancel()
        task = asyncio.get_running_loop().create_task(self._fetch_avatar(url))
        self._avatars[request_id] = task

    async def _fetch_avatar(self, url: str) -> bytes | None:
        try:
            client = self.fediverse.federation_client()
            data, _ = await asyncio.wait_for(
                client.fetch_media(url, accept=ACCEPT), AVATAR_TIMEOUT_S
            )
            return await asyncio.to_thread(remake_square, data, ICON_SIZE)
        except (FederationError, ValueError, TimeoutError) as exc:
            log.info("avatar %s not taken: %s", url, exc)
            return None

    # -- redeeming it -------------------------------------------------------------------

    def redeem(self, request_id: object, code: object, *, user_agent: str) -> tuple[Visitor, str]:
        """A code the person entered: their visitor and a new session token."""
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInput("request", "must be the request id the code was sent for")
        request = self.store.redeem(request_id, normalize_code(code))
        self._check_server(request.server)
        self.store.save_profile(
            request.handle, request.actor, request.display_name[:MAX_MEMBER_NAME]
        )
        avatar = self._avatars.pop(request.id, None)
        if avatar is not None:
            if avatar.done():
                self._keep_avatar(request.handle, avatar)
            else:
                avatar.add_done_callback(lambda t: self._keep_avatar(request.handle, t))
        token = self.store.open_session(
            request.handle,
            lifetime_s=self.settings.session_days * 86400.0,
            user_agent=user_agent,
        )
        return self.visitor(token), token

    def _keep_avatar(self, handle: str, task: asyncio.Task[bytes | None]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            image = task.result()
            if image is not None:
                self.store.save_avatar(handle, image, "image/png")

    def report(self, request_id: object) -> None:
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInput("request", "must be the request id from the message")
        request = self.store.report(request_id)
        log.warning(
            "visitor code for %s (room %s) reported as not asked for",
            request.handle,
            request.room_id,
        )

    # -- who a token is -----------------------------------------------------------------

    def visitor(self, token: str) -> Visitor:
        session = self.store.resolve(token)
        profile = self.store.profile(session.handle)
        server = session.handle.rpartition("@")[2]
        if self._blocked(server):
            raise Unauthorized(f"{server} is blocked on this node")
        avatar = None
        if profile.has_avatar:
            avatar = f"{self.base_url}/api/v1/visitors/{quote(profile.handle, safe='@:')}/avatar"
        return Visitor(
            handle=profile.handle,
            actor=profile.actor,
            display_name=profile.display_name,
            avatar_url=avatar,
            session_id=session.id,
        )

    async def close(self) -> None:
        for task in self._avatars.values():
            task.cancel()
        self._avatars.clear()
