"""Chromium plays a room over HLS through the page: the node sends its web listeners to
the room's hls_url ([hls] after_listeners = 0), which points at nginx running the shipped
deploy/nginx-hls.conf in front of the node (another origin: CORS is exercised). The page's
analyser must hear the speaker's 440 Hz, and the page says it listens over HLS and how far
behind. Once with Chromium's autoplay policy lifted, once with it in force (the guest
clicks "Listen here", a user gesture)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Playwright, expect

from tests.conftest import Api, NodeProcess, free_port
from tests.e2e.browser import (
    BEHIND,
    LISTENING,
    LISTENING_OVER_HLS,
    hears,
    launch,
    new_context,
    sign_up,
)
from tests.e2e.test_browser_playback import REFUSED, quiet_context, watched_page
from tests.e2e.test_hls_nginx import speak, stop
from tests.nginx import Nginx, origin_requests


@pytest.fixture
def behind_nginx(
    tmp_path: Path, node_factory: Callable[..., NodeProcess]
) -> Iterator[tuple[NodeProcess, Nginx]]:
    port = free_port()
    node = node_factory(hls={"after_listeners": 0, "base_url": f"http://127.0.0.1:{port}"})
    nginx = Nginx(tmp_path / "nginx", node.port, port)
    nginx.start()
    yield node, nginx
    nginx.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("autoplay", [True, False], ids=["autoplay", "gesture"])
def test_chromium_plays_the_room_over_hls_through_nginx(
    autoplay: bool,
    behind_nginx: tuple[NodeProcess, Nginx],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    node, nginx = behind_nginx
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host, "Over HLS")
    assert room["hls_url"].startswith(nginx.base_url)
    speaker = speak(api, host, room, 440)
    browser = launch(playwright_instance, autoplay=autoplay)
    try:
        page = new_context(browser, node.base_url).new_page()
        page.goto(room["url"])
        if not autoplay:
            page.get_by_role("button", name="Listen here").click()
        hears(page, 440)
        expect(page.locator(".room-status")).to_have_text(LISTENING_OVER_HLS)
        expect(page.locator(".room-latency")).to_have_text(BEHIND)
        stats = page.evaluate("() => window.parley.stats()")
        assert stats["transport"] == "hls" and 0 < stats["latency"] < 10, stats
        requests = origin_requests((node.directory / "node.log").read_text())
        assert any(path.endswith(".m4s") for path, _ in requests)
        access = (nginx.directory / "logs" / "access.log").read_text()
        assert "/hls/index.m3u8" in access and ".m4s" in access
    finally:
        browser.close()
        stop(speaker)


@pytest.mark.e2e
def test_hls_held_back_by_the_browser_is_said_and_one_button_starts_it(
    behind_nginx: tuple[NodeProcess, Nginx],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    """The HLS player's element is registered with the page's Playback (static/playback.js):
    a signed-in user opening the room in a new tab (no gesture, Chromium's own policy) is
    told the browser holds the sound back, never "Listening…", and the one "Start
    listening" button plays the HLS element (nothing else would start it)."""
    node, _ = behind_nginx
    api = api_factory(node)
    host = api.signup("host")
    room = api.live_room(host, "Held back")
    speaker = speak(api, host, room, 440)
    browser = launch(playwright_instance, autoplay=False)
    try:
        context = quiet_context(browser, node.base_url)
        sign_up(context.new_page(), "dana")
        tab, watch = watched_page(context)
        tab.goto(room["url"])
        refused = watch.wait_for(
            lambda e: str(e["text"]).startswith(REFUSED), what="the refusal over HLS"
        )
        assert refused["button"] and refused["playback"] == "blocked", refused
        assert not any(LISTENING.match(text) for text in watch.texts()), watch.entries
        tab.get_by_role("button", name="Start listening").click()
        hears(tab, 440)
        expect(tab.get_by_role("button", name="Start listening")).to_be_hidden()
        expect(tab.locator(".room-status")).to_have_text(LISTENING_OVER_HLS)
        expect(tab.locator(".room-latency")).to_have_text(BEHIND)
        facts = tab.evaluate(
            "async () => ({playback: window.parley.playback, stats: await window.parley.stats()})"
        )
        assert facts["playback"] == "playing", facts
        assert facts["stats"]["transport"] == "hls", facts
    finally:
        browser.close()
        stop(speaker)
