"""A media worker process: WHEP listeners' peer connections (see node/media/workers.py).

Started by the node as ``python -m node.media.worker SETTINGS_JSON``; reads frames on
stdin, writes frames on stdout, logs to stderr, and exits at end of stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from typing import Any

from node.media.errors import InvalidOffer, SessionNotFound, StreamClosed
from node.media.ice import install_ice_policy
from node.media.packets import PacketStream
from node.media.peers import PeerSessions
from node.media.workers import (
    ANSWER,
    CLOSE,
    END,
    GONE,
    LISTEN,
    PACKET,
    WorkerSettings,
    decode_packet,
    encode_json,
    read_frame,
)

logger = logging.getLogger("node.media.worker")


class Worker:
    def __init__(self, settings: WorkerSettings, out: asyncio.WriteTransport) -> None:
        self.peers = PeerSessions(
            settings.ice,
            max_sdp_bytes=settings.max_sdp_bytes,
            fanout=settings.fanout,
            frames_per_packet=settings.frames_per_packet,
        )
        self.peers.on_closed(self._closed)
        self.streams: dict[int, PacketStream] = {}
        self._out = out
        self._tasks: set[asyncio.Task[None]] = set()

    def _send(self, kind: bytes, doc: dict[str, Any]) -> None:
        if not self._out.is_closing():
            self._out.write(encode_json(kind, doc))

    def _closed(self, session_id: str) -> None:
        self._send(GONE, {"session": session_id})

    def _stream(self, stream_id: int) -> PacketStream:
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = self.streams[stream_id] = PacketStream()
        return stream

    def handle(self, kind: bytes, body: bytes) -> None:
        if kind == PACKET:
            stream_id, packet = decode_packet(body)
            stream = self._stream(stream_id)
            if not stream.closed:
                stream.publish(packet)
            return
        doc = json.loads(body)
        if kind == LISTEN:
            self._spawn(self._listen(int(doc["id"]), int(doc["stream"]), str(doc["offer"])))
        elif kind == CLOSE:
            self._spawn(self._close(str(doc["session"])))
        elif kind == END:
            ended = self.streams.pop(int(doc["stream"]), None)
            if ended is not None:
                ended.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _listen(self, request: int, stream_id: int, offer: str) -> None:
        try:
            session_id, answer = await self.peers.listen(offer, stream=self._stream(stream_id))
        except InvalidOffer as exc:
            self._send(ANSWER, {"id": request, "refused": exc.reason})
            return
        except StreamClosed as exc:
            self._send(ANSWER, {"id": request, "error": str(exc)})
            return
        except Exception as exc:
            logger.exception("listen failed")
            self._send(ANSWER, {"id": request, "error": f"{type(exc).__name__}: {exc}"})
            return
        self._send(ANSWER, {"id": request, "session": session_id, "sdp": answer})

    async def _close(self, session_id: str) -> None:
        with contextlib.suppress(SessionNotFound):  # it may have ended on its own meanwhile
            await self.peers.close(session_id)

    async def run(self, reader: asyncio.StreamReader) -> None:
        while (frame := await read_frame(reader)) is not None:
            self.handle(*frame)
        for stream in self.streams.values():
            stream.close()
        await self.peers.close_all()


async def main(settings: WorkerSettings) -> None:
    loop = asyncio.get_running_loop()
    install_ice_policy(settings.ice, loop)
    reader = asyncio.StreamReader(limit=1 << 21)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # stdout is the frame channel: nothing else may write to it.
    out_pipe = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, out_pipe)
    worker = Worker(settings, transport)
    try:
        await worker.run(reader)
    finally:
        transport.close()


def run() -> None:
    settings = WorkerSettings.from_json(sys.argv[1])
    logging.basicConfig(
        level=logging.INFO, format=f"%(levelname)s worker[{os.getpid()}] %(name)s: %(message)s"
    )
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.run(main(settings))
    else:
        asyncio.run(main(settings))


if __name__ == "__main__":
    run()
