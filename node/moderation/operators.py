"""What the node's admins and moderators do, and what follows from it.

An operator controls *their node*, not the room (FEDERATION.md "Operators and survival"):
ending a room here, suspending its host, or blocking the server a room comes from makes
this node stop carrying it (node.relaying ``stop_carrying``): its own listeners lose it,
the nodes that relay it from here hear "stopped", and the next node on the succession
list carries it on. Only the room's host ends a room for everyone.

Accounts follow Mastodon: a suspended account cannot sign in (its sessions are revoked),
its rooms stop here, its actor answers 410 Gone, and nothing is sent to other servers
until the suspension is made final by deleting it (then a ``Delete`` of the actor goes
to every server that follows it or that it follows).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from node.accounts import Account, AccountRole, AccountStatus
from node.domain_blocks import DomainBlock, Severity, covers, host_of
from node.errors import Conflict, InvalidInput
from node.fediverse.service import Fediverse
from node.moderation.staff import require_admin, require_power_over, require_staff
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.relaying.names import netloc
from node.relaying.service import RelayService
from node.rooms import MAX_REASON, RoomState
from node.store.accounts import AccountDirectory
from node.store.domain_blocks import DomainBlockList

log = logging.getLogger(__name__)

SUSPENDED_HOST_REASON = "the host's account is suspended on this server"


def reason_of(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or len(value.strip()) > MAX_REASON:
        raise InvalidInput("reason", f"text of at most {MAX_REASON} characters")
    return value.strip() or default


def role_of(value: Any) -> AccountRole:
    try:
        return AccountRole(value)
    except ValueError:
        raise InvalidInput("role", "must be 'admin', 'moderator' or 'user'") from None


class Operators:
    def __init__(
        self,
        *,
        accounts: AccountDirectory,
        stage: Stage,
        relay: RelayService,
        fediverse: Fediverse,
        domains: DomainBlockList,
    ) -> None:
        self.accounts = accounts
        self.stage = stage
        self.relay = relay
        self.fediverse = fediverse
        self.domains = domains
        self.base_url = stage.base_url
        self._tasks: set[asyncio.Task[None]] = set()
        domains.on_change(self._domain_blocked)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the consequences still under way (tests; shutting down)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- sign-ups ---------------------------------------------------------------------

    def approve(self, actor: Account, username: str) -> Account:
        require_staff(actor)
        account = self.accounts.get(username)
        if account.status is not AccountStatus.PENDING:
            raise Conflict(f"{account.username} is not waiting for approval")
        log.info("%s approved the sign-up of %s", actor.username, account.username)
        return self.accounts.approve(account.username)

    def reject(self, actor: Account, username: str) -> None:
        require_staff(actor)
        account = self.accounts.get(username)
        self.accounts.reject(account)
        log.info("%s rejected the sign-up of %s", actor.username, account.username)

    # -- standing ---------------------------------------------------------------------

    async def suspend(self, actor: Account, username: str, reason: Any = None) -> Account:
        account = self.accounts.get(username)
        require_power_over(actor, account)
        if account.status is not AccountStatus.ACTIVE:
            raise Conflict(f"{account.username} is {account.status.value}, not active")
        suspended = self.accounts.suspend(account)
        log.info("%s suspended %s", actor.username, account.username)
        await self._stop_rooms_of(account.username, reason_of(reason, SUSPENDED_HOST_REASON))
        return suspended

    async def _stop_rooms_of(self, username: str, reason: str) -> None:
        """The suspended user's rooms stop here (carried on elsewhere where they can be);
        whatever else they have open in rooms closes."""
        for on_air in list(self.stage.rooms_on_air.values()):
            if on_air.room.state is RoomState.ENDED:
                continue
            if on_air.room.host == username:
                await self.relay.stop_carrying(on_air, reason)
            else:
                await on_air.drop_user(username)

    def unsuspend(self, actor: Account, username: str) -> Account:
        account = self.accounts.get(username)
        require_power_over(actor, account)
        if account.status is not AccountStatus.SUSPENDED:
            raise Conflict(f"{account.username} is not suspended")
        log.info("%s lifted the suspension of %s", actor.username, account.username)
        return self.accounts.unsuspend(account)

    def silence(self, actor: Account, username: str, silenced: bool) -> Account:
        account = self.accounts.get(username)
        require_power_over(actor, account)
        log.info("%s %s %s", actor.username, "silenced" if silenced else "unsilenced", username)
        return self.accounts.set_silenced(account, silenced)

    async def delete(self, actor: Account, username: str) -> Account:
        """The suspension made final: other servers are told (``Delete``), the profile
        and credentials go, the username stays taken."""
        require_admin(actor)
        account = self.accounts.get(username)
        require_power_over(actor, account)
        if account.status is not AccountStatus.SUSPENDED:
            raise Conflict("suspend the account first; deleting it is the final step")
        await self.fediverse.announce_deletion(account.username)
        log.info("%s deleted %s", actor.username, account.username)
        return self.accounts.mark_deleted(account)

    def set_role(self, actor: Account, username: str, role: Any) -> Account:
        require_admin(actor)
        account = self.accounts.get(username)
        require_power_over(actor, account)
        if account.status is not AccountStatus.ACTIVE:
            raise Conflict(f"{account.username} is {account.status.value}, not active")
        new = role_of(role)
        log.info("%s made %s %s", actor.username, account.username, new.value)
        return self.accounts.set_role(account, new)

    def password_reset(self, actor: Account, username: str) -> dict[str, Any]:
        """A one-time link for the admin to pass on (the node sends no mail)."""
        require_admin(actor)
        account = self.accounts.get(username)
        require_power_over(actor, account)
        if account.status is not AccountStatus.ACTIVE:
            raise Conflict(f"{account.username} is {account.status.value}, not active")
        token, expires = self.accounts.create_password_reset(account, actor)
        log.info("%s made a password-reset link for %s", actor.username, account.username)
        return {
            "username": account.username,
            "url": f"{self.base_url}/reset-password#{token}",
            "expires_at": expires,
        }

    # -- rooms ------------------------------------------------------------------------

    async def end_room(self, actor: Account, room_id: str, reason: Any = None) -> OnAir:
        """This node stops carrying the room, whatever node it started on; it goes on
        wherever else it is carried."""
        require_staff(actor)
        on_air = self.stage.get(room_id)
        if on_air.room.state is RoomState.ENDED:
            raise Conflict("the room has ended already")
        text = reason_of(reason, f"ended by {netloc(self.base_url)}'s moderators")
        log.info("%s ended room %s here: %s", actor.username, room_id, text)
        await self.relay.stop_carrying(on_air, text)
        return on_air

    # -- other servers ----------------------------------------------------------------

    def block_domain(self, actor: Account, body: dict[str, Any]) -> DomainBlock:
        require_admin(actor)
        return self.domains.add(
            body.get("domain"),
            body.get("severity"),
            public_comment=body.get("public_comment"),
            private_note=body.get("private_note"),
            by=actor.id,
        )

    def unblock_domain(self, actor: Account, domain: str) -> None:
        require_admin(actor)
        self.domains.remove(domain)

    def _domain_blocked(self, block: DomainBlock) -> None:
        self._spawn(self._apply_block(block))

    async def _apply_block(self, block: DomainBlock) -> None:
        """A new block takes effect at once: rooms carried from a suspended server stop
        here (only here), its users leave our rooms and its follows are severed; a
        silenced server's speakers leave the stage of the rooms we act as origin for."""
        domain = block.domain
        suspend = block.severity is Severity.SUSPEND
        reason = f"this node blocked {domain}"
        for on_air in list(self.stage.rooms_on_air.values()):
            room, carriage = on_air.room, on_air.carriage
            if room.state is RoomState.ENDED:
                continue
            origin_host = host_of(carriage.origin)
            if suspend and covers(domain, origin_host) and origin_host != host_of(self.base_url):
                await self.relay.stop_carrying(on_air, reason)
                continue
            if suspend and carriage.remote and carriage.upstream:
                if covers(domain, host_of(carriage.upstream)):
                    self.relay.drop_upstream(on_air)
            if not carriage.acting:
                continue
            for name in [n for n in room.members if "@" in n and covers(domain, host_of(n))]:
                if name == room.host:
                    continue
                if suspend:
                    room.expel(name, blocked=True)
                else:
                    room.to_audience(name)
            if suspend:
                self.relay.drop_subscribers(on_air, lambda host: covers(domain, host_of(host)))
        if suspend:
            await self.fediverse.sever(lambda host: covers(domain, host))
