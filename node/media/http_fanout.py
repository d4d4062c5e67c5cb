"""Ogg listeners whose TCP connections were handed to this process (a media worker).

The node process parses the request, checks it, and passes the connection's socket over
a Unix socket (node/media/workers.py); from then on the listener is served here and the
node process does nothing for it. One :class:`OggFanout` per room program builds the
Ogg pages once (:class:`~node.media.stream.OggOpusPages`, as the node process does) and,
in a plain loop, writes each page to every listener's transport: no task per listener,
one ``write`` per listener per page.

The response is close-delimited (``Connection: close``, no chunked framing): the body
ends when the room does, and the socket closes. A listener whose unsent bytes pass
``max_buffer`` (it reads slower than the room plays) is dropped, as in the node process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import cast

from node.media.errors import StreamClosed
from node.media.stream import OggOpusPages

__all__ = ["OggConnection", "OggFanout"]

logger = logging.getLogger(__name__)

MAX_BUFFER = 64 * 1024
"""Unsent bytes (beyond the kernel's socket buffer) at which a listener is dropped:
several seconds of audio at the program's bitrate."""


_RUNNING: set[asyncio.Task[None]] = set()


class OggConnection(asyncio.Protocol):
    """One handed-over listener: writes the response head as soon as it has its
    transport, ignores what the client sends, and reports its end once."""

    def __init__(
        self, session_id: str, head: bytes, on_lost: Callable[[OggConnection], None]
    ) -> None:
        self.session_id = session_id
        self.transport: asyncio.WriteTransport | None = None
        self.started = False
        """Whether the Ogg headers went out (they precede the first data page sent)."""
        self._head = head
        self._on_lost: Callable[[OggConnection], None] | None = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes: no isinstance check.
        self.transport = cast(asyncio.WriteTransport, transport)
        self.transport.write(self._head)

    def data_received(self, data: bytes) -> None:
        pass  # a listener has nothing more to say; pipelined requests are not served

    def eof_received(self) -> bool:
        return True  # keep writing after a half-close (curl -N, some players)

    def connection_lost(self, exc: Exception | None) -> None:
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost(self)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class OggFanout:
    """Writes one program's Ogg pages to every attached connection."""

    def __init__(self, pages: OggOpusPages, *, max_buffer: int = MAX_BUFFER) -> None:
        self.pages = pages
        self.max_buffer = max_buffer
        self.connections: dict[str, OggConnection] = {}
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        """Listeners dropped for reading too slowly."""

    async def attach(
        self,
        sock: socket.socket,
        session_id: str,
        head: bytes,
        on_gone: Callable[[str], None],
    ) -> None:
        """Serve ``sock`` (an accepted TCP socket): ``head`` now, audio from the next page.

        ``on_gone(session_id)`` is called once when the listener is gone, whoever ended it
        (and at once if it already was).
        """

        def lost(connection: OggConnection) -> None:
            if self.connections.pop(connection.session_id, None) is not None:
                on_gone(connection.session_id)

        connection = OggConnection(session_id, head, lost)
        # Listed before the transport exists: a client already gone is reported by lost().
        self.connections[session_id] = connection
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: connection, sock=sock)
        except BaseException:
            lost(connection)
            raise
        if self.connections and (self._task is None or self._task.done()):
            self._task = loop.create_task(self._run(), name="ogg-fanout")
            # The loop keeps only weak references to tasks.
            _RUNNING.add(self._task)
            self._task.add_done_callback(_RUNNING.discard)

    def close_session(self, session_id: str) -> bool:
        connection = self.connections.get(session_id)
        if connection is None:
            return False
        connection.close()
        return True

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.pages.close()
        for connection in list(self.connections.values()):
            connection.close()

    async def _run(self) -> None:
        reader = self.pages.page_reader()
        try:
            while self.connections:
                page = await reader.next()
                headers = b""
                for connection in list(self.connections.values()):
                    transport = connection.transport
                    if transport is None or transport.is_closing():
                        continue
                    if transport.get_write_buffer_size() > self.max_buffer:
                        logger.info("dropping a slow Ogg listener %s", connection.session_id)
                        self.dropped += 1
                        transport.abort()
                        continue
                    if connection.started:
                        transport.write(page.data)
                    else:
                        headers = headers or self.pages.headers(page.seq)
                        transport.write(headers + page.data)
                        connection.started = True
        except StreamClosed:
            for connection in list(self.connections.values()):
                connection.close()  # the room ended: the body ends with the connection
