"""Avatars (node.avatars; docs/API.md "Avatars").

- ``PUT /api/v1/me/avatar`` with the image as the body (``Content-Type: image/png``,
  ``image/jpeg``, ``image/gif`` or ``image/webp``, at most 8 MiB) -> 200 the account,
  with its new ``avatar_url``; ``DELETE /api/v1/me/avatar`` -> 200 the account without.
- ``GET /avatars/{name}`` -> the PNG this node made of an upload (cached for good: a new
  upload has a new name).
- ``GET /api/v1/remote-avatar?actor=<actor id>`` -> a known remote actor's icon, fetched
  and remade by this node (browsers never ask the remote server).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from node.avatars import Avatars
from node.errors import InvalidInput, PayloadTooLarge
from node.images import MAX_UPLOAD_BYTES, MEDIA_TYPES, OUTPUT_TYPE
from node.web.api import account_json
from node.web.auth import optional_account, require_account

# The bytes are ours (node.images), but a browser opening one directly must never run or
# sniff anything.
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def _avatars(request: Request) -> Avatars:
    avatars: Avatars = request.app.state.avatars
    return avatars


async def _read_image(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise InvalidInput("avatar", "send a PNG, JPEG, GIF or WebP image as the body", status=415)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"an avatar is at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"an avatar is at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    if not body:
        raise InvalidInput("avatar", "the image is empty")
    return bytes(body)


async def my_avatar(request: Request) -> Response:
    account = require_account(request)
    if request.method == "DELETE":
        return JSONResponse(account_json(request, _avatars(request).remove(account)))
    data = await _read_image(request)
    updated = await _avatars(request).upload(account, data)
    return JSONResponse(account_json(request, updated))


async def local_avatar(request: Request) -> Response:
    path = _avatars(request).local_file(request.path_params["name"])
    return FileResponse(
        path,
        media_type=OUTPUT_TYPE,
        headers={**IMAGE_HEADERS, "Cache-Control": "public, max-age=31536000, immutable"},
    )


async def remote_avatar(request: Request) -> Response:
    actor = request.query_params.get("actor", "")
    if not actor.startswith(("http://", "https://")) or len(actor) > 2048:
        raise InvalidInput("actor", "must be the id (URL) of an actor")
    limiter = request.app.state.fetch_limiter
    path = await _avatars(request).remote_icon(
        actor, before_fetch=lambda: limiter.check(request, optional_account(request))
    )
    return FileResponse(
        path,
        media_type=OUTPUT_TYPE,
        headers={**IMAGE_HEADERS, "Cache-Control": "public, max-age=3600"},
    )


routes = [
    Route("/api/v1/me/avatar", my_avatar, methods=["PUT", "DELETE"]),
    Route("/avatars/{name}", local_avatar, methods=["GET", "HEAD"]),
    Route("/api/v1/remote-avatar", remote_avatar, methods=["GET", "HEAD"]),
]
