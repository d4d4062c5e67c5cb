"""Actor documents, WebFinger, NodeInfo and host-meta: build ours, parse theirs. No I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from federation.errors import ActivityParseError
from federation.sanitize import clean_html, plain_text

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ACTIVITY_JSON = "application/activity+json"
LD_JSON_PROFILE = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
NODEINFO_21_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/2.1"

MAX_NAME = 200
ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})


@dataclass(frozen=True, slots=True)
class ActorUrls:
    """Where a local actor's collections live; one URL layout for the whole node."""

    id: str
    inbox: str
    outbox: str
    followers: str
    following: str
    shared_inbox: str
    profile: str

    @property
    def key_id(self) -> str:
        # Mastodon's convention; peers cache keys by this id and fetch the actor to refresh it.
        return f"{self.id}#main-key"

    @classmethod
    def for_user(cls, base_url: str, username: str) -> ActorUrls:
        return cls._at(base_url, f"/users/{username}", f"/@{username}")

    @classmethod
    def for_instance(cls, base_url: str) -> ActorUrls:
        return cls._at(base_url, "/actor", "/about")

    @classmethod
    def _at(cls, base_url: str, actor_path: str, profile_path: str) -> ActorUrls:
        base = base_url.rstrip("/")
        actor = f"{base}{actor_path}"
        return cls(
            id=actor,
            inbox=f"{actor}/inbox",
            outbox=f"{actor}/outbox",
            followers=f"{actor}/followers",
            following=f"{actor}/following",
            shared_inbox=f"{base}/inbox",
            profile=f"{base}{profile_path}",
        )


def _public_key(urls: ActorUrls, public_key_pem: str) -> dict[str, str]:
    return {"id": urls.key_id, "owner": urls.id, "publicKeyPem": public_key_pem}


def build_person(
    urls: ActorUrls,
    *,
    username: str,
    name: str,
    summary: str,
    public_key_pem: str,
    icon_url: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": [AS_CONTEXT, SECURITY_CONTEXT],
        "id": urls.id,
        "type": "Person",
        "preferredUsername": username,
        "name": name,
        "summary": clean_html(summary),
        "inbox": urls.inbox,
        "outbox": urls.outbox,
        "followers": urls.followers,
        "following": urls.following,
        "endpoints": {"sharedInbox": urls.shared_inbox},
        "publicKey": _public_key(urls, public_key_pem),
        "url": urls.profile,
        "manuallyApprovesFollowers": False,
        "discoverable": True,
    }
    if icon_url:
        doc["icon"] = {"type": "Image", "url": icon_url}
    return doc


def build_instance_actor(urls: ActorUrls, *, host: str, public_key_pem: str) -> dict[str, Any]:
    """The node's own actor, used to sign fetches that are not on behalf of a user.

    Mastodon names it after the domain and marks it as approving followers manually, so that
    nobody follows it by accident; "secure mode" peers still accept its signed GETs.
    """
    return {
        "@context": [AS_CONTEXT, SECURITY_CONTEXT],
        "id": urls.id,
        "type": "Application",
        "preferredUsername": host,
        "name": host,
        "inbox": urls.inbox,
        "outbox": urls.outbox,
        "endpoints": {"sharedInbox": urls.shared_inbox},
        "publicKey": _public_key(urls, public_key_pem),
        "url": urls.profile,
        "manuallyApprovesFollowers": True,
        "discoverable": False,
    }


# --------------------------------------------------------------------------- WebFinger


def parse_acct(resource: str) -> tuple[str, str]:
    """``acct:alice@host`` (or ``@alice@host``, ``alice@host``) -> (``alice``, ``host``)."""
    text = resource.strip()
    if text.startswith("acct:"):
        text = text[len("acct:") :]
    text = text.lstrip("@")
    user, sep, host = text.partition("@")
    if not sep or not user or not host or "@" in host or "/" in host:
        raise ActivityParseError(f"not an acct resource: {resource!r}", "resource")
    return user, host.lower()


