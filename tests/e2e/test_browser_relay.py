"""A room of node A joined from node B's web client, in a real Chromium (issue 4).

Alice hosts on A through the API and publishes 440 Hz from a WHIP speaker process. Bob
(fake microphone at 660 Hz) has his account on B: he opens A's room page, uses "Join from
your server", lands on B's view of the room and hears Alice; he raises his hand, Alice
invites him, he accepts and speaks, and a guest on A hears him. Everything is heard as
audio through the page's analyser; waits poll with deadlines.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, Playwright, expect

from tests.conftest import ROOT, Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, AUDIO_TIMEOUT_MS, hears, launch, new_context, sign_up

# The relay adds an upstream connection and a second jitter buffer: give it room.
RELAY_UI_TIMEOUT_MS = 20_000


def until(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def hears_in_mix(page: Page, hz: float, *others: float) -> None:
    """The program mix has `hz` in it, beside the other speakers' tones."""
    tones = [hz, *others]
    page.wait_for_function(
        """tones => {
            const p = window.parley;
            if (!p || !p.analyser) return false;
            const f = p.dominantFrequency();
            const loud = f !== null && tones.some((t) => Math.abs(f - t) < 20);
            return loud && tones.every((t) => p.energyAt(t) > -60);
        }""",
        arg=tones,
        timeout=AUDIO_TIMEOUT_MS,
        polling=200,
    )


@pytest.mark.e2e
def test_join_a_remote_room_from_your_own_server_and_speak(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    tones: dict[int, Path],
    playwright_instance: Playwright,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    a, b = node_factory(), node_factory()
    api_a = api_factory(a)
    alice = api_a.signup("alice")
    room = api_a.live_room(alice, "Across the fence")
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
    bob_handle = f"bob@127.0.0.1:{b.port}"
    browser_660 = launch(playwright_instance, tones[660])
    browser_guest = launch(playwright_instance)
    try:
        assert speaker.stdout is not None
        assert speaker.stdout.readline().strip() == "publishing"

        # Bob has his account on B.
        page = new_context(
            browser_660, b.base_url, viewport={"width": 1100, "height": 900}
        ).new_page()
        sign_up(page, "bob")

        # On A's room page he is a visitor: listen here, or join from his own server.
        page.goto(room["url"])
        expect(page.get_by_role("heading", name="Across the fence")).to_be_visible()
        join = page.get_by_role("region", name="Join this room")
        expect(join).to_be_visible()
        expect(join.get_by_role("button", name="Listen here")).to_be_visible()
        join.get_by_label("Your handle").fill(f"@{bob_handle}")
        page.screenshot(path=str(ARTIFACTS / "room-join-from-your-server.png"), full_page=True)
        join.get_by_role("button", name="Go to my server").click()

        # B's view of the room: its own copy, relayed from A, and Alice is heard.
        expect(page).to_have_url(
            re.compile(rf"^{re.escape(b.base_url)}/rooms/[^/?]+$"), timeout=RELAY_UI_TIMEOUT_MS
        )
        expect(page.get_by_role("heading", name="Across the fence")).to_be_visible()
        expect(page.locator(".room-head .origin-badge")).to_have_text(f"on 127.0.0.1:{a.port}")
        mirror_id = page.url.rsplit("/", 1)[-1]
        mirror = api_factory(b).request("GET", f"/api/v1/rooms/{mirror_id}").json()
        assert mirror["remote"] is True and mirror["origin"] == room["url"]
        hears(page, 440)

        # He raises his hand; it reaches A, whose host invites him.
        page.get_by_role("button", name="Raise hand", exact=True).click()
        expect(page.get_by_role("button", name="Lower hand")).to_be_visible()

        def hand_on_a() -> bool:
            doc = api_a.request("GET", f"/api/v1/rooms/{room['id']}").json()
            return bob_handle in doc["hands"]

        until(hand_on_a, what="bob's hand on A")
        response = api_a.request(
            "POST", f"/api/v1/rooms/{room['id']}/members/{bob_handle}/invite", alice
        )
        assert response.status_code == 200, response.text

        # He accepts on B, comes on stage muted, unmutes and speaks (WHIP to B).
        accept = page.get_by_role("button", name="Accept invitation to speak")
        expect(accept).to_be_visible(timeout=RELAY_UI_TIMEOUT_MS)
        accept.click()
        unmute = page.get_by_role("button", name="Unmute microphone")
        expect(unmute).to_be_visible(timeout=RELAY_UI_TIMEOUT_MS)
        unmute.click()
        expect(page.get_by_role("button", name="Mute microphone")).to_be_visible()

        seen: list[Any] = []

        def speaking_on_a() -> bool:
            doc = api_a.request("GET", f"/api/v1/rooms/{room['id']}").json()
            seen[:] = [m for m in doc["speakers"] if m["username"] == bob_handle]
            print("A sees bob as", seen)
            return any(not m["muted"] and m["publishing"] for m in seen)

        until(speaking_on_a, what="bob on stage, unmuted and publishing, as A sees it")
        # His return holds Alice (not himself); a guest on A hears both of them.
        hears(page, 440)
        guest = new_context(browser_guest, a.base_url).new_page()
        guest.goto(room["url"])
        expect(guest.get_by_role("heading", name="Across the fence")).to_be_visible()
        hears_in_mix(guest, 660, 440)

        # Without an account on B, B's view asks to log in first (and comes back after).
        visitor = new_context(browser_guest, b.base_url).new_page()
        visitor.goto(f"/rooms/remote?origin={quote(room['url'], safe='')}")
        expect(
            visitor.get_by_role("heading", name="Log in to join this room here")
        ).to_be_visible()
        login = visitor.get_by_role("main").get_by_role("link", name="Log in")
        expect(login).to_have_attribute("href", re.compile(r"^/login\?next=%2Frooms%2Fremote"))

        expect(page.locator(".stage-card")).to_have_count(2)
        page.screenshot(path=str(ARTIFACTS / "room-remote.png"), full_page=True)
    finally:
        browser_660.close()
        browser_guest.close()
        speaker.send_signal(signal.SIGTERM)
        try:
            speaker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            speaker.kill()
            speaker.wait()
        if speaker.stdout is not None:
            speaker.stdout.close()
