"""Rooms people come back to, over HTTP: reactions, comments and the pin, handing the room
over, reminders and the calendar file (docs/API.md, "Reactions, comments, the host
leaving" and "Scheduled rooms")."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from icalendar import Calendar
from icalendar import Event as CalendarEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.errors import InvalidInput, NotFound
from node.fediverse.service import Fediverse
from node.onair.stage import Stage
from node.web.api import _act, _on_air, read_json
from node.web.auth import require_account

MAX_PAGE = 100


def _fediverse(request: Request) -> Fediverse:
    fediverse: Fediverse = request.app.state.fediverse
    return fediverse


async def reactions(request: Request) -> Response:
    body = await read_json(request)
    emoji = body.get("emoji")
    return await _act(request, "react", body=body, answer={"emoji": emoji})


async def comments(request: Request) -> Response:
    on_air = _on_air(request)
    if request.method == "POST":
        account = require_account(request)
        body = await read_json(request)
        posted = await _fediverse(request).comments.post(account, on_air, body.get("text"))
        local = request.app.state.stage.store.exists(on_air.room.id)
        return JSONResponse(posted, 201 if local else 202)
    try:
        limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", "20"))))
        before_text = request.query_params.get("before")
        before = float(before_text) if before_text is not None else None
        if before is not None and not math.isfinite(before):
            raise ValueError(before_text)
    except ValueError:
        raise InvalidInput("limit", "limit and before must be numbers", status=400) from None
    room = on_air.room
    stage: Stage = request.app.state.stage
    if stage.store.exists(room.id):
        items = _fediverse(request).comments.page(room.id, limit=limit, before=before)
    else:
        # A room of another node: the comments its node sent us.
        items = [
            c.to_json() for c in room.board.visible() if before is None or c.published < before
        ][:limit]
    board = room.board.to_json(0)
    shown = {key: board[key] for key in ("pinned", "likes", "boosts")}
    return JSONResponse({"comments": items, **shown})


async def hide_comment(request: Request) -> Response:
    return await _act(request, "hide_comment", body=await read_json(request))


async def pin(request: Request) -> Response:
    body: dict[str, Any] = {}
    if request.method == "PUT":
        body = await read_json(request)
        if not body.get("comment") and not body.get("link"):
            raise InvalidInput("comment", "give a comment id or a link")
    return await _act(request, "pin", body=body)


async def hand_over(request: Request) -> Response:
    body = await read_json(request)
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise InvalidInput("to", "the username of a cohost")
    return await _act(request, "hand_over", target=to)


async def take_host(request: Request) -> Response:
    return await _act(request, "take_host")


async def reminders(request: Request) -> Response:
    account = require_account(request)
    service = _fediverse(request).reminder_requests
    if request.method == "POST":
        body = await read_json(request)
        return JSONResponse(await service.add(account, body.get("room")), 201)
    if request.method == "DELETE":
        room = request.query_params.get("room")
        if not room:
            raise InvalidInput("room", "missing (?room=<room URL>)", status=400)
        return JSONResponse(await service.remove(account, room))
    return JSONResponse({"reminders": service.of(account)})


async def calendar(request: Request) -> Response:
    """The room as an iCalendar file (RFC 5545) for calendar apps."""
    on_air = _on_air(request)
    room = on_air.room
    if room.starts_at is None:
        raise NotFound("the room has no scheduled start")
    stage: Stage = request.app.state.stage
    doc = stage.room_json(room)
    start = dt.datetime.fromtimestamp(room.starts_at, dt.UTC)
    event = CalendarEvent()
    event.add("uid", f"{room.id}@{request.app.state.host}")
    event.add("dtstamp", dt.datetime.fromtimestamp(room.created_at, dt.UTC))
    event.add("dtstart", start)
    # A room has no planned end; calendars want one: an hour, said in the description.
    event.add("dtend", start + dt.timedelta(hours=1))
    event.add("summary", room.title)
    event.add("description", f"{room.description}\n\n{doc['url']}".strip())
    event.add("url", doc["url"])
    event.add("location", doc["url"])
    event.add("status", "CANCELLED" if room.cancelled else "CONFIRMED")
    cal = Calendar()
    cal.add("prodid", "-//Parley//rooms//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    cal.add_component(event)
    return Response(
        cal.to_ical(),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="room-{room.id}.ics"'},
    )


routes = [
    Route("/api/v1/rooms/{room_id}/reactions", reactions, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/comments", comments, methods=["GET", "POST"]),
    Route("/api/v1/rooms/{room_id}/comments/hide", hide_comment, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/pin", pin, methods=["PUT", "DELETE"]),
    Route("/api/v1/rooms/{room_id}/hand-over", hand_over, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/take-host", take_host, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/calendar.ics", calendar, methods=["GET"]),
    Route("/api/v1/reminders", reminders, methods=["GET", "POST", "DELETE"]),
]
