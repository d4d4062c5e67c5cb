"""A room heard through a real nginx cache: 50 LL-HLS listeners, one origin request per
part and segment.

A node (its own process) with a speaker publishing 440 Hz over WHIP; Debian's nginx runs
the shipped deploy/nginx-hls.conf in front of it; 50 listeners (40 riding the parts and
preload hints like hls.js, 10 fetching whole segments like a plain HLS player) play the
room through nginx for 20 s. The node's own access log must show each part and segment
requested once and each playlist version a bounded number of times, and what every
listener received must decode (PyAV) to the speaker's 440 Hz.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Api, NodeProcess, free_port
from tests.hls_client import HlsListener
from tests.nginx import Nginx, origin_requests
from tests.tonekit import dominant_frequency

ROOT = Path(__file__).resolve().parents[2]
LISTENERS = 50
SEGMENT_PLAYERS = 10
SECONDS = 20.0


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[Callable[[NodeProcess], Nginx]]:
    started: list[Nginx] = []

    def start(node: NodeProcess) -> Nginx:
        nginx = Nginx(tmp_path / f"nginx{len(started)}", node.port, free_port())
        started.append(nginx)
        nginx.start()
        return nginx

    yield start
    for nginx in started:
        nginx.stop()


def speak(api: Api, host: str, room: dict[str, str], hz: int) -> subprocess.Popen[str]:
    api.request("POST", f"/api/v1/rooms/{room['id']}/mute", host, json={"muted": False})
    client = str(ROOT / "tests" / "speaker_client.py")
    speaker = subprocess.Popen(
        [sys.executable, client, room["whip_url"], host, str(hz)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert speaker.stdout is not None
    assert speaker.stdout.readline().strip() == "publishing"
    return speaker


def stop(speaker: subprocess.Popen[str]) -> None:
    speaker.kill()
    speaker.wait()
    if speaker.stdout is not None:
        speaker.stdout.close()


async def listen_all(url: str) -> list[HlsListener]:
    listeners = [
        HlsListener(url, mode="segments" if i < SEGMENT_PLAYERS else "parts")
        for i in range(LISTENERS)
    ]
    await asyncio.gather(*(listener.run(SECONDS) for listener in listeners))
    return listeners


def consecutive(names: list[str]) -> bool:
    """Parts p{M}.{P} (or segments s{M}) one after the other, nothing skipped."""
    keys = []
    for name in names:
        stem = name.removesuffix(".m4s")
        if stem.startswith("s"):
            keys.append((int(stem[1:]), 0))
        else:
            msn, part = stem[1:].split(".")
            keys.append((int(msn), int(part)))
    steps = zip(keys, keys[1:], strict=False)
    return all(b == (a[0], a[1] + 1) or b == (a[0] + 1, 0) for a, b in steps)


@pytest.mark.e2e
def test_fifty_listeners_through_nginx_cost_the_origin_one_request_per_part(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    nginx_factory: Callable[[NodeProcess], Nginx],
) -> None:
    node = node_factory()
    nginx = nginx_factory(node)
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host, "Heard through a cache")
    speaker = speak(api, host, room, 440)
    try:
        url = room["hls_url"].replace(node.base_url, nginx.base_url)
        listeners = asyncio.run(listen_all(url))
    finally:
        stop(speaker)

    for listener in listeners:
        assert not listener.errors, listener.errors
        assert listener.resyncs == 0, listener.names
        assert consecutive(listener.names), listener.names
        audio = listener.audio()
        assert len(audio) >= 6 * 48000, f"{listener.mode}: {len(audio) / 48000:.1f} s"
        # The first half second may still be the room before the speaker's audio arrived.
        assert abs(dominant_frequency(audio[24000:]) - 440) < 5

    requests = origin_requests((node.directory / "node.log").read_text())
    media = Counter(path for path, _ in requests if path.endswith(".m4s"))
    parts = [p for p in media if p.rsplit("/", 1)[-1].startswith("p")]
    segments = [p for p in media if p.rsplit("/", 1)[-1].startswith("s")]
    assert len(parts) >= 50 and len(segments) >= 5, (len(parts), len(segments))
    # Every part and segment the 50 listeners got, the node served exactly once.
    assert set(media.values()) == {1}, [(p, n) for p, n in media.items() if n > 1]
    assert all(status == 200 for path, status in requests if path.endswith(".m4s"))
    got = {name for listener in listeners for name in listener.names}
    assert got <= {path.rsplit("/", 1)[-1] for path in media}
    # Each playlist version (a blocking reload names one) is fetched a bounded number of
    # times: once, or twice when a late listener came after nginx's copy expired.
    playlists = Counter(path for path, _ in requests if "index.m3u8" in path)
    assert max(playlists.values()) <= 2, playlists.most_common(3)
    plain = playlists[next(p for p in playlists if "?" not in p)]
    assert plain <= 3, plain
    listener_requests = sum(listener.requests for listener in listeners)
    assert listener_requests > 20 * len(requests), (listener_requests, len(requests))


@pytest.mark.e2e
def test_a_cache_asking_with_range_gets_the_bytes_it_asked_for(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    nginx_factory: Callable[[NodeProcess], Nginx],
) -> None:
    node = node_factory()
    nginx = nginx_factory(node)
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host, "Ranges")
    playlist_url = room["hls_url"]
    base = playlist_url.rsplit("/", 1)[0]
    with httpx.Client(timeout=15) as http:
        text = http.get(playlist_url, params={"_HLS_msn": 1}).text
        segment = next(line for line in text.splitlines() if line.endswith("s0.m4s"))
        whole = http.get(f"{base}/{segment}").content
        for origin in (node.base_url, nginx.base_url):
            url = f"{base}/{segment}".replace(node.base_url, origin)
            first = http.get(url, headers={"Range": "bytes=0-99"})
            assert first.status_code == 206
            assert first.headers["content-range"] == f"bytes 0-99/{len(whole)}"
            assert first.content == whole[:100]
            tail = http.get(url, headers={"Range": "bytes=-50"})
            assert tail.status_code == 206 and tail.content == whole[-50:]
            beyond = http.get(url, headers={"Range": f"bytes={len(whole)}-"})
            assert beyond.status_code == 416
            assert beyond.headers["content-range"] == f"bytes */{len(whole)}"
            # If-Range with another validator: the whole (immutable) thing.
            other = http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
            assert other.status_code == 200 and other.content == whole
