"""Driving Debian's Chromium with Playwright for the end-to-end tests.

Each browser gets a fake microphone playing a looping WAV tone (the capture file is a
per-browser flag, hence one browser per tone). What a page hears is checked *as audio*
through the client's `window.parley` analyser hooks, never by packet counts.
"""

from __future__ import annotations

import asyncio
import math
import re
import struct
import threading
import wave
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
# Audio paths have jitter buffers and a mixer in between; generous, not timing asserts.
AUDIO_TIMEOUT_MS = 20_000
UI_TIMEOUT_MS = 10_000
# What the room page says while it really plays (never while the browser holds it back).
LISTENING = re.compile(r"^Listening over (WebRTC|HLS)")
LISTENING_OVER_WEBRTC = "Listening over WebRTC."
LISTENING_OVER_HLS = "Listening over HLS (a cache or CDN serves it)."
# How far behind, shown beside the status line (not in its live region: it changes).
BEHIND = re.compile(r"^\d+\.\d s behind$")


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


def launch(playwright: Playwright, wav: Path | None = None, *, autoplay: bool = True) -> Browser:
    """Chromium as the tests run it; `wav` becomes its fake microphone. `autoplay=False`
    keeps Chromium's default policy, as people browse: no sound before a user gesture."""
    microphone = (
        [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
        ]
        if wav is not None
        else []
    )
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            *microphone,
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--allow-loopback-in-peer-connection",
            *(["--autoplay-policy=no-user-gesture-required"] if autoplay else []),
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


class FlakyLink:
    """A TCP forwarder on loopback between the browser and a node, for network blips:
    `cut()` resets every open connection (WebSockets included) and refuses new ones until
    `restore()`. WebRTC media (UDP) does not pass through it."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.restore()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.listen_port, reuse_address=True
        )

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        self._call(self._stop())

    def restore(self) -> None:
        self._call(self._start())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
