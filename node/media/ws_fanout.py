"""WebSocket clients whose connections were handed to this process (a media worker).

The node process checks a WebSocket upgrade request (who asks, for which feed), builds
the handshake's 101 answer and the client's first message, and passes the accepted
socket over a Unix socket (node/media/workers.py); from then on the client is served
here. Each feed (one per room) gets every batch of messages once from the node process;
:class:`WsFanout` frames each batch once (server frames are never masked, and nothing is
compressed: the same bytes suit every client) and writes those bytes to each client of
the feed, in a plain loop. Messages marked ``levels`` are left out for a client that said
it reads speaking levels from its audio (``{"type":"levels_source","source":"audio"}``).

What a client sends is read with the sans-I/O protocol of ``websockets`` (masking,
control frames, size limit, closing handshake): ``{"type":"ping"}`` gets a pong, pings
of the protocol get pongs, anything else is ignored. A client that is sent nothing and
says nothing for ``ping_interval`` gets a ``{"type":"ping"}`` (as the node process does);
one whose unsent bytes pass ``max_buffer`` (it reads slower than the room talks, or is
frozen) is dropped.

Ordering: batches are numbered per feed; a handed-over client gets the batches numbered
from its ``since`` on (its first message, built by the node process, already holds what
came before), whichever of the batch and the socket reaches this process first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

__all__ = ["WsConnection", "WsFanout", "text_frames"]

logger = logging.getLogger(__name__)

MAX_BUFFER = 256 * 1024
"""Unsent bytes at which a client is dropped as too slow."""

MAX_MESSAGE = 4096
"""The largest message a client may send (the node process's room WebSocket limit)."""

PING_INTERVAL_S = 20.0
KEPT_BATCHES = 64
"""Batches a feed keeps for a client whose socket arrives after them."""

_PONG = Frame(Opcode.TEXT, b'{"type":"pong"}').serialize(mask=False)
_PING = Frame(Opcode.TEXT, b'{"type":"ping"}').serialize(mask=False)


def text_frames(messages: Sequence[bytes]) -> bytes:
    """``messages`` as unmasked, uncompressed text frames, one after the other."""
    return b"".join(Frame(Opcode.TEXT, m).serialize(mask=False) for m in messages)


class WsConnection(asyncio.Protocol):
    """One handed-over client: writes ``head`` (the 101 answer and first message) as
    soon as it has its transport, reads what the client says, reports its end once."""

    def __init__(
        self,
        session_id: str,
        head: bytes,
        since: int,
        on_lost: Callable[[WsConnection], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id = session_id
        self.since = since
        """The number of the first batch this client is to get."""
        self.levels_in_audio = False
        self.transport: asyncio.WriteTransport | None = None
        self.last_activity = clock()
        self._clock = clock
        self._head = head
        self._protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX_MESSAGE)
        self._on_lost: Callable[[WsConnection], None] | None = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes: no isinstance check.
        self.transport = cast(asyncio.WriteTransport, transport)
        self.transport.write(self._head)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._clock()
        self._protocol.receive_data(data)
        for frame in self._protocol.events_received():
            if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT and frame.fin:
                self._message(bytes(frame.data))
        self._flush_protocol()

    def _message(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "ping":
            self.write(_PONG)
        elif message.get("type") == "levels_source":
            self.levels_in_audio = message.get("source") == "audio"

    def _flush_protocol(self) -> None:
        """Write what the protocol has to say (pongs, the closing handshake); close the
        connection once the protocol expects it closed."""
        if self.transport is None or self.transport.is_closing():
            return
        for data in self._protocol.data_to_send():
            if data:
                self.transport.write(data)
        if self._protocol.close_expected() or self._protocol.state is State.CLOSED:
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # the client went away: close

    def connection_lost(self, exc: Exception | None) -> None:
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost(self)

    def write(self, data: bytes) -> bool:
        """Queue ``data``; False (and the connection dropped) if the client is too slow."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > MAX_BUFFER:
            logger.info("dropping a slow WebSocket client %s", self.session_id)
            transport.abort()
            return False
        transport.write(data)
        return True

    def close(self, code: int) -> None:
        """End the connection with a close frame carrying ``code``."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self._protocol.send_close(code)
        except InvalidState:  # already closing
            pass
        self._flush_protocol()
        if not self.transport.is_closing():
            self.transport.close()


class WsFanout:
    """One feed's clients: each batch framed once, written to every client."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.connections: dict[str, WsConnection] = {}
        self._kept: deque[tuple[int, bytes, bytes]] = deque(maxlen=KEPT_BATCHES)
        self._next = 0
        """The number of the next batch expected."""
        self._clock = clock
        self.dropped = 0

    async def attach(
        self,
        sock: object,
        session_id: str,
        head: bytes,
        since: int,
        on_gone: Callable[[str], None],
    ) -> None:
        """Serve ``sock`` (an accepted TCP socket): ``head``, then the batches from
        number ``since`` on. ``on_gone(session_id)`` is called once when it ends."""

        def lost(connection: WsConnection) -> None:
            if self.connections.pop(connection.session_id, None) is not None:
                on_gone(connection.session_id)

        connection = WsConnection(session_id, head, since, lost, self._clock)
        self.connections[session_id] = connection
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: connection, sock=sock)  # type: ignore[arg-type]
        except BaseException:
            lost(connection)
            raise
        # Batches that came before the socket did.
        for number, everything, state in self._kept:
            if number >= since:
                data = state if connection.levels_in_audio else everything
                if data and not connection.write(data):
                    self.dropped += 1
                    break

    def broadcast(self, number: int, messages: Sequence[bytes], levels: Sequence[bool]) -> None:
        """Batch ``number``: ``messages`` (``levels[i]``: message i is a ``levels`` one)."""
        everything = text_frames(messages)
        state = everything
        if any(levels):
            pairs = zip(messages, levels, strict=True)
            state = text_frames([m for m, is_levels in pairs if not is_levels])
        self._kept.append((number, everything, state))
        self._next = number + 1
        for connection in list(self.connections.values()):
            if connection.since > number:
                continue
            data = state if connection.levels_in_audio else everything
            if data and not connection.write(data):
                self.dropped += 1

    def keepalive(self) -> None:
        """A ``{"type":"ping"}`` to every client quiet for ``PING_INTERVAL_S``."""
        now = self._clock()
        for connection in list(self.connections.values()):
            if now - connection.last_activity >= PING_INTERVAL_S:
                connection.last_activity = now
                if not connection.write(_PING):
                    self.dropped += 1

    def close_session(self, session_id: str, code: int) -> bool:
        connection = self.connections.get(session_id)
        if connection is None:
            return False
        connection.close(code)
        return True

    def close(self, code: int) -> None:
        for connection in list(self.connections.values()):
            connection.close(code)
