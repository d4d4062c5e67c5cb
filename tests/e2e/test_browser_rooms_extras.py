"""Issue 12 in a real Chromium: a listener on B reacts and a listener on A sees it float
over the audience; comments from B show on A; the upcoming list; the end-of-room summary;
the replay page plays (without the autoplay flag: a click) and seeks. Screenshots in
tests/artifacts/."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Playwright, expect

from tests.conftest import ROOT, Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, hears, launch, new_context, sign_up
from tests.e2e.test_browser_pages import capture

UI_MS = 20_000


def until(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.mark.e2e
def test_reactions_comments_upcoming_summary_and_replay_in_chromium(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    tones: dict[int, Path],
    playwright_instance: Playwright,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    a, b = node_factory(), node_factory()
    api_a = api_factory(a)
    alice = api_a.signup("alice")
    api_a.create_room(
        alice,
        "Friday fediverse hour",
        starts_at=time.time() + 86400,
        description="Bring questions",
    )
    room = api_a.create_room(alice, "Live with reactions", recording=True)
    assert api_a.request("POST", f"/api/v1/rooms/{room['id']}/start", alice).status_code == 200
    response = api_a.request(
        "POST", f"/api/v1/rooms/{room['id']}/mute", alice, json={"muted": False}
    )
    assert response.status_code == 200, response.text
    speaker = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "speaker_client.py"),
            room["whip_url"],
            alice,
            "440",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    listener_browser = launch(playwright_instance)
    bob_browser = launch(playwright_instance, tones[660])
    replay_browser = launch(playwright_instance, autoplay=False)
    try:
        assert speaker.stdout is not None
        assert speaker.stdout.readline().strip() == "publishing"

        # A guest listening on A.
        listener = new_context(
            listener_browser, a.base_url, viewport={"width": 1100, "height": 1000}
        ).new_page()
        listener.goto(f"/rooms/{room['id']}")
        hears(listener, 440)
        expect(listener.locator(".badge.recording")).to_be_visible()

        # bob, signed in on B, opens B's copy of the room and reacts.
        bob = new_context(
            bob_browser, b.base_url, viewport={"width": 1100, "height": 1000}
        ).new_page()
        sign_up(bob, "bob")
        bob.goto(f"/rooms/remote?origin={quote(room['url'], safe='')}")
        bob.get_by_role("button", name="React 👏").click(timeout=UI_MS)
        floated = listener.locator(".floating-reaction", has_text="👏")
        expect(floated.first).to_be_attached(timeout=UI_MS)

        # bob comments from B; the listener on A sees it, newest first.
        bob.get_by_label("Your comment").fill("Greetings from node B")
        bob.get_by_role("button", name="Comment", exact=True).click()
        expect(listener.locator(".comment", has_text="Greetings from node B")).to_be_visible(
            timeout=UI_MS
        )
        for emoji in ("🔥", "❤️", "🙌"):
            bob.get_by_role("button", name=f"React {emoji}").click()
        expect(listener.locator(".floating-reaction").first).to_be_attached(timeout=UI_MS)
        listener.screenshot(path=str(ARTIFACTS / "rooms-reactions-comments.png"), full_page=True)
        comment = listener.locator(".comment", has_text="Greetings from node B")
        capture(listener, "room-reactions-comments", lambda: expect(comment).to_be_visible())

        # The home page lists the scheduled room under "Upcoming", in the viewer's time.
        home = listener.context.new_page()
        home.goto("/")
        upcoming = home.get_by_role("region", name="Upcoming")
        card = upcoming.locator(".room-card", has_text="Friday fediverse hour")
        # The start in the viewer's own time zone (the browser's: its zone name shown).
        expect(card.locator(".when-badge")).to_contain_text(
            home.evaluate(
                "() => new Intl.DateTimeFormat(undefined, {timeZoneName: 'short'})"
                ".formatToParts(new Date()).find((p) => p.type === 'timeZoneName').value"
            )
        )
        home.screenshot(path=str(ARTIFACTS / "rooms-upcoming.png"), full_page=True)
        capture(home, "home-upcoming", lambda: expect(card).to_be_visible())
        home.close()

        time.sleep(3)  # a few seconds more of recording (a length under test, not a wait)
        assert api_a.request("POST", f"/api/v1/rooms/{room['id']}/end", alice).status_code == 200
        summary = listener.locator("section.summary")
        expect(summary).to_be_visible(timeout=UI_MS)
        expect(summary).to_contain_text("Peak listeners")
        expect(summary).to_contain_text("👏 1")
        until(
            lambda: api_a.http.get(f"/api/v1/rooms/{room['id']}/recording").status_code == 200,
            what="the recording",
        )
        listener.reload()
        expect(listener.get_by_role("link", name="Play the replay")).to_be_visible(timeout=UI_MS)
        listener.screenshot(path=str(ARTIFACTS / "rooms-summary.png"), full_page=True)
        capture(listener, "room-summary", lambda: expect(summary).to_be_visible())

        # The replay page plays after a click (no autoplay flag) and seeks (HTTP Range).
        page = new_context(
            replay_browser, a.base_url, viewport={"width": 1100, "height": 800}
        ).new_page()
        page.goto(f"/rooms/{room['id']}/replay")
        audio = page.locator("audio.replay-audio")
        expect(audio).to_be_visible()
        page.wait_for_function(
            "() => document.querySelector('audio.replay-audio').readyState >= 1"
        )
        box = audio.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 20, box["y"] + box["height"] / 2)  # the native play button
        page.wait_for_function(
            "() => { const a = document.querySelector('audio.replay-audio');"
            " return !a.paused && a.currentTime > 0.5; }",
            timeout=UI_MS,
        )
        page.evaluate("document.querySelector('audio.replay-audio').currentTime = 4")
        page.wait_for_function(
            "() => document.querySelector('audio.replay-audio').currentTime >= 4", timeout=UI_MS
        )
        page.screenshot(path=str(ARTIFACTS / "rooms-replay.png"), full_page=True)
        capture(page, "replay", lambda: expect(audio).to_be_visible())
    finally:
        speaker.send_signal(signal.SIGKILL)
        speaker.wait(timeout=10)
        if speaker.stdout is not None:
            speaker.stdout.close()
        for browser in (listener_browser, bob_browser, replay_browser):
            browser.close()
