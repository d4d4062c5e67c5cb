"""The JSON API under /api/v1: accounts, sessions, rooms and moderation."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from federation import jsonlimits
from federation.errors import ActivityParseError
from node.errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from node.media.workers import WorkerPool
from node.moderation.listing import RoomListing
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.relaying.service import RelayService
from node.room_actions import action_named
from node.rooms import RoomState, validate_description, validate_title, validate_visibility
from node.schedule import parse_starts_at
from node.store.accounts import AccountDirectory
from node.web.about import node_about
from node.web.auth import (
    clear_session_cookie,
    optional_account,
    require_account,
    require_person,
    set_session_cookie,
)
from node.web.limits import client_address


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object, within the node's body size limit."""
    limit: int = request.app.state.config.node.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
    if not body:
        return {}
    try:
        value = jsonlimits.loads(body)
    except ActivityParseError as exc:
        raise InvalidInput("body", f"not valid JSON: {exc.reason}", status=400) from None
    if not isinstance(value, dict):
        raise InvalidInput("body", "must be a JSON object", status=400)
    return value


def _stage(request: Request) -> Stage:
    stage: Stage = request.app.state.stage
    return stage


def _accounts(request: Request) -> AccountDirectory:
    accounts: AccountDirectory = request.app.state.accounts
    return accounts


def _secure(request: Request) -> bool:
    return bool(request.app.state.config.node.base_url.startswith("https://"))


def account_json(request: Request, account: Any) -> dict[str, Any]:
    host = request.app.state.host
    return {
        "username": account.username,
        "display_name": account.display_name,
        "bio": account.bio,
        "is_admin": account.is_admin,
        "role": account.role.value,
        "handle": f"@{account.username}@{host}",
        "avatar_url": avatar_url(request, account),
    }


def avatar_url(request: Request, account: Any) -> str | None:
    path = getattr(account, "avatar_path", None)
    return f"{request.app.state.config.node.base_url.rstrip('/')}{path}" if path else None


# Accounts and sessions -------------------------------------------------------------------


async def create_account(request: Request) -> Response:
    request.app.state.auth_limiter.check(client_address(request))
    body = await read_json(request)
    registration = request.app.state.settings.current().registration
    if registration == "closed":
        raise Forbidden("registration is closed on this node")
    reason = body.get("reason", "")
    if registration == "approval" and not (isinstance(reason, str) and reason.strip()):
        # As Mastodon asks in approval mode: the moderators read it before approving.
        raise InvalidInput("reason", "say why you want to join: the moderators read it")
    account = _accounts(request).create(
        body.get("username"),
        body.get("password"),
        display_name=body.get("display_name", ""),
        pending=registration == "approval",
        signup_reason=reason if registration == "approval" else "",
    )
    if account.status == "pending":
        return JSONResponse({"username": account.username, "status": "pending"}, 202)
    token = _accounts(request).open_session(
        account, user_agent=request.headers.get("user-agent", "")
    )
    response = JSONResponse({"username": account.username, "token": token}, 201)
    set_session_cookie(response, token, secure=_secure(request))
    return response


async def create_session(request: Request) -> Response:
    request.app.state.auth_limiter.check(client_address(request))
    body = await read_json(request)
    account = _accounts(request).authenticate(body.get("username"), body.get("password"))
    token = _accounts(request).open_session(
        account, user_agent=request.headers.get("user-agent", "")
    )
    response = JSONResponse({"username": account.username, "token": token})
    set_session_cookie(response, token, secure=_secure(request))
    return response


async def list_sessions(request: Request) -> Response:
    account = require_account(request)
    current = request.scope["state"].get("session_id")
    return JSONResponse(
        {
            "sessions": [
                {
                    "id": s.id,
                    "created_at": s.created_at,
                    "last_used_at": s.last_used_at,
                    "user_agent": s.user_agent,
                    "current": s.id == current,
                }
                for s in _accounts(request).sessions(account)
            ]
        }
    )


async def delete_session(request: Request) -> Response:
    account = require_account(request)
    session_id = request.path_params["session_id"]
    if session_id == "current":
        session_id = request.scope["state"]["session_id"]
    _accounts(request).revoke_session(account, session_id)
    response = Response(status_code=204)
    if session_id == request.scope["state"]["session_id"]:
        clear_session_cookie(response)
    return response


