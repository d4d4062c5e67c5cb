"""Following someone on another node from the web client, in a real Chromium.

Two real node processes on loopback: Alice lives on node A (driven through the API), Bob
signs up on node B in the browser, edits his profile, follows Alice by handle, sees her
live room on B's home page with its origin, and unfollows. What A knows is checked through
A's own API. Federation is asynchronous, so every cross-node check polls.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from tests.conftest import Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, PASSWORD, launch, new_context
from tests.federation_helpers import handle, wait_for

# Follow/Accept and the room announcement travel through delivery queues on both nodes.
FEDERATION_TIMEOUT_MS = 20_000
FEDERATION_TIMEOUT_S = FEDERATION_TIMEOUT_MS / 1000


def new_page(browser: Browser, base_url: str, **kwargs: Any) -> Page:
    return new_context(browser, base_url, **kwargs).new_page()


def handles(api: Api, path: str, key: str) -> list[str]:
    response = api.http.get(path)
    assert response.status_code == 200, response.text
    return [entry["handle"] for entry in response.json()[key]]


@pytest.mark.e2e
def test_follow_across_nodes_in_the_browser(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    a, b = node_factory(), node_factory()
    api_a = api_factory(a)
    alice_token = api_a.signup("alice")
    response = api_a.request(
        "PATCH", "/api/v1/me", alice_token, json={"display_name": "Alice Aardvark"}
    )
    assert response.status_code == 200, response.text
    alice = handle(a, "alice")
    bob = handle(b, "bob")

    browser = launch(playwright_instance)
    try:
        page = new_page(browser, b.base_url, viewport={"width": 1100, "height": 900})

        # Bob signs up on B through the UI and lands on the home page.
        page.goto("/signup")
        page.get_by_label("Username").fill("bob")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        expect(page.get_by_role("heading", name="Live now")).to_be_visible()
        expect(page.get_by_role("heading", name="People you follow")).to_be_visible()

        # The header links to his profile; he edits it there.
        page.get_by_role("link", name="Your profile (@bob)").click()
        expect(page).to_have_url(re.compile(r"/@bob$"))
        expect(page.get_by_role("heading", name="bob", exact=True)).to_be_visible()
        expect(page.locator(".profile-handle")).to_have_text(f"@{bob}")
        page.get_by_role("button", name="Edit profile").click()
        page.get_by_label("Display name").fill("Bob Builder")
        page.get_by_label("Bio").fill("Fixes things. Listens to rooms on other servers.")
        page.get_by_role("button", name="Save profile").click()
        expect(page.get_by_role("heading", name="Bob Builder")).to_be_visible()
        expect(page.locator(".profile-bio")).to_have_text(
            "Fixes things. Listens to rooms on other servers."
        )
        expect(page.get_by_role("button", name="Edit profile")).to_be_focused()

        # Back home. Nonsense is refused next to the field; an unknown handle gets a
        # readable error in the alert area.
        page.get_by_role("link", name="Parley home").click()
        follow_input = page.get_by_label("Follow by handle")
        follow_input.fill("not a handle")
        page.get_by_role("button", name="Follow", exact=True).click()
        expect(page.locator(".follow-panel .field-error")).to_contain_text("alice@other.example")
        expect(follow_input).to_have_attribute("aria-invalid", "true")
        alert = page.get_by_role("alert")
        follow_input.fill(f"nobody@127.0.0.1:{a.port}")
        page.get_by_role("button", name="Follow", exact=True).click()
        expect(alert).to_contain_text("nobody@127.0.0.1")
        page.get_by_role("button", name="Dismiss message").click()
        expect(alert).to_be_hidden()

        # Bob follows Alice by handle (with the leading @ people copy from profiles).
        follow_input.fill(f"@{alice}")
        page.get_by_role("button", name="Follow", exact=True).click()
        expect(page.locator(".follow-result")).to_contain_text(alice)
        entry = page.locator(".follow-panel .person", has_text=alice)
        # Pending until A's Accept arrives; the panel polls while anything is pending.
        expect(entry).to_contain_text("Accepted", timeout=FEDERATION_TIMEOUT_MS)
        expect(page.locator(".follow-result")).to_contain_text(f"You now follow {alice}")
        expect(alert).to_be_hidden()

        # A knows Bob as Alice's follower; B lists Alice as Bob's following.
        wait_for(
            lambda: bob in handles(api_a, "/api/v1/accounts/alice/followers", "followers"),
            timeout=FEDERATION_TIMEOUT_S,
            what="bob among alice's followers on A",
        )
        api_b = api_factory(b)
        assert handles(api_b, "/api/v1/accounts/bob/following", "following") == [alice]
        page.screenshot(path=str(ARTIFACTS / "profile.png"), full_page=True)
        page.set_viewport_size({"width": 380, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "profile-mobile.png"), full_page=True)
        page.set_viewport_size({"width": 1100, "height": 900})

        # Alice goes live on A.
        room = api_a.live_room(alice_token, "Aardvark hour")

        # Alice's public profile on A, seen by a guest: her live room and Bob as a follower.
        guest = new_page(browser, a.base_url)
        guest.goto("/@alice")
        expect(guest.get_by_role("heading", name="Alice Aardvark")).to_be_visible()
        followers = guest.get_by_role("region", name=re.compile(r"^Followers"))
        expect(followers).to_contain_text(f"@{bob}")
        expect(guest.locator(".profile-rooms")).to_contain_text("Aardvark hour")
        expect(guest.locator(".profile-rooms .live-badge")).to_have_text("LIVE")
        guest.screenshot(path=str(ARTIFACTS / "profile-guest.png"), full_page=True)
        guest.context.close()

        # B's home page lists her room with where it lives (once A's announcement arrives).
        page.get_by_role("link", name="Parley home").click()
        card = page.locator(".room-card.remote", has_text="Aardvark hour")

        def listed() -> bool:
            if card.count():
                return True
            page.reload()
            page.get_by_role("heading", name="Live now").wait_for()
            page.wait_for_load_state("networkidle")
            return card.count() > 0

        wait_for(listed, timeout=FEDERATION_TIMEOUT_S, what="Alice's room on B's home page")
        expect(card).to_contain_text(f"on 127.0.0.1:{a.port}")
        expect(card).to_contain_text("Alice Aardvark")
        # The card opens B's own view of the room (B relays it), not A's page.
        local_url = f"{b.base_url}/rooms/remote?origin={quote(room['url'], safe='')}"
        expect(card.get_by_role("link")).to_have_attribute("href", local_url)
        expect(page.locator(".follow-panel .person", has_text=alice)).to_contain_text("Accepted")
        page.screenshot(path=str(ARTIFACTS / "home-remote.png"), full_page=True)
        page.set_viewport_size({"width": 380, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "home-remote-mobile.png"), full_page=True)
        page.set_viewport_size({"width": 1100, "height": 900})
        card.get_by_role("link").click()
        expect(page).to_have_url(re.compile(rf"^{re.escape(b.base_url)}/rooms/[^/?]+$"))
        expect(page.get_by_role("heading", name="Aardvark hour")).to_be_visible()
        expect(page.locator(".room-head .origin-badge")).to_have_text(f"on 127.0.0.1:{a.port}")
        page.get_by_role("link", name="Parley home").click()

        # Bob unfollows from the home page; the list empties and A forgets him.
        page.get_by_role("button", name=f"Unfollow {alice}").click()
        expect(page.locator(".follow-panel .person")).to_have_count(0)
        expect(page.locator(".follow-panel")).to_contain_text("You do not follow anyone")
        expect(alert).to_be_hidden()
        wait_for(
            lambda: bob not in handles(api_a, "/api/v1/accounts/alice/followers", "followers"),
            timeout=FEDERATION_TIMEOUT_S,
            what="bob gone from alice's followers on A",
        )
        assert handles(api_b, "/api/v1/accounts/bob/following", "following") == []
    finally:
        browser.close()
