"""Follows between two accounts of this node, and handles that name this node.

A handle on this node's own host (``bob@rooms.example``, ``@bob@rooms.example``, the actor
URL or the profile URL) resolves here, from the accounts table: never by a WebFinger
request to ourselves, which on a loopback or private address the address policy refuses
(and which would be a wasted round trip anywhere). Following a local account needs no
activity either: both sides share this database, so the follow is stored accepted on both
sides at once (``fed_following`` of the follower, ``fed_followers`` of the followed), the
same rows a remote follow ends up in, so lists and counts need no special case.

The outbox never delivers to local followers over the network (``is_local_actor``): a
node posting to its own inbox would list its own rooms again as "remote" ones.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from federation.actors import ActorUrls, parse_acct
from federation.errors import ActivityParseError
from federation.ports import FollowState, FollowStore
from node.accounts import Account
from node.errors import InvalidInput, NotFound
from node.store.accounts import AccountDirectory


class LocalFollows:
    def __init__(self, follows: FollowStore, accounts: AccountDirectory, base_url: str) -> None:
        self._follows = follows
        self._accounts = accounts
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc.lower()

    def actor_id(self, username: str) -> str:
        return ActorUrls.for_user(self.base_url, username).id

    def handle(self, username: str) -> str:
        return f"{username}@{self.host}"

    def is_local_actor(self, actor_id: str) -> bool:
        return self._username_in_url(actor_id) is not None

    def _username_in_url(self, url: str) -> str | None:
        """The username in one of our actor or profile URLs, else None."""
        if not url.lower().startswith(self.base_url.lower() + "/"):
            return None
        path = urlsplit(url).path
        for prefix in ("/users/", "/@"):
            if path.startswith(prefix):
                name = unquote(path[len(prefix) :]).strip("/")
                return name if name and "/" not in name else None
        return None

    def username_of(self, handle: Any) -> str | None:
        """The local account a handle or URL names, or None when it names another server.

        Raises NotFound for a handle on this host without an active account: there is
        nowhere else to look it up.
        """
        if not isinstance(handle, str):
            return None
        text = handle.strip()
        if text.startswith(("http://", "https://")):
            name = self._username_in_url(text)
        else:
            try:
                user, host = parse_acct(text)
            except ActivityParseError:
                return None
            name = user if host == self.host else None
        if name is None:
            return None
        account = self._active(name)
        if account is None:
            raise NotFound(f"no account {text.lstrip('@')} on this node")
        return account.username

    def _active(self, username: str) -> Account | None:
        try:
            account = self._accounts.get(username)
        except NotFound:
            return None
        return account if account.status == "active" else None

    def entry(self, username: str, state: str) -> dict[str, Any]:
        return {"handle": self.handle(username), "actor": self.actor_id(username), "state": state}

    async def follow(self, follower: Account, username: str) -> dict[str, Any]:
        if username == follower.username:
            raise InvalidInput("handle", "you cannot follow yourself")
        local, remote = self.actor_id(follower.username), self.actor_id(username)
        follow_id = f"{local}/follows/{uuid.uuid4()}"
        await self._follows.add_following(local, remote, follow_id, FollowState.ACCEPTED)
        await self._follows.add_follower(remote, local, follow_id, FollowState.ACCEPTED)
        return self.entry(username, FollowState.ACCEPTED.value)

    async def unfollow(self, follower: Account, username: str) -> dict[str, Any]:
        local, remote = self.actor_id(follower.username), self.actor_id(username)
        removed = await self._follows.remove_following(local, remote)
        await self._follows.remove_follower(remote, local)
        if not removed:
            raise NotFound(f"you do not follow {self.handle(username)}")
        return self.entry(username, "removed")
