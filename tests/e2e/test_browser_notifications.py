"""Notifications in the web client (issue 13, item 3) in a real Chromium.

alice keeps a page open while things happen to her on a real node: a follower (a local
follow: no activity crosses the network, the node tells her itself), a room she asked
to be reminded of starts (she pressed "Remind me" on its page), someone she follows goes
live, and she is invited to speak. The bell in the header counts each one as it arrives
over a WebSocket, on whatever page she is, without a reload: on a room page over the
room's own socket (no second one stays open), elsewhere over the notifications socket; the
notifications page lists them newest first, each leading where it happened, and "Mark
all as read" clears the count. Screenshots at 1280x800 and 390x844 and an axe-core check
of the notifications page go to tests/artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, Playwright, WebSocket, expect

from tests.conftest import Api, NodeProcess
from tests.e2e.browser import launch
from tests.e2e.test_browser_pages import capture, new_page

UI_MS = 20_000


def until(check: Callable[[], object], *, timeout: float = 30.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def log_in(page: Page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def bell_says(page: Page, unread: int) -> None:
    bell = page.locator("#nav a.bell")
    name = f"Notifications, {unread} unread" if unread else "Notifications"
    expect(bell).to_have_attribute("aria-label", name, timeout=UI_MS)
    count = bell.locator(".bell-count")
    if unread:
        expect(count).to_have_text(str(unread))
    else:
        expect(count).to_be_hidden()


@pytest.mark.e2e
def test_the_bell_counts_live_and_the_page_lists_them(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    node = node_factory()
    api = api_factory(node)
    host = node.base_url.removeprefix("http://")
    alice, bob, carol = api.signup("alice"), api.signup("bob"), api.signup("carol")
    followed = api.request("POST", "/api/v1/follows", alice, json={"handle": f"carol@{host}"})
    assert followed.status_code == 201, followed.text
    browser = launch(playwright_instance)
    try:
        page = new_page(browser, node.base_url)
        sockets: list[WebSocket] = []
        page.on("websocket", lambda ws: sockets.append(ws))

        def open_sockets(path: str) -> list[str]:
            page.wait_for_timeout(100)  # Playwright delivers socket events while it waits
            return [ws.url for ws in sockets if path in ws.url and not ws.is_closed()]

        log_in(page, "alice")
        expect(page.get_by_role("link", name="Notifications")).to_be_visible()
        bell_says(page, 0)
        # The log-in's own announcement first (it may come after the bell is drawn): a
        # later one would replace the notification's below.
        expect(page.locator("#announcer")).to_contain_text("Logged in as alice.")

        # 1. A follower (bob, on this node): the bell counts it while the home page is open.
        response = api.request("POST", "/api/v1/follows", bob, json={"handle": f"alice@{host}"})
        assert response.status_code == 201, response.text
        bell_says(page, 1)
        expect(page.locator("#announcer")).to_contain_text("bob@")  # also said to screen readers

        # 2. A room alice asked to be reminded of, from its page, starts.
        evening = api.create_room(bob, "Bob's evening", starts_at=time.time() + 3600)
        sockets.clear()  # those of the page before (a document that is gone)
        page.goto(f"/rooms/{evening['id']}")
        page.get_by_role("button", name="Remind me").click()
        expect(page.get_by_role("button", name="Reminder set ✓")).to_be_visible()
        started = api.request("POST", f"/api/v1/rooms/{evening['id']}/start", bob)
        assert started.status_code == 200, started.text
        bell_says(page, 2)

        # 3. Someone alice follows goes live.
        api.live_room(carol, "Carol at noon")
        bell_says(page, 3)

        # 4. Invited to speak, while she listens in bob's room (the bell on a room page).
        until(
            lambda: (
                "alice"
                in [
                    m["username"]
                    for m in api.http.get(f"/api/v1/rooms/{evening['id']}").json()["audience"]
                ]
            ),
            what="alice in the audience",
        )
        invite = api.request("POST", f"/api/v1/rooms/{evening['id']}/members/alice/invite", bob)
        assert invite.status_code == 200, invite.text
        bell_says(page, 4)
        # On the room page they came over the room's socket: the page's own is closed.
        until(lambda: not open_sockets("/notifications/ws"), what="one socket on a room page")
        assert open_sockets(f"/rooms/{evening['id']}/ws")

        # The page lists them, newest first, each a link to where it happened.
        page.get_by_role("link", name="Notifications, 4 unread").click()
        items = page.get_by_role("list", name="Notifications, newest first").locator("li")
        expect(items).to_have_count(4)
        expected = [
            ("invited", "bob invited you to speak in Bob's evening"),
            ("followed_live", "Carol at noon"),
            ("room_started", "Bob's evening has started: you asked to be reminded"),
            ("new_follower", f"bob@{host} follows you"),
        ]
        for item, (kind, text) in zip(items.all(), expected, strict=True):
            expect(item).to_have_attribute("data-kind", kind)
            expect(item).to_contain_text(text)
            expect(item).to_have_class("notification unread")
        capture(page, "notifications", lambda: expect(items).to_have_count(4))
        until(lambda: open_sockets("/notifications/ws"), what="the notifications socket again")

        # A fifth arrives while the list is open: it shows at the top at once.
        api.request("POST", "/api/v1/follows", carol, json={"handle": f"alice@{host}"})
        expect(items).to_have_count(5, timeout=UI_MS)
        expect(items.first).to_contain_text(f"carol@{host} follows you")
        bell_says(page, 5)

        page.get_by_role("button", name="Mark all as read").click()
        bell_says(page, 0)
        expect(page.locator("li.notification.unread")).to_have_count(0)
        assert api.request("GET", "/api/v1/notifications", alice).json()["unread"] == 0

        # Each leads where it happened: the follower's profile here.
        items.first.get_by_role("link").click()
        expect(page).to_have_url(f"{node.base_url}/@carol")

        # Signed out: no bell, and the page asks to log in.
        page.get_by_role("button", name="Log out").click()
        expect(page.locator("#nav a.bell")).to_have_count(0)
        page.goto("/notifications")
        expect(page).to_have_url(f"{node.base_url}/login?next=%2Fnotifications")
    finally:
        browser.close()
