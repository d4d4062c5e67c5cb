"""A minimal carrying node written from FEDERATION.md, for tests (no tests live here).

`CarryingPeer` serves one live room the way FEDERATION.md says a carrying node must: the
room JSON at ``/api/v1/rooms/{id}`` with a ``relay_url`` of its own choosing (not Parley's
path), and at that URL a relay stream: the ``snapshot`` first, program frames every
20 ms, ``ping`` every 0.5 s. It reads what the relay sends up, checking every text
message against the wire format, and a test decides how each connection ends (a close
code) and whether new subscriptions are refused. It runs in the test's event loop
(uvicorn + Starlette, PyAV's libopus); nothing of node/ is used.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from federation.relay import UPSTREAM_TYPES, AudioFrame, FrameKind, parse_control
from tests.conftest import free_port

ROOM_ID = "peerRoom01"
HOST_USER = "hana"


@dataclass
class Subscription:
    """One relay connection the peer accepted."""

    target: str
    """Path and query as received."""
    query: dict[str, str]
    headers: dict[str, str]
    upward: list[dict[str, Any]] = field(default_factory=list)
    """Text messages the relay sent, parsed."""
    malformed: list[str] = field(default_factory=list)
    close: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Set it to a close code to end this connection."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class CarryingPeer:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.relay_path = f"/streams/{ROOM_ID}/relay"
        self.refuse: int | None = None
        """When set, new subscriptions are refused with this HTTP status."""
        self.subscriptions: asyncio.Queue[Subscription] = asyncio.Queue()
        self.refused = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def room_url(self) -> str:
        return f"{self.base_url}/rooms/{ROOM_ID}"

    @property
    def relay_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.relay_path}"

    def room_json(self) -> dict[str, Any]:
        hana = {
            "username": HOST_USER,
            "display_name": "Hana",
            "role": "host",
            "muted": False,
            "hand_raised": False,
            "invited": False,
            "connected": True,
            "publishing": True,
        }
        return {
            "id": ROOM_ID,
            "title": "Peer room",
            "description": "",
            "visibility": "public",
            "state": "live",
            "url": self.room_url,
            "host": {"username": HOST_USER, "display_name": "Hana"},
            "speakers": [hana],
            "audience": [],
            "hands": [],
            "listener_count": 0,
            "max_speakers": 10,
            "relay_url": self.relay_url,
            "created_at": 1795000000.0,
            "started_at": 1795000100.0,
            "ended_at": None,
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "snapshot",
            "room": self.room_json(),
            "origin": self.room_url,
            "acting_origin": self.base_url,
            "epoch": 0,
            "succession": [{"node": self.base_url, "relay": self.relay_url}],
            "path": [self.base_url],
        }

    # -- HTTP and the relay stream -----------------------------------------------------

    async def _room(self, request: Request) -> Response:
        if request.path_params["room_id"] != ROOM_ID:
            return JSONResponse({"error": "not_found", "detail": "no such room"}, 404)
        return JSONResponse(self.room_json())

    async def _relay(self, websocket: WebSocket) -> None:
        if self.refuse is not None:
            self.refused += 1
            await websocket.send_denial_response(
                JSONResponse({"error": "conflict", "detail": "not now"}, self.refuse)
            )
            return
        await websocket.accept()
        target = websocket.url.path + (f"?{websocket.url.query}" if websocket.url.query else "")
        subscription = Subscription(target, dict(websocket.query_params), dict(websocket.headers))
        await self.subscriptions.put(subscription)
        await websocket.send_json(self.snapshot())
        sender = asyncio.create_task(self._send_program(websocket))
        reader = asyncio.create_task(self._read(websocket, subscription))
        try:
            done, _ = await asyncio.wait(
                {subscription.close, reader}, return_when=asyncio.FIRST_COMPLETED
            )
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            if subscription.close in done:
                await websocket.close(code=subscription.close.result())
        finally:
            sender.cancel()
            reader.cancel()
            subscription.closed.set()

    async def _send_program(self, websocket: WebSocket) -> None:
        encoder = av.CodecContext.create("libopus", "w")
        assert isinstance(encoder, av.AudioCodecContext)
        encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
        encoder.open()
        seq = 0
        while True:
            t = (np.arange(960) + seq * 960) / 48000
            samples = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(1, -1)
            pcm = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            pcm.sample_rate, pcm.pts = 48000, seq * 960
            for packet in encoder.encode(pcm):
                frame = AudioFrame(FrameKind.PROGRAM, "", seq, seq * 960, bytes(packet))
                await websocket.send_bytes(frame.serialize())
            if seq % 25 == 0:
                await websocket.send_text('{"type":"ping"}')
            seq += 1
            await asyncio.sleep(0.02)

    async def _read(self, websocket: WebSocket, subscription: Subscription) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is not None:
                    try:
                        subscription.upward.append(parse_control(text, UPSTREAM_TYPES))
                    except Exception:  # noqa: BLE001 - recorded for the test to assert on
                        subscription.malformed.append(text)

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> CarryingPeer:
        app = Starlette(
            routes=[
                Route("/api/v1/rooms/{room_id}", self._room),
                WebSocketRoute(self.relay_path, self._relay),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        for _ in range(200):
            if self._server.started:
                return self
            await asyncio.sleep(0.05)
        raise RuntimeError("the carrying peer did not start")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
