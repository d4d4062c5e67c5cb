"""Chromium plays a room's Ogg stream served by a media worker ([media] workers = 1).

The room page links its `listen_url` for players; here Chromium's own `<audio>` plays it
(the connection taken over by the worker: close-delimited body, `Connection: close`), and
what it plays is checked as audio through a Web Audio analyser on the element.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Playwright, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import Api, NodeProcess
from tests.e2e.browser import AUDIO_TIMEOUT_MS, launch, new_context

ROOT = Path(__file__).resolve().parents[2]

PLAY = """async url => {
    const audio = new Audio(url);
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 8192;
    context.createMediaElementSource(audio).connect(analyser);
    analyser.connect(context.destination);
    await audio.play();
    window.oggProbe = {audio, context, analyser, bins: new Float32Array(4096)};
}"""

DOMINANT = """() => {
    const p = window.oggProbe;
    p.analyser.getFloatFrequencyData(p.bins);
    let best = 1;
    for (let i = 2; i < p.bins.length; i += 1) if (p.bins[i] > p.bins[best]) best = i;
    return p.bins[best] > -90 ? best * p.context.sampleRate / 8192 : null;
}"""

HEARS_440 = f"() => {{ const f = ({DOMINANT})(); return f !== null && Math.abs(f - 440) < 20 }}"


def http_listeners(api: Api) -> list[int]:
    return list(api.http.get("/api/v1/node/stats").json()["media_workers"]["http_listeners"])


@pytest.mark.e2e
def test_chromium_plays_the_ogg_stream_from_a_media_worker(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    node = node_factory(media={"workers": 1})
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host, "Ogg in a browser")
    api.request("POST", f"/api/v1/rooms/{room['id']}/mute", host, json={"muted": False})
    speaker = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "speaker_client.py"), room["whip_url"], host, "440"],
        stdout=subprocess.PIPE,
        text=True,
    )
    browser = launch(playwright_instance)
    try:
        assert speaker.stdout is not None
        assert speaker.stdout.readline().strip() == "publishing"
        page = new_context(browser, node.base_url).new_page()
        # The room page offers the stream to players.
        page.goto(room["url"])
        expect(page.locator(f'a[href="{room["listen_url"]}"]')).to_have_count(1)

        page.evaluate(PLAY, room["listen_url"])
        try:
            page.wait_for_function(
                HEARS_440,
                timeout=AUDIO_TIMEOUT_MS,
                polling=200,
            )
        except PlaywrightTimeoutError:
            pytest.fail(f"Chromium did not play 440 Hz: {page.evaluate(DOMINANT)}")
        assert http_listeners(api) == [1]  # served by the worker, not the node process

        # Chromium stops: the worker notices and the room stops counting it.
        page.evaluate("() => { window.oggProbe.audio.pause(); window.oggProbe.audio.src = '' }")
        page.close()
        deadline = time.monotonic() + 20  # guards a hung test only
        while time.monotonic() < deadline and http_listeners(api) != [0]:
            time.sleep(0.1)
        assert http_listeners(api) == [0]
    finally:
        browser.close()
        speaker.kill()
        speaker.wait()
        if speaker.stdout is not None:
            speaker.stdout.close()
