"""Speaking rings from the audio: a WebRTC listener reads who speaks from the CSRCs of
the program packets (RTCRtpReceiver.getContributingSources), with no WebSocket message.

The listener's page gets the room WebSocket through a filter that drops every `levels`
message, so a ring it lights can only come from the audio; the page also says which
source of truth it uses (`window.parley.levelsSource`, `data-levels-source`), and the node,
told so (`levels_source`), stops sending that socket `levels` at all. With a media worker
the listener's WebRTC session and the room WebSockets are the worker's.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Playwright, WebSocketRoute, expect

from tests.conftest import NodeProcess
from tests.e2e.browser import AUDIO_TIMEOUT_MS, hears, launch, new_context, sign_up


def drop_levels(page: Page, dropped: list[str]) -> None:
    """Relay the page's room WebSocket, leaving out the node's `levels` messages."""

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def down(message: str | bytes) -> None:
            if isinstance(message, str) and json.loads(message).get("type") == "levels":
                dropped.append(message)
                return
            ws.send(message)

        server.on_message(down)
        ws.on_message(server.send)

    page.route_web_socket(re.compile(r"/ws$"), route)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("fanout", "workers"),
    [("native", 0), ("batched", 0), ("native", 1)],
    ids=["native", "batched", "native in a worker"],
)
def test_a_webrtc_listener_lights_the_speaking_ring_from_csrcs(
    node_factory: Callable[..., NodeProcess],
    tones: dict[int, Path],
    playwright_instance: Playwright,
    fanout: str,
    workers: int,
) -> None:
    # In a worker: the listener's WebRTC session and both room WebSockets live there.
    node = node_factory(media={"webrtc_fanout": fanout, "workers": workers})
    alice = f"alice_{secrets.token_hex(3)}"
    speaker_browser = launch(playwright_instance, tones[440])
    # The listener's browser keeps Chromium's autoplay policy: sound after a click.
    listener_browser = launch(playwright_instance, autoplay=False)
    try:
        host = new_context(speaker_browser, node.base_url).new_page()
        sign_up(host, alice)
        host.get_by_role("link", name="Start a room").first.click()
        host.get_by_label("Title").fill("Rings")
        host.get_by_role("button", name="Create room").click()
        expect(host).to_have_url(re.compile(r"/rooms/[^/]+$"))
        host.get_by_role("button", name="Go live").click()
        expect(host.locator(".state-badge")).to_have_text("Live")

        listener = new_context(listener_browser, node.base_url).new_page()
        dropped: list[str] = []
        drop_levels(listener, dropped)
        listener.goto(host.url)
        expect(listener.get_by_role("heading", name="Rings")).to_be_visible()
        listener.get_by_role("heading", name="Rings").click()  # a user gesture
        ring = listener.locator(f'.avatar[data-speaker="{alice}"]')
        expect(ring).to_have_count(1)
        expect(ring).not_to_have_class(re.compile(r"\bspeaking\b"))

        host.get_by_role("button", name="Unmute microphone").click()
        expect(host.get_by_role("button", name="Mute microphone")).to_be_visible()
        hears(listener, 440)
        expect(ring).to_have_class(re.compile(r"\bspeaking\b"), timeout=AUDIO_TIMEOUT_MS)
        assert listener.evaluate("window.parley.levelsSource") == "audio"
        expect(listener.locator(".stage-grid")).to_have_attribute("data-levels-source", "audio")
        # The page told the node it reads levels from the audio: the node stops sending
        # it `levels` (any the filter saw came before that), the ring is the audio's.
        # (Waiting lets Playwright run the WebSocket route: what was on its way settles.)
        listener.wait_for_timeout(1000)
        settled = len(dropped)
        listener.wait_for_timeout(2500)  # ten levels messages, were they still sent
        assert len(dropped) == settled, f"{len(dropped) - settled} levels after levels_source"
        if workers:
            stats = httpx.get(f"{node.base_url}/api/v1/node/stats").json()
            assert stats["media_workers"]["websockets"] == [2]
        # The CSRC is Alice's, as the room JSON maps it.
        room = httpx.get(f"{node.base_url}/api/v1/rooms/{host.url.rsplit('/', 1)[1]}").json()
        csrc = next(m["csrc"] for m in room["speakers"] if m["username"] == alice)
        sources = listener.evaluate("window.parley.contributingSources().map(s => s.source)")
        assert csrc in sources

        # Muted, Alice is no longer a contributing source: the ring goes out.
        host.get_by_role("button", name="Mute microphone").click()
        expect(ring).not_to_have_class(re.compile(r"\bspeaking\b"), timeout=AUDIO_TIMEOUT_MS)
        assert listener.evaluate("window.parley.levelsSource") == "audio"
    finally:
        speaker_browser.close()
        listener_browser.close()
