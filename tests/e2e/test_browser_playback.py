"""Honest playback (issue 13, item 1) in Chromium with its DEFAULT autoplay policy.

Browsers refuse to start sound without a user gesture. A room link opened in a new tab
must then say so and show one button that starts the sound, never "Listening…" while the
`<audio>` is paused or the AudioContext suspended; after the click the room is heard as
440 Hz through the page's analyser. Covered paths: a signed-in user in a new tab, a guest
whose audio reconnects (its media worker is killed) before any click, a room relayed from
another node, and playback paused from outside after it ran.

Every page records each text its status line shows (a MutationObserver installed before
the page's own scripts), so "never claimed to listen" is checked over the whole visit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import ROOT, Api, NodeProcess
from tests.e2e.browser import (
    ARTIFACTS,
    AUDIO_TIMEOUT_MS,
    LISTENING,
    LISTENING_OVER_WEBRTC,
    hears,
    launch,
    new_context,
    sign_up,
)
from tests.test_media_workers import workers_of

# Playwright's page.evaluate() and locator queries run as a user gesture in Chromium, which
# would unlock the very sound under test. Until the test clicks, it therefore never touches
# the page: the page reports every status line it shows, with what its audio elements do,
# on the console (a MutationObserver installed before the page's own scripts).
REPORT_STATUS = """
document.addEventListener('DOMContentLoaded', () => {
  let last = null;
  const report = () => {
    const el = document.querySelector('.room-status');
    if (!el || el.textContent === last) return;
    last = el.textContent;
    const audio = document.querySelector('article.room audio');
    const button = document.querySelector('.start-listening');
    const p = window.parley;
    console.log('[parley-status] ' + JSON.stringify({
      text: last,
      paused: audio ? audio.paused : null,
      hasSource: Boolean(audio && audio.srcObject),
      context: p && p.analyser ? p.analyser.context.state : null,
      playback: p ? p.playback : null,
      audioStatus: p ? p.audioStatus : null,
      button: Boolean(button && !button.hidden),
    }));
  };
  new MutationObserver(report).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
});
"""
PREFIX = "[parley-status] "
REFUSED = "Your browser is holding back the sound"

# What the page's audio really does, read from the elements themselves (after the click).
AUDIO_FACTS = """() => {
    const audio = document.querySelector('article.room audio');
    const p = window.parley;
    return {
        paused: audio ? audio.paused : null,
        context: p && p.analyser ? p.analyser.context.state : null,
        playback: p ? p.playback : null,
    };
}"""


class StatusWatch:
    """Every status line a page showed, with its audio facts, read from its console."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.entries: list[dict[str, Any]] = []
        page.on("console", self._on_console)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.text.startswith(PREFIX):
            self.entries.append(json.loads(message.text[len(PREFIX) :]))

    def texts(self) -> list[str]:
        return [str(e["text"]) for e in self.entries]

    def wait_for(
        self, check: Callable[[dict[str, Any]], bool], *, after: int = 0, what: str
    ) -> dict[str, Any]:
        """The first entry from index `after` on that passes `check`; waits on console
        events only (no page evaluation), up to a deadline."""
        deadline = time.monotonic() + AUDIO_TIMEOUT_MS / 1000
        while True:
            for entry in self.entries[after:]:
                if check(entry):
                    return entry
            remaining_ms = (deadline - time.monotonic()) * 1000
            if remaining_ms <= 0:
                pytest.fail(f"timed out waiting for {what}; the page showed {self.entries}")
            with contextlib.suppress(PlaywrightTimeoutError):
                self.page.wait_for_event("console", timeout=remaining_ms)


def start_speaker(whip_url: str, token: str, hz: int = 440) -> subprocess.Popen[str]:
    speaker = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "speaker_client.py"), whip_url, token, str(hz)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert speaker.stdout is not None
    assert speaker.stdout.readline().strip() == "publishing"
    return speaker


def stop(speaker: subprocess.Popen[str]) -> None:
    speaker.send_signal(signal.SIGTERM)
    try:
        speaker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        speaker.kill()
        speaker.wait()
    if speaker.stdout is not None:
        speaker.stdout.close()


def live_room_with_tone(api: Api, title: str) -> tuple[dict[str, Any], subprocess.Popen[str]]:
    host = api.signup(f"host{os.getpid() % 1000}")
    room = api.live_room(host, title)
    response = api.request("POST", f"/api/v1/rooms/{room['id']}/mute", host, json={"muted": False})
    assert response.status_code == 200, response.text
    return room, start_speaker(room["whip_url"], host)


