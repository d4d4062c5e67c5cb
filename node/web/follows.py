"""Follows across nodes for the web client: follow by handle, unfollow, and the lists.

- ``POST /api/v1/follows {"handle"}``: ``alice@host``, ``@alice@host`` or an actor URL;
  WebFinger and the actor are fetched (signed as the instance actor), a Follow signed by
  the user is queued. 201 ``{"handle", "actor", "state"}``.
- ``GET /api/v1/follows``: who I follow, ``state`` pending or accepted.
- ``DELETE /api/v1/follows?handle=...``: Undo{Follow}.
- ``GET /api/v1/accounts/{username}/followers`` and ``/following``.
- ``GET /api/v1/remote-join?handle=...&room=ID``: "Join from your server" on a room page.
  Browsers cannot WebFinger another server themselves (CORS), so this node looks the
  handle up and answers where that person's own node shows the room.

A handle on this node's own host is resolved from its own accounts, with no request to
the network (node.fediverse.local_follows): following ``bob@<this host>`` works on a
loopback node, and costs no look-up (no ``fetch_rate_per_minute``).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.errors import InvalidInput, NotFound
from node.fediverse.local_follows import LocalFollows
from node.fediverse.service import Fediverse
from node.web.api import read_json
from node.web.auth import optional_account, require_account


def _fediverse(request: Request) -> Fediverse:
    fediverse: Fediverse = request.app.state.fediverse
    return fediverse


def _local(request: Request) -> LocalFollows:
    local: LocalFollows = request.app.state.local_follows
    return local


async def follows(request: Request) -> Response:
    account = require_account(request)
    fediverse = _fediverse(request)
    local = _local(request)
    if request.method == "POST":
        handle = (await read_json(request)).get("handle")
        if (username := local.username_of(handle)) is not None:
            return JSONResponse(await local.follow(account, username), 201)
        request.app.state.fetch_limiter.check(request, account)
        return JSONResponse(await fediverse.follow(account, handle), 201)
    if request.method == "DELETE":
        handle = request.query_params.get("handle")
        if not handle:
            raise InvalidInput("handle", "missing (?handle=alice@example.org)", status=400)
        if (username := local.username_of(handle)) is not None:
            return JSONResponse(await local.unfollow(account, username))
        return JSONResponse(await fediverse.unfollow(account, handle))
    return JSONResponse({"following": fediverse.following_of(account.username)})


def _local_username(request: Request) -> str:
    username = request.path_params["username"]
    account = request.app.state.accounts.get(username)
    if account.status != "active":
        raise NotFound("no such account")
    return str(account.username)


async def account_followers(request: Request) -> Response:
    username = _local_username(request)
    return JSONResponse({"followers": _fediverse(request).followers_of(username)})


async def account_following(request: Request) -> Response:
    username = _local_username(request)
    return JSONResponse({"following": _fediverse(request).following_of(username)})


async def remote_join(request: Request) -> Response:
    handle = request.query_params.get("handle")
    room_id = request.query_params.get("room")
    if not handle or not handle.strip():
        raise InvalidInput("handle", "missing (?handle=bob@example.org)")
    if not room_id:
        raise InvalidInput("room", "missing (?room=<room id>)")
    # Anyone may ask, and each answer costs outgoing fetches: limit it per client.
    request.app.state.fetch_limiter.check(request, optional_account(request))
    doc = request.app.state.stage.room_json(request.app.state.stage.get(room_id).room)
    if (username := _local(request).username_of(handle)) is not None:
        return JSONResponse({"redirect": doc["url"], "handle": _local(request).handle(username)})
    # A mirror shown here is joined at its origin: the home node relays from there.
    room_url = str(doc.get("origin") or doc["url"])
    actor = await _fediverse(request).resolve_handle(handle.strip())
    parts = urlsplit(actor.id)
    home = f"{parts.scheme}://{parts.netloc}"
    who = _fediverse(request).handle_of_actor(actor.id, actor.preferred_username)
    if parts.netloc.lower() == request.app.state.host.lower():
        return JSONResponse({"redirect": doc["url"], "handle": who})
    # The home node is assumed to be a Parley node: /rooms/remote is its client's view of
    # another node's room (static/room.js opens its mirror there).
    redirect = f"{home}/rooms/remote?origin={quote(room_url, safe='')}"
    return JSONResponse({"redirect": redirect, "handle": who})


routes = [
    Route("/api/v1/remote-join", remote_join),
    Route("/api/v1/follows", follows, methods=["GET", "POST", "DELETE"]),
    Route("/api/v1/accounts/{username}/followers", account_followers),
    Route("/api/v1/accounts/{username}/following", account_following),
]
