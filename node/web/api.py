"""The JSON API under /api/v1: accounts, sessions, rooms and moderation."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.accounts import AccountDirectory
from node.errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from node.media.workers import WorkerPool
from node.relay import RelayService
from node.rooms import Role, RoomState, validate_description, validate_title, validate_visibility
from node.stage import OnAir, Stage
from node.web.auth import (
    clear_session_cookie,
    optional_account,
    require_account,
    set_session_cookie,
)


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
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("body", f"not valid JSON: {exc}", status=400) from None
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


def _client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def account_json(request: Request, account: Any) -> dict[str, Any]:
    host = request.app.state.host
    return {
        "username": account.username,
        "display_name": account.display_name,
        "bio": account.bio,
        "is_admin": account.is_admin,
        "handle": f"@{account.username}@{host}",
    }


# Accounts and sessions -------------------------------------------------------------------


async def create_account(request: Request) -> Response:
    request.app.state.auth_limiter.check(_client_key(request))
    body = await read_json(request)
    registration = request.app.state.config.accounts.registration
    if registration == "closed":
        raise Forbidden("registration is closed on this node")
    account = _accounts(request).create(
        body.get("username"),
        body.get("password"),
        display_name=body.get("display_name", ""),
        pending=registration == "approval",
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
    request.app.state.auth_limiter.check(_client_key(request))
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
            "registration": config.accounts.registration,
            "max_speakers": config.media.max_speakers,
            "ice_servers": request.app.state.browser_ice_servers,
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


async def _forwarded(
    request: Request, on_air: OnAir, account: Any, kind: str, **extra: Any
) -> Response | None:
    """In a room carried from another node, our user's action goes to the acting origin
    as a signed activity; the new state comes back over the relay stream."""
    if not on_air.relaying:
        return None
    await _relay(request).forward(on_air, account, kind, extra)
    return JSONResponse(_stage(request).room_json(on_air.room), 202)


def _not_relayed(on_air: OnAir) -> None:
    if on_air.relaying:
        raise Forbidden("this room is carried from another node; do this on its origin")


async def remote_rooms(request: Request) -> Response:
    account = require_account(request)
    on_air = await _relay(request).open_mirror(account, await read_json(request))
    return _room_response(request, on_air, 201 if on_air.mirror is not None else 200)


async def rooms(request: Request) -> Response:
    stage = _stage(request)
    if request.method == "POST":
        account = require_account(request)
        body = await read_json(request)
        room = stage.create_room(
            account,
            validate_title(body.get("title")),
            validate_description(body.get("description")),
            validate_visibility(body.get("visibility")),
        )
        return JSONResponse(stage.room_json(room), 201)
    local = [stage.room_json(r) for r in stage.live_public_rooms()]
    return JSONResponse({"rooms": local + request.app.state.fediverse.remote_rooms()})


async def room(request: Request) -> Response:
    on_air = _on_air(request)
    if request.method == "PATCH":
        account = require_account(request)
        _not_relayed(on_air)
        on_air.room.update(account.username, await read_json(request))
    return _room_response(request, on_air)


async def start_room(request: Request) -> Response:
    account = require_account(request)
    on_air = _on_air(request)
    _not_relayed(on_air)
    on_air.room.start(account.username)
    on_air.ensure_mixer()
    return _room_response(request, on_air)


async def end_room(request: Request) -> Response:
    account = require_account(request)
    on_air = _on_air(request)
    _not_relayed(on_air)
    on_air.room.end(account.username)
    return _room_response(request, on_air)


async def move_room(request: Request) -> Response:
    """Hand the live room to one of the nodes relaying it (FEDERATION.md "Survival")."""
    account = require_account(request)
    on_air = _on_air(request)
    await _relay(request).move(on_air, account, await read_json(request))
    return _room_response(request, on_air)


async def hand(request: Request) -> Response:
    account = require_account(request)
    on_air = _on_air(request)
    kind = "parley:RaiseHand" if request.method == "POST" else "parley:LowerHand"
    if (forwarded := await _forwarded(request, on_air, account, kind)) is not None:
        return forwarded
    if request.method == "POST":
        on_air.room.raise_hand(account.username)
    else:
        on_air.room.lower_hand(account.username, account.username)
    return _room_response(request, on_air)


async def self_mute(request: Request) -> Response:
    account = require_account(request)
    on_air = _on_air(request)
    muted = _bool(await read_json(request), "muted")
    forwarded = await _forwarded(
        request, on_air, account, "parley:Mute", **{"parley:muted": muted}
    )
    if forwarded is not None:
        return forwarded
    on_air.room.set_muted(account.username, account.username, muted)
    return _room_response(request, on_air)


async def invitation(request: Request) -> Response:
    account = require_account(request)
    on_air = _on_air(request)
    accept = _bool(await read_json(request), "accept")
    forwarded = await _forwarded(
        request, on_air, account, "parley:AnswerInvitation", **{"parley:accept": accept}
    )
    if forwarded is not None:
        return forwarded
    on_air.room.answer_invitation(account.username, accept)
    return _room_response(request, on_air)


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise InvalidInput(key, "must be true or false")
    return value


async def member_action(request: Request) -> Response:
    account = require_account(request)
    on_air = _on_air(request)
    target = request.path_params["username"]
    action = request.path_params["action"]
    room = on_air.room
    body = await read_json(request)
    if on_air.relaying:
        return await _forward_member_action(request, on_air, account, target, action, body)
    if action == "invite":
        room.invite(account.username, target)
    elif action == "mute":
        room.set_muted(account.username, target, _bool(body, "muted"))
    elif action == "hand":
        room.lower_hand(account.username, target)
    elif action == "role":
        try:
            role = Role(str(body.get("role")))
        except ValueError:
            raise InvalidInput("role", "must be cohost, speaker or listener") from None
        room.set_role(account.username, target, role)
    elif action == "remove":
        room.remove(account.username, target)
    elif action == "block":
        room.remove(account.username, target, block=True)
    else:
        raise NotFound(f"no action {action}")
    return _room_response(request, on_air)


async def _forward_member_action(
    request: Request, on_air: OnAir, account: Any, target: str, action: str, body: dict[str, Any]
) -> Response:
    member: dict[str, Any] = {"parley:member": _relay(request).member_handle(target)}
    if action == "invite":
        kind, extra = "parley:Invite", member
    elif action == "mute":
        kind, extra = "parley:Mute", {**member, "parley:muted": _bool(body, "muted")}
    elif action == "hand":
        kind, extra = "parley:LowerHand", member
    elif action == "role":
        kind, extra = "parley:SetRole", {**member, "parley:role": str(body.get("role"))}
    else:
        raise Forbidden(f"{action} in a carried room is done on its origin")
    forwarded = await _forwarded(request, on_air, account, kind, **extra)
    assert forwarded is not None
    return forwarded


async def member_hand_delete(request: Request) -> Response:
    request.path_params["action"] = "hand"
    return await member_action(request)


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