@pytest.fixture
def quiet_browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Chromium as people run it: no sound before a gesture on the page."""
    browser = launch(playwright_instance, autoplay=False)
    yield browser
    browser.close()


def watched_page(context: BrowserContext) -> tuple[Page, StatusWatch]:
    page = context.new_page()
    return page, StatusWatch(page)


def quiet_context(browser: Browser, base_url: str) -> BrowserContext:
    context = new_context(browser, base_url)
    context.add_init_script(REPORT_STATUS)
    return context


def expect_refused_honestly(watch: StatusWatch, *, after: int = 0) -> int:
    """The page says the browser holds the sound back and shows the button, while its
    `<audio>` has a source and is paused or its AudioContext is suspended; it never
    claimed to listen. Returns the index of that status entry."""
    entry = watch.wait_for(
        lambda e: str(e["text"]).startswith(REFUSED), after=after, what="the refusal"
    )
    assert entry["button"] and entry["playback"] == "blocked", entry
    assert entry["hasSource"] and (entry["paused"] or entry["context"] != "running"), entry
    assert not any(LISTENING.match(text) for text in watch.texts()), watch.entries
    return watch.entries.index(entry)


def start_and_hear(page: Page) -> None:
    page.get_by_role("button", name="Start listening").click()
    hears(page, 440)
    expect(page.get_by_role("button", name="Start listening")).to_be_hidden()
    expect(page.locator(".room-status")).to_have_text(LISTENING_OVER_WEBRTC)
    facts = page.evaluate(AUDIO_FACTS)
    assert not facts["paused"] and facts["context"] == "running", facts
    assert facts["playback"] == "playing", facts


@pytest.mark.e2e
def test_a_signed_in_user_opening_a_room_link_in_a_new_tab_gets_the_button(
    node: NodeProcess, api: Api, quiet_browser: Browser
) -> None:
    room, speaker = live_room_with_tone(api, "New tab")
    try:
        context = quiet_context(quiet_browser, node.base_url)
        sign_up(context.new_page(), "bob")
        # A new tab has no user gesture of its own: Chromium refuses sound there.
        tab, watch = watched_page(context)
        tab.goto(room["url"])
        expect_refused_honestly(watch)
        expect(tab.get_by_role("heading", name="New tab")).to_be_visible()
        expect(tab.get_by_role("button", name="Raise hand")).to_be_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "room-start-listening.png"))
        start_and_hear(tab)
    finally:
        stop(speaker)


@pytest.mark.e2e
def test_a_guest_whose_audio_reconnects_is_still_told_and_then_hears(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    quiet_browser: Browser,
) -> None:
    node = node_factory(media={"workers": 1})
    room, speaker = live_room_with_tone(api_factory(node), "Reconnect")
    try:
        page, watch = watched_page(quiet_context(quiet_browser, node.base_url))
        page.goto(room["url"])
        first = expect_refused_honestly(watch)
        # The media worker holding the WebRTC session dies: the page gets a new session and
        # a new stream, and the browser still refuses it without a gesture.
        (victim,) = workers_of(node)
        os.kill(victim, signal.SIGKILL)
        gap = watch.wait_for(
            lambda e: not str(e["text"]).startswith(REFUSED), after=first, what="the audio gap"
        )
        expect_refused_honestly(watch, after=watch.entries.index(gap))
        start_and_hear(page)

        # Later something outside the page pauses the element (another app, the OS media
        # controls): the page says so again rather than keep claiming to listen.
        page.evaluate("() => document.querySelector('article.room audio').pause()")
        expect(page.get_by_role("button", name="Start listening")).to_be_visible()
        expect(page.locator(".room-status")).not_to_have_text(LISTENING)
        start_and_hear(page)
    finally:
        stop(speaker)


@pytest.mark.e2e
def test_a_relayed_room_opened_in_a_new_tab_gets_the_button(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    quiet_browser: Browser,
) -> None:
    a, b = node_factory(), node_factory()
    room, speaker = live_room_with_tone(api_factory(a), "Carried over")
    try:
        context = quiet_context(quiet_browser, b.base_url)
        sign_up(context.new_page(), "carol")
        tab, watch = watched_page(context)
        tab.goto(f"/rooms/remote?origin={quote(room['url'], safe='')}")
        expect_refused_honestly(watch)
        expect(tab.get_by_role("heading", name="Carried over")).to_be_visible()
        expect(tab.locator(".room-head .origin-badge")).to_have_text(f"on 127.0.0.1:{a.port}")
        start_and_hear(tab)
    finally:
        stop(speaker)


# An <audio> whose media comes through a <source> child, as hls.js attaches a
# ManagedMediaSource (Safari): right after load(), before the element has selected that
# source, it has no src attribute and no currentSrc yet.
SOURCE_CHILD = """async () => {
    const { Playback } = await import('/static/playback.js');
    const rate = 8000;
    const samples = new Int16Array(rate);
    for (let i = 0; i < rate; i += 1) samples[i] = 16000 * Math.sin(2 * Math.PI * 440 * i / rate);
    const wav = new DataView(new ArrayBuffer(44 + samples.byteLength));
    const text = (at, s) => [...s].forEach((c, i) => wav.setUint8(at + i, c.charCodeAt(0)));
    text(0, 'RIFF'); wav.setUint32(4, 36 + samples.byteLength, true); text(8, 'WAVEfmt ');
    wav.setUint32(16, 16, true); wav.setUint16(20, 1, true); wav.setUint16(22, 1, true);
    wav.setUint32(24, rate, true); wav.setUint32(28, rate * 2, true);
    wav.setUint16(32, 2, true); wav.setUint16(34, 16, true);
    text(36, 'data'); wav.setUint32(40, samples.byteLength, true);
    new Int16Array(wav.buffer, 44).set(samples);
    const audio = new Audio();
    const source = document.createElement('source');
    source.type = 'audio/wav';
    source.src = URL.createObjectURL(new Blob([wav.buffer], { type: 'audio/wav' }));
    audio.appendChild(source);
    audio.loop = true;
    audio.load();
    const before = audio.currentSrc;
    const playback = new Playback();
    playback.addElement(audio);
    const state = await playback.start();
    const paused = audio.paused;
    playback.dispose();
    audio.pause();
    return { before, state, paused };
}"""


@pytest.mark.e2e
def test_an_element_playing_a_source_child_is_started_and_counted(
    node: NodeProcess, playwright_instance: Playwright
) -> None:
    browser = launch(playwright_instance)
    try:
        page = new_context(browser, node.base_url).new_page()
        page.goto("/")
        facts = page.evaluate(SOURCE_CHILD)
        assert facts["before"] == "", facts  # the case under test: no currentSrc yet
        assert facts["state"] == "playing" and facts["paused"] is False, facts
    finally:
        browser.close()
