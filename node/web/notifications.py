"""Notifications over HTTP: the list, marking read, and a small WebSocket per open page
that pushes new ones as they happen (docs/API.md, "Notifications")."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from node.errors import InvalidInput, ParleyError, Unauthorized
from node.notifications import NotificationHub, render
from node.store.notifications import NotificationStore
from node.web.api import read_json
from node.web.auth import optional_account, require_account
from node.web.signaling import PING_INTERVAL_S, _send_mailbox

MAX_PAGE = 100
MAX_ID = 2**53


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_ID


def _store(request: Request | WebSocket) -> NotificationStore:
    store: NotificationStore = request.app.state.notifications
    return store


async def notifications(request: Request) -> Response:
    account = require_account(request)
    try:
        limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", "30"))))
        before_text = request.query_params.get("before")
        before = int(before_text) if before_text is not None else None
        if before is not None and not _is_id(before):
            raise ValueError(before_text)
    except ValueError:
        raise InvalidInput("limit", "limit and before must be integers", status=400) from None
    store = _store(request)
    items = [render(n) for n in store.page(account.id, limit=limit, before=before)]
    return JSONResponse({"notifications": items, "unread": store.unread(account.id)})


async def mark_read(request: Request) -> Response:
    """``{"ids": [...]}``, ``{"up_to": id}``, or ``{}`` for all."""
    account = require_account(request)
    body = await read_json(request)
    ids = body.get("ids")
    up_to = body.get("up_to")
    if ids is not None and (
        not isinstance(ids, list) or len(ids) > 1000 or not all(_is_id(i) for i in ids)
    ):
        raise InvalidInput("ids", "must be a list of notification ids")
    if up_to is not None and not _is_id(up_to):
        raise InvalidInput("up_to", "must be a notification id")
    store = _store(request)
    marked = store.mark_read(account.id, ids, up_to)
    return JSONResponse({"marked": marked, "unread": store.unread(account.id)})


async def notification_socket(websocket: WebSocket) -> None:
    try:
        account = optional_account(websocket)
        if account is None:
            raise Unauthorized("sign in first")
    except ParleyError as exc:
        await websocket.accept()
        await websocket.send_json({"type": "error", "error": exc.code, "detail": exc.detail})
        await websocket.close(code=4000 + exc.status)
        return
    hub: NotificationHub = websocket.app.state.notification_hub
    listener = hub.listen(account.id)
    await websocket.accept()
    listener.send({"type": "hello", "unread": _store(websocket).unread(account.id)})
    sender = asyncio.create_task(_send_mailbox(websocket, listener, close_code=lambda: 4001))
    try:
        while True:
            receive = asyncio.create_task(websocket.receive_text())
            done, _ = await asyncio.wait(
                {receive, sender}, timeout=PING_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED
            )
            if sender in done:
                receive.cancel()
                break
            if receive not in done:
                receive.cancel()
                listener.send({"type": "ping"})
                continue
            if len(receive.result()) > 1024:
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            hub.forget(listener)


routes = [
    Route("/api/v1/notifications", notifications, methods=["GET"]),
    Route("/api/v1/notifications/read", mark_read, methods=["POST"]),
    WebSocketRoute("/api/v1/notifications/ws", notification_socket),
]
