"""The web client in a real Chromium against a real node: a room heard as audio.

Each browser gets a fake microphone playing a looping WAV tone (the capture file is a
per-browser flag, hence one browser per tone). What a page hears is checked *as audio*
through the client's `window.parley` analyser hooks, never by packet counts.
"""

from __future__ import annotations

import math
import re
import secrets
import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
# Audio paths have jitter buffers and a mixer in between; generous, not timing asserts.
AUDIO_TIMEOUT_MS = 20_000
UI_TIMEOUT_MS = 10_000


def write_tone_wav(path: Path, hz: float, seconds: float = 10.0, rate: int = 48_000) -> Path:
    """Mono 16-bit PCM sine; Chromium loops the file as its fake microphone."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        frames += struct.pack("<h", int(0.5 * 32767 * math.sin(2 * math.pi * hz * i / rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path


def launch(playwright: Playwright, wav: Path) -> Browser:
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--allow-loopback-in-peer-connection",
            "--autoplay-policy=no-user-gesture-required",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def new_context(browser: Browser, base_url: str, **kwargs: Any) -> BrowserContext:
    context = browser.new_context(base_url=base_url, permissions=["microphone"], **kwargs)
    # Tests hear pure tones: echo cancellation and noise suppression would eat them.
    context.add_init_script(
        "try { localStorage.setItem('parley.voiceProcessing', 'off') } catch (e) {}"
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    # Browser console output lands in pytest's captured output, shown on failure.
    context.on(
        "console", lambda msg: print(f"[{msg.type}] {msg.page and msg.page.url}: {msg.text}")
    )
    context.on("weberror", lambda err: print(f"[pageerror] {err.error}"))
    return context


def describe_audio(page: Page) -> str:
    """What the page's audio is doing, for a failure message."""
    return str(
        page.evaluate(
            """async () => {
                const p = window.parley;
                if (!p) return 'no window.parley';
                return JSON.stringify({
                    dominant: p.dominantFrequency(), level: p.level(), stats: await p.stats(),
                });
            }"""
        )
    )


def hears(page: Page, hz: float, timeout: float = AUDIO_TIMEOUT_MS) -> None:
    """Wait until the loudest frequency the page plays is `hz` (±20 Hz)."""
    try:
        page.wait_for_function(
            """hz => {
                const p = window.parley;
                const f = p && p.dominantFrequency();
                return f !== null && f !== undefined && Math.abs(f - hz) < 20;
            }""",
            arg=hz,
            timeout=timeout,
            polling=200,
        )
    except PlaywrightTimeoutError:
        pytest.fail(f"{page.url} did not hear {hz} Hz: {describe_audio(page)}")


def sign_up(page: Page, username: str, next_path: str = "") -> None:
    page.goto(f"/signup{'?next=' + next_path if next_path else ''}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.fixture
def tones(tmp_path: Path) -> dict[int, Path]:
    return {hz: write_tone_wav(tmp_path / f"tone{hz}.wav", hz) for hz in (440, 660)}


@pytest.fixture
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


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
