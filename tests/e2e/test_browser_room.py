"""The web client in a real Chromium against a real node: a room heard as audio.

Each browser gets a fake microphone playing a looping WAV tone (the capture file is a
per-browser flag, hence one browser per tone). What a page hears is checked *as audio*
through the client's `window.parley` analyser hooks, never by packet counts.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Playwright, expect

from tests.conftest import free_port
from tests.e2e.browser import (
    ARTIFACTS,
    AUDIO_TIMEOUT_MS,
    BEHIND,
    LISTENING_OVER_WEBRTC,
    FlakyLink,
    hears,
    launch,
    new_context,
    sign_up,
)


@pytest.mark.e2e
def test_room_is_heard_across_browsers(
    node: Any, tones: dict[int, Path], playwright_instance: Playwright
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = node.base_url
    alice = f"alice_{secrets.token_hex(3)}"
    bob = f"bob_{secrets.token_hex(3)}"
    browser_440 = launch(playwright_instance, tones[440])
    browser_660 = launch(playwright_instance, tones[660])
    try:
        # Alice signs up, creates a room and goes live; her fake mic plays 440 Hz.
        host = new_context(browser_440, base, viewport={"width": 1100, "height": 900}).new_page()
        sign_up(host, alice)
        host.get_by_role("link", name="Start a room").first.click()
        host.get_by_label("Title").fill("Tuning forks")
        host.get_by_label("Description (optional)").fill("A sine wave walks into a bar.")
        host.get_by_role("button", name="Create room").click()
        expect(host).to_have_url(re.compile(r"/rooms/[^/]+$"))
        expect(host.get_by_role("heading", name="Tuning forks")).to_be_visible()
        host.get_by_role("button", name="Go live").click()
        expect(host.locator(".state-badge")).to_have_text("Live")
        host.get_by_role("button", name="Unmute microphone").click()
        expect(host.get_by_role("button", name="Mute microphone")).to_be_visible()
        room_url = host.url
        assert "/rooms/" in room_url

        # A wrong password shows a readable error in the alert area.
        stranger = new_context(browser_440, base).new_page()
        stranger.goto("/login")
        stranger.get_by_label("Username").fill(alice)
        stranger.get_by_label("Password").fill("not the password")
        stranger.get_by_role("button", name="Log in").click()
        alert = stranger.get_by_role("alert")
        expect(alert).to_be_visible()
        expect(alert).not_to_have_text("")
        stranger.context.close()

        # A guest opens the link and hears Alice.
        guest = new_context(browser_440, base).new_page()
        guest.goto(room_url)
        expect(guest.get_by_role("heading", name="Tuning forks")).to_be_visible()
        hears(guest, 440)
        # Autoplay allowed (the flag): it plays at once, says so, and shows no button.
        expect(guest.locator(".room-status")).to_have_text(LISTENING_OVER_WEBRTC)
        # How far behind is beside the status line, outside its live region.
        expect(guest.locator(".room-latency")).to_have_text(BEHIND)
        expect(guest.get_by_role("button", name="Start listening")).to_be_hidden()

        # Bob (660 Hz mic) signs up from the room link, raises his hand.
        speaker = new_context(browser_660, base).new_page()
        sign_up(speaker, bob, next_path=room_url.removeprefix(base))
        expect(speaker.get_by_role("heading", name="Tuning forks")).to_be_visible()
        speaker.get_by_role("button", name="Raise hand").click()
        expect(speaker.get_by_role("button", name="Lower hand")).to_be_visible()

        # Alice sees the hand in her queue and invites Bob.
        hands = host.locator(".hand-list")
        expect(hands).to_contain_text(bob)
        host.screenshot(path=str(ARTIFACTS / "room-hand.png"), full_page=True)
        hands.get_by_role("button", name=f"Invite {bob} to speak").click()

        # Bob accepts, comes on stage muted, unmutes and speaks.
        accept = speaker.get_by_role("button", name="Accept invitation to speak")
        expect(accept).to_be_visible()
        speaker.set_viewport_size({"width": 380, "height": 844})
        speaker.screenshot(path=str(ARTIFACTS / "room-invited-mobile.png"))
        accept.click()
        speaker.get_by_role("button", name="Unmute microphone").click()
        expect(speaker.get_by_role("button", name="Mute microphone")).to_be_visible()
        expect(host.locator(".stage-grid")).to_contain_text(bob)

        # Alice hears Bob on her return stream (without her own voice), and Bob Alice.
        hears(host, 660)
        hears(speaker, 440)

        # A fresh guest hears both tones in the program mix.
        guest2 = new_context(browser_440, base).new_page()
        guest2.goto(room_url)
        guest2.wait_for_function(
            """() => {
                const p = window.parley;
                if (!p || !p.analyser) return false;
                const f = p.dominantFrequency();
                const loud = f !== null && (Math.abs(f - 440) < 20 || Math.abs(f - 660) < 20);
                return loud && p.energyAt(440) > -60 && p.energyAt(660) > -60;
            }""",
            timeout=AUDIO_TIMEOUT_MS,
            polling=200,
        )

        # Screenshots of the host's view, desktop and phone width.
        expect(host.locator(".stage-card")).to_have_count(2)
        host.screenshot(path=str(ARTIFACTS / "room.png"), full_page=True)
        # A phone screen as the user sees it (the control bar sticks to the bottom).
        host.set_viewport_size({"width": 380, "height": 844})
        host.screenshot(path=str(ARTIFACTS / "room-mobile.png"))
    finally:
        browser_440.close()
        browser_660.close()


@pytest.mark.e2e
def test_the_room_page_recovers_from_a_network_blip(
    node_factory: Any, api_factory: Any, tones: dict[int, Path], playwright_instance: Playwright
) -> None:
    # The browser reaches the node through a link we can cut: base_url is the link's end.
    link_port = free_port()
    node = node_factory(node={"base_url": f"http://127.0.0.1:{link_port}"})
    link = FlakyLink(link_port, node.port)
    api = api_factory(node)
    host = api.signup(f"host_{secrets.token_hex(3)}")
    room = api.live_room(host, "Blip test")
    browser = launch(playwright_instance, tones[440])
    try:
        listener = new_context(browser, f"http://127.0.0.1:{link_port}").new_page()
        frames: list[object] = []
        listener.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))
        listener.goto(room["url"])
        expect(listener.get_by_role("heading", name="Blip test")).to_be_visible()
        # The heading comes from the HTTP fetch: cut the link only once the room socket is
        # up (its snapshot arrived), so what is lost is a connection, not a first connect.
        for _ in range(200):
            if frames:
                break
            listener.wait_for_timeout(50)  # Playwright delivers socket events while it waits
        assert frames, "the room socket never received its snapshot"
        link.cut()
        expect(listener.get_by_text("Connection lost. Reconnecting…")).to_be_visible()
        listener.wait_for_timeout(1500)
        link.restore()
        # Back online: the page reconnects by itself and follows the room again.
        api.request("PATCH", f"/api/v1/rooms/{room['id']}", host, json={"title": "After blip"})
        expect(listener.get_by_role("heading", name="After blip")).to_be_visible(timeout=15_000)
        expect(listener.get_by_text("Connection lost. Reconnecting…")).to_be_hidden()
    finally:
        browser.close()
        link.close()
