"""The admin page and what users have of moderation, in Chromium against real nodes
(issue 11, "How it is proven").

An admin sets the server up (name, description, rules, approval mode: the home page and
/about show them), approves a pending sign-up after reading its reason, suspends an
account (its live room ends for a listener with the reason), resolves a user's report
(who did what is recorded), ends a room with a reason, blocks a server (its room vanishes
from the list at once, follows to it are refused, /about lists it) and makes a one-time
password link that works once. Each admin section is screenshot at 1280x800 and 390x844
and checked with axe-core. Then a user of one node reports a speaker of another node's
room from the room page, and the report lands in the other node's queue as a Flag.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Playwright, expect

from tests.conftest import Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, PASSWORD, launch
from tests.e2e.test_browser_pages import capture, new_page
from tests.federation_helpers import handle, wait_for
from tests.moderation_helpers import make_admin, node_on
from tests.test_signaling import put_on_stage

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def signup(api: Api, username: str) -> str:
    return api.signup(username, password=PASSWORD)


def say(page: Page, text: str) -> None:
    """The page's status line after an action says ``text``."""
    expect(page.locator(".form-done:not([hidden])").first).to_contain_text(text)


def reports(api: Api, token: str, state: str = "all") -> list[dict[str, Any]]:
    response = api.request("GET", f"/api/v1/admin/reports?state={state}", token)
    assert response.status_code == 200, response.text
    return list(response.json()["reports"])


