"""What a room on air plays, behind one interface.

A room on air owns exactly one ``ProgramSource``: a local mix (node.onair.local_mix, when
this node acts as the room's origin) or the program arriving from upstream
(node.relaying.mirror, when this node relays the room). Listeners, outputs and watchers
read the room's ``program`` stream and never ask which source feeds it; when the source
changes (a relay takes the room over, a room moves) the stream stays the same object and
its packet line stays continuous (``Republisher``).

A ``Speaker`` is one speaker's audio in the room, wherever it comes from (a WebRTC
session on this node, or a relay's uplink) and wherever the source sends it (our mixer,
or up the relay to the acting origin): the source routes it; the session never changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import av

from node.media.errors import StreamClosed
from node.media.mixer import AudioSink
from node.media.packets import SAMPLES_PER_FRAME, Contributors, OpusPacket, PacketStream
from node.onair.events import RoomEvents
from node.room_actions import Act, RoomAction
from node.rooms import Room


class Republisher:
    """Feeds a PacketStream with renumbered packets, so what its readers get stays one
    continuous seq/pts line whatever feeds it (a mixer, an upstream, one after the
    other)."""

    def __init__(self, stream: PacketStream) -> None:
        self.stream = stream
        self._seq = stream.published
        self._pts = stream.published * SAMPLES_PER_FRAME

    def feed(self, data: bytes, contributors: Contributors | None = None) -> None:
        """Publish ``data`` as the next packet; ``contributors`` (who speaks in it, when
        a mixer made it) travel with it to the WebRTC listeners' CSRCs."""
        if self.stream.closed:
            return
        self.stream.publish(OpusPacket(self._seq, self._pts, data, contributors))
        self._seq += 1
        self._pts += SAMPLES_PER_FRAME


async def copy_stream(stream: PacketStream, feed: Republisher) -> None:
    """Feed ``feed`` with every packet of ``stream`` until it closes."""
    reader = stream.reader()
    with contextlib.suppress(StreamClosed):
        async for packet in reader:
            feed.feed(packet.data, packet.contributors)


class MutableSink(AudioSink, Protocol):
    muted: bool


class Speaker:
    """One speaker's audio in a room: pushed by its session (or a relay), routed by the
    room's source; ``returns`` is what the speaker hears (the program without their own
    voice), one stream for the speaker's whole time on stage."""

    def __init__(self, name: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.last_audio_at = 0.0
        self.returns = PacketStream()
        self._returns_feed = Republisher(self.returns)
        self._clock = clock
        self._muted = True
        self._target: MutableSink | None = None
        self._copy: asyncio.Task[None] | None = None

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = value
        if self._target is not None:
            self._target.muted = value

    def push(self, frame: av.AudioFrame) -> None:
        self.last_audio_at = self._clock()
        if self._target is not None:
            self._target.push(frame)

    def route(self, target: MutableSink | None, returns: PacketStream | None) -> None:
        """Send this speaker's audio to ``target`` and play ``returns`` back to them
        (None, None: nowhere, until the room's next source routes it)."""
        if self._copy is not None:
            self._copy.cancel()
            self._copy = None
        self._target = target
        if target is not None:
            target.muted = self._muted
        if returns is not None:
            self._copy = asyncio.get_running_loop().create_task(
                copy_stream(returns, self._returns_feed), name=f"returns-{self.name}"
            )

    def close(self) -> None:
        self.route(None, None)
        self.returns.close()


class RoomOnAir(Protocol):
    """What a source may use of the room it feeds (node.onair.on_air.OnAir)."""

    @property
    def room(self) -> Room: ...

    @property
    def events(self) -> RoomEvents: ...

    @property
    def program_feed(self) -> Republisher: ...

    def local_listener_total(self) -> int: ...


class ProgramSource(Protocol):
    """The one thing that differs between acting as a room's origin and relaying it."""

    def start(self) -> None:
        """Begin feeding the room's program (the room attaches its speakers after)."""
        ...

    async def stop(self) -> None:
        """Stop feeding it; the program stream itself stays open."""
        ...

    def attach(self, speaker: Speaker) -> None:
        """Route a speaker's audio into the program (and their returns back)."""
        ...

    def detach(self, speaker: Speaker) -> None: ...

    def join(self, username: str, display_name: str) -> None:
        """A user of this node watches the room (raises Forbidden if blocked)."""
        ...

    def leave(self, username: str) -> None: ...

    def listeners(self, count: int) -> None:
        """This node's listeners (and its relays') changed to ``count``."""
        ...

    async def act(self, action: RoomAction, act: Act, display_name: str) -> bool:
        """Apply a user's action: True if applied here, False if sent to the room's
        acting origin (its new state comes back over the relay)."""
        ...


def levels_event(levels: Mapping[str, float]) -> dict[str, Any]:
    return {"type": "levels", "levels": dict(levels)}
