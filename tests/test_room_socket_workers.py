"""Room WebSockets served by media workers ([media] workers): the node process checks the
upgrade and hands the connection over; batches of the room's events reach each worker
once and are framed once there (node/media/ws_fanout.py). The protocol itself is tested
on every path in tests/test_room_socket.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from node.media.workers import BATCH, decode_batch, encode_batch, read_frame
from node.media.ws_fanout import MAX_BUFFER, WsFanout
from tests.conftest import Api, NodeProcess
from tests.test_room_socket import member_event, next_of
from tests.test_room_socket import socket as room_socket


def in_workers(api: Api) -> list[int]:
    return list(api.http.get("/api/v1/node/stats").json()["media_workers"]["websockets"])


def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def workers_of(node: NodeProcess) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                cmdline = cmd.read()
        except OSError:
            continue
        if ppid == node.process.pid and b"node.media.worker" in cmdline:  # type: ignore[union-attr]
            out.append(int(pid))
    return out


def test_handover_on_the_asyncio_loop_and_the_h11_parser(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    node = node_factory(node={"event_loop": "asyncio", "http_parser": "h11"}, media={"workers": 1})
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host)
    with room_socket(api, room, host) as ws:
        assert next_of(ws, "snapshot")["you"]["role"] == "host"
        assert in_workers(api) == [1]
        api.request("PATCH", f"/api/v1/rooms/{room['id']}", host, json={"title": "Renamed"})
        assert next_of(ws, "room")["room"]["title"] == "Renamed"
    until(lambda: in_workers(api) == [0], "the worker reports the socket gone")
    log = node.log()
    assert "Traceback" not in log
    assert "ASGI callable" not in log


def test_a_worker_that_dies_lets_its_watchers_go(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    node = node_factory(media={"workers": 1})
    api = api_factory(node)
    host = api.signup("host")
    bob = api.signup("bob")
    room = api.live_room(host)
    url = f"/api/v1/rooms/{room['id']}"
    with room_socket(api, room, host) as host_ws:
        next_of(host_ws, "snapshot")
        with room_socket(api, room, bob) as bob_ws:
            next_of(bob_ws, "snapshot")
            next_of(host_ws, "member", member_event("bob", connected=True))
            assert in_workers(api) == [2]
            for pid in workers_of(node):
                os.kill(pid, signal.SIGKILL)
            with pytest.raises((ConnectionClosed, TimeoutError)):
                while True:
                    bob_ws.recv(timeout=10)
        # The node process learnt they are gone: bob is no longer connected.
        until(
            lambda: (
                not any(
                    m["username"] == "bob" and m["connected"]
                    for m in api.http.get(url).json()["audience"]
                )
            ),
            "bob gone from the audience",
        )
    until(lambda: len(workers_of(node)) == 1, "the worker started again")
    until(lambda: "media_workers" in api.http.get("/api/v1/node/stats").json(), "stats")
    with room_socket(api, room, host) as again:
        next_of(again, "snapshot")
        until(lambda: in_workers(api) == [1], "a new socket in the new worker")


async def test_batches_round_trip_through_the_pipe() -> None:
    messages = [(b'{"type":"levels","levels":{}}', True), ('{"é":1}'.encode(), False)]
    reader = asyncio.StreamReader()
    reader.feed_data(encode_batch(9, 70000, messages))
    frame = await read_frame(reader)
    assert frame is not None and frame[0] == BATCH
    assert decode_batch(frame[1]) == (9, 70000, [m for m, _ in messages], [True, False])
    with pytest.raises(ValueError, match="past the frame"):
        decode_batch(frame[1][:-2])


class Client:
    """The far end of a socketpair, reading frames as a WebSocket client does."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.protocol = Protocol(Side.CLIENT, state=State.OPEN)
        self.head = b""

    async def texts(self, count: int, *, head: bytes = b"") -> list[str]:
        loop = asyncio.get_running_loop()
        buffer = b""
        while len(self.head) < len(head):
            buffer += await loop.sock_recv(self.sock, 65536)
            self.head, buffer = buffer[: len(head)], buffer[len(head) :]
        self.protocol.receive_data(buffer)
        got: list[str] = []
        while True:
            got += [
                bytes(f.data).decode()
                for f in self.protocol.events_received()
                if isinstance(f, Frame) and f.opcode is Opcode.TEXT
            ]
            if len(got) >= count:
                return got
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 5)
            if not data:
                return got
            self.protocol.receive_data(data)

    def send(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        for data in self.protocol.data_to_send():
            self.sock.sendall(data)


async def test_a_feed_frames_once_keeps_order_and_filters_levels() -> None:
    fanout = WsFanout()
    gone: list[str] = []
    ours, theirs = socket.socketpair()
    early, early_far = socket.socketpair()
    for s in (ours, theirs, early, early_far):
        s.setblocking(False)
    await fanout.attach(early, "early", b"HEAD", 0, gone.append)
    levels = b'{"type":"levels","levels":{"a":0.5}}'
    member = b'{"type":"member"}'
    fanout.broadcast(0, [levels], [True])
    fanout.broadcast(1, [member, levels], [False, True])
    # A socket that arrives after batch 1 was sent, meant to get batches from 1 on.
    await fanout.attach(ours, "late", b"HEAD", 1, gone.append)
    client = Client(theirs)
    assert await client.texts(2, head=b"HEAD") == [member.decode(), levels.decode()]
    assert client.head == b"HEAD"
    first = Client(early_far)
    assert len(await first.texts(3, head=b"HEAD")) == 3
    # Reading levels from its audio: the next batches come without them.
    client.send('{"type":"levels_source","source":"audio"}')
    client.send('{"type":"ping"}')
    assert await client.texts(1) == ['{"type":"pong"}']
    fanout.broadcast(2, [levels, member], [True, False])
    assert await client.texts(1) == [member.decode()]
    assert await first.texts(2) == [levels.decode(), member.decode()]
    # Closed by the node (a kick): a close frame with the code, then the end.
    fanout.close_session("late", 4001)
    await client.texts(1)
    assert client.protocol.close_rcvd is not None and client.protocol.close_rcvd.code == 4001
    await asyncio.sleep(0.05)
    assert gone == ["late"]
    for s in (theirs, early_far):
        s.close()


async def test_a_client_that_does_not_read_is_dropped() -> None:
    fanout = WsFanout()
    gone: list[str] = []
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    await fanout.attach(ours, "slow", b"", 0, gone.append)
    big = json.dumps({"type": "room", "pad": "x" * 60_000}).encode()
    number = 0
    while not gone and number < 10 * MAX_BUFFER // len(big):
        fanout.broadcast(number, [big], [False])
        number += 1
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert gone == ["slow"] and fanout.dropped >= 1
    assert fanout.connections == {}
    theirs.close()
