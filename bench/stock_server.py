"""The stock aiortc baseline: a minimal WHEP server written the way aiortc's docs suggest.

    python -m bench.stock_server --port P --mode packets|frames

``packets``: one Opus encoder makes a 440 Hz packet every 20 ms; every listener has its own
``MediaStreamTrack`` with an ``asyncio.Queue``, and ``recv()`` returns the (shared)
``av.Packet``, which aiortc's ``RTCRtpSender`` packs without encoding.
``frames``: every listener's track returns ``AudioFrame``s, so aiortc encodes per listener.

Nothing of Parley's media path is used; only ICE host addresses are pinned to 127.0.0.1
(aioice leaves loopback out otherwise), which costs nothing per packet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fractions import Fraction

import av
import numpy as np
import uvicorn
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.media.ice import IceSettings, install_ice_policy

RATE = 48000
FRAME = 960
TIME_BASE = Fraction(1, RATE)
QUEUE_LIMIT = 50


class QueueTrack(MediaStreamTrack):
    """One listener's track: whatever the source puts in its queue (packets or frames)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[av.Packet | av.AudioFrame] = asyncio.Queue(QUEUE_LIMIT)

    def offer(self, item: av.Packet | av.AudioFrame) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # a stalled sender: drop the oldest
        self.queue.put_nowait(item)

    async def recv(self) -> av.Packet | av.AudioFrame:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        return await self.queue.get()


def _tone(pts: int) -> np.ndarray:
    t = (np.arange(FRAME) + pts) / RATE
    return (np.sin(2 * np.pi * 440.0 * t) * 0.3 * 32767).astype(np.int16).reshape(1, -1)


def _frame(pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(_tone(pts), format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class Source:
    """Every 20 ms: one tone frame, encoded once (packets mode), offered to every track."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.tracks: set[QueueTrack] = set()
        self.encoder: av.AudioCodecContext | None = None
        if mode == "packets":
            codec = av.CodecContext.create("libopus", "w")
            assert isinstance(codec, av.AudioCodecContext)
            codec.sample_rate = RATE
            codec.layout = "mono"
            codec.format = "s16"
            codec.bit_rate = 32000
            codec.time_base = TIME_BASE
            codec.open()
            self.encoder = codec

    async def run(self) -> None:
        pts = 0
        due = time.monotonic()
        while True:
            frame = _frame(pts)
            items: list[av.Packet | av.AudioFrame]
            if self.encoder is not None:
                items = list(self.encoder.encode(frame))
                for packet in items:
                    packet.time_base = TIME_BASE
            else:
                items = [frame]
            for item in items:
                for track in self.tracks:
                    track.offer(item)
            pts += FRAME
            due += FRAME / RATE
            await asyncio.sleep(max(due - time.monotonic(), 0.0))


def create_app(mode: str) -> Starlette:
    source = Source(mode)
    sessions: dict[str, tuple[RTCPeerConnection, QueueTrack]] = {}

    async def close(session_id: str) -> None:
        entry = sessions.pop(session_id, None)
        if entry is not None:
            source.tracks.discard(entry[1])
            await entry[0].close()

    async def whep(request: Request) -> Response:
        offer = (await request.body()).decode()
        # An explicit empty list: with None aiortc would ask Google's STUN server.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = QueueTrack()
        session_id = secrets.token_urlsafe(12)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        opus = [
            c
            for c in RTCRtpSender.getCapabilities("audio").codecs
            if c.mimeType.lower() == "audio/opus"
        ]
        transceiver.setCodecPreferences(opus)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await close(session_id)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        sessions[session_id] = (pc, track)
        source.tracks.add(track)
        return Response(
            pc.localDescription.sdp,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/whep/{session_id}"},
        )

    async def leave(request: Request) -> Response:
        await close(request.path_params["session_id"])
        return Response(status_code=200)

    async def stats(request: Request) -> Response:
        return JSONResponse({"peer_connections": len(sessions), "mode": mode})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        install_ice_policy(IceSettings(host_addresses=("127.0.0.1",)), asyncio.get_running_loop())
        task = asyncio.create_task(source.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.gather(*(close(sid) for sid in list(sessions)))

    return Starlette(
        routes=[
            Route("/whep", whep, methods=["POST"]),
            Route("/whep/{session_id}", leave, methods=["DELETE"]),
            Route("/stats", stats, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="stock aiortc WHEP baseline")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("packets", "frames"), default="packets")
    args = parser.parse_args()
    uvicorn.run(create_app(args.mode), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
