"""The HTML pages the node serves: the web client's shell with the right head for each page.

Every page is ``static/index.html`` (the client routes in the browser), but what link
previews and search engines read is rendered here: a proper ``<title>``, a description,
OpenGraph and Twitter-card tags (title, description, host, live state, image) for room
pages ``/rooms/{id}`` and profiles ``/@{username}``, and a canonical link. Everything that
came from users is HTML-escaped. Unknown rooms and accounts, and any path that is not a
page or an API, get the same shell with status 404, a "not found" head and a readable
``<main>`` (the client shows the same once it runs); API and federation paths keep their
JSON errors (``wants_html``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from node.errors import Conflict, NotFound
from node.onair.stage import Stage
from node.web.about import NodeAbout, node_about

# Where the client's shell marks the head and main parts the server fills in.
HEAD_MARK = "<title>Parley</title>"
MAIN_MARK = '<p class="muted">Loading…</p>'

DEFAULT_IMAGE = "/static/og-default.png"
DEFAULT_IMAGE_SIZE = (1200, 630)
DESCRIPTION_LIMIT = 280

# Paths whose errors stay JSON for programs (the API, federation, static files).
JSON_PREFIXES = (
    "/api/",
    "/.well-known/",
    "/nodeinfo",
    "/users/",
    "/actor",
    "/inbox",
    "/static/",
)

NO_CACHE = {"Cache-Control": "no-cache"}


@dataclass(frozen=True)
class PageHead:
    title: str
    description: str = ""
    path: str = "/"
    kind: str = "website"
    image_alt: str = "Parley: live audio rooms"
    noindex: bool = False
    # Extra (property, content) pairs, e.g. ("profile:username", "alice").
    extra: tuple[tuple[str, str], ...] = ()
    alternate_json: str | None = None
    status: int = 200
    main: str | None = None
    twitter: dict[str, str] = field(default_factory=dict)


def shorten(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def wants_html(request: Request) -> bool:
    """An error for this request is a page (a person's browser), not JSON (a program)."""
    if request.url.path.startswith(JSON_PREFIXES):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "*/*" in accept or not accept


class PageShell:
    """static/index.html with a head (and for errors a main) rendered per page."""

    def __init__(self, index: Path, base_url: str) -> None:
        self.index = index
        self.base_url = base_url.rstrip("/")
        self._template: str | None = None

    def template(self) -> str:
        if self._template is None:
            text = self.index.read_text(encoding="utf-8")
            if HEAD_MARK not in text or MAIN_MARK not in text:
                raise RuntimeError(f"{self.index} lacks the marks the server fills in")
            self._template = text
        return self._template

    def render(self, head: PageHead, about: NodeAbout) -> str:
        e = html.escape
        url = self.base_url + head.path
        title = f"{head.title} · Parley" if head.title else "Parley"
        description = shorten(head.description)
        image = self.base_url + DEFAULT_IMAGE
        tags = [f"<title>{e(title)}</title>"]
        meta = [
            ("name", "description", description),
            ("property", "og:type", head.kind),
            ("property", "og:site_name", about.name),
            ("property", "og:title", head.title or about.name),
            ("property", "og:description", description),
            ("property", "og:url", url),
            ("property", "og:image", image),
            ("property", "og:image:width", str(DEFAULT_IMAGE_SIZE[0])),
            ("property", "og:image:height", str(DEFAULT_IMAGE_SIZE[1])),
            ("property", "og:image:alt", head.image_alt),
            ("name", "twitter:card", "summary_large_image"),
            ("name", "twitter:title", head.title or about.name),
            ("name", "twitter:description", description),
            ("name", "twitter:image", image),
            ("name", "twitter:image:alt", head.image_alt),
            *(("name", f"twitter:{k}", v) for k, v in head.twitter.items()),
            *(("property", k, v) for k, v in head.extra),
        ]
        if head.noindex:
            meta.append(("name", "robots", "noindex"))
        tags += [
            f'<meta {attr}="{e(key)}" content="{e(value)}">'
            for attr, key, value in meta
            if value or key == "description"
        ]
        if head.status == 200:
            tags.append(f'<link rel="canonical" href="{e(url)}">')
        if head.alternate_json:
            tags.append(
                '<link rel="alternate" type="application/activity+json" '
                f'href="{e(head.alternate_json)}">'
            )
        page = self.template().replace(HEAD_MARK, "\n  ".join(tags), 1)
        if head.main is not None:
            page = page.replace(MAIN_MARK, head.main, 1)
        return page

    def response(self, request: Request, head: PageHead) -> Response:
        body = self.render(head, node_about(request.app.state))
        return HTMLResponse(body, head.status, headers=NO_CACHE)


def _shell(request: Request) -> PageShell:
    shell: PageShell = request.app.state.page_shell
    return shell


def _not_found_main(heading: str, text: str) -> str:
    e = html.escape
    return (
        f"<h1>{e(heading)}</h1><p>{e(text)}</p>"
        '<p><a href="/" data-link>Go to the live rooms</a></p>'
    )


def not_found(request: Request) -> Response:
    """The HTML 404 for a path that is no page (a typo, an old link)."""
    head = PageHead(
        title="Page not found",
        path=request.url.path,
        noindex=True,
        status=404,
        main=_not_found_main("Page not found", "There is nothing at this address."),
    )
    return _shell(request).response(request, head)


# Pages -------------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    about = node_about(request.app.state)
    description = about.description or (
        f"Live audio rooms on {about.name}: listen in your browser, no account needed; "
        "sign up to speak, and follow people on other servers."
    )
    return _shell(request).response(request, PageHead(title="", description=description))


_SIMPLE = {
    "/login": "Log in",
    "/signup": "Sign up",
    "/new": "Start a room",
    "/search": "Search",
    "/settings": "Settings",
    "/rooms/remote": "A room on another server",
}


async def simple_page(request: Request) -> Response:
    path = request.url.path.rstrip("/") or "/"
    return _shell(request).response(
        request, PageHead(title=_SIMPLE[path], path=path, noindex=path != "/search")
    )


_STATE_TEXT = {"live": "Live now", "scheduled": "Not started yet", "ended": "Ended"}


def room_head(room: dict[str, Any], host: str) -> PageHead:
    hosting = room.get("host") or {}
    who = hosting.get("display_name") or hosting.get("username") or "someone"
    state = str(room.get("state", ""))
    facts = [_STATE_TEXT.get(state, state), f"hosted by {who} on {host}"]
    if state == "live" and isinstance(room.get("listener_count"), int):
        count = room["listener_count"]
        facts.append(f"{count} listening" if count else "listen in your browser")
    summary = " · ".join(facts) + "."
    description = f"{room['description']} — {summary}" if room.get("description") else summary
    path = f"/rooms/{room['id']}"
    return PageHead(
        title=str(room["title"]),
        description=description,
        path=path,
        image_alt=f"{room['title']}: an audio room on {host}",
        noindex=room.get("visibility") != "public",
        extra=(("parley:room_state", state),),
        twitter={"label1": "Status", "data1": _STATE_TEXT.get(state, state)},
    )


async def room_page(request: Request) -> Response:
    room_id = request.path_params["room_id"]
    stage: Stage = request.app.state.stage
    host = node_about(request.app.state).host
    try:
        doc = stage.room_json(stage.get(room_id).room)
    except NotFound:
        head = PageHead(
            title="Room not found",
            path=request.url.path,
            noindex=True,
            status=404,
            main=_not_found_main(
                "Room not found", "It may have been removed, or the link is wrong."
            ),
        )
        return _shell(request).response(request, head)
    except Conflict:
        # Reconnecting to a node that carries it on: the client retries by itself.
        head = PageHead(title="Room", path=request.url.path, noindex=True)
        return _shell(request).response(request, head)
    return _shell(request).response(request, room_head(doc, host))


async def profile_page(request: Request) -> Response:
    name = request.path_params["username"]
    about = node_about(request.app.state)
    path = request.url.path
    if "@" in name:
        # Someone on another server, looked up by the client through this node's search:
        # no network request just to render a head.
        return _shell(request).response(
            request, PageHead(title=f"@{name}", path=path, kind="profile", noindex=True)
        )
    try:
        account = request.app.state.accounts.get(name)
    except NotFound:
        account = None
    if account is None or account.status != "active":
        head = PageHead(
            title="No such account",
            path=path,
            noindex=True,
            status=404,
            main=_not_found_main("No such account", f"There is no account @{name} here."),
        )
        return _shell(request).response(request, head)
    handle = f"@{account.username}@{about.host}"
    fallback = f"{account.display_name} hosts live audio rooms on {about.name}."
    head = PageHead(
        title=f"{account.display_name} ({handle})",
        description=account.bio or fallback,
        path=f"/@{account.username}",
        kind="profile",
        image_alt=f"{account.display_name} on {about.name}",
        extra=(("profile:username", handle.lstrip("@")),),
        alternate_json=f"{_shell(request).base_url}/users/{account.username}",
    )
    return _shell(request).response(request, head)


routes = [
    Route("/", home),
    *(Route(path, simple_page) for path in _SIMPLE),
    Route("/rooms/{room_id}", room_page),
    Route("/@{username}", profile_page),
]