_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def parse_webfinger_resource(resource: str) -> tuple[str, str]:
    """A WebFinger ``resource`` (RFC 7033 section 4.5: a URI) as (scheme, rest).

    Raises ActivityParseError for what is not a URI at all (no scheme, as in ``alice@host``
    or ``=acct:alice@host``, whitespace, control characters) and for a malformed ``acct:``
    URI (RFC 7565: ``acct:user@host``): the server answers 400 (section 4.2). A
    well-formed URI of another scheme is returned as is: the server has no such resource
    (404).
    """
    scheme, colon, rest = resource.partition(":")
    if not colon or not _URI_SCHEME.fullmatch(scheme) or not rest:
        raise ActivityParseError("not a URI (no scheme)", "resource")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in resource):
        raise ActivityParseError("not a URI (whitespace or control characters)", "resource")
    scheme = scheme.lower()
    if scheme == "acct":
        user, at, host = rest.partition("@")
        if not at or not user or not host or any(c in host for c in "/?#@"):
            raise ActivityParseError("an acct URI is acct:user@host", "resource")
    return scheme, rest


def build_webfinger(username: str, host: str, urls: ActorUrls) -> dict[str, Any]:
    """RFC 7033 JRD for ``acct:username@host``, as Mastodon's lookup expects."""
    return {
        "subject": f"acct:{username}@{host}",
        "aliases": [urls.profile, urls.id],
        "links": [
            {"rel": "self", "type": ACTIVITY_JSON, "href": urls.id},
            {
                "rel": "http://webfinger.net/rel/profile-page",
                "type": "text/html",
                "href": urls.profile,
            },
        ],
    }


def parse_webfinger(jrd: Mapping[str, Any]) -> str:
    """Return the ActivityPub actor id from a remote JRD."""
    links = jrd.get("links")
    if not isinstance(links, list):
        raise ActivityParseError("missing or not a list", "links")
    for link in links:
        if not isinstance(link, Mapping) or link.get("rel") != "self":
            continue
        media = str(link.get("type", ""))
        href = link.get("href")
        if isinstance(href, str) and (
            media == ACTIVITY_JSON or media.startswith("application/ld+json")
        ):
            return href
    raise ActivityParseError("no rel=self ActivityPub link", "links")


# --------------------------------------------------------------------------- NodeInfo


def build_nodeinfo_links(base_url: str) -> dict[str, Any]:
    return {
        "links": [
            {"rel": NODEINFO_21_SCHEMA, "href": f"{base_url.rstrip('/')}/nodeinfo/2.1"},
        ]
    }


def build_nodeinfo(
    *,
    software_name: str = "parley",
    software_version: str,
    users_total: int,
    users_active_month: int,
    users_active_halfyear: int,
    local_posts: int,
    open_registrations: bool,
    repository: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """NodeInfo 2.1; ``software.name`` must match ``^[a-z0-9-]+$`` per the schema."""
    software: dict[str, Any] = {"name": software_name, "version": software_version}
    if repository:
        software["repository"] = repository
    return {
        "version": "2.1",
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": open_registrations,
        "usage": {
            "users": {
                "total": users_total,
                "activeMonth": users_active_month,
                "activeHalfyear": users_active_halfyear,
            },
            "localPosts": local_posts,
        },
        "metadata": dict(metadata or {}),
    }


def build_host_meta(base_url: str) -> str:
    """RFC 6415 XRD; some older clients find WebFinger only through it."""
    template = f"{base_url.rstrip('/')}/.well-known/webfinger?resource={{uri}}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" type="application/xrd+xml" template={quoteattr(template)}/>\n'
        "</XRD>\n"
    )


# --------------------------------------------------------------------------- remote actors


@dataclass(frozen=True, slots=True)
class RemoteActor:
    id: str
    inbox: str
    shared_inbox: str | None
    preferred_username: str
    public_key_id: str
    public_key_pem: str
    followers: str | None
    url: str | None
    name: str | None
    type: str = "Person"

    @property
    def host(self) -> str:
        return (urlsplit(self.id).hostname or "").lower()

    @property
    def delivery_inbox(self) -> str:
        return self.shared_inbox or self.inbox


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; ("", "", None) for
    something that is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return ("", "", None)
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return ("", "", None)
    return (scheme, host, port)


