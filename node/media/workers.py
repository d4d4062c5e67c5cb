"""Listeners served by worker processes, so a node uses every core.

One Python process is one core. With ``[media] workers = N`` the node process keeps
rooms, mixing, speakers, HTTP requests and signaling, and N worker processes
(``python -m node.media.worker``) hold the listeners:

- WHEP listeners' peer connections: ICE, DTLS, SRTP, RTCP and the batched RTP fan-out
  (node/media/fanout.py) all run there, on the worker's own UDP sockets, so a listener's
  media never passes through the node process;
- Ogg (HTTP) listeners' TCP connections: the node process answers the request's checks,
  then passes the accepted socket to a worker (``SCM_RIGHTS`` over a Unix socket, one
  per worker) with the response head; the worker writes the head and the room's Ogg
  pages (node/media/http_fanout.py) until the room ends or the listener leaves. The
  listener keeps the same URL, port and connection (it works behind a reverse proxy).

The node process talks to each worker over the worker's stdin/stdout pipes:

- a WHEP offer goes to the worker with the fewest listeners; its answer comes back
  (the SDP carries that worker's ICE candidates);
- each room program a worker serves is sent to it once per packet (one pipe write per
  worker per 20 ms, whatever the number of listeners), and the worker republishes it to
  its own :class:`~node.media.packets.PacketStream`;
- a close goes one way, a peer that went away (failed, timed out) comes back as "gone".

- room WebSocket clients' TCP connections: the node process checks the upgrade request,
  builds the handshake's answer and the client's first message (the room's snapshot),
  and hands the socket over as it does an Ogg listener's; each batch of the room's
  events then goes to every worker holding clients of it once (``BATCH`` frames,
  ``broadcast``), and the worker frames it once and writes the bytes to each client
  (node/media/ws_fanout.py). The node process's share stays flat in the number of
  clients; their end comes back as "gone".

Handed-over sockets go on the Unix socket (``SOCK_SEQPACKET``: one message per listener,
the socket as ancillary data, the body JSON with session id, program id and the
response head); they are counted as sessions like WHEP listeners.

A worker that dies takes its listeners with it (they are reported gone, as a crash of a
single-process node would) and is started again. Workers read their stdin until EOF, so
they end with the node process however it ends.

Frames on the pipes: 4-byte big-endian length of what follows, one byte of kind, then
the body (JSON for control, a fixed header and the Opus payload for packets).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from node.media.errors import InvalidOffer, SessionNotFound, StreamClosed, WorkerUnavailable
from node.media.ice import IceSettings
from node.media.packets import MAX_CSRCS, Contributors, OpusPacket, PacketStream
from node.media.peers import FanoutMode, check_offer

__all__ = [
    "WorkerPool",
    "WorkerSettings",
    "decode_packet",
    "encode_frame",
    "decode_handoff",
    "encode_handoff",
    "encode_packet",
    "read_frame",
]

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("!IB")
_PACKET = struct.Struct("!IIQB")  # stream id, seq, pts, CSRC count (NO_CONTRIBUTORS: none)
_LEVEL = struct.Struct("!B")  # the packet's -dBov level
_SOURCE = struct.Struct("!IB")  # a contributing source and its -dBov level
NO_CONTRIBUTORS = 0xFF
"""The count byte of a packet that says nothing of its contributors (a relayed program)."""

LISTEN, CLOSE, PACKET, END, BATCH = b"L", b"C", b"P", b"E", b"B"
"""Node process -> worker: a WHEP offer, a close, a program packet, a program's end, a
batch of messages for a feed's WebSocket clients."""
ANSWER, GONE = b"A", b"G"
"""Worker -> node process: the answer (or refusal) to an offer, a session that ended."""

MAX_FRAME = 1 << 20
"""No frame is bigger (SDP is limited to [media] max_sdp_bytes, packets to ~1.3 KB)."""

MAX_BACKLOG = 256 * 1024
"""Bytes queued to one worker's pipe beyond which its packets are dropped (it is stuck:
it gets a gap, the room does not wait for it)."""

OGG_WEIGHT = 0.15
"""What an Ogg listener costs a worker next to a WebRTC listener on the native fan-out
(bench/RESULTS.md: bench_workers, 0.0052 % of a core per Ogg listener; 0.037 % per
WebRTC listener a worker holds, 2026-11-30), so that placement balances CPU rather
than connections."""

WS_WEIGHT = 0.06
"""What a handed-over room WebSocket costs a worker next to a WebRTC listener, for
placement (bench/RESULTS.md, 2026-11-30 18:40 and 18:51: 0.0026 % of a core per
WebSocket, 0.045 % per browser-like listener a worker holds)."""

