"""Low-Latency HLS of a packet stream: parts, segments and the media playlist.

:class:`HlsStream` reads a :class:`PacketStream` (a room's program; it knows nothing of
rooms) and cuts its 20 ms Opus packets into fMP4 *parts* of ``packets_per_part`` packets
(200 ms) and *segments* of ``parts_per_segment`` parts (2 s), as RFC 8216bis (HLS, second
edition) section 4.4.4.9 and Apple's LL-HLS describe. Everything it publishes is immutable:
a part or segment URL always names the same bytes, and every URL carries the stream's
random ``token``, so a restarted stream never collides with what caches hold. A segment's
bytes are its parts' bytes back to back (each part is one CMAF fragment).

The timeline is the stream's own: packet *n* starts at ``n × 960`` ticks whatever the
packets' pts say, so EXTINF durations, part durations and ``tfdt`` always agree (a
relayed program whose upstream changed keeps one continuous HLS timeline).

:class:`HlsOutputs` keeps one stream per key (a room id, to the caller) and drops the
idle and long-finished ones. Replay (a recorded room) is the same segments listed with
``EXT-X-PLAYLIST-TYPE:VOD`` and ``EXT-X-ENDLIST``: :func:`render_playlist` with
``ended=True`` and no preload hint is that playlist already, given stored segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from node.media.errors import StreamClosed
from node.media.fmp4 import init_segment, media_fragment
from node.media.packets import SAMPLES_PER_FRAME, PacketReader, PacketStream

__all__ = [
    "HlsOutputs",
    "HlsStream",
    "Part",
    "PlaylistRequest",
    "Segment",
    "TooFarAhead",
    "parse_media_name",
    "part_name",
    "render_playlist",
    "segment_name",
]

logger = logging.getLogger(__name__)

FRAME_S = SAMPLES_PER_FRAME / 48000
WINDOW_SEGMENTS = 4
"""Complete segments listed in the live playlist (8 s): a short window keeps players at
the live edge; RFC 8216bis 6.2.2 wants at least three target durations listed."""
KEEP_SEGMENTS = 8
"""Complete segments kept in memory, beyond the window for players and caches a little
behind (a segment listed in a playlist a cache still holds must still be there)."""
PART_HOLD_PARTS = 3
"""PART-HOLD-BACK in parts: the spec's minimum, three part targets."""
ADVANCE_PART_LIMIT = 3
"""How far past the last part a blocking request may ask (RFC 8216bis 6.2.5.2: three
parts when PART-TARGET is under one second); further gets 400."""
BLOCK_TARGETS = 3
"""A blocking request waits at most this many target durations, then gets 503."""


@dataclass(frozen=True, slots=True)
class Part:
    msn: int
    index: int
    data: bytes
    packets: int

    @property
    def duration(self) -> float:
        return self.packets * FRAME_S


@dataclass(slots=True)
class Segment:
    msn: int
    program_date_time: float
    """Wall-clock time (Unix seconds) of the segment's first sample as it arrived."""
    parts: list[Part] = field(default_factory=list)
    data: bytes | None = None
    """Set once complete: the parts' bytes back to back."""

    @property
    def complete(self) -> bool:
        return self.data is not None

    @property
    def duration(self) -> float:
        return sum(part.duration for part in self.parts)


class TooFarAhead(Exception):
    """A blocking playlist request asked for a part beyond what the spec lets a server
    wait for (answered 400)."""


@dataclass(frozen=True, slots=True)
class PlaylistRequest:
    """``_HLS_msn`` / ``_HLS_part`` of a blocking playlist reload (RFC 8216bis 6.2.5.2)."""

    msn: int
    part: int | None = None


