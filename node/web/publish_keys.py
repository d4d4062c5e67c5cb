"""Publish keys for encoders (OBS): create, list, revoke; and who a WHIP request is.

- ``POST /api/v1/publish-keys {"room"?, "label"?}`` -> 201 ``{"id", "key", "room",
  "label", "created_at", "last_used_at"}``: ``key`` is shown this once.
- ``GET /api/v1/publish-keys`` -> ``{"keys": [...]}`` (without the keys themselves).
- ``DELETE /api/v1/publish-keys/{id}`` -> 204.

Managing keys needs a session (a publish key cannot make more of itself).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.accounts import Account
from node.publish_keys import is_publish_key
from node.store.publish_keys import PublishKeys
from node.web.api import read_json
from node.web.auth import optional_account, require_account


def _keys(request: Request) -> PublishKeys:
    keys: PublishKeys = request.app.state.publish_keys
    return keys


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def publisher(request: Request, room_id: str, *, required: bool = True) -> Account | None:
    """Who publishes (WHIP): a publish key valid for ``room_id``, else the session."""
    token = _bearer(request)
    if token is not None and is_publish_key(token):
        return _keys(request).authenticate(token, room_id)
    return require_account(request) if required else optional_account(request)


async def publish_keys(request: Request) -> Response:
    account = require_account(request)
    if request.method == "POST":
        body = await read_json(request)
        room_id = body.get("room")
        if room_id is not None and isinstance(room_id, str):
            request.app.state.stage.get(room_id)  # 404 for a room that does not exist
        key, secret = _keys(request).create(account, room_id=room_id, label=body.get("label", ""))
        return JSONResponse({**key.to_json(), "key": secret}, 201)
    return JSONResponse({"keys": [k.to_json() for k in _keys(request).list(account)]})


async def revoke_publish_key(request: Request) -> Response:
    account = require_account(request)
    _keys(request).revoke(account, request.path_params["key_id"])
    return Response(status_code=204)


routes = [
    Route("/api/v1/publish-keys", publish_keys, methods=["GET", "POST"]),
    Route("/api/v1/publish-keys/{key_id}", revoke_publish_key, methods=["DELETE"]),
]