_BATCH = struct.Struct("!IIH")  # feed id, batch number, message count
_MESSAGE = struct.Struct("!BI")  # 1 if a levels message, length

ANSWER_TIMEOUT = 30.0
"""A worker that does not answer an offer in this time has failed it."""


def encode_frame(kind: bytes, body: bytes) -> bytes:
    return _FRAME.pack(len(body) + 1, kind[0]) + body


def encode_json(kind: bytes, doc: dict[str, Any]) -> bytes:
    return encode_frame(kind, json.dumps(doc, separators=(",", ":")).encode())


def encode_packet(stream_id: int, packet: OpusPacket) -> bytes:
    """A program packet for the workers, with its contributors (the speakers' CSRCs)."""
    contributors = packet.contributors
    if contributors is None:
        head = _PACKET.pack(stream_id, packet.seq & 0xFFFFFFFF, packet.pts, NO_CONTRIBUTORS)
    else:
        sources = contributors.sources
        head = b"".join(
            (
                _PACKET.pack(stream_id, packet.seq & 0xFFFFFFFF, packet.pts, len(sources)),
                _LEVEL.pack(contributors.level),
                *(_SOURCE.pack(csrc, level) for csrc, level in sources),
            )
        )
    return encode_frame(PACKET, head + packet.data)


def decode_packet(body: bytes) -> tuple[int, OpusPacket]:
    stream_id, seq, pts, count = _PACKET.unpack_from(body)
    offset = _PACKET.size
    contributors = None
    if count != NO_CONTRIBUTORS:
        if count > MAX_CSRCS:
            raise ValueError(f"{count} contributing sources")
        (level,) = _LEVEL.unpack_from(body, offset)
        offset += _LEVEL.size
        sources = []
        for _ in range(count):
            sources.append(_SOURCE.unpack_from(body, offset))
            offset += _SOURCE.size
        contributors = Contributors(level, tuple(sources))
    return stream_id, OpusPacket(seq, pts, body[offset:], contributors)


def encode_handoff(
    session_id: str, stream_id: int, head: bytes, *, feed: int | None = None, since: int = 0
) -> bytes:
    """A handed-over socket's message: an Ogg listener of program ``stream_id``, or (with
    ``feed``) a WebSocket client of that feed, to get its batches from ``since`` on."""
    doc: dict[str, Any] = {"session": session_id, "head": head.decode("latin-1")}
    if feed is None:
        doc["stream"] = stream_id
    else:
        doc["feed"], doc["since"] = feed, since
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_handoff(message: bytes) -> dict[str, Any]:
    doc = json.loads(message)
    out: dict[str, Any] = {
        "session": str(doc["session"]),
        "head": str(doc["head"]).encode("latin-1"),
    }
    if "feed" in doc:
        out["feed"], out["since"] = int(doc["feed"]), int(doc["since"])
    else:
        out["stream"] = int(doc["stream"])
    return out


def encode_batch(feed: int, number: int, messages: list[tuple[bytes, bool]]) -> bytes:
    """Batch ``number`` of ``feed``: (message, is a levels message) pairs."""
    parts = [_BATCH.pack(feed, number, len(messages))]
    for data, is_levels in messages:
        parts += [_MESSAGE.pack(1 if is_levels else 0, len(data)), data]
    return encode_frame(BATCH, b"".join(parts))


def decode_batch(body: bytes) -> tuple[int, int, list[bytes], list[bool]]:
    feed, number, count = _BATCH.unpack_from(body)
    offset = _BATCH.size
    messages, levels = [], []
    for _ in range(count):
        flag, length = _MESSAGE.unpack_from(body, offset)
        offset += _MESSAGE.size
        if offset + length > len(body):
            raise ValueError("a batch message runs past the frame")
        messages.append(body[offset : offset + length])
        levels.append(bool(flag))
        offset += length
    return feed, number, messages, levels


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next (kind, body), or None at end of file."""
    try:
        head = await reader.readexactly(_FRAME.size)
    except asyncio.IncompleteReadError:
        return None
    length, kind = _FRAME.unpack(head)
    if not 1 <= length <= MAX_FRAME:
        raise ValueError(f"bad frame length {length}")
    try:
        body = await reader.readexactly(length - 1)
    except asyncio.IncompleteReadError:
        return None
    return bytes([kind]), body


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs to know, given to it as JSON on its command line."""

    ice: IceSettings
    max_sdp_bytes: int = 16384
    fanout: FanoutMode = "native"
    frames_per_packet: int = 1
    event_loop: str = "asyncio"
    ogg_packets_per_page: int = 10

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSettings:
        raw = json.loads(text)
        ice = raw.pop("ice")
        ice = IceSettings(
            ice_servers=tuple(ice["ice_servers"]),
            host_addresses=tuple(ice["host_addresses"]),
            udp_port_min=ice["udp_port_min"],
            udp_port_max=ice["udp_port_max"],
        )
        return cls(ice=ice, **raw)