async def me(request: Request) -> Response:
    account = require_account(request)
    if request.method == "PATCH":
        account = _accounts(request).update_profile(account, await read_json(request))
    return JSONResponse(account_json(request, account))


async def get_account(request: Request) -> Response:
    account = _accounts(request).get(request.path_params["username"])
    if account.status != "active":
        raise NotFound("no such account")
    return JSONResponse(account_json(request, account))


async def node_config(request: Request) -> Response:
    config = request.app.state.config
    return JSONResponse(
        {
            "registration": request.app.state.settings.current().registration,
            "max_speakers": config.media.max_speakers,
            "ice_servers": request.app.state.browser_ice_servers,
            "node": node_about(request.app.state).to_json(),
        }
    )


# Rooms -----------------------------------------------------------------------------------


def _on_air(request: Request) -> OnAir:
    on_air = _stage(request).get(request.path_params["room_id"])
    return on_air


def _room_response(request: Request, on_air: OnAir, status: int = 200) -> Response:
    return JSONResponse(_stage(request).room_json(on_air.room), status)


def _relay(request: Request) -> RelayService:
    relay: RelayService = request.app.state.relay
    return relay


async def _act(
    request: Request,
    action: str,
    target: str | None = None,
    body: dict[str, Any] | None = None,
    *,
    answer: dict[str, Any] | None = None,
) -> Response:
    """Apply one of the room actions (node/room_actions.py) for the signed-in user or
    verified visitor. In a room carried from another node it goes to the acting origin as
    a signed activity (202; the new state comes back over the relay stream). ``answer``:
    what to answer instead of the room JSON (a reaction answers small)."""
    account = require_person(request)
    on_air = _on_air(request)
    room_action = action_named(action)
    arguments = room_action.parse(body or {})
    applied = await on_air.act(account, room_action, target or account.username, arguments)
    if answer is not None:
        return JSONResponse(answer, 200 if applied else 202)
    return _room_response(request, on_air, 200 if applied else 202)


async def remote_rooms(request: Request) -> Response:
    account = require_account(request)
    request.app.state.fetch_limiter.check(request, account)
    on_air = await _relay(request).open_mirror(account, await read_json(request))
    return _room_response(request, on_air, 201 if on_air.carriage.remote else 200)


def _listed(request: Request) -> list[dict[str, Any]]:
    """Rooms announced to us; a room we relay is listed with our own links (its node
    may be gone, and our users listen here anyway)."""
    relay = _relay(request)
    stage = _stage(request)
    listed = []
    for doc in request.app.state.fediverse.remote_rooms():
        on_air = relay.mirror_of(doc["url"])
        if on_air is not None:
            ours = stage.room_json(on_air.room)
            doc = {**doc, **{k: ours[k] for k in ("whep_url", "listen_url") if k in ours}}
            doc["local_url"] = ours["url"]
        listed.append(doc)
    return listed


async def rooms(request: Request) -> Response:
    stage = _stage(request)
    if request.method == "POST":
        account = require_account(request)
        body = await read_json(request)
        recording = body.get("recording", False)
        if not isinstance(recording, bool):
            raise InvalidInput("recording", "must be true or false")
        room = stage.create_room(
            account,
            validate_title(body.get("title")),
            validate_description(body.get("description")),
            validate_visibility(body.get("visibility")),
            starts_at=parse_starts_at(body.get("starts_at"), now=time.time()),
            recording=recording,
        )
        return JSONResponse(stage.room_json(room), 201)
    state = request.query_params.get("state")
    if state == "scheduled":
        return JSONResponse({"rooms": _upcoming(request)})
    if state not in (None, "live"):
        raise InvalidInput("state", "must be live or scheduled")
    local = [stage.room_json(r) for r in stage.live_public_rooms()]
    listing: RoomListing = request.app.state.listing
    shown = listing.visible(local + _listed(request), optional_account(request))
    return JSONResponse({"rooms": shown})


def _upcoming(request: Request) -> list[dict[str, Any]]:
    """Public rooms not started yet (soonest first), then those of other servers whose
    hosts someone here follows (announced to us by their Event)."""
    stage = _stage(request)
    local = [stage.room_json(stage.get(row["id"]).room) for row in stage.store.scheduled_public()]
    return local + request.app.state.fediverse.upcoming_rooms()


