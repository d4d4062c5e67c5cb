"""Stream keys for OBS in the web client, in a real Chromium.

Alice creates a key for her room on her settings page, copies it from the page, an
encoder (aiortc, as OBS would over WHIP) publishes with it, she revokes it in the page,
and the same key is refused.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Playwright, expect

from node.media.ice import IceSettings, install_ice_policy
from tests.conftest import Api, NodeProcess
from tests.e2e.browser import PASSWORD, launch, new_context
from tests.test_hostile_clients import _whip


async def _publish_async(url: str, key: str) -> int:
    install_ice_policy(IceSettings(host_addresses=("127.0.0.1",)), asyncio.get_running_loop())
    pcs: list = []
    try:
        return (await _whip(url, key, pcs)).status_code
    finally:
        for pc in pcs:
            await pc.close()


def _publish(url: str, key: str) -> int:
    """An encoder's WHIP publish, on its own thread and loop (Playwright's sync API owns
    this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _publish_async(url, key)).result(timeout=60)


@pytest.mark.e2e
def test_stream_keys_on_the_settings_page(
    node: NodeProcess, api_factory: Callable[[NodeProcess], Api], playwright_instance: Playwright
) -> None:
    api = api_factory(node)
    browser = launch(playwright_instance)
    try:
        page = new_context(browser, node.base_url).new_page()
        page.goto("/signup")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        token = api.http.post(
            "/api/v1/sessions", json={"username": "alice", "password": PASSWORD}
        ).json()["token"]
        api.http.cookies.clear()
        room = api.live_room(token, "OBS show")

        page.get_by_role("link", name="Settings").click()
        expect(page).to_have_url(re.compile(r"/settings$"))
        card = page.get_by_role("region", name="Stream keys (OBS)")
        expect(card).to_be_visible()
        card.get_by_label("Name").fill("OBS laptop")
        card.get_by_label("Room").select_option(label="OBS show")
        card.get_by_role("button", name="Create stream key").click()
        shown = card.get_by_label("Your new stream key")
        expect(shown).to_have_value(re.compile(r"^pk_"))
        key = shown.input_value()
        expect(card.get_by_role("listitem")).to_have_count(1)
        expect(card.get_by_role("listitem")).to_contain_text("OBS laptop")

        assert _publish(room["whip_url"], key) == 201

        page.reload()
        card = page.get_by_role("region", name="Stream keys (OBS)")
        expect(card.get_by_role("listitem")).to_contain_text(re.compile(r"last used (?!never)"))
        card.get_by_role("button", name="Revoke OBS laptop").click()
        expect(card.get_by_text("No stream keys yet.")).to_be_visible()
        assert _publish(room["whip_url"], key) == 401
    finally:
        browser.close()