@dataclass(eq=False)
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    handoff: socket.socket
    """The node process's end of the Unix socket that carries listeners' sockets."""
    sessions: dict[str, PacketStream] = field(default_factory=dict)
    http: set[str] = field(default_factory=set)
    """Which of ``sessions`` are handed-over Ogg listeners (the rest are WHEP)."""
    ws: dict[str, int] = field(default_factory=dict)
    """Handed-over WebSocket clients (not in ``sessions``): session id -> feed id."""
    per_feed: dict[int, int] = field(default_factory=dict)
    per_stream: dict[PacketStream, int] = field(default_factory=dict)
    """Listeners of each program on this worker (the pump's targets)."""
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    reader_task: asyncio.Task[None] | None = None
    dropped: int = 0
    joining: int = 0
    """Offers sent and not answered yet (counted when placing the next one)."""

    @property
    def load(self) -> float:
        """What placing one more listener compares: WHEP sessions (joining or joined)
        count 1, Ogg listeners ``OGG_WEIGHT``."""
        ogg = len(self.http)
        return (
            len(self.sessions) - ogg + self.joining + ogg * OGG_WEIGHT + len(self.ws) * WS_WEIGHT
        )

    def send(self, frame: bytes, *, droppable: bool = False) -> bool:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing():
            return False
        if droppable and stdin.transport.get_write_buffer_size() > MAX_BACKLOG:
            self.dropped += 1
            return False
        stdin.write(frame)
        return True

    def attach(self, session_id: str, stream: PacketStream, *, http: bool = False) -> None:
        self.sessions[session_id] = stream
        if http:
            self.http.add(session_id)
        self.per_stream[stream] = self.per_stream.get(stream, 0) + 1

    def detach(self, session_id: str) -> None:
        feed = self.ws.pop(session_id, None)
        if feed is not None:
            left = self.per_feed[feed] - 1
            if left:
                self.per_feed[feed] = left
            else:
                del self.per_feed[feed]
            return
        self.http.discard(session_id)
        stream = self.sessions.pop(session_id, None)
        if stream is not None:
            left = self.per_stream[stream] - 1
            if left:
                self.per_stream[stream] = left
            else:
                del self.per_stream[stream]


