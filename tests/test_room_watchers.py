"""A room's events to its WebSocket clients: encoded once per room and tick, the same
strings to every watcher, levels left out for watchers that read them from the audio,
a slow watcher dropped (node/onair/watchers.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from node.onair.watchers import MAILBOX_SIZE, RoomWatchers, Watcher


def drain(watcher: Watcher) -> list[Any]:
    items = []
    while not watcher.queue.empty():
        items.append(watcher.queue.get_nowait())
    return items


async def next_tick() -> None:
    await asyncio.sleep(0)


async def test_events_of_one_tick_reach_every_watcher_as_the_same_strings() -> None:
    dropped: list[Watcher] = []
    room = RoomWatchers(dropped=dropped.append)
    alice, guest = Watcher("alice"), Watcher(None)
    room.add(alice)
    room.add(guest)
    member = {"type": "member", "member": {"username": "bob", "muted": False}}
    levels = {"type": "levels", "levels": {"bob": 0.5}}
    room.publish(member)
    room.publish(levels)
    assert drain(alice) == []  # gathered until the end of the tick
    await next_tick()
    (mine,), (theirs,) = drain(alice), drain(guest)
    # One queue entry per tick, the very same tuple of the very same strings.
    assert mine is theirs
    assert [json.loads(text) for text in mine] == [member, levels]
    assert dropped == []


async def test_levels_are_left_out_for_a_watcher_that_reads_them_from_the_audio() -> None:
    room = RoomWatchers(dropped=lambda w: None)
    ring_reader, plain = Watcher(None), Watcher(None)
    ring_reader.levels_in_audio = True
    other_reader = Watcher(None)
    other_reader.levels_in_audio = True
    for watcher in (ring_reader, plain, other_reader):
        room.add(watcher)
    room.publish({"type": "levels", "levels": {"bob": 0.5}})
    await next_tick()
    assert drain(ring_reader) == []  # nothing at all, not an empty message
    assert [json.loads(t)["type"] for (batch,) in [drain(plain)] for t in batch] == ["levels"]
    room.publish({"type": "levels", "levels": {}})
    room.publish({"type": "listeners", "listener_count": 3})
    await next_tick()
    (batch,), (same,) = drain(ring_reader), drain(other_reader)
    assert [json.loads(t)["type"] for t in batch] == ["listeners"]
    assert batch is same  # the filtered batch is built once too
    assert [json.loads(t)["type"] for t in drain(plain)[0]] == ["levels", "listeners"]


async def test_a_watcher_that_cannot_keep_up_is_dropped_and_closed() -> None:
    dropped: list[Watcher] = []
    room = RoomWatchers(dropped=dropped.append)
    slow, fast = Watcher("slow"), Watcher("fast")
    room.add(slow)
    room.add(fast)
    for n in range(MAILBOX_SIZE + 1):
        room.publish({"type": "listeners", "listener_count": n})
        await next_tick()
        drain(fast)
    assert dropped == [slow]
    assert slow.closed and list(room) == [fast]
    assert drain(slow)[-1] is None  # its sender closes the socket
    room.publish({"type": "listeners", "listener_count": 0})
    await next_tick()
    assert len(drain(fast)) == 1


async def test_a_watcher_added_mid_tick_gets_only_what_comes_after_it() -> None:
    room = RoomWatchers(dropped=lambda w: None)
    early = Watcher("early")
    room.add(early)
    room.publish({"type": "listeners", "listener_count": 1})
    late = Watcher("late")  # its snapshot already holds the count of 1
    room.add(late)
    room.publish({"type": "listeners", "listener_count": 2})
    await next_tick()
    assert [json.loads(t)["listener_count"] for b in drain(early) for t in b] == [1, 2]
    assert [json.loads(t)["listener_count"] for b in drain(late) for t in b] == [2]


async def test_a_closed_watcher_first_gets_what_was_published_before() -> None:
    room = RoomWatchers(dropped=lambda w: None)
    kicked = Watcher("bob")
    room.add(kicked)
    room.publish({"type": "kicked", "username": "bob", "blocked": False})
    room.close(kicked)
    items = drain(kicked)
    assert [json.loads(t)["type"] for t in items[0]] == ["kicked"]
    assert items[-1] is None
    assert list(room) == []


@pytest.mark.parametrize("path", ["shared", "per_watcher"])
async def test_both_paths_deliver_the_same_events(path: Any) -> None:
    room = RoomWatchers(path=path, dropped=lambda w: None)
    watcher = Watcher(None)
    room.add(watcher)
    events = [{"type": "listeners", "listener_count": n} for n in range(3)]
    for event in events:
        room.publish(event)
    await next_tick()
    got = []
    for item in drain(watcher):
        got += [json.loads(t) for t in item] if isinstance(item, tuple) else [item]
    assert got == events


class FakeTransport:
    """The lowest layer: what a socket's transport would take."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.buffered = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


async def test_direct_watchers_get_the_same_frame_bytes_and_a_slow_one_is_dropped() -> None:
    from websockets.frames import Frame, Opcode
    from websockets.protocol import Protocol, Side, State

    dropped: list[Watcher] = []
    room = RoomWatchers(dropped=dropped.append)
    a, b, ring_reader, queued = Watcher("a"), Watcher("b"), Watcher("c"), Watcher("d")
    ta, tb, tc = FakeTransport(), FakeTransport(), FakeTransport()
    a.direct, b.direct, ring_reader.direct = ta, tb, tc
    ring_reader.levels_in_audio = True
    for watcher in (a, b, ring_reader, queued):
        room.add(watcher)
    member = {"type": "member", "member": {"username": "bob"}}
    levels = {"type": "levels", "levels": {"bob": 0.5}}
    room.publish(member)
    room.publish(levels)
    await next_tick()
    assert ta.written[0] is tb.written[0]  # built once, the same bytes for both
    client = Protocol(Side.CLIENT, state=State.OPEN)
    client.receive_data(ta.written[0])
    frames = [f for f in client.events_received() if isinstance(f, Frame)]
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.TEXT]
    assert [json.loads(f.data) for f in frames] == [member, levels]
    client = Protocol(Side.CLIENT, state=State.OPEN)
    client.receive_data(tc.written[0])
    assert [json.loads(f.data) for f in client.events_received() if isinstance(f, Frame)] == [
        member
    ]
    assert [json.loads(t) for t in drain(queued)[0]] == [member, levels]  # not direct yet
    # Too much unsent: dropped, closed through its sender, no more writes.
    tb.buffered = 10**6
    tc.closing = True  # gone: dropped quietly
    room.publish(levels)
    room.publish(member)
    await next_tick()
    assert set(dropped) == {b, ring_reader}
    assert b.closed and b.direct is None and drain(b)[-1] is None
    assert len(tb.written) == 1 and len(ta.written) == 2
