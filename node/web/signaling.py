"""Media signalling: WHIP (RFC 9725) to speak, WHEP to listen, the Ogg/Opus HTTP stream,
and the room's WebSocket of state events."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.utils import accept_key

from federation import jsonlimits
from federation.errors import ActivityParseError, FederationError
from federation.relay import RELAY_PATH, RELAY_SILENCE_S, CloseCode
from federation.routes import error_status, verify_subscription
from node.accounts import Account
from node.errors import Conflict, Forbidden, InvalidInput, ParleyError, Unavailable, UseHls
from node.mailbox import Mailbox
from node.media.errors import InvalidOffer, WorkerUnavailable
from node.media.stream import ogg_listener
from node.media.ws_fanout import text_frames
from node.notifications import NotificationHub
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.onair.watchers import Watcher
from node.relaying.hub import RelayHub, RelaySubscriber
from node.relaying.service import RelayService
from node.rooms import RoomState, Visibility
from node.store.notifications import NotificationStore
from node.visitors import Person
from node.web.auth import optional_person
from node.web.connections import transport_of
from node.web.publish_keys import publisher

logger = logging.getLogger(__name__)

SDP_TYPE = "application/sdp"
PING_INTERVAL_S = 20.0
CLOSE_TIMEOUT_S = 1.0


async def _read_offer(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != SDP_TYPE:
        raise InvalidInput("content-type", f"must be {SDP_TYPE}", status=415)
    limit: int = request.app.state.config.media.max_sdp_bytes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            # 400 rather than 413: WHIP clients treat 4xx alike, and the issue asks 400 for
            # oversized offers. The reason says what happened.
            raise InvalidInput("offer", f"SDP offer over {limit} bytes", status=400)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("offer", "SDP must be UTF-8 text", status=400) from None


def _on_air(request: Request) -> OnAir:
    stage: Stage = request.app.state.stage
    return stage.get(request.path_params["room_id"])


def _sdp_created(request: Request, kind: str, session_id: str, answer: str) -> Response:
    location = f"/api/v1/rooms/{request.path_params['room_id']}/{kind}/{session_id}"
    return Response(
        answer,
        status_code=201,
        media_type=SDP_TYPE,
        headers={"Location": location, "ETag": f'"{session_id}"'},
    )


async def whip(request: Request) -> Response:
    # A publish key (OBS) or a session: publish_keys.publisher tells.
    account = publisher(request, request.path_params["room_id"])
    assert account is not None
    on_air = _on_air(request)
    offer = await _read_offer(request)
    try:
        session_id, answer = await on_air.publish(account, offer)
    except InvalidOffer as exc:
        raise InvalidInput("offer", exc.reason, status=400) from None
    return _sdp_created(request, "whip", session_id, answer)


async def whep(request: Request) -> Response:
    on_air = _on_air(request)
    _check_listener(request, on_air)
    offer = await _read_offer(request)
    after = request.app.state.config.hls.after_listeners
    if len(on_air.listener_sessions) + on_air.http_listeners >= after:
        raise UseHls(f"this node serves {after} listeners of the room: play its hls_url")
    try:
        session_id, answer = await on_air.listen(offer)
    except InvalidOffer as exc:
        raise InvalidInput("offer", exc.reason, status=400) from None
    except WorkerUnavailable as exc:
        raise UseHls(f"{exc}: play the room's hls_url") from None
    return _sdp_created(request, "whep", session_id, answer)


def _check_listener(request: Request, on_air: OnAir) -> None:
    """Public and unlisted rooms are heard by anyone with the link (guests included),
    except people blocked from the room."""
    account = optional_person(request)
    if account is not None and account.username in on_air.room.blocked:
        raise Forbidden("you are blocked from this room")


async def end_session(request: Request) -> Response:
    on_air = _on_air(request)
    # The encoder that opened a WHIP session with its publish key ends it with the same.
    account = publisher(request, request.path_params["room_id"], required=False)
    await on_air.close_session(
        request.path_params["session_id"], account.username if account else None
    )
    return Response(status_code=200)


async def patch_session(request: Request) -> Response:
    # Trickle ICE (RFC 9725 section 4.3) is optional; we gather before answering.
    return Response(status_code=405, headers={"Allow": "DELETE"})


OGG_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def listen_ogg(request: Request) -> Response:
    on_air = _on_air(request)
    _check_listener(request, on_air)
    if on_air.room.state is not RoomState.LIVE:
        raise Conflict("the room is not live")
    if request.method == "HEAD":
        # The GET's headers, without its endless body (which would hold the connection).
        response = Response(media_type="audio/ogg", headers=OGG_HEADERS)
        del response.headers["content-length"]
        return response
    transport = transport_of(request.scope)
    if transport is not None:
        # [media] workers: a worker serves the listener on this very connection.
        if on_air.hand_off_http(transport.get_extra_info("socket"), _ogg_head()) is not None:
            # Only this process's descriptor closes: the worker's copy keeps the
            # connection open, and no FIN or reset is sent.
            transport.abort()
            return HandedOver()
    pages = on_air.pages

    async def body() -> AsyncIterator[bytes]:
        on_air.http_listener(+1)
        try:
            async for chunk in ogg_listener(pages):
                yield chunk
        finally:
            on_air.http_listener(-1)

    return LiveStreamResponse(body(), media_type="audio/ogg", headers=OGG_HEADERS)


def _ogg_head() -> bytes:
    """The response head a media worker writes for a handed-over Ogg listener: the same
    headers as the node's own stream, close-delimited instead of chunked."""
    lines = [
        "HTTP/1.1 200 OK",
        "content-type: audio/ogg",
        *(f"{name.lower()}: {value}" for name, value in OGG_HEADERS.items()),
        f"date: {formatdate(usegmt=True)}",
        "connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HandedOver(Response):
    """What the app answers once a worker has the connection: nothing. It returns when
    uvicorn has seen its transport closed, so uvicorn sends no response of its own."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _until_disconnect(receive)


class LiveStreamResponse(StreamingResponse):
    """A StreamingResponse for an endless stream with thousands of listeners.

    Starlette's own, under ASGI spec < 2.4 (uvicorn reports 2.3), runs the body in an
    anyio task group beside a task waiting for the disconnect. Here the listener's own
    task writes the body and one plain ``receive()`` future notices the disconnect
    between chunks (uvicorn's ``send`` returns silently once the client is gone): RSS per
    Ogg listener went from 26 to 19 KiB, CPU unchanged within noise (bench/RESULTS.md).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self.body_iterator:
                if gone.done():
                    break
                data = chunk.encode(self.charset) if isinstance(chunk, str) else bytes(chunk)
                await send({"type": "http.response.body", "body": data, "more_body": True})
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def room_socket(websocket: WebSocket) -> None:
    try:
        account = optional_person(websocket)
        stage: Stage = websocket.app.state.stage
        on_air = stage.get(websocket.path_params["room_id"])
        if on_air.room.state is RoomState.ENDED:
            raise Conflict("the room has ended")
        # A socket a media worker serves carries no notifications: the page then keeps its
        # own notifications socket (static/notify.js), as on pages without a room.
        if await _hand_over(websocket, on_air, account):
            return
        watcher = on_air.watch(account)
    except ParleyError as exc:
        await websocket.accept()
        await websocket.send_json({"type": "error", "error": exc.code, "detail": exc.detail})
        await websocket.close(code=4000 + exc.status)
        return
    await websocket.accept()
    # Visitors have no account here, so no notifications.
    detach = _notifications_on(
        websocket, account if isinstance(account, Account) else None, watcher
    )

    direct = None
    config = websocket.app.state.config
    if config.node.room_events == "shared" and not config.node.ws_compression:
        direct = transport_of(websocket.scope)
    sender = asyncio.create_task(_send_watcher(websocket, watcher, direct))
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
                watcher.send({"type": "ping"})
                continue
            text = receive.result()
            if len(text) > 4096:
                break
            with contextlib.suppress(ActivityParseError):
                message = jsonlimits.loads(text)
                if not isinstance(message, dict):
                    continue
                if message.get("type") == "ping":
                    watcher.send({"type": "pong"})
                elif message.get("type") == "levels_source":
                    watcher.levels_in_audio = message.get("source") == "audio"
    except (WebSocketDisconnect, RuntimeError, AttributeError):
        pass
    finally:
        sender.cancel()
        detach()
        on_air.unwatch(watcher)


def _notifications_on(
    websocket: WebSocket, account: Account | None, watcher: Mailbox[Any]
) -> Callable[[], None]:
    """A signed-in user's notifications ride their room socket (the page needs no second
    one): first ``{"type": "notifications", "unread"}``, then each ``notification``."""
    if account is None:
        return lambda: None
    hub: NotificationHub = websocket.app.state.notification_hub
    store: NotificationStore = websocket.app.state.notifications
    watcher.send({"type": "notifications", "unread": store.unread(account.id)})
    return hub.attach(account.id, watcher)


async def _hand_over(websocket: WebSocket, on_air: OnAir, account: Person | None) -> bool:
    """[media] workers: a worker serves this room WebSocket on this very connection (it
    writes the handshake's answer and the snapshot built here, then the room's events).
    True once it has it: this process closes only its own descriptor (no FIN, no reset)
    and sends nothing more. False to serve it here."""
    transport = transport_of(websocket.scope)
    if transport is None:
        return False
    key = websocket.headers.get("sec-websocket-key", "")
    if websocket.headers.get("sec-websocket-version") != "13" or not _valid_key(key):
        return False  # uvicorn's own handshake answers it (and refuses it)
    head = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n\r\n"
    ).encode("latin-1")
    watcher = on_air.watch_elsewhere(
        account,
        transport.get_extra_info("socket"),
        lambda snapshot: head + text_frames([snapshot.encode()]),
    )
    if watcher is None:
        return False
    transport.abort()
    # uvicorn now answers a handshake nobody reads (it logs a 403): ours went out already.
    await websocket.close()
    return True


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


async def _send_watcher(
    websocket: WebSocket, watcher: Watcher, direct: asyncio.Transport | None
) -> None:
    """A room WebSocket's sender: what the room queues for this client, until the room
    closes it (code 4001). Once all that was queued has gone out (the snapshot first),
    the room may write its events straight to the connection's transport (``direct``:
    plain TCP, uncompressed), as frames built once for all its watchers."""
    while True:
        message = await watcher.queue.get()
        if message is None:
            await websocket.close(code=4001)
            return
        if isinstance(message, tuple):
            for text in message:
                await websocket.send_text(text)
        elif isinstance(message, str):
            await websocket.send_text(message)
        else:
            await websocket.send_text(json.dumps(message))
        if direct is not None and watcher.direct is None and watcher.queue.empty():
            if not watcher.closed and not direct.is_closing():
                watcher.direct = direct


async def _send_mailbox(
    websocket: WebSocket, mailbox: Mailbox[Any], *, close_code: Callable[[], int]
) -> None:
    """Send what is queued for this peer (bytes as binary, str as text, anything else as
    JSON) until its mailbox is closed; then close with ``close_code()``."""
    while True:
        message = await mailbox.queue.get()
        if message is None:
            await websocket.close(code=close_code())
            return
        if isinstance(message, bytes):
            await websocket.send_bytes(message)
        elif isinstance(message, str):
            await websocket.send_text(message)
        else:
            await websocket.send_text(json.dumps(message))


async def relay_socket(websocket: WebSocket) -> None:
    """The node-to-node relay stream (FEDERATION.md): signed by the relaying node's
    instance actor; program and events down, listener counts, presence and uplink up.
    Refusals answer before the upgrade with the JSON errors of docs/API.md; once open, the
    connection ends with a close code that tells the relay why (federation.relay)."""
    relay: RelayService = websocket.app.state.relay
    try:
        hub, subscriber = await _relay_subscribe(websocket, relay)
    except (ParleyError, FederationError) as exc:
        relay.counters.refused_subscriptions += 1
        if isinstance(exc, ParleyError):
            status, code, detail = exc.status, exc.code, exc.detail
        else:
            (status, code), detail = error_status(exc), str(exc)
        logger.info("relay subscription refused (%d %s): %s", status, code, detail)
        await websocket.send_denial_response(
            JSONResponse({"error": code, "detail": detail}, status)
        )
        return
    await websocket.accept()

    sender = asyncio.create_task(
        _send_mailbox(websocket, subscriber, close_code=lambda: subscriber.close_code)
    )
    silent = False
    try:
        while True:
            receive = asyncio.create_task(websocket.receive())
            done, _ = await asyncio.wait(
                {receive, sender}, timeout=RELAY_SILENCE_S, return_when=asyncio.FIRST_COMPLETED
            )
            if sender in done or receive not in done:
                # The room let it go (closed with its reason), or the relay went silent
                # (it must send something every 5 s): frozen or cut off.
                receive.cancel()
                silent = sender not in done
                break
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                hub.on_binary(subscriber, message["bytes"])
            elif message.get("text") is not None:
                hub.on_text(subscriber, message["text"])
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sender.cancel()
        hub.remove(subscriber)
        subscriber.close(CloseCode.SILENT if silent else CloseCode.GOING_AWAY)
    if silent:
        # Never wait on a peer that may be frozen: the close frame goes out or not.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(code=CloseCode.SILENT), CLOSE_TIMEOUT_S)


async def _relay_subscribe(
    websocket: WebSocket, relay: RelayService
) -> tuple[RelayHub, RelaySubscriber]:
    fediverse = websocket.app.state.fediverse
    if fediverse.site is None:
        raise Unavailable("the node is starting")
    who = await verify_subscription(fediverse.site, websocket)  # type: ignore[arg-type]
    stage: Stage = websocket.app.state.stage
    on_air = stage.get(websocket.path_params["room_id"])
    if on_air.room.state is not RoomState.LIVE:
        raise Conflict("the room is not live")
    subscriber = RelaySubscriber(who.host, who.entry, actor=who.actor)
    return relay.subscribe(on_air, subscriber), subscriber


def room_urls(base_url: str, room_id: str, visibility: Visibility) -> dict[str, str]:
    api = f"{base_url}/api/v1/rooms/{room_id}"
    ws_base = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return {
        "url": f"{base_url}/rooms/{room_id}",
        "whip_url": f"{api}/whip",
        "whep_url": f"{api}/whep",
        "listen_url": f"{api}/listen.ogg",
        "ws_url": f"{ws_base}/api/v1/rooms/{room_id}/ws",
        # Where another node subscribes to this node's copy of the room (FEDERATION.md).
        "relay_url": ws_base + RELAY_PATH.format(room_id=room_id),
    }


routes = [
    Route("/api/v1/rooms/{room_id}/whip", whip, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/whep", whep, methods=["POST"]),
    Route("/api/v1/rooms/{room_id}/whip/{session_id}", end_session, methods=["DELETE"]),
    Route("/api/v1/rooms/{room_id}/whep/{session_id}", end_session, methods=["DELETE"]),
    Route("/api/v1/rooms/{room_id}/whip/{session_id}", patch_session, methods=["PATCH"]),
    Route("/api/v1/rooms/{room_id}/whep/{session_id}", patch_session, methods=["PATCH"]),
    Route("/api/v1/rooms/{room_id}/listen.ogg", listen_ogg, methods=["GET"]),
    WebSocketRoute("/api/v1/rooms/{room_id}/ws", room_socket),
    WebSocketRoute("/relay/v1/rooms/{room_id}", relay_socket),
]
