"""Joining as your fediverse self (node.visitors; docs/API.md "Visitors").

- ``POST /api/v1/visitor/codes {"handle", "room"}`` -> 202 ``{"request", "handle",
  "display_name", "expires_at"}``: a one-time code went to the handle as a direct message.
- ``POST /api/v1/visitor/sessions {"request", "code"}`` -> 201 the visitor, with the
  ``parley_visitor`` cookie (and ``token`` for API clients: ``Authorization: Bearer``).
- ``GET /api/v1/visitor`` -> the visitor asking; ``DELETE /api/v1/visitor[?all=true]`` ->
  204 signs out (this session, or every session of the handle).
- ``POST /api/v1/visitor/requests/{id}/report`` -> 204: "it was not me".
- ``GET /api/v1/visitors/{handle}/avatar`` -> the avatar this node keeps (PNG).
- ``GET /api/v1/admin/visitor-reports``, ``DELETE /api/v1/admin/visitors/{handle}``
  (administrators): reports, and revoking a handle's sessions.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from node.fediverse.visitors import Visitors
from node.onair.stage import Stage
from node.web.api import read_json
from node.web.auth import (
    clear_visitor_cookie,
    optional_account,
    optional_visitor,
    require_account,
    set_visitor_cookie,
)
from node.web.limits import client_address

AVATAR_HEADERS = {
    "Cache-Control": "public, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}


def _visitors(request: Request) -> Visitors:
    visitors: Visitors = request.app.state.visitors
    return visitors


async def ask_code(request: Request) -> Response:
    account = optional_account(request)
    if account is not None:
        raise Conflict(f"you are signed in as {account.username}")
    body = await read_json(request)
    room_id = body.get("room")
    if not isinstance(room_id, str) or not room_id:
        raise InvalidInput("room", "must be the id of the room to join")
    stage: Stage = request.app.state.stage
    room = stage.get(room_id).room
    # A look-up on someone's behalf, like a follow: the same per-address window.
    request.app.state.fetch_limiter.check(request, None)
    sent = await _visitors(request).ask_code(body.get("handle"), room, client_address(request))
    return JSONResponse(sent.to_json(), 202)


async def open_session(request: Request) -> Response:
    # Entering a code is a log-in: the same per-address window.
    request.app.state.auth_limiter.check(client_address(request))
    body = await read_json(request)
    visitors = _visitors(request)
    visitor, token = visitors.redeem(
        body.get("request"), body.get("code"), user_agent=request.headers.get("user-agent", "")
    )
    response = JSONResponse({**visitor.to_json(), "token": token}, 201)
    set_visitor_cookie(
        response,
        token,
        secure=request.app.state.config.node.base_url.startswith("https://"),
        max_age=visitors.settings.session_days * 86400,
    )
    return response


async def me(request: Request) -> Response:
    visitor = optional_visitor(request)
    if request.method == "DELETE":
        response = Response(status_code=204)
        clear_visitor_cookie(response)
        if visitor is not None:
            store = _visitors(request).store
            if request.query_params.get("all") == "true":
                store.revoke_all(visitor.handle)
            elif visitor.session_id is not None:
                store.revoke(visitor.session_id)
        return response
    if visitor is None:
        raise Unauthorized("not a verified visitor")
    return JSONResponse(visitor.to_json())


async def report(request: Request) -> Response:
    request.app.state.auth_limiter.check(client_address(request))
    _visitors(request).report(request.path_params["request_id"])
    return Response(status_code=204)


async def avatar(request: Request) -> Response:
    image, media_type = _visitors(request).store.avatar(request.path_params["handle"])
    return Response(image, media_type=media_type, headers=AVATAR_HEADERS)


def _admin(request: Request) -> Visitors:
    if not require_account(request).is_admin:
        raise Forbidden("only an administrator may do this")
    return _visitors(request)


async def reports(request: Request) -> Response:
    return JSONResponse({"reports": _admin(request).store.reports()})


async def revoke_handle(request: Request) -> Response:
    revoked = _admin(request).store.revoke_all(request.path_params["handle"])
    return JSONResponse({"revoked": revoked})


routes = [
    Route("/api/v1/visitor/codes", ask_code, methods=["POST"]),
    Route("/api/v1/visitor/sessions", open_session, methods=["POST"]),
    Route("/api/v1/visitor", me, methods=["GET", "DELETE"]),
    Route("/api/v1/visitor/requests/{request_id}/report", report, methods=["POST"]),
    Route("/api/v1/visitors/{handle}/avatar", avatar, methods=["GET"]),
    Route("/api/v1/admin/visitor-reports", reports, methods=["GET"]),
    Route("/api/v1/admin/visitors/{handle}", revoke_handle, methods=["DELETE"]),
]
