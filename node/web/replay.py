"""A recorded room after its end: the recording (Ogg/Opus, seekable with HTTP ``Range``),
its download, its deletion by the host, and the same audio as an HLS VOD playlist.

    GET    /api/v1/rooms/{id}/recording              {"url", "download_url", "hls_url", ...}
    GET    /api/v1/rooms/{id}/recording.ogg[?download=1]     the file (Range, HEAD)
    DELETE /api/v1/rooms/{id}/recording              the owner or the room's host: gone
    GET    /api/v1/rooms/{id}/recording/index.m3u8   VOD playlist; {token}/init.mp4, s{N}.m4s
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from node.errors import Forbidden, NotFound
from node.media.replay import ReplayCache
from node.onair.recording import Recordings
from node.onair.stage import Stage
from node.rooms import Room, RoomState
from node.store.recordings import RecordingRow
from node.web.api import _on_air
from node.web.auth import require_account
from node.web.hls import _bytes, _playlist_response, parse_media_name

OGG = "audio/ogg"


def recording_urls(base_url: str, room_id: str) -> dict[str, str]:
    api = f"{base_url}/api/v1/rooms/{room_id}"
    return {
        "replay_url": f"{base_url}/rooms/{room_id}/replay",
        "recording_url": f"{api}/recording.ogg",
        "download_url": f"{api}/recording.ogg?download=1",
        "replay_hls_url": f"{api}/recording/index.m3u8",
    }


def _recordings(request: Request) -> Recordings:
    recordings: Recordings = request.app.state.recordings
    return recordings


def _found(request: Request) -> tuple[Room, RecordingRow]:
    room = _on_air(request).room
    row = _recordings(request).store.get(room.id)
    if row is None or room.state is not RoomState.ENDED:
        raise NotFound("this room has no recording (yet)")
    return room, row


async def recording(request: Request) -> Response:
    room, row = _found(request)
    if request.method == "DELETE":
        account = require_account(request)
        if account.username not in (room.owner, room.host):
            raise Forbidden("only the room's host may delete its recording")
        deleted = _recordings(request).delete(room.id)
        if deleted is not None:
            await request.app.state.fediverse.replays.deleted(room.owner, deleted)
        return Response(status_code=204)
    stage: Stage = request.app.state.stage
    doc: dict[str, Any] = {
        **recording_urls(stage.base_url, room.id),
        "bytes": row.bytes,
        "duration": row.duration,
        "media_type": OGG,
        "created_at": row.created_at,
        "title": room.title,
    }
    return JSONResponse(doc)


async def recording_file(request: Request) -> Response:
    room, row = _found(request)
    path = _recordings(request).path(row)
    if not path.exists():
        raise NotFound("the recording's file is gone")
    headers = {"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"}
    download = request.query_params.get("download") is not None
    name = f"{room.title[:60] or 'room'}-{room.id}.ogg".replace('"', "'")
    # Starlette answers Range (206, 416) and HEAD itself.
    return FileResponse(
        path,
        media_type=OGG,
        headers=headers,
        filename=name if download else None,
        content_disposition_type="attachment" if download else "inline",
    )


def _replay(request: Request) -> Any:
    room, row = _found(request)
    path = _recordings(request).path(row)
    cache: ReplayCache = request.app.state.replay_cache
    return cache.get(path, room.started_at or row.created_at)


async def replay_playlist(request: Request) -> Response:
    replay = _replay(request)
    return _playlist_response(
        request, replay.playlist(), f'"{replay.token}"', "public, max-age=3600"
    )


async def replay_media(request: Request) -> Response:
    replay = _replay(request)
    if request.path_params["token"] != replay.token:
        raise NotFound("no such replay stream")
    name = request.path_params["name"]
    if name == "init.mp4":
        return _bytes(request, replay.init, f'"{replay.token}-init"')
    parsed = parse_media_name(name)
    data = None
    if parsed is not None and parsed[1] is None:
        data = replay.segment(parsed[0])
    if data is None:
        raise NotFound("no such segment")
    return _bytes(request, data, f'"{replay.token}-{name}"')


routes = [
    Route("/api/v1/rooms/{room_id}/recording", recording, methods=["GET", "DELETE"]),
    Route("/api/v1/rooms/{room_id}/recording.ogg", recording_file, methods=["GET", "HEAD"]),
    Route("/api/v1/rooms/{room_id}/recording/index.m3u8", replay_playlist, methods=["GET"]),
    Route(
        "/api/v1/rooms/{room_id}/recording/{token}/{name}", replay_media, methods=["GET", "HEAD"]
    ),
]
