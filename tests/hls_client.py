"""A Low-Latency HLS listener over raw HTTP/1.1 keep-alive, light enough to run by the
thousand (bench/bench_hls.py) and checked as audio in the tests.

Two kinds of player, as they exist in the wild:

- ``parts``: rides the preload hint as hls.js does at the live edge: GET the hinted part
  (the origin holds it until it exists), then the blocking playlist reload for it
  (``_HLS_msn``/``_HLS_part``), which names the next hint; starts PART-HOLD-BACK behind.
- ``segments``: a plain HLS player: blocking reload per segment (``_HLS_msn`` alone), then
  the 2 s segment.

Everything received is kept (arrival time, bytes) so it can be decoded with PyAV.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import av
import numpy as np
import numpy.typing as npt

__all__ = ["HlsListener", "Playlist", "decode_fmp4", "parse_playlist"]

_PART = re.compile(r'#EXT-X-PART:[^\n]*URI="([^"]+)"')
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"')
_MAP = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')
_NAME = re.compile(r"(?:^|/)(p(\d+)\.(\d+)|s(\d+))\.m4s$")


@dataclass
class Playlist:
    text: str
    init: str
    parts: list[tuple[int, int, str]]
    """(msn, part, uri) of every listed part, in order."""
    segments: list[tuple[int, str]]
    hint: tuple[int, int, str] | None
    ended: bool


def parse_playlist(text: str) -> Playlist:
    if not text.startswith("#EXTM3U"):
        raise ValueError(f"not a playlist: {text[:80]!r}")
    init = _MAP.search(text)
    parts = []
    for uri in _PART.findall(text):
        m = _NAME.search(uri)
        assert m is not None and m.group(2) is not None, uri
        parts.append((int(m.group(2)), int(m.group(3)), uri))
    segments = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = _NAME.search(line)
            assert m is not None and m.group(4) is not None, line
            segments.append((int(m.group(4)), line))
    hint = None
    found = _HINT.search(text)
    if found:
        m = _NAME.search(found.group(1))
        assert m is not None and m.group(2) is not None
        hint = (int(m.group(2)), int(m.group(3)), found.group(1))
    return Playlist(
        text, init.group(1) if init else "", parts, segments, hint, "#EXT-X-ENDLIST" in text
    )


class _Done(Exception):
    """The listening time is over."""


class HttpError(Exception):
    def __init__(self, status: int, path: str) -> None:
        super().__init__(f"{status} for {path}")
        self.status = status


class Connection:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, timeout: float = 15.0) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            assert self._reader is not None
            try:
                self._writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
                )
                return await asyncio.wait_for(self._response(self._reader), timeout)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()  # the server closed an idle keep-alive connection: once more
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        body = await reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


@dataclass
class HlsListener:
    playlist_url: str
    mode: str = "parts"
    init: bytes = b""
    received: list[tuple[float, bytes]] = field(default_factory=list)
    """(arrival time, bytes) of each part or segment, in stream order."""
    names: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    resyncs: int = 0
    deadline: float = 0.0

    def __post_init__(self) -> None:
        url = urlsplit(self.playlist_url)
        self._conn = Connection(url.hostname or "127.0.0.1", url.port or 80)
        self._path = url.path
        self._dir = url.path.rsplit("/", 1)[0] + "/"

    async def _get(self, path: str) -> bytes:
        if time.monotonic() >= self.deadline:
            raise _Done
        self.requests += 1
        status, body = await self._conn.get(path)
        if status != 200:
            raise HttpError(status, path)
        return body

    async def _playlist(self, query: str = "") -> Playlist:
        return parse_playlist((await self._get(self._path + query)).decode())

    async def run(self, seconds: float) -> None:
        """Listen for ``seconds`` (then stop wherever it is)."""
        # The loops stop at the deadline themselves: Python 3.11's wait_for can swallow a
        # cancellation that races with a finishing request, so it is only the backstop.
        self.deadline = time.monotonic() + seconds
        try:
            await asyncio.wait_for(self._listen(), seconds + 20.0)
        except TimeoutError:
            pass
        except Exception as exc:  # recorded: the caller asserts on errors
            if time.monotonic() < self.deadline:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._conn.close()

    async def _listen(self) -> None:
        with contextlib.suppress(_Done):
            await self._follow()

    async def _follow(self) -> None:
        while True:
            playlist = await self._playlist()
            if not self.init:
                self.init = await self._get(self._dir + playlist.init)
            try:
                if self.mode == "parts":
                    await self._ride_parts(playlist)
                else:
                    await self._follow_segments(playlist)
                return
            except HttpError as exc:
                if exc.status != 404:
                    raise
                self.resyncs += 1  # fell out of the window: back to the live edge

    async def _ride_parts(self, playlist: Playlist) -> None:
        # Start PART-HOLD-BACK (three parts) behind the newest, like a player would.
        listed = playlist.parts
        msn, part, uri = listed[-3] if len(listed) >= 3 else listed[0]
        while True:
            data = await self._get(self._dir + uri)
            self.received.append((time.monotonic(), data))
            self.names.append(uri.rsplit("/", 1)[-1])
            current = await self._playlist(f"?_HLS_msn={msn}&_HLS_part={part}")
            if current.ended and not [p for p in current.parts if (p[0], p[1]) > (msn, part)]:
                return
            following = sorted(
                p
                for p in [*current.parts, *([current.hint] if current.hint else [])]
                if (p[0], p[1]) > (msn, part)
            )
            if not following:
                raise HttpError(404, "no part after ours in the playlist")
            msn, part, uri = following[0]

    async def _follow_segments(self, playlist: Playlist) -> None:
        if not playlist.segments:  # a stream just started: wait for its first segment
            msn = (playlist.hint or playlist.parts[0])[0]
            playlist = await self._playlist(f"?_HLS_msn={msn}")
        msn, uri = playlist.segments[-1]
        while True:
            data = await self._get(self._dir + uri)
            self.received.append((time.monotonic(), data))
            self.names.append(uri.rsplit("/", 1)[-1])
            current = await self._playlist(f"?_HLS_msn={msn + 1}")
            later = [s for s in current.segments if s[0] > msn]
            if not later:
                if current.ended:
                    return
                raise HttpError(404, "no segment after ours in the playlist")
            msn, uri = later[0]

    def audio(self) -> npt.NDArray[np.float64]:
        return decode_fmp4(self.init + b"".join(data for _, data in self.received))


def decode_fmp4(data: bytes) -> npt.NDArray[np.float64]:
    """Decode fragmented MP4 audio with PyAV (FFmpeg) to mono floats."""
    from tests.tonekit import frames_to_mono

    with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
        frames = list(container.decode(audio=0))
    return frames_to_mono(frames)
