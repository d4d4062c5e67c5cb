"""The ActivityPub face of a node: discovery, actor documents, inboxes and collections.

Built only on ``federation.ports``: the node hands in a ``FederationSite`` (through a
callable, because Starlette's route list exists before the node's database is open).

- ``/.well-known/webfinger``, ``/.well-known/nodeinfo``, ``/nodeinfo/2.1``,
  ``/.well-known/host-meta``: open to anyone, never signed.
- ``/users/{username}``: content negotiation; ActivityPub clients get the ``Person``,
  browsers are redirected to the HTML profile ``/@{username}``.
- ``/actor``: the instance ``Application``, always fetchable unsigned (otherwise two nodes
  in "secure mode" could never fetch each other's keys: the chicken and egg Mastodon
  solved the same way).
- ``/users/{username}/inbox``, ``/inbox``, ``/actor/inbox``: verify, store, 202.
- ``/users/{username}/outbox|followers|following``: paged ``OrderedCollection``\\ s.
- ``/ns/parley``: the parley namespace's JSON-LD context (federation.context).

With ``authorized_fetch`` the actor documents (except the instance actor) and collections
require a signed GET; a signature by a blocked domain is refused (403) on every route.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from federation.actors import (
    ACTIVITY_JSON,
    AS_CONTEXT,
    ActorUrls,
    RemoteActor,
    build_host_meta,
    build_instance_actor,
    build_nodeinfo,
    build_nodeinfo_links,
    build_person,
    build_webfinger,
    parse_acct,
    parse_webfinger_resource,
)
from federation.client import domain_is_blocked
from federation.context import CONTEXT_PATH, JSON_LD, NOTE_CONTEXT, context_document
from federation.egress import hostname_of
from federation.errors import (
    ActivityParseError,
    BlockedDomain,
    FederationError,
    InvalidParameter,
    NotAllowed,
    PayloadTooLarge,
    RemoteFetchError,
    SignatureError,
)
from federation.inbox import MAX_BODY_BYTES, ActorLookup, http_status_for, receive
from federation.ports import FollowStore, InboxStore, LocalActors, OutboxStore
from federation.relay_subscription import Subscriber, other_form, subscriber_of
from federation.sanitize import text_to_html
from federation.signatures import identify_signature, verify_request

log = logging.getLogger(__name__)

PAGE_SIZE = 20
JRD_JSON = "application/jrd+json"
NODEINFO_21_JSON = 'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
XRD_XML = "application/xrd+xml"
# Media types after which a client wants the ActivityPub document rather than HTML.
JSON_MEDIA_TYPES = ("application/activity+json", "application/ld+json", "application/json")


@dataclass(slots=True)
class FederationSite:
    """Everything the routes need from the node; built once its database is open."""

    base_url: str
    actors: LocalActors
    follows: FollowStore
    outbox: OutboxStore
    inbox: InboxStore
    resolver: ActorLookup
    authorized_fetch: bool = False
    blocked_domains: frozenset[str] = frozenset()
    software_version: str = "0.1.0"
    # Called after an activity was stored, so the inbox worker wakes without polling.
    on_stored: Callable[[], None] = field(default=lambda: None)
    clock: Callable[[], dt.datetime] | None = None

    @property
    def origin(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def host(self) -> str:
        """``host[:port]`` as it appears in handles (``alice@host``)."""
        return urlsplit(self.base_url).netloc.lower()

    def user_urls(self, username: str) -> ActorUrls:
        return ActorUrls.for_user(self.base_url, username)

    @property
    def instance_urls(self) -> ActorUrls:
        return ActorUrls.for_instance(self.base_url)

    def is_blocked(self, url_or_host: str) -> bool:
        host = hostname_of(url_or_host) if "/" in url_or_host else url_or_host
        return bool(host) and domain_is_blocked(str(host), self.blocked_domains)

    def now(self) -> dt.datetime | None:
        return self.clock() if self.clock is not None else None


SiteOf = Callable[[Request], FederationSite | None]


# --------------------------------------------------------------------------- helpers


class _Unavailable(Exception):
    """The node is still starting (no site yet)."""


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status)


def error_status(error: FederationError) -> tuple[int, str]:
    """(HTTP status, error code) of a federation error: the one vocabulary of
    docs/API.md's error table, for inboxes, signed fetches and relay subscriptions."""
    if isinstance(error, PayloadTooLarge):
        return 413, "payload_too_large"
    if isinstance(error, SignatureError):
        return 401, "unauthorized"
    if isinstance(error, BlockedDomain):
        return 403, "blocked_domain"
    if isinstance(error, NotAllowed):
        return 403, "forbidden"
    if isinstance(error, InvalidParameter):
        return 400, "invalid_input"
    if isinstance(error, ActivityParseError):
        return 400, "invalid_activity"
    return http_status_for(error), "bad_request"


