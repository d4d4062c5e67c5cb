"""A WHEP server on Parley's own media layer, for comparing listener fan-out paths.

    python -m bench.fast_server --port P --fanout aiortc|batched|native [--packet-ms 20|40|60]

A 440 Hz tone is encoded once (``OpusFrameEncoder``, as the mixer does) and published to a
:class:`~node.media.packets.PacketStream` every 20 ms, each packet naming one speaker (a
CSRC and its level, as the mixer's packets do); ``PeerSessions.listen`` serves it to WHEP
clients either the way the node did before issue 5 (``aiortc``: one ``PacketTrack`` and
one ``RTCRtpSender`` coroutine per listener) or through the batched send loop of
``node/media/fanout.py`` with its per-listener step in Python (``batched``) or in C
(``native``). Nothing else runs in the process (no mixer decoding, no rooms, no speaker),
so its CPU is the fan-out's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.media.ice import IceSettings, install_ice_policy
from node.media.mixer import OpusFrameEncoder
from node.media.packets import (
    OPUS_RATE,
    SAMPLES_PER_FRAME,
    Contributors,
    OpusPacket,
    PacketStream,
)
from node.media.peers import PeerSessions

LOOPBACK = IceSettings(host_addresses=("127.0.0.1",))
SPEAKING = Contributors(13, ((1, 13),))
"""One speaker heard at -13 dBov: every packet carries one CSRC, as in a room."""


async def publish_tone(stream: PacketStream, hz: float = 440.0) -> None:
    """Encode a tone once per 20 ms and publish it, paced on the monotonic clock."""
    encoder = OpusFrameEncoder(frame_samples=SAMPLES_PER_FRAME, bitrate=32000)
    seq = 0
    due = time.monotonic()
    while True:
        t = (np.arange(SAMPLES_PER_FRAME) + seq * SAMPLES_PER_FRAME) / OPUS_RATE
        data = encoder.encode((np.sin(2 * np.pi * hz * t) * 0.3 * 32767).astype(np.int16))
        if data is not None:
            stream.publish(OpusPacket(seq, seq * SAMPLES_PER_FRAME, data, SPEAKING))
        seq += 1
        due += SAMPLES_PER_FRAME / OPUS_RATE
        await asyncio.sleep(max(due - time.monotonic(), 0.0))


def create_app(fanout: str, packet_ms: int = 20, *, silent: bool = False) -> Starlette:
    stream = PacketStream()
    peers = PeerSessions(
        LOOPBACK,
        fanout=fanout,  # type: ignore[arg-type]
        frames_per_packet=packet_ms // 20,
    )

    async def whep(request: Request) -> Response:
        offer = (await request.body()).decode()
        session_id, answer = await peers.listen(offer, stream=stream)
        return Response(
            answer,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/whep/{session_id}"},
        )

    async def leave(request: Request) -> Response:
        with contextlib.suppress(Exception):
            await peers.close(request.path_params["session_id"])
        return Response(status_code=200)

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "peer_connections": peers.count(),
                "fanout": peers.fanout_path,
                "native_listeners": peers.native_listeners(),
                "fanout_listeners": peers.fanout_listeners(),
            }
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        install_ice_policy(LOOPBACK, asyncio.get_running_loop())
        # Silent: listeners connect and stay (ICE consent, RTCP) but no audio is sent.
        task = asyncio.create_task(asyncio.Event().wait() if silent else publish_tone(stream))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await peers.close_all()

    return Starlette(
        routes=[
            Route("/whep", whep, methods=["POST"]),
            Route("/whep/{session_id}", leave, methods=["DELETE"]),
            Route("/stats", stats, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="WHEP fan-out server (aiortc, batched, native)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fanout", choices=("aiortc", "batched", "native"), default="native")
    parser.add_argument("--packet-ms", type=int, choices=(20, 40, 60), default=20)
    parser.add_argument(
        "--silent", action="store_true", help="send no audio: a listener's cost without it"
    )
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.fanout, args.packet_ms, silent=args.silent),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
