"""The web client's pages in Chromium (issue 13, items 2, 4 and 5, and the proof).

Screenshots at 1280x800 and 390x844 of the home (visitor and signed in), search,
profile, settings, room and 404 pages go to tests/artifacts/; each page is checked with
axe-core (tests/axe, pinned in its lockfile, injected by Playwright): no serious or
critical violation. Long unbroken words never widen a phone screen. Then the flows:
finding people and rooms and following them (here and on another node), forms that say
what is wrong next to the field, and the settings page.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from tests.conftest import ROOT, Api, NodeProcess
from tests.e2e.browser import (
    ARTIFACTS,
    LISTENING_OVER_WEBRTC,
    PASSWORD,
    launch,
    new_context,
    sign_up,
)
from tests.federation_helpers import handle

AXE = ROOT / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
LONG_WORD = "W" * 1000


def check_axe(page: Page, name: str) -> list[dict[str, Any]]:
    """Run axe-core on the page; fail on serious or critical violations. Returns all."""
    assert AXE.exists(), "run `make tests/axe/node_modules/.package-lock.json`"
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    violations = [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result
    ]
    (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(violations, indent=2))
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {json.dumps(bad, indent=2)}"
    return violations


def fits_the_screen(page: Page, name: str) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None
    assert width <= viewport["width"], (
        f"{name} is {width}px wide on a {viewport['width']}px screen"
    )


def capture(page: Page, name: str, ready: Callable[[], None]) -> None:
    """Screenshot `name` at both sizes, axe-check it once, and check nothing overflows."""
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        ready()
        fits_the_screen(page, f"{name} ({size})")
        page.screenshot(path=str(ARTIFACTS / f"page-{name}-{size}.png"), full_page=True)
    check_axe(page, name)
    page.set_viewport_size({"width": 1280, "height": 800})


def new_page(browser: Browser, base_url: str) -> Page:
    return new_context(browser, base_url, viewport={"width": 1280, "height": 800}).new_page()


@pytest.mark.e2e
def test_every_page_at_two_sizes_with_axe(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    node = node_factory(
        node={"description": "Live audio rooms for the people of Lakeside and their friends."}
    )
    api = api_factory(node)
    alice = api.signup("alice")
    api.request(
        "PATCH", "/api/v1/me", alice, json={"display_name": "Alice Aardvark", "bio": "W" * 500}
    )
    live = api.live_room(alice, "Morning show")
    api.create_room(alice, "Evening news", description=LONG_WORD)
    api.create_room(alice, "W" * 120)
    browser = launch(playwright_instance)
    try:
        page = new_page(browser, node.base_url)
        page.goto("/")
        welcome = page.get_by_role("heading", name=f"Welcome to 127.0.0.1:{node.port}")
        expect(welcome).to_be_visible()
        expect(page.locator(".welcome")).to_contain_text("people of Lakeside")
        upcoming = page.get_by_role("region", name="Upcoming")
        capture(page, "home-visitor", lambda: expect(upcoming).to_contain_text("Evening news"))

        response = page.goto("/no/such/page")
        assert response is not None and response.status == 404
        capture(
            page,
            "not-found",
            lambda: expect(page.get_by_role("heading", name="Page not found")).to_be_visible(),
        )

        sign_up(page, "bob")
        page.get_by_role("link", name="Parley home").click()
        live_now = page.get_by_role("region", name="Live now")
        capture(page, "home", lambda: expect(live_now).to_contain_text("Morning show"))

        page.goto("/search?q=aardvark")
        people = page.get_by_role("region", name="People (1)")
        capture(page, "search", lambda: expect(people).to_contain_text("Alice Aardvark"))

        page.goto("/@alice")
        heading = page.get_by_role("heading", name="Alice Aardvark")
        capture(page, "profile", lambda: expect(heading).to_be_visible())

        page.goto("/settings")
        sessions = page.get_by_role("region", name="Where you are signed in")
        capture(page, "settings", lambda: expect(sessions).to_contain_text("This browser"))

        page.goto(live["url"])
        stage = page.get_by_role("region", name="Stage")

        def room_ready() -> None:
            expect(stage).to_contain_text("Alice Aardvark")
            expect(page.locator(".room-status")).to_have_text(LISTENING_OVER_WEBRTC)

        capture(page, "room", room_ready)
    finally:
        browser.close()


@pytest.mark.e2e
def test_finding_and_following_people_here_and_elsewhere(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    api_a.request("PATCH", "/api/v1/me", alice, json={"display_name": "Alice Aardvark"})
    api_a.live_room(alice, "Aardvark hour")
    api_b.signup("zoe")
    api_b.request("PATCH", "/api/v1/me", api_b.signup("yan"), json={"display_name": "Yan"})
    browser = launch(playwright_instance)
    try:
        page = new_page(browser, a.base_url)
        sign_up(page, "bob")

        # Search by name finds Alice and her room; her profile has a Follow button.
        page.get_by_role("link", name="Search").click()
        page.get_by_label("Search people and rooms").fill("aardvark")
        page.get_by_role("button", name="Search", exact=True).click()
        people = page.get_by_role("region", name="People (1)")
        expect(people).to_contain_text(f"@alice@127.0.0.1:{a.port}")
        expect(page.get_by_role("region", name="Rooms (1)")).to_contain_text("Aardvark hour")
        people.get_by_role("link", name="Alice Aardvark").click()
        expect(page.get_by_role("heading", name="Alice Aardvark")).to_be_visible()
        page.get_by_role("button", name=f"Follow alice@127.0.0.1:{a.port}").click()
        expect(
            page.get_by_role("button", name=f"Unfollow alice@127.0.0.1:{a.port}")
        ).to_be_visible()
        expect(page.locator(".follow-note")).to_have_text("You follow them.")
        page.reload()
        expect(page.get_by_role("region", name="Followers (1)")).to_contain_text("@bob")

        # Home: people you follow, with Alice live now.
        page.get_by_role("link", name="Parley home").click()
        entry = page.locator(".follow-panel .person", has_text="alice")
        expect(entry).to_contain_text("LIVE")
        expect(entry).to_contain_text("Accepted")

        # Following by handle on this node works, as typed into the home page's form.
        yan_here = page.get_by_label("Follow by handle")
        yan_here.fill(f"@alice@127.0.0.1:{a.port}")
        page.get_by_role("button", name="Follow", exact=True).click()
        expect(page.locator(".follow-result")).to_contain_text("You follow alice@")

        # Someone on another server: found by handle (WebFinger), followed from the results.
        page.get_by_role("link", name="Search").click()
        page.get_by_label("Search people and rooms").fill(handle(b, "zoe"))
        page.get_by_role("button", name="Search", exact=True).click()
        result = page.locator(".search-results .person", has_text=handle(b, "zoe"))
        expect(result).to_contain_text("another server")
        result.get_by_role("button", name=f"Follow {handle(b, 'zoe')}").click()
        expect(result.locator(".follow-note")).not_to_have_text("")
        # Their profile through this node, with Follow state.
        page.goto(f"/@{handle(b, 'yan')}")
        expect(page.get_by_role("heading", name="Yan")).to_be_visible()
        expect(page.get_by_role("button", name=f"Follow {handle(b, 'yan')}")).to_be_visible()
        # An unknown handle elsewhere is said next to the search field.
        page.goto(f"/search?q={handle(b, 'nobody')}")
        expect(page.locator(".search-form .field-error")).to_contain_text("nobody@")
    finally:
        browser.close()


@pytest.mark.e2e
def test_forms_say_what_is_wrong_next_to_the_field(
    node: NodeProcess, api: Api, playwright_instance: Playwright
) -> None:
    api.signup("taken")
    browser = launch(playwright_instance)
    try:
        page = new_page(browser, node.base_url)
        # A taken username is said under the Username field, which gets the focus.
        page.goto("/signup")
        username = page.get_by_label("Username")
        username.fill("taken")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.locator(".field-error").first).to_have_text("The username taken is taken.")
        expect(username).to_be_focused()
        expect(username).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_role("alert")).to_be_hidden()
        username.fill(f"u{secrets.token_hex(3)}")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()

        # A title over 120 characters is counted and refused, not cut.
        page.goto("/new")
        title = page.get_by_label("Title")
        too_long = "A" * 125
        title.fill(too_long)
        expect(page.locator(".counter").first).to_have_text("125 / 120: 5 too many")
        expect(page.locator(".field-error").first).to_have_text(
            "Title is 5 characters too long (at most 120)."
        )
        page.get_by_role("button", name="Create room").click()
        expect(page).to_have_url(f"{node.base_url}/new")
        expect(title).to_be_focused()
        assert title.input_value() == too_long  # nothing was cut
        title.fill("A" * 120)
        expect(page.locator(".counter").first).to_have_text("120 / 120")
        expect(page.locator(".field-error").first).to_be_hidden()
        page.get_by_role("button", name="Create room").click()
        expect(page.get_by_role("heading", name="A" * 120)).to_be_visible()
    finally:
        browser.close()


@pytest.mark.e2e
def test_settings_password_and_sessions(
    node: NodeProcess, api: Api, playwright_instance: Playwright
) -> None:
    browser = launch(playwright_instance)
    try:
        page = new_page(browser, node.base_url)
        sign_up(page, "carol")
        # Another session of Carol's, as a script would have.
        other = api.http.post("/api/v1/sessions", json={"username": "carol", "password": PASSWORD})
        assert other.status_code == 200
        api.http.cookies.clear()
        page.get_by_role("link", name="Settings").click()
        sessions = page.locator(".session")
        expect(sessions).to_have_count(2)
        expect(sessions.filter(has_text="This browser")).to_have_count(1)

        current = page.get_by_label("Current password")
        fresh = page.get_by_label("New password", exact=True)
        again = page.get_by_label("New password again")
        current.fill(PASSWORD)
        fresh.fill("a brand new password")
        again.fill("a different one")
        page.get_by_role("button", name="Change password").click()
        expect(page.locator(".field-error:visible")).to_have_text(
            "The two new passwords are not the same."
        )
        expect(again).to_be_focused()
        current.fill("not my password")
        again.fill("a brand new password")
        page.get_by_role("button", name="Change password").click()
        expect(page.locator(".field-error:visible")).to_have_text("Is not your current password.")
        expect(current).to_be_focused()
        current.fill(PASSWORD)
        page.get_by_role("button", name="Change password").click()
        expect(page.locator(".form-done")).to_have_text(
            "Password changed. Signed out 1 other session."
        )
        expect(sessions).to_have_count(1)
        token = other.json()["token"]
        assert api.request("GET", "/api/v1/me", token).status_code == 401

        # Signing out another browser from the list.
        third = api.http.post(
            "/api/v1/sessions", json={"username": "carol", "password": "a brand new password"}
        )
        api.http.cookies.clear()
        page.reload()
        expect(sessions).to_have_count(2)
        sessions.filter(has_not_text="This browser").get_by_role("button").click()
        expect(sessions).to_have_count(1)
        assert api.request("GET", "/api/v1/me", third.json()["token"]).status_code == 401
        assert Path(ARTIFACTS).exists()
    finally:
        browser.close()