class WorkerPool:
    """The node process's end: same listener interface as
    :class:`~node.media.peers.PeerSessions` (``listen``, ``close``, ``count``,
    ``on_closed``, ``close_all``)."""

    def __init__(self, count: int, settings: WorkerSettings) -> None:
        if count < 1:
            raise ValueError("a pool needs at least one worker")
        self._count = count
        self._settings = settings
        self._workers: list[_Worker | None] = [None] * count
        self._sessions: dict[str, _Worker] = {}
        self._stream_ids: dict[PacketStream, int] = {}
        self._feeds: dict[object, list[int]] = {}
        """A feed's key -> [its id, the number of its next batch]."""
        self._pumps: dict[PacketStream, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)
        self._callbacks: list[Callable[[str], None]] = []
        self._closing = False
        self._restarting: set[asyncio.Task[None]] = set()
        self.restarts = 0
        """Workers started again after they died."""

    # -- the listener interface ---------------------------------------------------------

    def count(self) -> int:
        """WHEP sessions (peer connections) held by the workers."""
        return len(self._sessions) - self.http_count() - self.ws_count()

    def http_count(self) -> int:
        """Ogg listeners handed over to the workers."""
        return sum(len(w.http) for w in self._workers if w is not None)

    def on_closed(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    async def listen(self, offer_sdp: str, *, stream: PacketStream) -> tuple[str, str]:
        check_offer(offer_sdp, max_bytes=self._settings.max_sdp_bytes, directions=("recvonly",))
        if stream.closed:
            raise StreamClosed("the room's program ended")
        worker = self._least_loaded()
        stream_id = self._stream_id(stream)
        request = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        worker.pending[request] = future
        worker.joining += 1
        worker.send(encode_json(LISTEN, {"id": request, "stream": stream_id, "offer": offer_sdp}))
        try:
            reply = await asyncio.wait_for(future, ANSWER_TIMEOUT)
        except TimeoutError:
            raise WorkerUnavailable("the media worker did not answer") from None
        finally:
            worker.pending.pop(request, None)
            worker.joining -= 1
        if "refused" in reply:
            raise InvalidOffer(str(reply["refused"]))
        if "error" in reply:
            raise WorkerUnavailable(f"the media worker failed: {reply['error']}")
        session_id = str(reply["session"])
        if worker.process.returncode is not None:
            raise WorkerUnavailable("the media worker stopped")
        worker.attach(session_id, stream)
        self._sessions[session_id] = worker
        self._ensure_pump(stream)
        return session_id, str(reply["sdp"])

    def hand_off(self, sock: socket.socket, *, stream: PacketStream, head: bytes) -> str:
        """Give an Ogg listener's accepted TCP socket to the least loaded worker.

        The worker writes ``head`` (the HTTP response head) and then the program's Ogg
        pages; returns the listener's session id (ended like a WHEP session). The caller
        still holds its own descriptor and closes it (without shutting the connection
        down). Raises :class:`WorkerUnavailable` if no worker can take it now (the caller
        serves the listener itself).
        """
        if stream.closed:
            raise StreamClosed("the room's program ended")
        worker = self._least_loaded()
        session_id = "h" + secrets.token_urlsafe(15)
        message = encode_handoff(session_id, self._stream_id(stream), head)
        rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", sock.fileno()))
        try:
            sent = worker.handoff.sendmsg([message], [rights])
        except OSError as exc:  # full (a stuck worker) or closed (a dead one)
            raise WorkerUnavailable(f"the media worker cannot take the listener: {exc}") from exc
        if sent != len(message):
            raise WorkerUnavailable("the handoff message was cut")
        worker.attach(session_id, stream, http=True)
        self._sessions[session_id] = worker
        self._ensure_pump(stream)
        return session_id

    def hand_off_ws(self, sock: socket.socket, *, feed: object, head: bytes) -> str:
        """Give a WebSocket client's accepted TCP socket to the least loaded worker.

        ``head`` is the handshake's answer and the client's first message (bytes to write
        as they are); from then on the client gets each batch of ``feed`` (any hashable
        key, e.g. a room) sent with :meth:`broadcast` after this call. Returns its session
        id (ended with :meth:`close_ws`; its end comes to the ``on_closed`` callbacks).
        Raises :class:`WorkerUnavailable` if no worker can take it now.
        """
        worker = self._least_loaded()
        ids = self._feeds.get(feed)
        if ids is None:
            ids = self._feeds[feed] = [next(self._ids), 0]
        feed_id, since = ids
        session_id = "w" + secrets.token_urlsafe(15)
        message = encode_handoff(session_id, 0, head, feed=feed_id, since=since)
        rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", sock.fileno()))
        try:
            sent = worker.handoff.sendmsg([message], [rights])
        except OSError as exc:
            raise WorkerUnavailable(f"the media worker cannot take the client: {exc}") from exc
        if sent != len(message):
            raise WorkerUnavailable("the handoff message was cut")
        worker.ws[session_id] = feed_id
        worker.per_feed[feed_id] = worker.per_feed.get(feed_id, 0) + 1
        self._sessions[session_id] = worker
        return session_id

    def broadcast(self, feed: object, messages: list[tuple[bytes, bool]]) -> None:
        """One batch of messages (each with: is it a ``levels`` message) to every worker
        holding clients of ``feed``, once per worker."""
        ids = self._feeds.get(feed)
        if ids is None:
            return
        feed_id, number = ids
        ids[1] = number + 1
        frame = encode_batch(feed_id, number, messages)
        for worker in self._workers:
            if worker is not None and feed_id in worker.per_feed:
                worker.send(frame)

    def close_ws(self, session_id: str, code: int) -> None:
        """End a handed-over WebSocket client with close ``code``."""
        worker = self._sessions.get(session_id)
        if worker is None or session_id not in worker.ws:
            return
        worker.send(encode_json(CLOSE, {"session": session_id, "code": code}))
        self._gone(worker, session_id)

    def forget_feed(self, feed: object) -> None:
        """``feed`` has no more batches (its clients were closed)."""
        self._feeds.pop(feed, None)

    def ws_count(self) -> int:
        return sum(len(w.ws) for w in self._workers if w is not None)

    async def close(self, session_id: str) -> None:
        worker = self._sessions.get(session_id)
        if worker is None:
            raise SessionNotFound(session_id)
        worker.send(encode_json(CLOSE, {"session": session_id}))
        self._gone(worker, session_id)

    async def close_all(self) -> None:
        self._closing = True
        for task in [*self._pumps.values(), *self._restarting]:
            task.cancel()
        self._pumps.clear()
        workers = [w for w in self._workers if w is not None]
        for worker in workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 5)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            if worker.reader_task is not None:
                worker.reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.reader_task
            worker.handoff.close()
        for session_id in list(self._sessions):
            self._gone(self._sessions[session_id], session_id)

    # -- workers --------------------------------------------------------------------------

    def _least_loaded(self) -> _Worker:
        worker = min(
            (w for w in self._workers if w is not None and w.process.returncode is None),
            key=lambda w: w.load,
            default=None,
        )
        if worker is None:
            raise WorkerUnavailable("no media worker is running")
        return worker

    async def start(self) -> None:
        for index in range(self._count):
            await self._spawn(index)

    def stats(self) -> dict[str, Any]:
        return {
            "workers": self._count,
            "listeners": [len(w.sessions) if w is not None else 0 for w in self._workers],
            "http_listeners": [len(w.http) if w is not None else 0 for w in self._workers],
            "websockets": [len(w.ws) if w is not None else 0 for w in self._workers],
            "restarts": self.restarts,
            "dropped_packets": sum(w.dropped for w in self._workers if w is not None),
        }

    async def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "node.media.worker",
                self._settings.to_json(),
                str(theirs.fileno()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        worker = _Worker(index, process, ours)
        self._workers[index] = worker
        worker.reader_task = asyncio.get_running_loop().create_task(
            self._read(worker), name=f"media-worker-{index}"
        )
        logger.info("media worker %d started (pid %d)", index, process.pid)

    async def _read(self, worker: _Worker) -> None:
        assert worker.process.stdout is not None
        try:
            while (frame := await read_frame(worker.process.stdout)) is not None:
                kind, body = frame
                doc = json.loads(body)
                if kind == ANSWER:
                    future = worker.pending.get(int(doc["id"]))
                    if future is not None and not future.done():
                        future.set_result(doc)
                elif kind == GONE:
                    session_id = str(doc["session"])
                    if self._sessions.get(session_id) is worker:
                        self._gone(worker, session_id)
        except (ValueError, KeyError) as exc:
            logger.error("media worker %d sent a bad frame: %s", worker.index, exc)
            worker.process.kill()
        await worker.process.wait()
        worker.handoff.close()
        self._worker_died(worker)

    def _worker_died(self, worker: _Worker) -> None:
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(WorkerUnavailable("the media worker stopped"))
        for session_id in [*worker.sessions, *worker.ws]:
            self._gone(worker, session_id)
        if self._closing or self._workers[worker.index] is not worker:
            return
        logger.error(
            "media worker %d (pid %d) exited with %s; starting it again",
            worker.index,
            worker.process.pid,
            worker.process.returncode,
        )
        self.restarts += 1
        self._workers[worker.index] = None
        # Held until done: the loop keeps only a weak reference to a task.
        task = asyncio.get_running_loop().create_task(self._spawn(worker.index))
        self._restarting.add(task)
        task.add_done_callback(self._restarting.discard)

    def _gone(self, worker: _Worker, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        worker.detach(session_id)
        for callback in self._callbacks:
            try:
                callback(session_id)
            except Exception:
                logger.exception("on_closed callback failed for session %s", session_id)

    # -- programs -------------------------------------------------------------------------

    def _stream_id(self, stream: PacketStream) -> int:
        stream_id = self._stream_ids.get(stream)
        if stream_id is None:
            stream_id = self._stream_ids[stream] = next(self._ids)
        return stream_id

    def _ensure_pump(self, stream: PacketStream) -> None:
        task = self._pumps.get(stream)
        if task is None or task.done():
            self._pumps[stream] = asyncio.get_running_loop().create_task(
                self._pump(stream), name="media-worker-pump"
            )

    async def _pump(self, stream: PacketStream) -> None:
        """Send each packet of ``stream`` once to every worker with a listener of it."""
        stream_id = self._stream_ids[stream]
        reader = stream.reader()
        reader.position = stream.published
        try:
            while True:
                targets = [w for w in self._workers if w is not None and stream in w.per_stream]
                if not targets:
                    break
                packet = await reader.next()
                frame = encode_packet(stream_id, packet)
                for worker in targets:
                    worker.send(frame, droppable=True)
        except StreamClosed:
            end = encode_json(END, {"stream": stream_id})
            for each in self._workers:
                if each is not None:
                    each.send(end)
            self._stream_ids.pop(stream, None)
        finally:
            if self._pumps.get(stream) is asyncio.current_task():
                del self._pumps[stream]
