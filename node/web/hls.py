"""A room's Low-Latency HLS over HTTP, built to be fanned out by caches and CDNs.

    GET {hls_url}                                  the media playlist (index.m3u8)
    GET {hls_url}?_HLS_msn=M&_HLS_part=P           blocking reload (RFC 8216bis 6.2.5.2)
    GET …/hls/{token}/init.mp4 | s{M}.m4s | p{M}.{P}.m4s    init, segments, parts

Cache-friendly by construction: the same URL gives every listener the same bytes (no
cookies read, no per-listener state), parts, segments and the init segment are immutable
(``public, max-age=…, immutable``; the token in their path changes whenever the stream
restarts), playlists live one second (a blocking answer a few: it holds at least what was
asked for), everything has an ETag and answers ``If-None-Match``, parts and segments
answer ``Range``, and CORS lets a page on another origin (the node's, with the HLS on a
CDN) read it. The node's one HLS output per room (node.media.hls.HlsOutputs) starts on a
room's first HLS request: :func:`_output` is the one place a room meets it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.errors import Conflict, InvalidInput, NotFound, ParleyError, Unavailable
from node.media.hls import (
    HlsOutputs,
    HlsStream,
    PlaylistRequest,
    TooFarAhead,
    parse_media_name,
    render_playlist,
)
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.rooms import RoomState

__all__ = ["ByteRange", "hls_url", "parse_byte_range", "parse_playlist_query", "routes"]

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "audio/mp4"
PART_WAIT_S = 3.0
"""How long a request for the preload-hinted part waits for it (it is due in 200 ms)."""
IMMUTABLE = "public, max-age=3600, immutable"
LIVE_PLAYLIST = "public, max-age=1"
BLOCKING_PLAYLIST = "public, max-age=6"
ENDED_PLAYLIST = "public, max-age=60"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, Age, Date",
}
_MAX_NUMBER = 2**53


def hls_url(base_url: str, room_id: str) -> str:
    return f"{base_url}/api/v1/rooms/{room_id}/hls/index.m3u8"


# Parsers of outside input ----------------------------------------------------------------


def _number(name: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 16:
        raise InvalidInput(name, "must be a non-negative decimal integer", status=400)
    value = int(text)
    if value > _MAX_NUMBER:
        raise InvalidInput(name, "is too large", status=400)
    return value


def parse_playlist_query(params: Any) -> PlaylistRequest | None:
    """``_HLS_msn`` / ``_HLS_part`` of a playlist request, or None for a plain one.

    ``params`` is a multi-dict (Starlette's ``QueryParams``): each directive may appear
    once. Other parameters (``_HLS_skip``, cache busters) are ignored: we offer no delta
    updates, so the full playlist is the right answer to them.
    """
    values: dict[str, str] = {}
    for name in ("_HLS_msn", "_HLS_part"):
        given = params.getlist(name)
        if len(given) > 1:
            raise InvalidInput(name, "given more than once", status=400)
        if given:
            values[name] = given[0]
    if "_HLS_msn" not in values:
        if "_HLS_part" in values:
            raise InvalidInput("_HLS_part", "needs _HLS_msn", status=400)
        return None
    msn = _number("_HLS_msn", values["_HLS_msn"])
    part = _number("_HLS_part", values["_HLS_part"]) if "_HLS_part" in values else None
    return PlaylistRequest(msn, part)


ByteRange = tuple[int, int]
"""First and last byte, inclusive."""


class Unsatisfiable(Exception):
    pass


def parse_byte_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range a ``Range`` header asks of ``size`` bytes (RFC 9110 14.1.2).

    None means "send the whole thing": no header, a unit other than bytes, a malformed
    header or several ranges (a server may ignore Range; a cache fills itself with the
    whole immutable resource anyway). Raises :class:`Unsatisfiable` for a well-formed
    range wholly past the end (416).
    """
    if header is None or len(header) > 200:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not all(t == "" or (t.isascii() and t.isdigit()) for t in (first_text, last_text)):
        return None
    if first_text == "":
        if last_text == "":
            return None
        length = int(last_text)
        if length == 0:
            raise Unsatisfiable
        return max(size - length, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else None
    if last is not None and last < first:
        return None
    if first >= size:
        raise Unsatisfiable
    return first, size - 1 if last is None else min(last, size - 1)


# Responses ---------------------------------------------------------------------------------


def _error(exc: ParleyError, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": exc.code, "detail": exc.detail},
        exc.status,
        headers={**CORS, "Cache-Control": "no-store", **(headers or {})},
    )


def _not_modified(request: Request, etag: str, headers: dict[str, str]) -> Response | None:
    given = request.headers.get("if-none-match")
    if given is None:
        return None
    tags = {tag.strip().removeprefix("W/") for tag in given.split(",")}
    if etag in tags or "*" in tags:
        return Response(status_code=304, headers={**headers, "ETag": etag})
    return None


def _bytes(request: Request, data: bytes, etag: str) -> Response:
    headers = {**CORS, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
    not_modified = _not_modified(request, etag, headers)
    if not_modified is not None:
        return not_modified
    if_range = request.headers.get("if-range")
    header = request.headers.get("range") if if_range in (None, etag) else None
    try:
        span = parse_byte_range(header, len(data))
    except Unsatisfiable:
        return Response(
            status_code=416,
            headers={**headers, "ETag": etag, "Content-Range": f"bytes */{len(data)}"},
        )
    if span is None:
        return Response(data, media_type=MEDIA_TYPE, headers={**headers, "ETag": etag})
    first, last = span
    return Response(
        data[first : last + 1],
        status_code=206,
        media_type=MEDIA_TYPE,
        headers={**headers, "ETag": etag, "Content-Range": f"bytes {first}-{last}/{len(data)}"},
    )


def _playlist_response(request: Request, text: str, etag: str, cache: str) -> Response:
    headers = {**CORS, "Cache-Control": cache}
    not_modified = _not_modified(request, etag, headers)
    if not_modified is not None:
        return not_modified
    return Response(text, media_type=PLAYLIST_TYPE, headers={**headers, "ETag": etag})


def _preflight() -> Response:
    return Response(
        status_code=204,
        headers={
            **CORS,
            "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
            "Access-Control-Allow-Headers": "Range, If-None-Match, If-Range",
            "Access-Control-Max-Age": "86400",
        },
    )


# The hook: a room on air and its HLS output ------------------------------------------------


def _outputs(request: Request) -> HlsOutputs:
    outputs: HlsOutputs = request.app.state.hls
    return outputs


def _room(request: Request) -> OnAir:
    stage: Stage = request.app.state.stage
    return stage.get(request.path_params["room_id"])


def _output(request: Request, on_air: OnAir) -> HlsStream | None:
    """The room's HLS output: started from its program stream while it is live (the
    output stops by itself when that stream closes, the room ending); after the end, the
    finished one while it is kept. None for an ended room whose output is gone."""
    room = on_air.room
    if room.state is RoomState.LIVE:
        return _outputs(request).start(room.id, on_air.program)
    if room.state is RoomState.ENDED:
        return _outputs(request).find(room.id)
    raise Conflict("the room is not live yet")


def _ended_playlist() -> str:
    """What an ended room whose segments are gone answers: nothing more will come.
    (A recorded room's VOD playlist, its stored segments and EXT-X-ENDLIST, goes here.)"""
    return render_playlist(
        [], token="-", target_duration=2, part_target=0.2, ended=True, hint=None
    )


# Routes ------------------------------------------------------------------------------------


async def playlist(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    try:
        query = parse_playlist_query(request.query_params)
        on_air = _room(request)
        output = _output(request, on_air)
        if output is None:
            return _playlist_response(request, _ended_playlist(), '"ended"', ENDED_PLAYLIST)
        try:
            ready = await output.wait_playlist(query)
        except TooFarAhead as exc:
            raise InvalidInput("_HLS_msn", str(exc), status=400) from None
    except ParleyError as exc:
        return _error(exc)
    if not ready:
        return _error(
            Unavailable("the stream did not reach that part in time; reload the playlist"),
            {"Retry-After": "1"},
        )
    text, etag = output.playlist()
    cache = ENDED_PLAYLIST if output.closed else BLOCKING_PLAYLIST if query else LIVE_PLAYLIST
    return _playlist_response(request, text, etag, cache)


def _stream_of(request: Request) -> HlsStream:
    on_air = _room(request)
    output = _outputs(request).find(on_air.room.id)
    if output is None or output.token != request.path_params["token"]:
        raise NotFound("no such HLS stream (it ended or restarted: reload the playlist)")
    return output


async def init(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    try:
        output = _stream_of(request)
    except ParleyError as exc:
        return _error(exc)
    return _bytes(request, output.init, f'"{output.token}-init"')


async def media(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    name = request.path_params["name"]
    try:
        parsed = parse_media_name(name)
        if parsed is None:
            raise NotFound("no such part or segment")
        output = _stream_of(request)
        msn, index = parsed
        if index is None:
            segment = output.segment(msn)
            data = segment.data if segment is not None else None
        else:
            part = await output.wait_part(msn, index, PART_WAIT_S)
            data = part.data if part is not None else None
        if data is None:
            raise NotFound("no such part or segment (not made yet, or gone from the window)")
    except ParleyError as exc:
        return _error(exc)
    return _bytes(request, data, f'"{output.token}-{name}"')


METHODS = ["GET", "HEAD", "OPTIONS"]
routes = [
    Route("/api/v1/rooms/{room_id}/hls/index.m3u8", playlist, methods=METHODS),
    Route("/api/v1/rooms/{room_id}/hls/{token}/init.mp4", init, methods=METHODS),
    Route("/api/v1/rooms/{room_id}/hls/{token}/{name}", media, methods=METHODS),
]