def federation_error_response(error: FederationError) -> JSONResponse:
    status, code = error_status(error)
    return _error(status, code, str(error))


def _activity_json(doc: Mapping[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(doc),
        status,
        media_type=ACTIVITY_JSON,
        headers={"Vary": "Accept, Signature, Signature-Input"},
    )


def wants_activity_json(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return any(media in accept for media in JSON_MEDIA_TYPES)


def request_url(site: FederationSite, request: Request) -> str:
    """The absolute URL the sender addressed: our public origin, not the socket address
    (behind a reverse proxy the two differ, and RFC 9421 signs ``@target-uri``)."""
    url = site.origin + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def _websocket_form(request: Request, url: str) -> str | None:
    """For a WebSocket upgrade, the ``ws(s)://`` URL the client dialled: an RFC 9421
    ``@target-uri`` may carry it instead of the ``http(s)://`` form."""
    return other_form(url) if request.scope.get("type") == "websocket" else None


def _refuse_blocked_signer(site: FederationSite, headers: Mapping[str, str]) -> None:
    try:
        info = identify_signature(headers)
    except SignatureError:
        return
    host = hostname_of(info.key_id)
    if site.is_blocked(host):
        raise BlockedDomain(host)


async def verify_signed_get(
    site: FederationSite, request: Request, *, query_signed: bool = False
) -> RemoteActor:
    """Authenticate a GET (authorized fetch, a relay subscription); raise SignatureError
    or BlockedDomain. ``query_signed``: the query string carries something that must be
    signed (a subscription's ``relay=``), so a draft-cavage signature of the path alone is
    refused (signatures.verify_request)."""
    headers = dict(request.headers)
    _refuse_blocked_signer(site, headers)
    info = identify_signature(headers)
    url = request_url(site, request)
    also = _websocket_form(request, url)
    try:
        owner = await site.resolver.key_owner(info.key_id)
    except (RemoteFetchError, ActivityParseError) as exc:
        raise SignatureError(f"cannot obtain key {info.key_id}: {exc}") from exc
    try:
        verify_request(
            "GET",
            url,
            headers,
            None,
            owner.public_key_pem,
            now=site.now(),
            also_target=also,
            query_signed=query_signed,
        )
    except SignatureError:
        try:
            fresh = await site.resolver.key_owner(info.key_id, refresh=True)
        except (RemoteFetchError, ActivityParseError) as exc:
            raise SignatureError(f"cannot obtain key {info.key_id}: {exc}") from exc
        verify_request(
            "GET",
            url,
            headers,
            None,
            fresh.public_key_pem,
            now=site.now(),
            also_target=also,
            query_signed=query_signed,
        )
        owner = fresh
    return owner


async def verify_subscription(site: FederationSite, request: Request) -> Subscriber:
    """Authenticate a relay subscription (a WebSocket upgrade): the node that signed it,
    and its succession entry when it gives ``relay=`` (FEDERATION.md, "Subscribing")."""
    signer = await verify_signed_get(site, request, query_signed=True)
    return subscriber_of(signer, request.query_params.get("relay"))


async def _guard_fetch(site: FederationSite, request: Request, *, required: bool) -> None:
    """Refuse blocked signers always; require a signature when ``required``."""
    if required:
        await verify_signed_get(site, request)
    else:
        _refuse_blocked_signer(site, dict(request.headers))


def _page_number(request: Request) -> int | None:
    raw = request.query_params.get("page")
    if raw is None:
        return None
    if raw in ("true", "1"):
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidParameter("page", "must be a positive integer")
    return int(raw)


def ordered_collection(
    collection_id: str,
    total: int,
    page: int | None,
    items: Sequence[Any],
    *,
    context: Any = AS_CONTEXT,
) -> dict[str, Any]:
    """An OrderedCollection, or its ``page``-th OrderedCollectionPage when ``page`` is set
    (``items`` is then that page's items). ``context``: the items' terms (the outbox's
    room Notes use the parley namespace)."""
    if page is None:
        doc: dict[str, Any] = {
            "@context": context,
            "id": collection_id,
            "type": "OrderedCollection",
            "totalItems": total,
        }
        if total:
            doc["first"] = f"{collection_id}?page=1"
            doc["last"] = f"{collection_id}?page={max(1, -(-total // PAGE_SIZE))}"
        return doc
    doc = {
        "@context": context,
        "id": f"{collection_id}?page={page}",
        "type": "OrderedCollectionPage",
        "partOf": collection_id,
        "totalItems": total,
        "orderedItems": list(items),
    }
    if page * PAGE_SIZE < total:
        doc["next"] = f"{collection_id}?page={page + 1}"
    if page > 1:
        doc["prev"] = f"{collection_id}?page={page - 1}"
    return doc


# --------------------------------------------------------------------------- routes


def build_routes(site_of: SiteOf) -> list[Route]:
    """The federation routes; ``site_of(request)`` returns the node's site (None while
    starting, answered with 503)."""

    def site(request: Request) -> FederationSite:
        value = site_of(request)
        if value is None:
            raise _Unavailable()
        return value

    def guarded(
        handler: Callable[[Request, FederationSite], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request, site(request))
            except _Unavailable:
                return _error(503, "unavailable", "the node is starting")
            except FederationError as exc:
                return federation_error_response(exc)

        endpoint.__name__ = handler.__name__
        return endpoint

    async def webfinger(request: Request, s: FederationSite) -> Response:
        # RFC 7033 section 5: browsers may look people up from any origin, and they must be
        # able to read the errors too.
        cors = {"Access-Control-Allow-Origin": "*"}
        found = await _webfinger_subject(request, s)
        if isinstance(found, JSONResponse):
            found.headers.update(cors)
            return found
        username, urls = found
        jrd = build_webfinger(username, s.host, urls)
        return JSONResponse(jrd, media_type=JRD_JSON, headers=cors)

    async def _webfinger_subject(
        request: Request, s: FederationSite
    ) -> tuple[str, ActorUrls] | JSONResponse:
        """Who ``resource`` names, or the error to answer (RFC 7033 section 4.2: 400 for
        a missing or malformed resource, 404 for one this server does not know)."""
        resources = request.query_params.getlist("resource")
        if len(resources) != 1 or not resources[0]:
            return _error(400, "bad_request", "resource: give exactly one")
        resource = resources[0]
        try:
            scheme, rest = parse_webfinger_resource(resource)
        except ActivityParseError as exc:
            return _error(400, "bad_request", str(exc))
        username: str | None = None
        if scheme in ("http", "https"):
            # Mastodon also looks actors up by URL (resource=https://host/users/alice).
            for candidate in (f"{s.origin}/users/", f"{s.origin}/@"):
                if resource.startswith(candidate):
                    username = resource[len(candidate) :]
            if resource in (s.instance_urls.id, s.instance_urls.profile):
                username = s.host
        elif scheme == "acct":
            user, host = parse_acct(f"acct:{rest}")
            if host != s.host:
                return _error(404, "not_found", f"{host} is not this node")
            username = unquote(user).lower()
        if username is None:
            return _error(404, "not_found", "no such resource here")
        if username == s.host:
            return username, s.instance_urls
        if "/" in username or await s.actors.account(username) is None:
            return _error(404, "not_found", f"no such account {username}")
        return username, s.user_urls(username)

    async def nodeinfo_links(request: Request, s: FederationSite) -> Response:
        return JSONResponse(build_nodeinfo_links(s.base_url))

    async def nodeinfo(request: Request, s: FederationSite) -> Response:
        usage = await s.actors.usage()
        doc = build_nodeinfo(
            software_version=s.software_version,
            users_total=usage.users_total,
            users_active_month=usage.users_active_month,
            users_active_halfyear=usage.users_active_halfyear,
            local_posts=usage.local_posts,
            open_registrations=usage.open_registrations,
            metadata={"nodeName": s.host},
        )
        return JSONResponse(doc, media_type=NODEINFO_21_JSON)

    async def host_meta(request: Request, s: FederationSite) -> Response:
        return Response(build_host_meta(s.base_url), media_type=XRD_XML)

    async def actor(request: Request, s: FederationSite) -> Response:
        username = request.path_params["username"]
        account = await s.actors.account(username)
        if account is None:
            return _error(404, "not_found", f"no such account {username}")
        urls = s.user_urls(account.username)
        if not wants_activity_json(request):
            return RedirectResponse(urls.profile, 302, headers={"Vary": "Accept"})
        await _guard_fetch(s, request, required=s.authorized_fetch)
        doc = build_person(
            urls,
            username=account.username,
            name=account.display_name,
            # Bios are plain text: escaped, then kept to Mastodon's HTML.
            summary=text_to_html(account.summary),
            public_key_pem=account.public_key_pem,
        )
        return _activity_json(doc)

    async def published_object(request: Request, s: FederationSite) -> Response:
        username, room_id = request.path_params["username"], request.path_params["room_id"]
        urls = s.user_urls(username)
        if not wants_activity_json(request):
            # A person following the Note's id from Mastodon lands on the room page.
            base = urls.shared_inbox.rsplit("/", 1)[0]
            return RedirectResponse(f"{base}/rooms/{room_id}", 302, headers={"Vary": "Accept"})
        await _guard_fetch(s, request, required=s.authorized_fetch)
        found = await s.outbox.latest_object(f"{urls.id}/rooms/{room_id}")
        if found is None:
            return _error(404, "not_found", "no such object")
        return _activity_json({"@context": NOTE_CONTEXT, **found})

    async def parley_context(request: Request, s: FederationSite) -> Response:
        # A JSON-LD processor (or the JSON-LD playground) may fetch it from anywhere.
        return Response(
            json.dumps(context_document()),
            media_type=JSON_LD,
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=86400"},
        )

    async def instance_actor(request: Request, s: FederationSite) -> Response:
        doc = build_instance_actor(
            s.instance_urls, host=s.host, public_key_pem=await s.actors.instance_public_key()
        )
        return _activity_json(doc)

    async def inbox(request: Request, s: FederationSite) -> Response:
        username = request.path_params.get("username")
        if username is not None and await s.actors.account(username) is None:
            return _error(404, "not_found", f"no such account {username}")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise PayloadTooLarge(MAX_BODY_BYTES)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise PayloadTooLarge(MAX_BODY_BYTES)
        headers = dict(request.headers)
        _refuse_blocked_signer(s, headers)
        activity = await receive(
            "POST",
            request_url(s, request),
            headers,
            bytes(body),
            s.resolver,
            s.inbox,
            now=s.now(),
        )
        if s.is_blocked(activity.actor):
            raise BlockedDomain(hostname_of(activity.actor))
        s.on_stored()
        return Response(status_code=202)

    async def _user_collection(
        request: Request, s: FederationSite
    ) -> tuple[str, int | None, ActorUrls] | Response:
        username = request.path_params["username"]
        account = await s.actors.account(username)
        if account is None:
            return _error(404, "not_found", f"no such account {username}")
        await _guard_fetch(s, request, required=s.authorized_fetch)
        return username, _page_number(request), s.user_urls(account.username)

    async def outbox(request: Request, s: FederationSite) -> Response:
        found = await _user_collection(request, s)
        if isinstance(found, Response):
            return found
        _, page, urls = found
        total = await s.outbox.count(urls.id)
        items: list[Mapping[str, Any]] = []
        if page is not None:
            items = await s.outbox.page(urls.id, (page - 1) * PAGE_SIZE, PAGE_SIZE)
            items = [{k: v for k, v in item.items() if k != "@context"} for item in items]
        # The items lose their own @context; the page's carries the parley terms for them.
        return _activity_json(
            ordered_collection(urls.outbox, total, page, items, context=NOTE_CONTEXT)
        )

    async def _actor_list(request: Request, s: FederationSite, following: bool) -> Response:
        found = await _user_collection(request, s)
        if isinstance(found, Response):
            return found
        _, page, urls = found
        if following:
            collection, everyone = urls.following, await s.follows.following(urls.id)
        else:
            collection, everyone = urls.followers, await s.follows.followers(urls.id)
        items = everyone[(page - 1) * PAGE_SIZE : page * PAGE_SIZE] if page else []
        return _activity_json(ordered_collection(collection, len(everyone), page, items))

    async def followers(request: Request, s: FederationSite) -> Response:
        return await _actor_list(request, s, following=False)

    async def following(request: Request, s: FederationSite) -> Response:
        return await _actor_list(request, s, following=True)

    return [
        Route("/.well-known/webfinger", guarded(webfinger)),
        Route("/.well-known/nodeinfo", guarded(nodeinfo_links)),
        Route("/nodeinfo/2.1", guarded(nodeinfo)),
        Route("/.well-known/host-meta", guarded(host_meta)),
        Route(CONTEXT_PATH, guarded(parley_context)),
        Route("/actor", guarded(instance_actor)),
        Route("/actor/inbox", guarded(inbox), methods=["POST"]),
        Route("/inbox", guarded(inbox), methods=["POST"]),
        Route("/users/{username}", guarded(actor)),
        Route("/users/{username}/inbox", guarded(inbox), methods=["POST"]),
        Route("/users/{username}/outbox", guarded(outbox)),
        Route("/users/{username}/followers", guarded(followers)),
        Route("/users/{username}/following", guarded(following)),
        Route("/users/{username}/rooms/{room_id}", guarded(published_object)),
    ]
