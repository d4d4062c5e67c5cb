"""Someone of another fediverse server joins a room in Chromium as themselves.

The Fedify peer (an independent ActivityPub implementation) plays their server: it gets
the private mention, the test reads the code from the delivered Note as its owner
would, types it on our room page, and the visitor raises a hand, is invited, speaks with
a fake microphone, and an aiortc WHEP listener hears them (the tone, decoded).
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Playwright, expect

from node.media.ice import install_ice_policy
from tests.conftest import LOOPBACK, Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, launch, new_context
from tests.e2e.test_browser_pages import capture
from tests.federation_helpers import wait_for
from tests.fedify_peer import FedifyPeer


def delivered_codes(peer: FedifyPeer) -> list[tuple[str, str]]:
    """(code, link) of every direct message the peer got, oldest first."""
    found = []
    for entry in peer.inbox():
        if entry.get("type") != "Create":
            continue
        content = entry["activity"]["object"]["content"]
        code = re.search(r"<strong>([A-Z0-9]+)</strong>", content)
        link = re.search(r'href="([^"]+#visitor=[^"]+)"', content)
        if code and link:
            found.append((code.group(1), html.unescape(link.group(1))))
    return found


async def _heard_by_whep(whep_url: str, hz: float) -> None:
    from tests.test_relay_nodes import hears
    from tests.test_signaling import whep

    install_ice_policy(LOOPBACK, asyncio.get_running_loop())
    pcs: list[Any] = []
    try:
        await hears(await whep(whep_url, pcs), hz, tries=30)
    finally:
        for pc in pcs:
            await pc.close()


def heard_by_whep(whep_url: str, hz: float) -> None:
    """An aiortc WHEP listener (its own event loop, in a thread) hears ``hz``."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _heard_by_whep(whep_url, hz)).result(timeout=90)


@pytest.mark.e2e
def test_a_fediverse_visitor_joins_raises_a_hand_and_is_heard(
    node: NodeProcess,
    api: Api,
    fedify_peers: Callable[..., FedifyPeer],
    tones: dict[int, Path],
    playwright_instance: Playwright,
) -> None:
    peer = fedify_peers()
    alice = api.signup("alice")
    room = api.live_room(alice, "Open questions")
    name = "bob (Fedify test peer)"
    browser = launch(playwright_instance, tones[660])
    try:
        page = new_context(browser, node.base_url).new_page()
        page.goto(room["url"])
        expect(page.get_by_role("heading", name="Open questions")).to_be_visible()
        page.get_by_role(
            "heading", name="Join with your fediverse account"
        ).scroll_into_view_if_needed()

        # A wrong handle says so next to the field.
        page.get_by_label("Your fediverse handle").fill("bob")
        page.get_by_role("button", name="Send me a code").click()
        expect(page.locator(".visitor-join .field-error")).to_contain_text("handle")

        page.get_by_label("Your fediverse handle").fill(f"@{peer.handle}")
        page.get_by_role("button", name="Send me a code").click()
        code_step = page.get_by_role("heading", name=re.compile("Check your messages"))
        expect(code_step).to_be_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        capture(page, "room-visitor-code", lambda: expect(code_step).to_be_visible())
        code, _ = wait_for(lambda: delivered_codes(peer), what="the private mention")[0]

        # A wrong code is refused, with the tries left; the right one lets them in.
        page.get_by_label("Code").fill("ZZZZZZ")
        page.get_by_role("button", name="Join", exact=True).click()
        # Next to the field, with the tries left.
        expect(page.locator(".visitor-join .field-error")).to_contain_text(
            re.compile(r"wrong code \(4 tries left\)", re.I)
        )
        page.get_by_label("Code").fill(code.lower())
        page.get_by_role("button", name="Join", exact=True).click()
        badge = page.locator(".visitor-badge")
        expect(badge).to_contain_text(f"You are in as {name}")
        expect(badge).to_contain_text(f"@{peer.handle}")
        # In the audience with their name, handle and the avatar this node keeps.
        me = page.locator(f'.audience-card[data-username="{peer.handle}"]')
        expect(me).to_contain_text(name)
        expect(me).to_contain_text(f"@{peer.handle}")
        expect(me.locator("img.avatar")).to_have_attribute(
            "src", re.compile(rf"^{re.escape(node.base_url)}/api/v1/visitors/")
        )
        capture(page, "room-visitor-joined", lambda: expect(badge).to_be_visible())

        page.get_by_role("button", name="Raise hand").click()
        expect(page.get_by_role("button", name="Lower hand")).to_be_visible()
        wait_for(
            lambda: peer.handle in api.http.get(f"/api/v1/rooms/{room['id']}").json()["hands"],
            what="the hand on the node",
        )
        invited = api.request(
            "POST", f"/api/v1/rooms/{room['id']}/members/{peer.handle}/invite", alice
        )
        assert invited.status_code == 200, invited.text
        page.get_by_role("button", name="Accept invitation to speak").click()
        page.get_by_role("button", name="Unmute microphone").click()
        expect(page.get_by_role("button", name="Mute microphone")).to_be_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "room-visitor.png"), full_page=True)

        heard_by_whep(room["whep_url"], 660)

        # The host sees who they are and where from, and blocks them like anyone.
        blocked = api.request(
            "POST", f"/api/v1/rooms/{room['id']}/members/{peer.handle}/block", alice
        )
        assert blocked.status_code == 200, blocked.text
        expect(page.get_by_text("blocked from rejoining").first).to_be_visible()
    finally:
        browser.close()


