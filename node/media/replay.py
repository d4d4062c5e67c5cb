"""A recording as an HLS video-on-demand playlist: the LL-HLS writer's fMP4 segments (two
seconds, the very Opus packets of the recording, node.media.fmp4) listed by
``render_playlist(..., ended=True)`` with ``EXT-X-PLAYLIST-TYPE:VOD``. Everything is
immutable once the recording is complete, so a cache in front of the node serves it as it
serves a live room's segments.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from node.media.fmp4 import init_segment, media_fragment
from node.media.hls import Part, Segment, render_playlist
from node.media.oggfile import packets_of
from node.media.packets import SAMPLES_PER_FRAME

PACKETS_PER_SEGMENT = 100
"""Two seconds, as the live stream's segments."""
PACKETS_PER_PART = 10
CACHED = 4


@dataclass(frozen=True)
class ReplayHls:
    token: str
    packets: tuple[bytes, ...]
    started_at: float
    init: bytes = init_segment()

    @property
    def segments(self) -> int:
        return -(-len(self.packets) // PACKETS_PER_SEGMENT)

    def segment(self, msn: int) -> bytes | None:
        if not 0 <= msn < self.segments:
            return None
        first = msn * PACKETS_PER_SEGMENT
        samples = self.packets[first : first + PACKETS_PER_SEGMENT]
        return media_fragment(
            msn + 1, first * SAMPLES_PER_FRAME, samples, [SAMPLES_PER_FRAME] * len(samples)
        )

    def playlist(self) -> str:
        listed = []
        for msn in range(self.segments):
            count = min(PACKETS_PER_SEGMENT, len(self.packets) - msn * PACKETS_PER_SEGMENT)
            parts = [
                Part(msn, index, b"", min(PACKETS_PER_PART, count - index * PACKETS_PER_PART))
                for index in range(-(-count // PACKETS_PER_PART))
            ]
            start = self.started_at + msn * PACKETS_PER_SEGMENT * SAMPLES_PER_FRAME / 48000
            listed.append(Segment(msn, start, parts, data=b""))
        text = render_playlist(
            listed,
            token=self.token,
            target_duration=2,
            part_target=PACKETS_PER_PART * SAMPLES_PER_FRAME / 48000,
            ended=True,
            hint=None,
        )
        return text.replace(
            "#EXT-X-VERSION:9\n", "#EXT-X-VERSION:9\n#EXT-X-PLAYLIST-TYPE:VOD\n", 1
        )


class ReplayCache:
    """Parsed recordings, the few most recently asked for."""

    def __init__(self) -> None:
        self._found: OrderedDict[tuple[str, int, int], ReplayHls] = OrderedDict()

    def get(self, path: Path, started_at: float) -> ReplayHls:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        found = self._found.get(key)
        if found is None:
            data = path.read_bytes()
            token = hashlib.sha256(f"{key}".encode()).hexdigest()[:16]
            found = ReplayHls(token, tuple(packets_of(data)), started_at)
            self._found[key] = found
            while len(self._found) > CACHED:
                self._found.popitem(last=False)
        self._found.move_to_end(key)
        return found
