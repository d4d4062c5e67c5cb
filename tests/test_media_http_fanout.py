"""The worker-side Ogg fan-out over real loopback TCP sockets: every listener gets the
response head, the Ogg headers and the same pages; one that stops reading is dropped
once its unsent bytes pass the limit, and the others keep their stream.

The node-level path (handoff from the node process, audio decoded) is in
tests/test_media_workers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from node.media.http_fanout import OggFanout
from node.media.packets import SAMPLES_PER_FRAME, OpusPacket, PacketStream
from node.media.stream import OggOpusPages

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: audio/ogg\r\nconnection: close\r\n\r\n"


def _pair(server: socket.socket) -> tuple[socket.socket, socket.socket]:
    """(client end, accepted end) of one loopback TCP connection."""
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    accepted.setblocking(False)
    client.setblocking(False)
    return client, accepted


async def _read_all(client: socket.socket, into: bytearray) -> None:
    loop = asyncio.get_running_loop()
    while chunk := await loop.sock_recv(client, 65536):
        into += chunk


async def test_a_listener_that_stops_reading_is_dropped_and_the_others_keep_playing() -> None:
    stream = PacketStream()
    fanout = OggFanout(OggOpusPages(stream, packets_per_page=1), max_buffer=16 * 1024)
    gone: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        slow_client, slow = _pair(server)
        fast_client, fast = _pair(server)
        # Small kernel buffers, so the slow listener's backlog reaches user space soon.
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        slow_client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await fanout.attach(slow, "slow", HEAD, gone.append)
        await fanout.attach(fast, "fast", HEAD, gone.append)
        received = bytearray()
        reading = asyncio.create_task(_read_all(fast_client, received))
        try:
            payload = bytes(range(256)) * 4  # 1 KiB "Opus packets": one page each
            for seq in range(400):
                stream.publish(OpusPacket(seq, seq * SAMPLES_PER_FRAME, payload))
                await asyncio.sleep(0.001)
                if gone:
                    break
            assert gone == ["slow"]
            assert fanout.dropped == 1
            assert list(fanout.connections) == ["fast"]
            mark = len(received)
            for seq in range(400, 420):
                stream.publish(OpusPacket(seq, seq * SAMPLES_PER_FRAME, payload))
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.1)
            assert len(received) > mark + 10 * len(payload)  # the other one plays on
            # What it got: the response head, then the Ogg stream from its first page.
            assert received.startswith(HEAD)
            body = bytes(received[len(HEAD) :])
            assert body.startswith(b"OggS")
            assert b"OpusHead" in body[:200] and b"OpusTags" in body[:300]
            # The room ends: the stream ends with the connection.
            stream.close()
            await asyncio.wait_for(reading, 10)
            assert gone == ["slow", "fast"]
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            await fanout.close()
            slow_client.close()
            fast_client.close()


async def test_a_session_closed_by_the_node_ends_only_that_listener() -> None:
    stream = PacketStream()
    fanout = OggFanout(OggOpusPages(stream, packets_per_page=1))
    gone: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        ends = [_pair(server) for _ in range(2)]
        for index, (_client, accepted) in enumerate(ends):
            await fanout.attach(accepted, f"s{index}", HEAD, gone.append)
        got = [bytearray(), bytearray()]
        readers = [
            asyncio.create_task(_read_all(c, g)) for (c, _), g in zip(ends, got, strict=True)
        ]
        try:
            assert fanout.close_session("s0")
            assert not fanout.close_session("nobody")
            await asyncio.wait_for(readers[0], 10)  # its body ended
            for seq in range(5):
                stream.publish(OpusPacket(seq, seq * SAMPLES_PER_FRAME, b"\xf8\x01\x02"))
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            assert gone == ["s0"]
            assert got[1].count(b"OggS") >= 5 + 2  # the other one: headers and pages
            assert not readers[1].done()
        finally:
            for reader in readers:
                reader.cancel()
            await fanout.close()
            for client, _ in ends:
                client.close()


async def test_a_listener_gone_before_the_worker_took_its_socket_is_reported_gone() -> None:
    stream = PacketStream()
    fanout = OggFanout(OggOpusPages(stream, packets_per_page=1))
    gone: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        client, accepted = _pair(server)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # a reset: the player gave up while the node handed it over
        await asyncio.sleep(0.05)
        await fanout.attach(accepted, "late", HEAD, gone.append)
        for seq in range(3):
            stream.publish(OpusPacket(seq, seq * SAMPLES_PER_FRAME, b"\xf8\x01\x02"))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert gone == ["late"]
        assert not fanout.connections
    await fanout.close()