async def room(request: Request) -> Response:
    if request.method == "PATCH":
        body = await read_json(request)
        if "starts_at" in body:
            body["starts_at"] = parse_starts_at(body["starts_at"], now=time.time())
        return await _act(request, "update", body=body)
    return _room_response(request, _on_air(request))


async def start_room(request: Request) -> Response:
    return await _act(request, "start")


async def end_room(request: Request) -> Response:
    return await _act(request, "end")


async def move_room(request: Request) -> Response:
    """Hand the live room to one of the nodes relaying it (FEDERATION.md "Survival")."""
    account = require_account(request)
    on_air = _on_air(request)
    await _relay(request).move(on_air, account, await read_json(request))
    return _room_response(request, on_air)


async def hand(request: Request) -> Response:
    return await _act(request, "raise_hand" if request.method == "POST" else "lower_hand")


async def self_mute(request: Request) -> Response:
    return await _act(request, "mute", body=await read_json(request))


async def invitation(request: Request) -> Response:
    return await _act(request, "answer_invitation", body=await read_json(request))


MEMBER_ACTIONS = {
    "invite": "invite",
    "mute": "mute",
    "hand": "lower_hand",
    "role": "set_role",
    "remove": "remove",
    "block": "block",
}
"""The URL's word for an action on a member -> the action (node/room_actions.py)."""


async def member_action(request: Request) -> Response:
    action = MEMBER_ACTIONS.get(request.path_params["action"])
    if action is None:
        require_person(request)
        raise NotFound(f"no action {request.path_params['action']}")
    body = await read_json(request)
    return await _act(request, action, request.path_params["username"], body)


async def member_hand_delete(request: Request) -> Response:
    return await _act(request, "lower_hand", request.path_params["username"])


async def account_rooms(request: Request) -> Response:
    account = _accounts(request).get(request.path_params["username"])
    viewer = optional_account(request)
    stage = _stage(request)
    result = [
        stage.room_json(r)
        for r in stage.rooms_hosted_by(account.username)
        if r.visibility == "public" or (viewer is not None and viewer.username == r.host)
    ]
    return JSONResponse({"rooms": result})


async def node_stats(request: Request) -> Response:
    stage = _stage(request)
    live = [r for r in stage.rooms_on_air.values() if r.room.state is RoomState.LIVE]
    doc: dict[str, Any] = {
        "rooms_live": len(live),
        "listeners": sum(r.room.listener_count for r in live),
        "peer_connections": stage.peers.count(),
        "webrtc_fanout": stage.peers.fanout_path,
        "http_listeners": sum(r.http_listeners for r in live),
        "relay": _relay(request).stats(),
    }
    if isinstance(stage.listeners, WorkerPool):
        doc["peer_connections"] += stage.listeners.count()
        doc["media_workers"] = stage.listeners.stats()
    return JSONResponse(doc)


routes = [
    Route("/api/v1/config", node_config),
    Route("/api/v1/node/stats", node_stats),
    Route("/api/v1/accounts", create_account, methods=["POST"]),
    Route("/api/v1/accounts/{username}", get_account),
    Route("/api/v1/accounts/{username}/rooms", account_rooms),
    Route("/api/v1/sessions", create_session, methods=["POST"]),
    Route("/api/v1/sessions", list_sessions, methods=["GET"]),
    Route("/api/v1/sessions/{session_id}", delete_session, methods=["DELETE"]),
    Route("/api/v1/me", me, methods=["GET", "PATCH"]),
    Route("/api/v1/rooms", rooms, methods=["GET", "POST"]),
    Route("/api/v1/remote-rooms", remote_rooms, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}", room, methods=["GET", "PATCH"]),
    Route("/api/v1/rooms/{room_id}/start", start_room, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/end", end_room, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/move", move_room, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/hand", hand, methods=["POST", "DELETE"]),
    Route("/api/v1/rooms/{room_id}/mute", self_mute, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/invitation", invitation, methods=["POST"]),
    Route(
        "/api/v1/rooms/{room_id}/members/{username}/hand", member_hand_delete, methods=["DELETE"]
    ),
    Route("/api/v1/rooms/{room_id}/members/{username}/{action}", member_action, methods=["POST"]),
]