class HlsStream:
    """One packet stream as LL-HLS parts, segments and playlists (see the module doc)."""

    def __init__(
        self,
        stream: PacketStream,
        *,
        packets_per_part: int = 10,
        parts_per_segment: int = 10,
        first_msn: int = 0,
        block_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if packets_per_part < 1 or parts_per_segment < 1:
            raise ValueError("parts and segments hold at least one packet and part")
        self.token = secrets.token_urlsafe(9)
        self.packets_per_part = packets_per_part
        self.parts_per_segment = parts_per_segment
        self.part_target = packets_per_part * FRAME_S
        self.target_duration = round(packets_per_part * parts_per_segment * FRAME_S)
        self.block_timeout = (
            block_timeout if block_timeout is not None else BLOCK_TARGETS * self.target_duration
        )
        self.init = init_segment()
        self.segments: deque[Segment] = deque()
        self.first_msn = first_msn
        self.closed = False
        self.last_access = time.monotonic()
        self.closed_at: float | None = None
        self._stream = stream
        self._clock = clock
        self._fragment_seq = 1
        self._decode_time = 0
        self._parts_published = 0
        self._changed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._playlist_cache: tuple[tuple[int, bool], str] | None = None

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading the stream (the reader is taken now: nothing published after
        this call is missed)."""
        if self._task is None:
            reader = self._stream.reader()
            self._task = asyncio.get_running_loop().create_task(
                self._run(reader), name=f"hls-{self.token}"
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._finish()

    async def _run(self, reader: PacketReader) -> None:
        pending: list[bytes] = []
        try:
            while True:
                packet = await reader.next()
                if not pending and self._next_part_index() == 0:
                    self.segments.append(Segment(self._next_msn(), self._clock()))
                pending.append(packet.data)
                if len(pending) == self.packets_per_part:
                    self._publish_part(pending)
                    pending = []
        except StreamClosed:
            if pending:
                self._publish_part(pending)
        finally:
            self._finish()

    def _next_msn(self) -> int:
        if not self.segments:
            return self.first_msn
        last = self.segments[-1]
        return last.msn + 1 if last.complete else last.msn

    def _next_part_index(self) -> int:
        if not self.segments or self.segments[-1].complete:
            return 0
        return len(self.segments[-1].parts)

    def _publish_part(self, packets: list[bytes]) -> None:
        segment = self.segments[-1]
        data = media_fragment(
            self._fragment_seq,
            self._decode_time,
            packets,
            [SAMPLES_PER_FRAME] * len(packets),
        )
        self._fragment_seq += 1
        self._decode_time += SAMPLES_PER_FRAME * len(packets)
        segment.parts.append(Part(segment.msn, len(segment.parts), data, len(packets)))
        self._parts_published += 1
        if len(segment.parts) == self.parts_per_segment:
            self._complete(segment)
        self._wake()

    def _complete(self, segment: Segment) -> None:
        segment.data = b"".join(part.data for part in segment.parts)
        while sum(1 for s in self.segments if s.complete) > KEEP_SEGMENTS:
            self.segments.popleft()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.closed_at = time.monotonic()
        if self.segments and not self.segments[-1].complete:
            if self.segments[-1].parts:
                self._complete(self.segments[-1])  # a shorter last segment
            else:
                self.segments.pop()
        self._wake()

    def _wake(self) -> None:
        waiter, self._changed = self._changed, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()`` or the stream closed; False on time-out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            if self.closed:
                return True  # nothing more will come: the final playlist is the answer
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._changed is None or self._changed.done():
                self._changed = loop.create_future()
            # shield: one waiter timing out must not cancel the future the others await.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._changed), remaining)
        return True

    # -- what is published --------------------------------------------------------------

    @property
    def next_msn(self) -> int:
        """The media sequence number a successor stream should start at."""
        return self._next_msn() + (1 if self.segments and not self.segments[-1].complete else 0)

    def segment(self, msn: int) -> Segment | None:
        for segment in self.segments:
            if segment.msn == msn:
                return segment
        return None

    def part(self, msn: int, index: int) -> Part | None:
        segment = self.segment(msn)
        if segment is None or index >= len(segment.parts):
            return None
        return segment.parts[index]

    def _last_part(self) -> tuple[int, int] | None:
        for segment in reversed(self.segments):
            if segment.parts:
                return segment.msn, len(segment.parts) - 1
        return None

    def _global(self, msn: int, index: int) -> int:
        return msn * self.parts_per_segment + index

    def _has(self, request: PlaylistRequest) -> bool:
        if request.part is None:
            segment = self.segment(request.msn)
            return (segment is not None and segment.complete) or self._passed(
                request.msn, self.parts_per_segment - 1
            )
        last = self._last_part()
        return last is not None and self._global(*last) >= self._global(request.msn, request.part)

    def _passed(self, msn: int, index: int) -> bool:
        last = self._last_part()
        return last is not None and self._global(*last) > self._global(msn, index)

    def normalise(self, request: PlaylistRequest) -> PlaylistRequest:
        """A part number past the end of its segment names a part of a later segment."""
        if request.part is None or request.part < self.parts_per_segment:
            return request
        extra, part = divmod(request.part, self.parts_per_segment)
        return PlaylistRequest(request.msn + extra, part)

    def check_ahead(self, request: PlaylistRequest) -> None:
        """Raise :class:`TooFarAhead` for a request the spec says to refuse at once."""
        last = self._last_part()
        last_msn = last[0] if last is not None else self.first_msn
        if request.msn > last_msn + 2:
            raise TooFarAhead(f"_HLS_msn {request.msn} is past {last_msn} + 2")
        if request.part is not None:
            newest = self._global(*last) if last is not None else self._global(last_msn, -1)
            if self._global(request.msn, request.part) > newest + ADVANCE_PART_LIMIT:
                raise TooFarAhead(
                    f"_HLS_part {request.part} of {request.msn} is more than "
                    f"{ADVANCE_PART_LIMIT} parts past the last one"
                )

    async def wait_playlist(self, request: PlaylistRequest | None) -> bool:
        """Until the playlist holds what ``request`` asks for (or there is at least one
        part, for a plain request). False when that did not happen in time."""
        self.last_access = time.monotonic()
        if self.closed:
            return True  # an ended stream's playlist answers every request at once
        if request is None:
            return await self._until(lambda: self._last_part() is not None, self.block_timeout)
        request = self.normalise(request)
        self.check_ahead(request)
        return await self._until(lambda: self._has(request), self.block_timeout)

    async def wait_part(self, msn: int, index: int, timeout: float) -> Part | None:
        """A part, waiting up to ``timeout`` if it is the next one to be made (the
        preload hint's), else at once."""
        self.last_access = time.monotonic()
        part = self.part(msn, index)
        if part is not None or self.closed:
            return part
        last = self._last_part()
        newest = self._global(*last) if last is not None else self._global(self.first_msn, -1)
        if self._global(msn, index) != newest + 1 or index >= self.parts_per_segment:
            return None
        await self._until(lambda: self.part(msn, index) is not None, timeout)
        return self.part(msn, index)

    def playlist(self) -> tuple[str, str]:
        """The media playlist as it is now, and its ETag (rendered once per version)."""
        version = (self._parts_published, self.closed)
        cached = self._playlist_cache
        if cached is None or cached[0] != version:
            text = render_playlist(
                list(self.segments)[-(WINDOW_SEGMENTS + 1) :],
                token=self.token,
                target_duration=self.target_duration,
                part_target=self.part_target,
                ended=self.closed,
                hint=None if self.closed else self._hint(),
            )
            cached = self._playlist_cache = (version, text)
        etag = f'"{self.token}-{version[0]}{"-end" if version[1] else ""}"'
        return cached[1], etag

    def _hint(self) -> str:
        msn, index = self._next_msn(), self._next_part_index()
        return part_name(msn, index)


def part_name(msn: int, index: int) -> str:
    return f"p{msn}.{index}.m4s"


def segment_name(msn: int) -> str:
    return f"s{msn}.m4s"


_MAX_NUMBER = 2**53
"""Media sequence and part numbers above this are nonsense (and not exact in JSON)."""


def parse_media_name(name: str) -> tuple[int, int | None] | None:
    """``s{msn}.m4s`` -> (msn, None), ``p{msn}.{part}.m4s`` -> (msn, part), else None.

    Only canonical decimal numbers: one name per resource, so a cache never stores the
    same bytes under two keys.
    """
    if not name.endswith(".m4s") or len(name) > 48:
        return None
    kind, body = name[:1], name[1:-4]
    numbers = body.split(".")
    if kind == "s" and len(numbers) == 1:
        msn = _canonical(numbers[0])
        return None if msn is None else (msn, None)
    if kind == "p" and len(numbers) == 2:
        msn, part = _canonical(numbers[0]), _canonical(numbers[1])
        return None if msn is None or part is None else (msn, part)
    return None


def _canonical(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    value = int(text)
    return value if value <= _MAX_NUMBER else None


def _date_time(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_playlist(
    segments: list[Segment],
    *,
    token: str,
    target_duration: int,
    part_target: float,
    ended: bool,
    hint: str | None,
) -> str:
    """An LL-HLS media playlist of ``segments`` (their parts listed for the last three
    target durations, RFC 8216bis 4.4.4.9), URIs relative to the playlist's own."""
    first_msn = segments[0].msn if segments else 0
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        f"#EXT-X-TARGETDURATION:{target_duration}",
        f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if not ended:
        lines.append(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"PART-HOLD-BACK={PART_HOLD_PARTS * part_target:.3f}"
        )
    lines += [f"#EXT-X-MEDIA-SEQUENCE:{first_msn}", f'#EXT-X-MAP:URI="{token}/init.mp4"']
    remaining = sum(s.duration for s in segments)
    for segment in segments:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_date_time(segment.program_date_time)}")
        remaining -= segment.duration
        # Parts of the segments ending within three target durations of the end.
        if not ended and remaining < 3 * target_duration:
            for part in segment.parts:
                lines.append(
                    f"#EXT-X-PART:DURATION={part.duration:.3f},"
                    f'URI="{token}/{part_name(part.msn, part.index)}",INDEPENDENT=YES'
                )
        if segment.complete:
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(f"{token}/{segment_name(segment.msn)}")
    if hint is not None:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{token}/{hint}"')
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class HlsOutputs:
    """The live HLS streams of a node, one per key, started on first demand.

    A stream nobody asked for in ``idle_s`` is stopped; a finished one (its packet
    stream closed) is kept ``retain_s`` so players and caches read its EXT-X-ENDLIST.
    A key's next stream goes on numbering where the last one stopped, so a player that
    kept an old playlist never sees the media sequence go back.
    """

    def __init__(
        self,
        *,
        idle_s: float = 60.0,
        retain_s: float = 120.0,
        packets_per_part: int = 10,
        parts_per_segment: int = 10,
    ) -> None:
        self.idle_s = idle_s
        self.retain_s = retain_s
        self.packets_per_part = packets_per_part
        self.parts_per_segment = parts_per_segment
        self._streams: dict[str, HlsStream] = {}
        self._next_msn: dict[str, int] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._streams)

    def find(self, key: str) -> HlsStream | None:
        self._sweep()
        return self._streams.get(key)

    def start(self, key: str, stream: PacketStream) -> HlsStream:
        """The key's running stream, or a new one reading ``stream``."""
        current = self.find(key)
        if current is not None and not current.closed:
            return current
        if current is not None:
            self._drop(key)
        output = HlsStream(
            stream,
            packets_per_part=self.packets_per_part,
            parts_per_segment=self.parts_per_segment,
            first_msn=self._next_msn.get(key, 0),
        )
        output.start()
        self._streams[key] = output
        return output

    def _sweep(self) -> None:
        now = time.monotonic()
        for key, output in list(self._streams.items()):
            if output.closed_at is not None and now - output.closed_at > self.retain_s:
                self._drop(key)
            elif not output.closed and now - output.last_access > self.idle_s:
                logger.info("stopping HLS output %s: nobody asked for %.0f s", key, self.idle_s)
                self._drop(key)

    def _drop(self, key: str) -> None:
        output = self._streams.pop(key)
        self._next_msn[key] = output.next_msn
        if not output.closed:
            task = asyncio.get_running_loop().create_task(output.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for output in list(self._streams.values()):
            await output.close()
        self._streams.clear()
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
