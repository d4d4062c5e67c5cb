"""Search people and rooms: ``GET /api/v1/search?q=TEXT`` (anyone; 1-200 characters).

Answers ``{"query", "accounts": [person...], "rooms": [room...], "lookup": null | {...}}``:

- ``accounts``: local accounts whose username or display name contains the text; when the
  text is a handle (``alice@host``, ``@alice@host``) or an actor URL, that person first:
  from this node's accounts if the host is ours (no network), else looked up by WebFinger
  and their actor (signed as the instance actor, the address policy and blocked domains
  apply, rate-limited per account and client address like every look-up made for a user:
  ``[federation] fetch_rate_per_minute``). A person is ``{"username",
  "display_name", "handle", "actor", "local", "url", "bio", "following"}``: ``handle`` is
  ``user@host``, ``url`` the profile page (ours for local accounts, theirs otherwise),
  ``following`` the viewer's follow state (``accepted``, ``pending``) or null.
- ``rooms``: public rooms of this node whose title contains the text (live first, then
  scheduled, then ended, newest first), then live rooms of followed people elsewhere.
- ``lookup``: null, or ``{"handle", "error", "detail"}`` when the remote look-up failed
  (unknown account, refused address, unreachable server): the local results still come.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from federation.actors import RemoteActor, parse_acct
from federation.errors import ActivityParseError
from node.accounts import Account
from node.errors import Conflict, InvalidInput, NotFound, ParleyError
from node.fediverse.local_follows import LocalFollows
from node.fediverse.service import Fediverse
from node.onair.stage import Stage
from node.store.accounts import AccountDirectory
from node.web.auth import optional_account

MAX_QUERY = 200
MAX_RESULTS = 20


def looks_like_handle(text: str) -> bool:
    if text.startswith(("http://", "https://")):
        return True
    try:
        parse_acct(text)
    except ActivityParseError:
        return False
    return True


class Search:
    def __init__(self, request: Request, viewer: Account | None) -> None:
        state = request.app.state
        self.request = request
        self.viewer = viewer
        self.accounts: AccountDirectory = state.accounts
        self.stage: Stage = state.stage
        self.fediverse: Fediverse = state.fediverse
        self.local: LocalFollows = state.local_follows
        self.following: dict[str, str] = {}
        if viewer is not None:
            for entry in self.fediverse.following_of(viewer.username):
                self.following[entry["actor"]] = entry["state"]

    def local_person(self, account: Account) -> dict[str, Any]:
        actor = self.local.actor_id(account.username)
        return {
            "username": account.username,
            "display_name": account.display_name,
            "handle": self.local.handle(account.username),
            "actor": actor,
            "local": True,
            "url": f"{self.local.base_url}/@{account.username}",
            "bio": account.bio,
            "following": self.following.get(actor),
        }

    def remote_person(self, actor: RemoteActor) -> dict[str, Any]:
        return {
            "username": actor.preferred_username,
            "display_name": actor.name or actor.preferred_username,
            "handle": self.fediverse.handle_of_actor(actor.id, actor.preferred_username),
            "actor": actor.id,
            "local": False,
            "url": actor.url or actor.id,
            "bio": "",
            "following": self.following.get(actor.id),
        }

    async def by_handle(self, text: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the person a handle names, the look-up error) — one of them is None."""
        try:
            username = self.local.username_of(text)
            if username is not None:
                return self.local_person(self.accounts.get(username)), None
            self.request.app.state.fetch_limiter.check(self.request, self.viewer)
            actor = await self.fediverse.resolve_handle(text)
        except ParleyError as exc:
            return None, {"handle": text.lstrip("@"), "error": exc.code, "detail": exc.detail}
        return self.remote_person(actor), None

    def rooms(self, text: str) -> list[dict[str, Any]]:
        found = []
        for room_id in self.stage.store.public_ids_titled(text, MAX_RESULTS):
            try:
                found.append(self.stage.room_json(self.stage.get(room_id).room))
            except (NotFound, Conflict):
                continue  # gone meanwhile, or reconnecting to a node that carries it on
        needle = text.lower()
        found += [r for r in self.fediverse.remote_rooms() if needle in str(r["title"]).lower()]
        return found


async def search(request: Request) -> Response:
    text = request.query_params.get("q", "").strip()
    if not text:
        raise InvalidInput("q", "enter a name, a handle like alice@example.org or a title")
    if len(text) > MAX_QUERY:
        raise InvalidInput("q", f"at most {MAX_QUERY} characters")
    finder = Search(request, optional_account(request))
    people: list[dict[str, Any]] = []
    lookup = None
    if looks_like_handle(text):
        person, lookup = await finder.by_handle(text)
        if person is not None:
            people.append(person)
    seen = {p["actor"] for p in people}
    for account in finder.accounts.search(text, MAX_RESULTS):
        person = finder.local_person(account)
        if person["actor"] not in seen:
            people.append(person)
    return JSONResponse(
        {"query": text, "accounts": people, "rooms": finder.rooms(text), "lookup": lookup}
    )


routes = [Route("/api/v1/search", search)]
