"""Avatars in Chromium: upload a phone photo on the settings page (the node remakes it and
strips its GPS position), see it in the header, on the profile (a long header text wraps
on a phone) and on stage; a remote person's icon comes through the node, and the browser
never contacts their server. Screenshots at both sizes, axe on each page."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, Playwright, expect

from tests.conftest import Api, NodeProcess
from tests.e2e.browser import ARTIFACTS, launch, new_context, sign_up
from tests.e2e.test_browser_pages import capture
from tests.fedify_peer import FedifyPeer
from tests.test_avatars_nodes import photo_with_gps


def natural_width(page: Page, selector: str) -> int:
    """The decoded width of the first image matching ``selector`` (0 if it failed)."""
    return int(page.locator(selector).first.evaluate("img => img.complete ? img.naturalWidth : 0"))


@pytest.mark.e2e
def test_upload_an_avatar_and_see_people_through_the_node(
    node: NodeProcess,
    api: Api,
    fedify_peers: Callable[..., FedifyPeer],
    playwright_instance: Playwright,
    tmp_path: Path,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    peer = fedify_peers()
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(photo_with_gps())
    browser = launch(playwright_instance)
    try:
        page = new_context(
            browser, node.base_url, viewport={"width": 1280, "height": 800}
        ).new_page()
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        sign_up(page, "carol")
        # A header text with no place to break, as long as the node takes.
        changed = page.evaluate(
            """() => fetch('/api/v1/me', {method: 'PATCH', headers: {'Content-Type':
               'application/json'}, body: JSON.stringify({display_name: 'W'.repeat(64),
               bio: 'W'.repeat(500)})}).then(r => r.status)"""
        )
        assert changed == 200

        page.goto("/settings")
        section = page.get_by_role("region", name="Your picture")
        expect(section).to_be_visible()

        # Not an image: the node says so next to the field, and keeps nothing.
        section.get_by_label("Picture", exact=True).set_input_files(
            {"name": "notes.png", "mimeType": "image/png", "buffer": b"<html>not a picture"}
        )
        section.get_by_role("button", name="Save picture").click()
        expect(section.locator(".field-error")).to_contain_text("Not a PNG, JPEG, GIF or WebP")
        expect(section.get_by_role("button", name="Remove picture")).to_be_hidden()

        section.get_by_label("Picture", exact=True).set_input_files(str(photo))
        section.get_by_role("button", name="Save picture").click()
        expect(section.get_by_role("status")).to_have_text("Picture saved.")
        preview = section.locator(".avatar-preview img.avatar")
        expect(preview).to_have_attribute(
            "src", re.compile(rf"^{re.escape(node.base_url)}/avatars/carol-[0-9a-f]{{12}}\.png$")
        )
        url = preview.get_attribute("src")
        assert url is not None
        expect(page.locator(".nav-user img.avatar")).to_have_attribute("src", url)
        page.wait_for_function(
            "() => document.querySelector('.avatar-preview img').naturalWidth === 256"
        )
        # What the browser got carries no position and no camera.
        served = httpx.get(url, timeout=10).content
        assert b"PhoneMaker" not in served and b"Exif" not in served
        with Image.open(io.BytesIO(served)) as image:
            assert image.size == (256, 256) and not image.getexif()
        capture(page, "settings-avatar", lambda: expect(preview).to_be_visible())

        # The profile: the picture, and the long name and bio wrap on a phone.
        page.goto("/@carol")
        head = page.locator(".profile-head")
        expect(head.locator("img.avatar")).to_have_attribute("src", url)
        capture(page, "profile-avatar", lambda: expect(head).to_be_visible())

        # Someone on another server: their icon comes from this node, never from theirs.
        page.goto(f"/search?q={quote(peer.handle)}")
        remote = page.locator(".person-summary", has_text=f"@{peer.handle}")
        icon = remote.locator("img.avatar")
        expect(icon).to_have_attribute(
            "src", f"/api/v1/remote-avatar?actor={quote(peer.actor_id, safe='')}"
        )
        page.wait_for_function(
            "() => [...document.querySelectorAll('.person-summary img.avatar')]"
            ".some(img => img.src.includes('remote-avatar') && img.naturalWidth === 128)"
        )
        capture(page, "search-remote-avatar", lambda: expect(remote).to_be_visible())
        page.goto(f"/@{peer.handle}")
        expect(page.locator(".profile-head img.avatar")).to_have_attribute(
            "src", re.compile(r"^/api/v1/remote-avatar\?actor=")
        )
        page.wait_for_function(
            "() => document.querySelector('.profile-head img.avatar').naturalWidth === 128"
        )

        # On stage in a room: the host's picture.
        page.goto("/new")
        page.get_by_label("Title").fill("Pictures")
        page.get_by_role("button", name=re.compile("Create|Start")).first.click()
        stage = page.get_by_role("region", name="Stage")
        expect(stage.locator("img.avatar")).to_have_attribute(
            "src", re.compile(r"/avatars/carol-[0-9a-f]{12}\.png$")
        )

        assert asked, "the page made no requests?"
        assert not [u for u in asked if u.startswith(peer.base_url)], [
            u for u in asked if u.startswith(peer.base_url)
        ]
        assert all(u.startswith(node.base_url) or u.startswith("data:") for u in asked), {
            u for u in asked if not u.startswith(node.base_url)
        }

        # Remove it: initials again, and the file is gone.
        page.goto("/settings")
        section = page.get_by_role("region", name="Your picture")
        section.get_by_role("button", name="Remove picture").click()
        expect(section.get_by_role("status")).to_have_text("Picture removed.")
        expect(section.locator(".avatar-preview span.avatar")).to_be_visible()
        assert httpx.get(url, timeout=10).status_code == 404
    finally:
        browser.close()
