"""A media worker process: WHEP listeners' peer connections, handed-over Ogg listeners'
and room WebSocket clients' TCP connections (see node/media/workers.py).

Started by the node as ``python -m node.media.worker SETTINGS_JSON [HANDOFF_FD]``; reads
frames on stdin, writes frames on stdout, receives listeners' sockets on the Unix socket
HANDOFF_FD, logs to stderr, and exits at end of stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from typing import Any

from node.media.errors import InvalidOffer, SessionNotFound, StreamClosed
from node.media.http_fanout import OggFanout
from node.media.ice import install_ice_policy
from node.media.packets import PacketStream
from node.media.peers import PeerSessions
from node.media.stream import OggOpusPages
from node.media.workers import (
    ANSWER,
    BATCH,
    CLOSE,
    END,
    GONE,
    LISTEN,
    PACKET,
    WorkerSettings,
    decode_batch,
    decode_handoff,
    decode_packet,
    encode_json,
    read_frame,
)
from node.media.ws_fanout import PING_INTERVAL_S, WsFanout

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
        self.ogg: dict[int, OggFanout] = {}
        self.feeds: dict[int, WsFanout] = {}
        """WebSocket clients, per feed (a room's events)."""
        self._ws_sessions: dict[str, int] = {}
        self._ogg_packets_per_page = settings.ogg_packets_per_page
        self._out = out
        self._tasks: set[asyncio.Task[None]] = set()

    def _send(self, kind: bytes, doc: dict[str, Any]) -> None:
        if not self._out.is_closing():
            self._out.write(encode_json(kind, doc))

    def _closed(self, session_id: str) -> None:
        self._send(GONE, {"session": session_id})

    def _ws_closed(self, session_id: str) -> None:
        feed_id = self._ws_sessions.pop(session_id, None)
        feed = self.feeds.get(feed_id) if feed_id is not None else None
        if feed is not None and not feed.connections:
            del self.feeds[feed_id]  # type: ignore[arg-type]
        self._closed(session_id)

    def _feed(self, feed_id: int) -> WsFanout:
        feed = self.feeds.get(feed_id)
        if feed is None:
            feed = self.feeds[feed_id] = WsFanout()
        return feed

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
        if kind == BATCH:
            feed_id, number, messages, levels = decode_batch(body)
            self._feed(feed_id).broadcast(number, messages, levels)
            return
        doc = json.loads(body)
        if kind == LISTEN:
            self._spawn(self._listen(int(doc["id"]), int(doc["stream"]), str(doc["offer"])))
        elif kind == CLOSE:
            session_id = str(doc["session"])
            feed = self._ws_sessions.get(session_id)
            if feed is not None:
                self._feed(feed).close_session(session_id, int(doc.get("code") or 1000))
                return
            if not any(fanout.close_session(session_id) for fanout in self.ogg.values()):
                self._spawn(self._close(session_id))
        elif kind == END:
            ended = self.streams.pop(int(doc["stream"]), None)
            if ended is not None:
                ended.close()
            # Its Ogg fan-out ends by itself (the pages end with the stream).
            self.ogg.pop(int(doc["stream"]), None)

    def take_connection(self, message: bytes, fds: list[int]) -> None:
        """A listener's TCP socket from the node process (see WorkerPool.hand_off)."""
        socks = [socket.socket(fileno=fd) for fd in fds]
        try:
            doc = decode_handoff(message)
            if len(socks) != 1:
                raise ValueError(f"{len(socks)} descriptors")
        except (ValueError, KeyError) as exc:
            logger.error("bad handoff message: %s", exc)
            for sock in socks:
                sock.close()
            return
        sock = socks[0]
        sock.setblocking(False)
        session_id, head = doc["session"], doc["head"]
        if "feed" in doc:
            self._ws_sessions[session_id] = doc["feed"]
            self._spawn(self._attach_ws(sock, doc["feed"], session_id, head, doc["since"]))
            return
        stream_id = doc["stream"]
        fanout = self.ogg.get(stream_id)
        if fanout is None:
            pages = OggOpusPages(
                self._stream(stream_id), packets_per_page=self._ogg_packets_per_page
            )
            fanout = self.ogg[stream_id] = OggFanout(pages)
        self._spawn(self._attach(fanout, sock, session_id, head))

    async def _attach(
        self, fanout: OggFanout, sock: socket.socket, session_id: str, head: bytes
    ) -> None:
        try:
            await fanout.attach(sock, session_id, head, self._closed)
        except OSError as exc:  # reported gone by attach
            logger.info("handed-over listener %s already gone: %s", session_id, exc)
            sock.close()

    async def _attach_ws(
        self, sock: socket.socket, feed_id: int, session_id: str, head: bytes, since: int
    ) -> None:
        try:
            await self._feed(feed_id).attach(sock, session_id, head, since, self._ws_closed)
        except OSError as exc:  # reported gone by attach
            logger.info("handed-over WebSocket client %s already gone: %s", session_id, exc)
            sock.close()

    async def keepalive(self) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL_S / 4)
            for feed in list(self.feeds.values()):
                feed.keepalive()

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
        keepalive = asyncio.get_running_loop().create_task(self.keepalive())
        while (frame := await read_frame(reader)) is not None:
            self.handle(*frame)
        keepalive.cancel()
        for feed in self.feeds.values():
            feed.close(1001)
        for stream in self.streams.values():
            stream.close()
        for fanout in self.ogg.values():
            await fanout.close()
        await self.peers.close_all()


async def main(settings: WorkerSettings, handoff_fd: int | None = None) -> None:
    loop = asyncio.get_running_loop()
    install_ice_policy(settings.ice, loop)
    reader = asyncio.StreamReader(limit=1 << 21)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # stdout is the frame channel: nothing else may write to it.
    out_pipe = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, out_pipe)
    worker = Worker(settings, transport)
    handoff = _listen_for_handoffs(worker, handoff_fd)
    try:
        await worker.run(reader)
    finally:
        if handoff is not None:
            loop.remove_reader(handoff.fileno())
            handoff.close()
        transport.close()


def _listen_for_handoffs(worker: Worker, fd: int | None) -> socket.socket | None:
    """Read the node process's handed-over sockets from the Unix socket ``fd``."""
    if fd is None:
        return None
    channel = socket.socket(fileno=fd)
    channel.setblocking(False)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        while True:
            try:
                message, fds, _flags, _addr = socket.recv_fds(channel, 65536, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.error("handoff channel failed: %s", exc)
                loop.remove_reader(channel.fileno())
                return
            if not message and not fds:  # the node process closed its end
                loop.remove_reader(channel.fileno())
                return
            worker.take_connection(message, fds)

    loop.add_reader(channel.fileno(), readable)
    return channel


def run() -> None:
    settings = WorkerSettings.from_json(sys.argv[1])
    handoff_fd = int(sys.argv[2]) if len(sys.argv) > 2 else None
    logging.basicConfig(
        level=logging.INFO, format=f"%(levelname)s worker[{os.getpid()}] %(name)s: %(message)s"
    )
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.run(main(settings, handoff_fd))
    else:
        asyncio.run(main(settings, handoff_fd))


if __name__ == "__main__":
    run()
