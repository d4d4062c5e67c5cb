"""Before and on stage (issue 13, item 6), in Chromium with a fake 660 Hz microphone.

A listener sees no microphone controls. Invited, they get "Your microphone": a check
that opens the microphone and moves a level meter, a device picker, the voice-processing
switch. On stage they are told plainly that they are muted (and that they seem to talk
while muted), then that everyone hears them; switching the device keeps them heard, as
audio, by a guest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Playwright, expect

from tests.conftest import Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, hears, launch, new_context, sign_up
from tests.federation_helpers import wait_for

LEVEL = "() => { const m = document.getElementById('mic-level'); return m ? m.value : -1; }"


def meter_moves(page: Page) -> None:
    page.wait_for_function(f"({LEVEL})() > 0.3", timeout=10_000, polling=100)


@pytest.mark.e2e
def test_microphone_check_and_muted_state(
    node: NodeProcess, api: Api, tones: dict[int, Path], playwright_instance: Playwright
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    alice = api.signup("alice")
    room = api.live_room(alice, "Open mic")
    browser = launch(playwright_instance, tones[660])
    guest_browser = launch(playwright_instance)
    try:
        desktop = {"width": 1280, "height": 800}
        page = new_context(browser, node.base_url, viewport=desktop).new_page()
        sign_up(page, "bob", next_path=f"/rooms/{room['id']}")
        expect(page.get_by_role("heading", name="Open mic")).to_be_visible()
        # A listener has nothing to do with microphones.
        expect(page.get_by_role("switch", name="Voice processing")).to_have_count(0)
        expect(page.get_by_role("region", name="Your microphone")).to_be_hidden()

        page.get_by_role("button", name="Raise hand").click()
        expect(page.get_by_role("button", name="Lower hand")).to_be_visible()
        response = api.request("POST", f"/api/v1/rooms/{room['id']}/members/bob/invite", alice)
        assert response.status_code == 200, response.text

        # Invited: check the microphone before accepting.
        panel = page.get_by_role("region", name="Your microphone")
        expect(panel).to_be_visible()
        expect(panel).to_contain_text("You are invited to speak")
        expect(panel.get_by_role("switch", name="Voice processing")).to_be_visible()
        panel.get_by_role("button", name="Check my microphone").click()
        meter_moves(page)
        devices = panel.get_by_label("Microphone", exact=True).locator("option")
        # Chromium's fake capture offers a default and two more devices, named.
        expect(devices).to_have_count(3)
        expect(devices.first).to_have_text("Fake Default Audio Input")
        page.screenshot(path=str(ARTIFACTS / "room-mic-check.png"), full_page=True)

        # On stage, muted: said plainly, and the meter shows they are heard by nobody.
        page.get_by_role("button", name="Accept invitation to speak").click()
        state = panel.locator(".mic-state")
        expect(state).to_have_text("You are muted. Nobody hears you; press Unmute to speak.")
        expect(panel).to_have_class("panel mic-panel is-muted")
        meter_moves(page)
        expect(panel.get_by_text("You seem to be talking, but you are muted.")).to_be_visible()
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "room-muted-mobile.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})

        page.get_by_role("button", name="Unmute microphone").click()
        expect(state).to_have_text("Your microphone is on. Everyone in the room hears you.")
        expect(panel.get_by_text("You seem to be talking, but you are muted.")).to_be_hidden()

        def bob_publishing() -> Any:
            doc = api.http.get(f"/api/v1/rooms/{room['id']}").json()
            return any(
                m["username"] == "bob" and m["publishing"] and not m["muted"]
                for m in doc["speakers"]
            )

        wait_for(bob_publishing, timeout=20, what="bob publishing, unmuted")
        guest = new_context(guest_browser, node.base_url).new_page()
        guest.goto(room["url"])
        hears(guest, 660)

        # Another device (Chromium's fake devices all play the same file): still heard.
        picker = panel.get_by_label("Microphone", exact=True)
        other = devices.nth(1).get_attribute("value")
        assert other
        picker.select_option(other)
        assert page.evaluate("localStorage.getItem('parley.micDevice')") == other
        page.wait_for_function(
            "id => window.parley && document.getElementById('mic-device').value === id",
            arg=other,
        )
        meter_moves(page)
        # A second of audio sent from the new track (a dead one sends nothing), then the
        # guest still hears the tone.
        sent = page.evaluate("async () => (await window.parley.stats()).outbound.packetsSent")
        page.wait_for_function(
            "async sent => (await window.parley.stats()).outbound.packetsSent > sent + 50",
            arg=sent,
            polling=200,
        )
        hears(guest, 660)
        page.screenshot(path=str(ARTIFACTS / "room-on-stage.png"), full_page=True)
    finally:
        browser.close()
        guest_browser.close()
