"""Scheduled rooms in Chromium (issue 12, item 2), each viewer in their own time zone.

alice (in New York) creates a recorded room for a date and time from the form; the node
stores the instant she meant. bob (in Tokyo) sees the same start in his own time, presses
"Remind me", and gets the .ics file. alice moves the start, then goes live early: the
"Recording" badge is on for everyone. A second scheduled room is cancelled from its page.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar
from playwright.sync_api import Page, Playwright, expect

from tests.conftest import Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, launch, new_context
from tests.federation_helpers import actor_url, db_rows, follow, handle, wait_accepted

NEW_YORK, TOKYO = "America/New_York", "Asia/Tokyo"


def log_in(page: Page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def shown(moment: dt.datetime, zone: str) -> str:
    """How the page writes a moment for someone in `zone` (en-GB: 24-hour clock)."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local.day} {local.strftime('%b')}, {local.strftime('%H:%M')}"


@pytest.mark.e2e
def test_schedule_remind_edit_start_early_and_cancel(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    node = node_factory()
    api = api_factory(node)
    alice = api.signup("alice")
    api.signup("bob")
    browser = launch(playwright_instance)
    try:
        host = new_context(browser, node.base_url, timezone_id=NEW_YORK, locale="en-GB")
        page = host.new_page()
        log_in(page, "alice")

        # Two days from now at 09:30 in New York, typed as a New Yorker types it.
        day = dt.datetime.now(ZoneInfo(NEW_YORK)).date() + dt.timedelta(days=2)
        meant = dt.datetime.combine(day, dt.time(9, 30), ZoneInfo(NEW_YORK))
        page.goto("/new")
        expect(
            page.get_by_label(f"Starts at (optional, your time zone: {NEW_YORK})")
        ).to_be_visible()
        page.get_by_label("Title").fill("Morning questions")
        page.locator("input[name=starts_at]").fill(meant.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_label("Record this room").check()
        page.get_by_role("button", name="Create room").click()
        schedule = page.get_by_role("region", name="Upcoming")
        expect(schedule).to_contain_text(shown(meant, NEW_YORK))
        room_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        room = api.http.get(f"/api/v1/rooms/{room_id}").json()
        assert room["starts_at"] == meant.timestamp()
        assert room["recording"] is True and room["state"] == "scheduled"

        # bob, in Tokyo, sees the same instant in his own time, and asks to be reminded.
        guest = new_context(browser, node.base_url, timezone_id=TOKYO, locale="en-GB")
        bob = guest.new_page()
        log_in(bob, "bob")
        bob.goto(f"/rooms/{room_id}")
        bobs = bob.get_by_role("region", name="Upcoming")
        expect(bobs).to_contain_text(shown(meant, TOKYO))
        assert shown(meant, TOKYO) != shown(meant, NEW_YORK)
        bob.get_by_role("button", name="Remind me").click()
        expect(bob.get_by_role("button", name="Reminder set ✓")).to_have_attribute(
            "aria-pressed", "true"
        )
        bob.screenshot(path=str(ARTIFACTS / "rooms-scheduled-tokyo.png"), full_page=True)
        # The .ics link: a calendar file with the instant, for any calendar app.
        ics_url = bobs.get_by_role("link", name="Add to calendar (.ics)").get_attribute("href")
        assert ics_url is not None
        ics = httpx.get(ics_url, timeout=10)
        assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
        [event] = Calendar.from_ical(ics.content).walk("VEVENT")
        assert event.decoded("DTSTART") == meant
        assert str(event.get("SUMMARY")) == "Morning questions"
        # Home lists it under Upcoming, in Tokyo time for bob.
        bob.goto("/")
        card = bob.get_by_role("region", name="Upcoming").locator(".room-card")
        expect(card).to_contain_text("Morning questions")
        expect(card.locator(".when-badge")).to_contain_text(shown(meant, TOKYO))

        # alice moves it an hour later, in her own time.
        later = meant + dt.timedelta(hours=1)
        page.get_by_label("New start time").fill(later.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_role("button", name="Change time").click()
        expect(schedule).to_contain_text(shown(later, NEW_YORK))
        assert api.http.get(f"/api/v1/rooms/{room_id}").json()["starts_at"] == later.timestamp()

        # ... then starts early: live now, and everyone sees it is recorded.
        page.get_by_role("button", name="Go live").click()
        expect(page.locator(".badge.recording")).to_be_visible()
        bob.goto(f"/rooms/{room_id}")
        expect(bob.locator(".badge.recording")).to_be_visible()
        assert api.http.get(f"/api/v1/rooms/{room_id}").json()["state"] == "live"
        notes = api.request("GET", "/api/v1/notifications", api.signup("carol")).json()
        assert notes["notifications"] == []  # only those who asked are told
        # bob asked: his bell says so.
        expect(bob.locator("#nav a.bell .bell-count")).to_have_text("1")

        # Another scheduled room, cancelled from its page.
        other = api.create_room(alice, "Maybe later", starts_at=later.timestamp() + 86400)
        page.goto(f"/rooms/{other['id']}")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Cancel room").click()
        expect(page.get_by_role("region", name="Upcoming")).to_be_hidden()
        cancelled = api.http.get(f"/api/v1/rooms/{other['id']}").json()
        assert cancelled["state"] == "ended" and cancelled["cancelled"] is True
        assert api.request("GET", "/api/v1/rooms?state=scheduled", alice).json()["rooms"] == []
    finally:
        browser.close()


@pytest.mark.e2e
def test_a_user_of_another_node_asks_to_be_reminded_from_home(
    node_factory: Callable[..., NodeProcess],
    api_factory: Callable[[NodeProcess], Api],
    playwright_instance: Playwright,
) -> None:
    """bob on B follows alice on A. Her scheduled room reaches B as an Event and shows under
    Upcoming on B's home page; bob presses "Remind me" there: B sends A an Accept{Event}
    (A records the RSVP). When alice goes live, bob's bell on B counts it, live."""
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    alice = api_a.signup("alice")
    bob = api_b.signup("bob")
    follow(api_b, bob, handle(a, "alice"))
    wait_accepted(api_b, bob, actor_url(a, "alice"))
    starts = time.time() + 7200
    room = api_a.create_room(alice, "Across the fediverse", starts_at=starts)
    # B lists it once its Event is in (the scheduled Note may come first, without a time).
    deadline = time.monotonic() + 60
    while not any(
        r.get("url") == room["url"] and r.get("starts_at")
        for r in api_b.http.get("/api/v1/rooms", params={"state": "scheduled"}).json()["rooms"]
    ):
        assert time.monotonic() < deadline, "the Event never reached B"
        time.sleep(0.2)
    browser = launch(playwright_instance)
    try:
        page = new_context(browser, b.base_url, timezone_id=TOKYO, locale="en-GB").new_page()
        log_in(page, "bob")
        upcoming = page.get_by_role("region", name="Upcoming")
        card = upcoming.locator(".room-card", has_text="Across the fediverse")
        moment = dt.datetime.fromtimestamp(starts, dt.UTC)
        expect(card.locator(".when-badge")).to_contain_text(shown(moment, TOKYO))
        expect(card).to_contain_text(f"on {a.base_url.removeprefix('http://')}")
        # Its name says which room (a visually hidden part, for screen readers).
        card.get_by_role("button", name=re.compile(r"^Remind me\W+Across the fediverse$")).click()
        reminded = card.get_by_role(
            "button", name=re.compile(r"^Reminder set ✓\W+Across the fediverse$")
        )
        expect(reminded).to_have_attribute("aria-pressed", "true")
        mine = api_b.request("GET", "/api/v1/reminders", bob).json()["reminders"]
        assert [r["room"] for r in mine] == [room["url"]] and mine[0]["remote"] is True
        deadline = time.monotonic() + 30
        while not db_rows(a, "select actor from event_rsvps where room_id = ?", (room["id"],)):
            assert time.monotonic() < deadline, "A never recorded bob's RSVP"
            time.sleep(0.2)
        page.screenshot(path=str(ARTIFACTS / "rooms-upcoming-remote.png"), full_page=True)

        started = api_a.request("POST", f"/api/v1/rooms/{room['id']}/start", alice)
        assert started.status_code == 200, started.text
        expect(page.locator("#nav a.bell .bell-count")).to_have_text("1", timeout=30_000)
        [note] = api_b.request("GET", "/api/v1/notifications", bob).json()["notifications"]
        assert note["kind"] == "room_started"
        assert note["url"].startswith(b.base_url)  # B's copy of the room
    finally:
        browser.close()