@pytest.mark.e2e
def test_an_admin_runs_the_node_from_the_admin_page(
    node_factory: NodeFactory,
    api_factory: ApiFactory,
    playwright_instance: Playwright,
    tmp_path: Path,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    a = node_factory()
    api = api_factory(a)
    # Another server on another loopback address, so that blocking it leaves A alone.
    b = node_on(tmp_path / "b", "127.0.0.2")
    browser = launch(playwright_instance)
    try:
        api_b = api_factory(b)
        root = make_admin(a, api, "root")
        alice, eve, dave = signup(api, "alice"), signup(api, "eve"), signup(api, "dave")
        bob_b = signup(api_b, "bob")
        bob_handle = f"bob@127.0.0.2:{b.port}"
        followed = api.request("POST", "/api/v1/follows", dave, json={"handle": bob_handle})
        assert followed.status_code == 201, followed.text

        def accepted() -> bool:
            following = api.request("GET", "/api/v1/follows", dave).json()["following"]
            return any(f["state"] == "accepted" for f in following)

        wait_for(accepted, what="dave's follow of bob accepted")
        api_b.live_room(bob_b, "Night owls")
        alice_room = api.live_room(alice, "Alice live")
        eve_room = api.live_room(eve, "Eve's soapbox")

        def listed() -> list[str]:
            return [r["title"] for r in api.http.get("/api/v1/rooms").json()["rooms"]]

        wait_for(lambda: "Night owls" in listed(), what="bob's room listed on A")

        admin = new_page(browser, a.base_url)
        log_in(admin, "root", "root password")
        listener = new_page(browser, a.base_url)
        log_in(listener, "dave")
        visitor = new_page(browser, a.base_url)

        # Someone without a role is told the page is not theirs; the nav has no Admin link.
        listener.goto("/admin")
        expect(listener.get_by_text("Only this server’s admins and moderators")).to_be_visible()
        expect(listener.get_by_role("link", name="Admin")).to_have_count(0)
        expect(listener.locator("#nav")).not_to_contain_text("null")

        # Dashboard: the live rooms with their listeners, the queues, the accounts.
        admin.get_by_role("link", name="Admin", exact=True).click()
        rooms_here = admin.get_by_role("region", name="Rooms (2)")
        capture(admin, "admin-dashboard", lambda: expect(rooms_here).to_contain_text("Alice live"))
        expect(admin.get_by_role("region", name="Federation")).to_contain_text("Deliveries queued")

        # Server settings: name, description, rules, contact, approval mode.
        admin.get_by_role("link", name="Server settings").click()
        admin.get_by_label("Name", exact=True).fill("Lakeside Rooms")
        admin.get_by_label("Description", exact=True).fill("Audio rooms for Lakeside.")
        admin.get_by_label("Rules", exact=True).fill("Be kind.\nNo spam.")
        admin.get_by_label("Contact account").fill("root")
        admin.get_by_label("Sign-ups").select_option("approval")
        admin.get_by_role("button", name="Save settings").click()
        say(admin, "Settings saved")
        capture(admin, "admin-settings", lambda: say(admin, "Settings saved"))
        visitor.goto("/")
        expect(visitor.get_by_role("heading", name="Welcome to Lakeside Rooms")).to_be_visible()
        expect(visitor.locator(".welcome")).to_contain_text("Audio rooms for Lakeside.")
        nodeinfo = api.http.get("/nodeinfo/2.1").json()
        assert nodeinfo["metadata"]["nodeName"] == "Lakeside Rooms"

        # A sign-up in approval mode gives its reason; the admin reads it and approves.
        visitor.goto("/signup")
        visitor.get_by_label("Username").fill("carol")
        visitor.get_by_label("Password").fill(PASSWORD)
        visitor.get_by_label("Why do you want to join?").fill("I sing in the town choir.")
        visitor.get_by_role("button", name="Create account").click()
        expect(visitor.get_by_role("heading", name="Almost there")).to_be_visible()
        admin.get_by_role("link", name="Accounts").click()
        waiting = admin.get_by_role("region", name="Sign-ups waiting for approval")
        capture(
            admin,
            "admin-accounts",
            lambda: expect(waiting).to_contain_text("I sing in the town choir."),
        )
        # By keyboard: focus the button, press Enter.
        waiting.get_by_role("button", name="Approve @carol").focus()
        admin.keyboard.press("Enter")
        say(admin, "Approved @carol")
        expect(waiting).to_contain_text("Nobody is waiting.")
        signed_in = api.http.post(
            "/api/v1/sessions", json={"username": "carol", "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        api.http.cookies.clear()

        # Suspending alice ends her live room here; a listener sees why.
        listener.goto(alice_room["url"])
        expect(listener.get_by_role("region", name="Stage")).to_contain_text("alice")
        admin.get_by_label("Name", exact=True).fill("alice")
        admin.get_by_role("button", name="Search").click()
        item = admin.locator("li[data-username=alice]").last
        item.get_by_text("Suspend…").click()
        item.get_by_label("Reason (shown in their rooms as they end here)").fill("Spam rooms")
        item.get_by_role("button", name="Suspend @alice").click()
        say(admin, "Suspended @alice")
        # (.notice:not([hidden]): the room page also has a hidden "host away" notice)
        expect(listener.locator(".notice:not([hidden])")).to_contain_text(
            "The moderators of this server stopped this room here: Spam rooms"
        )
        refused = api.http.post(
            "/api/v1/sessions", json={"username": "alice", "password": PASSWORD}
        )
        assert refused.status_code == 403, refused.text
        gone = api.http.get("/users/alice", headers={"Accept": "application/activity+json"})
        assert gone.status_code == 410

        # dave reports eve, naming a rule; the admin resolves it by silencing her.
        listener.goto("/@eve")
        listener.get_by_text("Report @eve…").click()
        listener.get_by_label("Rule broken").select_option("No spam.")
        listener.get_by_label("What happened (optional)").fill("Shouting all night")
        listener.get_by_role("button", name="Send report").click()
        say(listener, "Thanks. The moderators will look at it.")
        # And blocks her, and mutes her rooms, from the same profile.
        listener.get_by_role("button", name="Block", exact=True).click()
        say(listener, "You blocked @eve")
        expect(listener.get_by_role("button", name="Unblock")).to_have_attribute(
            "aria-pressed", "true"
        )
        listener.get_by_role("button", name="Mute rooms").click()
        say(listener, "You muted @eve's rooms.")
        for kind in ("blocks", "mutes"):
            entries = api.request("GET", f"/api/v1/{kind}", dave).json()[kind]
            assert [e["handle"] for e in entries] == ["eve"]
        listener.reload()
        expect(listener.get_by_role("button", name="Unmute rooms")).to_be_visible()
        admin.get_by_role("link", name="Reports").click()
        report = admin.locator(".admin-item", has_text="Shouting all night")
        capture(admin, "admin-reports", lambda: expect(report).to_contain_text("No spam."))
        expect(report).to_contain_text("@dave")
        report.get_by_text("Resolve…").click()
        report.get_by_label("Action").select_option("silence")
        report.get_by_label("Note (what you did and why)").fill("Warned by mail too")
        report.get_by_role("button", name="Resolve report").click()
        say(admin, "resolved: silenced eve; Warned by mail too")
        [filed] = [r for r in reports(api, root) if r["comment"] == "Shouting all night"]
        assert filed["state"] == "resolved" and filed["resolved_by"] == "root"
        assert filed["action_taken"] == "silenced eve; Warned by mail too"
        admin.get_by_label("Show").select_option("resolved")
        expect(admin.locator(".admin-item", has_text="Shouting all night")).to_contain_text(
            "Resolved by"
        )
        # Silenced: her room is no longer listed.
        assert "Eve's soapbox" not in listed()

        # Rooms: the admin ends eve's room with a reason shown to everyone in it (dave
        # unblocks her first: a blocked host's room keeps him out).
        listener.get_by_role("button", name="Unblock").click()
        say(listener, "You unblocked @eve.")
        listener.goto(eve_room["url"])
        expect(listener.get_by_role("region", name="Stage")).to_contain_text("eve")
        admin.get_by_role("link", name="Rooms").click()
        room_item = admin.locator(f"li[data-room='{eve_room['id']}']")
        capture(admin, "admin-rooms", lambda: expect(room_item).to_contain_text("Eve's soapbox"))
        room_item.get_by_text("End here…").click()
        room_item.get_by_label("Reason, shown to everyone in the room").fill("Off-topic here")
        room_item.get_by_role("button", name="End “Eve's soapbox” here").click()
        say(admin, "Ended “Eve's soapbox” on this server.")
        expect(listener.locator(".notice:not([hidden])")).to_contain_text("Off-topic here")

        # A domain block: bob's room vanishes from the list at once, follows are refused.
        listener.goto("/")
        expect(listener.get_by_role("region", name="Live now")).to_contain_text("Night owls")
        admin.get_by_role("link", name="Domain blocks").click()
        admin.get_by_label("Domain", exact=True).fill("127.0.0.2")
        admin.get_by_label("Severity").select_option("suspend")
        admin.get_by_label("Public comment (on /about)").fill("Spam server")
        admin.get_by_label("Private note (staff only)").fill("Three reports in a day")
        admin.get_by_role("button", name="Block", exact=True).click()
        say(admin, "Blocked 127.0.0.2 (suspend)")
        blocked = admin.locator("li[data-domain='127.0.0.2']")
        capture(admin, "admin-domains", lambda: expect(blocked).to_contain_text("Spam server"))
        assert "Night owls" not in listed()
        listener.reload()
        live_now = listener.get_by_role("region", name="Live now")
        expect(live_now).not_to_contain_text("Night owls")
        again = api.request("POST", "/api/v1/follows", dave, json={"handle": bob_handle})
        assert again.status_code == 403, again.text
        # And B's follow requests: A refuses B's signed fetch of dave, so B says no.
        theirs = api_b.request(
            "POST", "/api/v1/follows", bob_b, json={"handle": handle(a, "dave")}
        )
        assert theirs.status_code == 403, theirs.text
        followers = api.http.get("/api/v1/accounts/dave/followers").json()["followers"]
        assert followers == []
        visitor.goto("/about")
        about = visitor.get_by_role("region", name="Moderated servers")
        capture(visitor, "about", lambda: expect(about).to_contain_text("Spam server"))
        expect(about).not_to_contain_text("Three reports")
        expect(visitor.get_by_role("region", name="Rules")).to_contain_text("No spam.")
        expect(visitor.get_by_role("link", name="@root")).to_be_visible()

        # A one-time password link: made by the admin, used once by its owner.
        admin.get_by_role("link", name="Accounts").click()
        admin.get_by_label("Name", exact=True).fill("eve")
        admin.get_by_role("button", name="Search").click()
        admin.locator("li[data-username=eve]").last.get_by_role(
            "button", name="Password link"
        ).click()
        link = admin.get_by_label("Password link for @eve").input_value()
        assert "/reset-password#" in link
        visitor.goto(link)
        visitor.get_by_label("New password", exact=True).fill("a brand new password")
        visitor.get_by_label("New password again").fill("a brand new password")
        capture(visitor, "reset-password", lambda: None)
        visitor.get_by_role("button", name="Set password").click()
        expect(visitor.get_by_role("heading", name="Password set")).to_be_visible()
        used = api.http.post(
            "/api/v1/sessions", json={"username": "eve", "password": "a brand new password"}
        )
        assert used.status_code == 200, used.text
        api.http.cookies.clear()
        visitor.goto(link)
        visitor.get_by_label("New password", exact=True).fill("another password")
        visitor.get_by_label("New password again").fill("another password")
        visitor.get_by_role("button", name="Set password").click()
        expect(visitor.get_by_role("alert")).to_contain_text("unknown, used or expired")

        # Roles: carol is made a moderator; she gets the admin page without the admin-only
        # parts (domain blocks, changing settings).
        admin.get_by_label("Name", exact=True).fill("carol")
        admin.get_by_role("button", name="Search").click()
        carol_item = admin.locator("li[data-username=carol]").last
        carol_item.get_by_text("Role…").click()
        carol_item.get_by_label("Role").select_option("moderator")
        carol_item.get_by_role("button", name="Change role").click()
        say(admin, "@carol is now a moderator.")
        log_in(visitor, "carol")
        visitor.get_by_role("link", name="Admin", exact=True).click()
        tabs = visitor.get_by_role("navigation", name="Administration")
        expect(tabs).to_contain_text("Reports")
        expect(tabs.get_by_role("link", name="Domain blocks")).to_have_count(0)
        visitor.goto("/admin/settings")
        expect(visitor.get_by_text("Only admins change these.")).to_be_visible()
        expect(visitor.get_by_label("Name", exact=True)).to_be_disabled()
    finally:
        browser.close()
        b.stop()


@pytest.mark.e2e
def test_a_user_reports_a_remote_speaker_from_the_room_page_as_a_flag(
    node_factory: NodeFactory, api_factory: ApiFactory, playwright_instance: Playwright
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    root_a = make_admin(a, api_a, "root")
    alice, dave = signup(api_a, "alice"), signup(api_a, "dave")
    room = api_a.live_room(alice, "Open mic")
    put_on_stage(api_a, room["id"], alice, dave, "dave")
    signup(api_b, "bob")
    browser = launch(playwright_instance)
    try:
        page = new_page(browser, b.base_url)
        log_in(page, "bob")
        page.goto(f"/rooms/remote?origin={room['url']}")
        stage = page.get_by_role("region", name="Stage")
        expect(stage).to_contain_text("dave")
        page.get_by_text("Report this room or a speaker…").click()
        dave_here = handle(a, "dave")
        page.get_by_label("What are you reporting?").select_option(dave_here)
        page.get_by_label("What happened (optional)").fill("Slurs on stage")
        forward = page.get_by_label(f"Also send it to 127.0.0.1:{a.port}")
        expect(forward).to_be_checked()
        capture(page, "room-report", lambda: expect(forward).to_be_visible())
        page.get_by_role("button", name="Send report").click()
        say(page, "on their server")

        def flagged() -> dict[str, Any] | None:
            found = [r for r in reports(api_a, root_a) if r["comment"] == "Slurs on stage"]
            return found[0] if found else None

        report = wait_for(flagged, what="the Flag in A's queue")
        assert report["forwarded_from"] == f"127.0.0.1:{b.port}"
        assert report["target"]["account"] == "dave"
        assert report["reporter"] is None
        admin = new_page(browser, a.base_url)
        log_in(admin, "root", "root password")
        admin.goto("/admin/reports")
        item = admin.locator(".admin-item", has_text="Slurs on stage")
        expect(item).to_contain_text(f"the server 127.0.0.1:{b.port}")
        capture(admin, "admin-reports-flag", lambda: expect(item).to_contain_text("@dave"))
    finally:
        browser.close()


@pytest.mark.e2e
def test_a_relays_page_says_the_origins_moderators_stopped_the_room_and_it_goes_on(
    node_factory: NodeFactory, api_factory: ApiFactory, playwright_instance: Playwright
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    root_a = make_admin(a, api_a, "root")
    alice = signup(api_a, "alice")
    room = api_a.live_room(alice, "Carried on")
    signup(api_b, "bob")
    browser = launch(playwright_instance)
    try:
        page = new_page(browser, b.base_url)
        log_in(page, "bob")
        page.goto(f"/rooms/remote?origin={room['url']}")
        expect(page.get_by_role("region", name="Stage")).to_contain_text("alice")
        ended = api_a.request(
            "POST", f"/api/v1/admin/rooms/{room['id']}/end", root_a, json={"reason": "Not here"}
        )
        assert ended.status_code == 200, ended.text
        assert ended.json()["ended_by"]["by"] == "operator"
        notice = page.locator(".room-stopped")
        expect(notice).to_have_text(
            f"The moderators of 127.0.0.1:{a.port} stopped carrying this room there"
            " (Not here); it goes on here."
        )
        expect(page.locator(".state-badge").first).to_have_text("Live")
        copy_id = page.url.rsplit("/", 1)[1]
        doc = api_b.http.get(f"/api/v1/rooms/{copy_id}").json()
        assert doc["state"] == "live" and doc["acting_origin"] == b.base_url
        capture(page, "room-carried-on", lambda: expect(notice).to_be_visible())
    finally:
        browser.close()