def same_origin(a: str, b: str) -> bool:
    """RFC 6454 origins: scheme, host **and port** (two services on one host at different
    ports are different parties)."""
    first = origin_of(a)
    return bool(first[0]) and first == origin_of(b)


def require_url(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ActivityParseError("missing or not a string", field)
    if not origin_of(value)[0] or any(c.isspace() or ord(c) < 0x20 for c in value):
        raise ActivityParseError(f"not an http(s) URL: {value[:200]!r}", field)
    return value


def optional_url(value: Any, field: str) -> str | None:
    if value is None:
        return None
    return require_url(value, field)


def _html_url(value: Any) -> str | None:
    """``url`` may be a string, a Link object or a list of either (Fedify emits lists)."""
    candidates = value if isinstance(value, list) else [value]
    fallback: str | None = None
    for item in candidates:
        if isinstance(item, str):
            fallback = fallback or item
        elif isinstance(item, Mapping) and isinstance(item.get("href"), str):
            if item.get("mediaType", "text/html") == "text/html":
                return str(item["href"])
            fallback = fallback or str(item["href"])
    return fallback


def _select_key(value: Any, owner: str) -> Mapping[str, Any]:
    # Most servers publish one key object; some (FEP-521a era Fedify) publish a list.
    keys = value if isinstance(value, list) else [value]
    for key in keys:
        if isinstance(key, Mapping) and key.get("owner", owner) == owner:
            return key
    raise ActivityParseError("no key owned by the actor", "publicKey")


def parse_actor(doc: Mapping[str, Any]) -> RemoteActor:
    """Validate a remote actor document; raise ActivityParseError naming the bad field."""
    if not isinstance(doc, Mapping):
        raise ActivityParseError("actor document is not an object", None)
    actor_id = require_url(doc.get("id"), "id")
    actor_type = doc.get("type")
    # (A JSON-LD type may be a list; found by the property tests as a TypeError.)
    if not isinstance(actor_type, str) or actor_type not in ACTOR_TYPES:
        raise ActivityParseError(f"not an actor type: {actor_type!r}", "type")
    inbox = require_url(doc.get("inbox"), "inbox")
    username = doc.get("preferredUsername")
    if not isinstance(username, str) or not username:
        raise ActivityParseError("missing or not a string", "preferredUsername")
    endpoints = doc.get("endpoints")
    shared_inbox = None
    if endpoints is not None:
        if not isinstance(endpoints, Mapping):
            raise ActivityParseError("not an object", "endpoints")
        shared_inbox = optional_url(endpoints.get("sharedInbox"), "endpoints.sharedInbox")
    if "publicKey" not in doc:
        raise ActivityParseError("missing", "publicKey")
    key = _select_key(doc["publicKey"], actor_id)
    key_id = require_url(key.get("id"), "publicKey.id")
    pem = key.get("publicKeyPem")
    if not isinstance(pem, str) or "BEGIN" not in pem:
        raise ActivityParseError("missing or not a PEM string", "publicKey.publicKeyPem")
    # A key document elsewhere could be used to impersonate; Mastodon requires the key to
    # live with the actor, which is what "owner" and the same origin (port included) assert.
    if not same_origin(key_id, actor_id):
        raise ActivityParseError("key is not on the actor's origin", "publicKey.id")
    name = doc.get("name")
    if name is not None and not isinstance(name, str):
        raise ActivityParseError("not a string", "name")
    # Plain text by the spec; whatever markup another server put there is dropped.
    name = plain_text(name, MAX_NAME) if name else None
    username = plain_text(username, MAX_NAME)
    if not username:
        raise ActivityParseError("empty once markup is removed", "preferredUsername")
    return RemoteActor(
        id=actor_id,
        inbox=inbox,
        shared_inbox=shared_inbox,
        preferred_username=username,
        public_key_id=key_id,
        public_key_pem=pem,
        followers=optional_url(doc.get("followers"), "followers"),
        url=_html_url(doc.get("url")),
        name=name or None,
        type=str(actor_type),
    )
