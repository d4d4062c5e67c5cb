"""The HTML the node serves: per-page heads for link previews, escaping, HTML 404s.

Link previews (Mastodon, chat apps) read the HTML without running JavaScript, so the
room and profile pages must carry their title, description, live state and image in
the page the node sends. Everything users typed is escaped; unknown pages are HTML 404s
for browsers while API and federation paths keep JSON errors.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from node.web.about import NodeAbout
from node.web.pages import PageHead, PageShell, shorten
from tests.conftest import ROOT, Api, NodeProcess

HOSTILE = '"><script>alert(1)</script><meta property="og:title" content="pwned'


class Head(HTMLParser):
    """The tags of a page that previews read: title, meta, links, and every element."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, list[str]] = {}
        self.links: dict[str, str] = {}
        self.tags: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = {k: v or "" for k, v in attrs}
        if tag == "meta" and ("property" in values or "name" in values):
            key = values.get("property") or values["name"]
            self.meta.setdefault(key, []).append(values.get("content", ""))
        elif tag == "link" and "rel" in values:
            self.links[values["rel"]] = values.get("href", "")
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def one(self, key: str) -> str:
        values = self.meta.get(key, [])
        assert len(values) == 1, (key, values)
        return values[0]


def parse(text: str) -> Head:
    head = Head()
    head.feed(text)
    return head


SHELL_SCRIPTS = parse((ROOT / "static" / "index.html").read_text()).tags.count("script")


@settings(max_examples=200, deadline=None)
@given(title=st.text(min_size=1, max_size=120), description=st.text(max_size=1000))
def test_any_title_and_description_stay_text(title: str, description: str) -> None:
    shell = PageShell(ROOT / "static" / "index.html", "https://rooms.example")
    about = NodeAbout(name="rooms.example", description="", host="rooms.example")
    page = shell.render(PageHead(title=title, description=description, path="/x"), about)
    head = parse(page)
    # Whatever people type comes back as the same text, and adds no element.
    assert head.one("og:title") == title
    assert head.title == f"{title} · Parley"
    expected = shorten(description)
    assert len(expected) <= 280
    if expected:
        assert head.one("og:description") == expected
    else:
        assert "og:description" not in head.meta
    assert head.tags.count("script") == SHELL_SCRIPTS
    assert head.tags.count("title") == 1


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_room_pages_carry_their_preview(api: Api) -> None:
    host = api.signup("alice")
    api.request("PATCH", "/api/v1/me", host, json={"display_name": "Alice <b>A</b>"})
    room = api.create_room(host, HOSTILE, description="Bring <tea> & questions")
    page = api.http.get(f"/rooms/{room['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in page.text and "<tea>" not in page.text
    head = parse(page.text)
    assert head.title == f"{HOSTILE} · Parley"
    assert head.one("og:title") == HOSTILE
    assert head.one("twitter:title") == HOSTILE
    description = head.one("og:description")
    assert description.startswith("Bring <tea> & questions — Not started yet")
    assert "hosted by Alice <b>A</b> on 127.0.0.1:" in description
    assert head.one("parley:room_state") == "scheduled"
    assert head.one("og:url") == room["url"]
    assert head.links["canonical"] == room["url"]
    assert head.one("og:site_name") == api.base_url.removeprefix("http://")
    assert head.one("twitter:card") == "summary_large_image"
    image = head.one("og:image")
    assert image == f"{api.base_url}/static/og-default.png"
    assert png_size(api.http.get(image).content) == (1200, 630)

    api.request("POST", f"/api/v1/rooms/{room['id']}/start", host)
    live = parse(api.http.get(f"/rooms/{room['id']}").text)
    assert live.one("og:description").startswith("Bring <tea> & questions — Live now")
    assert live.one("parley:room_state") == "live"
    assert live.one("twitter:data1") == "Live now"

    unlisted = api.create_room(host, "Secret", visibility="unlisted")
    assert parse(api.http.get(f"/rooms/{unlisted['id']}").text).one("robots") == "noindex"


def test_profile_pages_carry_their_preview(api: Api) -> None:
    token = api.signup("bob")
    api.request("PATCH", "/api/v1/me", token, json={"display_name": "Bob", "bio": HOSTILE})
    page = api.http.get("/@bob")
    assert page.status_code == 200
    head = parse(page.text)
    host = api.base_url.removeprefix("http://")
    assert head.one("og:title") == f"Bob (@bob@{host})"
    assert head.one("og:description") == HOSTILE
    assert head.one("og:type") == "profile"
    assert head.one("profile:username") == f"bob@{host}"
    assert head.links["alternate"] == f"{api.base_url}/users/bob"
    # Someone on another server: a page the client fills in, no fetch to render it.
    remote = api.http.get("/@carol@elsewhere.example")
    assert (
        remote.status_code == 200
        and parse(remote.text).title == "@carol@elsewhere.example · Parley"
    )


def test_unknown_pages_are_html_404s_and_the_api_keeps_json(api: Api) -> None:
    for path, heading in [
        ("/no/such/page", "Page not found"),
        ("/rooms/nosuchroom", "Room not found"),
        ("/@nobody", "No such account"),
    ]:
        page = api.http.get(path, headers={"Accept": "text/html,*/*"})
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert f"<h1>{heading}</h1>" in page.text
        assert parse(page.text).one("robots") == "noindex"
    for path in ("/api/v1/nothing", "/api/v1/rooms/nosuchroom", "/static/nothing.js"):
        response = api.http.get(path, headers={"Accept": "text/html"})
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


def test_the_node_description_is_shown_to_visitors(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    node = node_factory(node={"description": "Rooms for the <town> choir."})
    api = api_factory(node)
    config = api.http.get("/api/v1/config").json()
    host = node.base_url.removeprefix("http://")
    assert config["node"] == {
        "name": host,
        "host": host,
        "description": "Rooms for the <town> choir.",
    }
    head = parse(api.http.get("/").text)
    assert head.one("og:description") == "Rooms for the <town> choir."
    assert head.title == "Parley"


def test_the_shell_has_the_marks_the_server_fills(tmp_path: Path) -> None:
    broken = tmp_path / "index.html"
    broken.write_text("<html><head></head></html>")
    shell = PageShell(broken, "https://rooms.example")
    try:
        shell.template()
    except RuntimeError as exc:
        assert "marks" in str(exc)
    else:
        raise AssertionError("a shell without marks was accepted")
