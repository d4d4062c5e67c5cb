"""Speaking rings across a relay chain, in a real Chromium (issue 10).

Alice speaks on node A (440 Hz from a WHIP speaker process). Node B relays A's room and
node C relays B's copy (A -> B -> C). A guest opens the room on C: alice's avatar lights
up (the ``speaking`` ring) while she speaks, because speaking levels travel the same
event bus as the room's state, from A's mixer down every relay.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest
from playwright.sync_api import Playwright, expect

from tests.conftest import ROOT, Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, launch, new_context

RING_TIMEOUT_MS = 20_000


@pytest.mark.e2e
def test_a_speaker_on_a_lights_up_on_c(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    a, b, c = node_factory(), node_factory(), node_factory()
    api_a, api_b, api_c = api_factory(a), api_factory(b), api_factory(c)
    alice = api_a.signup("alice")
    room = api_a.live_room(alice, "Rings down the chain")
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
    browser = launch(playwright_instance)
    try:
        assert speaker.stdout is not None
        assert speaker.stdout.readline().strip() == "publishing"
        bob = api_b.signup("bob")
        on_b = api_b.request("POST", "/api/v1/remote-rooms", bob, json={"url": room["url"]})
        assert on_b.status_code in (200, 201), on_b.text
        carol = api_c.signup("carol")
        on_c = api_c.request(
            "POST", "/api/v1/remote-rooms", carol, json={"url": on_b.json()["url"]}
        )
        assert on_c.status_code in (200, 201), on_c.text
        assert on_c.json()["origin"] == room["url"]

        page = new_context(browser, c.base_url).new_page()
        page.goto(f"/rooms/{on_c.json()['id']}")
        expect(page.get_by_role("heading", name="Rings down the chain")).to_be_visible()
        ring = page.locator(f'.avatar[data-speaker="alice@127.0.0.1:{a.port}"]').first
        expect(ring).to_be_visible()
        expect(ring).to_have_class(re.compile(r"\bspeaking\b"), timeout=RING_TIMEOUT_MS)
        page.screenshot(path=str(ARTIFACTS / "room-levels-on-c.png"), full_page=True)

        # She stops: the ring goes out on C too.
        speaker.send_signal(signal.SIGTERM)
        speaker.wait(timeout=10)
        expect(ring).not_to_have_class(re.compile(r"\bspeaking\b"), timeout=RING_TIMEOUT_MS)
    finally:
        browser.close()
        if speaker.poll() is None:
            speaker.send_signal(signal.SIGTERM)
            try:
                speaker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                speaker.kill()
                speaker.wait()
        if speaker.stdout is not None:
            speaker.stdout.close()