@pytest.mark.e2e
def test_the_link_in_the_message_signs_in_the_browser_that_opens_it(
    node: NodeProcess,
    api: Api,
    fedify_peers: Callable[..., FedifyPeer],
    playwright_instance: Playwright,
) -> None:
    peer = fedify_peers()
    room = api.live_room(api.signup("alice"), "Linked")
    browser = launch(playwright_instance)
    try:
        context = new_context(browser, node.base_url)
        waiting = context.new_page()
        waiting.goto(room["url"])
        # "Listen here" puts the join card away; the toolbar brings it back, focused.
        waiting.get_by_role("button", name="Listen here").click()
        expect(waiting.get_by_label("Your fediverse handle")).to_be_hidden()
        waiting.get_by_role("button", name="Join with your fediverse account").click()
        expect(waiting.get_by_label("Your fediverse handle")).to_be_focused()
        waiting.get_by_label("Your fediverse handle").fill(peer.handle)
        waiting.get_by_role("button", name="Send me a code").click()
        expect(
            waiting.get_by_role("heading", name=re.compile("Check your messages"))
        ).to_be_visible()
        _, link = wait_for(lambda: delivered_codes(peer), what="the private mention")[0]

        # A browser elsewhere (another context: no shared cookies) that opens the link is
        # the one signed in; the waiting page is not.
        elsewhere = new_context(browser, node.base_url).new_page()
        elsewhere.goto(link)
        expect(elsewhere.locator(".visitor-badge")).to_contain_text("You are in as")
        assert "#visitor" not in elsewhere.url
        expect(waiting.locator(".visitor-badge")).to_be_hidden()

        # In this browser, a second tab opening a new code's link brings the waiting page
        # in too.
        waiting.get_by_role("button", name="Use another handle").click()
        waiting.get_by_label("Your fediverse handle").fill(peer.handle)
        waiting.get_by_role("button", name="Send me a code").click()
        _, link = wait_for(
            lambda: (codes := delivered_codes(peer))[1:] and codes[1], what="a second message"
        )
        tab = context.new_page()
        tab.goto(link)
        expect(tab.locator(".visitor-badge")).to_contain_text("You are in as")
        expect(waiting.locator(".visitor-badge")).to_contain_text("You are in as")
        wait_for(
            lambda: any(
                m["username"] == peer.handle
                for m in api.http.get(f"/api/v1/rooms/{room['id']}").json()["audience"]
            ),
            what="the visitor in the room",
        )

        # Sign out: the session is revoked, the page is a guest again.
        waiting.get_by_role("button", name="Sign out").click()
        expect(waiting.locator(".visitor-badge")).to_be_hidden()
        assert waiting.evaluate("fetch('/api/v1/visitor').then(r => r.status)") == 401
    finally:
        browser.close()


@pytest.mark.e2e
def test_a_visitor_on_b_speaks_in_a_room_of_a_and_a_moderates_them(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    fedify_peers: Callable[..., FedifyPeer],
    tones: dict[int, Path],
    playwright_instance: Playwright,
) -> None:
    """Across nodes in Chromium: the visitor joins on B's page of a room of A; A knows
    them by their fediverse handle (B vouches), A's host invites them, A's listeners hear
    them, and A's block puts them out of B's page."""
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    peer = fedify_peers()
    alice = api_a.signup("alice")
    room = api_a.live_room(alice, "Across the river")
    carol = api_b.signup("carol")
    carried = api_b.request("POST", "/api/v1/remote-rooms", carol, json={"url": room["url"]})
    assert carried.status_code in (200, 201), carried.text
    mirror = carried.json()
    b_host = f"127.0.0.1:{b.port}"
    browser = launch(playwright_instance, tones[660])
    try:
        page = new_context(browser, b.base_url).new_page()
        page.goto(f"/rooms/{mirror['id']}")
        expect(page.get_by_role("heading", name="Across the river")).to_be_visible()
        expect(page.locator(".origin-badge")).to_contain_text(f"127.0.0.1:{a.port}")
        page.get_by_label("Your fediverse handle").fill(peer.handle)
        page.get_by_role("button", name="Send me a code").click()
        code, _ = wait_for(lambda: delivered_codes(peer), what="the private mention")[0]
        page.get_by_label("Code").fill(code)
        page.get_by_role("button", name="Join", exact=True).click()
        expect(page.locator(".visitor-badge")).to_contain_text(f"@{peer.handle}")

        def member_on_a() -> dict[str, Any] | None:
            doc = api_a.http.get(f"/api/v1/rooms/{room['id']}").json()
            return next(
                (m for m in doc["speakers"] + doc["audience"] if m["username"] == peer.handle),
                None,
            )

        seen = wait_for(member_on_a, what="the visitor on A, by their handle")
        assert seen["visitor"] is True and seen["verified_by"] == b_host

        page.get_by_role("button", name="Raise hand").click()
        wait_for(
            lambda: peer.handle in api_a.http.get(f"/api/v1/rooms/{room['id']}").json()["hands"],
            what="the hand on A",
        )
        invited = api_a.request(
            "POST", f"/api/v1/rooms/{room['id']}/members/{peer.handle}/invite", alice
        )
        assert invited.status_code == 200, invited.text
        page.get_by_role("button", name="Accept invitation to speak").click()
        page.get_by_role("button", name="Unmute microphone").click()
        expect(page.get_by_role("button", name="Mute microphone")).to_be_visible()
        wait_for(
            lambda: (m := member_on_a()) is not None and m["publishing"] and not m["muted"],
            what="the visitor's voice on A",
        )
        heard_by_whep(room["whep_url"], 660)

        blocked = api_a.request(
            "POST", f"/api/v1/rooms/{room['id']}/members/{peer.handle}/block", alice
        )
        assert blocked.status_code == 200, blocked.text
        expect(page.get_by_text("blocked from rejoining").first).to_be_visible(timeout=15000)
        wait_for(lambda: member_on_a() is None, what="the visitor gone from A")
    finally:
        browser.close()
