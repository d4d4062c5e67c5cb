"""Outgoing HTTP and WebSockets: every destination checked, every request signed.

Signing: draft-cavage first (every server accepts it); a 401 is retried once with RFC 9421,
and hosts that needed it are remembered for the life of the client. Look-ups made on no
one's behalf (the relay's room JSON) go unsigned through the same client.

Address policy (``federation.egress``): a remote document or a user can make us fetch any
URL (actor ids, key ids, inboxes, room URLs), so every request, every redirect hop and
every relay WebSocket resolves its host once, checks each address, and connects to the
checked address: nothing reaches a private address unless the policy allows it, and a
name cannot rebind between the check and the connect.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from federation import jsonlimits
from federation.actors import ACTIVITY_JSON, LD_JSON_PROFILE, RemoteActor, parse_actor, same_origin
from federation.egress import (
    AddressPolicy,
    Destination,
    HostResolver,
    domain_is_blocked,
    is_public_address,
    resolve_destination,
    system_resolver,
)
from federation.errors import (
    ActivityParseError,
    PayloadTooLarge,
    RemoteFetchError,
)
from federation.ports import RemoteActorCache
from federation.signatures import sign_request, sign_request_rfc9421

__all__ = [
    "ACCEPT_ACTIVITY",
    "ActorResolver",
    "FederationClient",
    "Fetched",
    "PostResult",
    "domain_is_blocked",
    "is_public_address",
]

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1_000_000
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_REDIRECTS = 3
ACCEPT_ACTIVITY = f"{ACTIVITY_JSON}, {LD_JSON_PROFILE}"
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int
    retry_after: str | None


@dataclass(frozen=True, slots=True)
class Fetched:
    """A JSON document and the URL it came from after redirects (its origin is what the
    document may speak for)."""

    url: str
    doc: Any


class FederationClient:
    def __init__(
        self,
        *,
        user_agent: str = "Parley/0.1",
        blocked_domains: Iterable[str] = (),
        allow_private_addresses: bool = False,
        policy: AddressPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve_host: HostResolver | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.blocked_domains = frozenset(d.lower() for d in blocked_domains)
        self.policy = policy or AddressPolicy(allow_private=allow_private_addresses)
        self.max_response_bytes = max_response_bytes
        self.user_agent = user_agent
        self._resolve_host = resolve_host or system_resolver
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._rfc9421_hosts: set[str] = set()
        # trust_env=False: a proxy from the environment would connect somewhere other
        # than the address the policy checked.
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": user_agent},
        )

    @property
    def allow_private_addresses(self) -> bool:
        return self.policy.allow_private

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> FederationClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ guards

    async def check_destination(self, url: str) -> Destination:
        """Resolve ``url``'s host once and check it: BlockedDomain, PrivateAddress or
        RemoteFetchError; the answer says which address to connect to."""
        return await resolve_destination(
            url, self.policy, self._resolve_host, self.blocked_domains
        )

    # ------------------------------------------------------------------ requests

    def _sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        key_id: str,
        private_pem: str,
        rfc9421: bool,
    ) -> dict[str, str]:
        if rfc9421:
            return sign_request_rfc9421(
                method, url, headers, body, key_id, private_pem, now=self._clock()
            )
        return sign_request(method, url, headers, body, key_id, private_pem, now=self._clock())

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        key_id: str | None,
        private_pem: str | None,
    ) -> tuple[httpx.Response, bytes]:
        if key_id is None or private_pem is None:
            return await self._request(method, url, headers, body)
        host = (urlsplit(url).hostname or "").lower()
        use_rfc9421 = host in self._rfc9421_hosts
        for attempt in range(2):
            signed = self._sign(method, url, headers, body, key_id, private_pem, use_rfc9421)
            response, content = await self._request(method, url, signed, body)
            if response.status_code != 401 or attempt == 1:
                return response, content
            use_rfc9421 = not use_rfc9421
            if use_rfc9421:
                self._rfc9421_hosts.add(host)
            else:
                self._rfc9421_hosts.discard(host)
            log.info("401 from %s, retrying with the other signature format", host)
        raise AssertionError("unreachable")

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[httpx.Response, bytes]:
        destination = await self.check_destination(url)
        sent = {k: v for k, v in headers.items() if k.lower() != "host"}
        sent["Host"] = destination.netloc
        extensions = {}
        if destination.scheme == "https":
            # TLS names and verifies the host, although we connect to its checked address.
            extensions["sni_hostname"] = destination.host
        request = self._http.build_request(
            method,
            destination.url_to_address(url),
            headers=sent,
            content=body,
            extensions=extensions,
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise RemoteFetchError(None, url, type(exc).__name__) from exc
        try:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit():
                if int(declared) > self.max_response_bytes:
                    raise PayloadTooLarge(self.max_response_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise PayloadTooLarge(self.max_response_bytes)
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise RemoteFetchError(None, url, type(exc).__name__) from exc
        finally:
            await response.aclose()
        return response, b"".join(chunks)

    async def fetch(
        self,
        url: str,
        *,
        key_id: str | None = None,
        private_pem: str | None = None,
        accept: str = ACCEPT_ACTIVITY,
    ) -> Fetched:
        """GET a JSON document, following up to MAX_REDIRECTS redirects (each hop checked);
        signed when a key is given (works against "secure mode" servers)."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Accept": accept}
            response, content = await self._send(
                "GET", current, headers, None, key_id, private_pem
            )
            if response.status_code in REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise RemoteFetchError(
                        response.status_code, current, "redirect without Location"
                    )
                current = urljoin(current, location)
                continue
            if not 200 <= response.status_code < 300:
                raise RemoteFetchError(response.status_code, current)
            try:
                return Fetched(current, jsonlimits.loads(content))
            except ActivityParseError as exc:
                raise RemoteFetchError(response.status_code, current, exc.reason) from exc
        raise RemoteFetchError(None, url, "too many redirects")

    async def get_json(self, url: str, *, key_id: str, private_pem: str) -> Any:
        """Signed GET of an ActivityPub document."""
        return (await self.fetch(url, key_id=key_id, private_pem=private_pem)).doc

    async def post_activity(
        self, inbox_url: str, body: bytes, *, key_id: str, private_pem: str
    ) -> PostResult:
        """Signed POST to an inbox. HTTP errors are returned, not raised: the delivery
        policy decides. Network failures raise RemoteFetchError(None)."""
        headers = {"Content-Type": ACTIVITY_JSON, "Accept": ACCEPT_ACTIVITY}
        response, _ = await self._send("POST", inbox_url, headers, body, key_id, private_pem)
        return PostResult(response.status_code, response.headers.get("retry-after"))

    async def open_websocket(
        self, url: str, headers: Mapping[str, str], **options: Any
    ) -> ClientConnection:
        """A ws(s) connection to the checked address of ``url``'s host (the relay stream).
        ``options`` go to ``websockets.asyncio.client.connect``."""
        destination = await self.check_destination(url)
        return await ws_connect(
            url,
            additional_headers={k: v for k, v in headers.items() if k.lower() != "host"},
            user_agent_header=self.user_agent,
            # Connect to what was checked; the URL's host stays in Host and in TLS.
            host=destination.address,
            port=destination.port,
            proxy=None,
            **options,
        )


def _object_id(doc: Any) -> str | None:
    if not isinstance(doc, Mapping):
        raise ActivityParseError("document is not a JSON object", None)
    value = doc.get("id")
    return value if isinstance(value, str) else None


class ActorResolver:
    """Find remote actors and their keys: cache first, else a signed fetch.

    Fetches are signed by one local actor (normally the instance actor), as servers in
    "secure mode" refuse unsigned GETs.
    """

    def __init__(
        self,
        client: FederationClient,
        cache: RemoteActorCache,
        *,
        signing_key_id: str,
        signing_private_pem: str,
    ) -> None:
        self._client = client
        self._cache = cache
        self._key_id = signing_key_id
        self._pem = signing_private_pem

    async def _document(self, url: str) -> Fetched:
        """The JSON object at ``url``, taken as speaking for the origin it was served from.

        Mastodon's rule: a document may only be what its ``id`` claims if that id has the
        origin (scheme, host and port) of the URL it finally came from. Otherwise it is
        fetched once more from its ``id``, and must claim that same id there. Without this,
        a server answering ``/evil`` with ``id: https://victim/users/dave`` and its own key
        would be cached as dave.
        """
        fetched = await self._client.fetch(url, key_id=self._key_id, private_pem=self._pem)
        claimed = _object_id(fetched.doc)
        if claimed is not None and same_origin(claimed, fetched.url):
            return fetched
        if claimed is None:
            raise ActivityParseError("missing or not a string", "id")
        fetched = await self._client.fetch(claimed, key_id=self._key_id, private_pem=self._pem)
        if _object_id(fetched.doc) != claimed or not same_origin(claimed, fetched.url):
            raise ActivityParseError("document is not served from its own origin", "id")
        return fetched

    async def _fetch(self, url: str) -> RemoteActor:
        doc = (await self._document(url)).doc
        if "inbox" not in doc and isinstance(doc.get("owner"), str):
            # The key id resolved to a bare key document (some servers serve one): follow
            # its owner and trust the key only if the owner's document lists it.
            doc = (await self._document(doc["owner"])).doc
        actor = parse_actor(doc)
        await self._cache.put(actor)
        return actor

    async def actor(self, actor_id: str, *, refresh: bool = False) -> RemoteActor:
        if not refresh:
            cached = await self._cache.get(actor_id)
            if cached is not None:
                return cached
        return await self._fetch(actor_id)

    async def key_owner(self, key_id: str, *, refresh: bool = False) -> RemoteActor:
        if not refresh:
            cached = await self._cache.get_by_key_id(key_id)
            if cached is not None:
                return cached
        actor = await self._fetch(urldefrag(key_id).url)
        if actor.public_key_id != key_id:
            raise ActivityParseError("fetched actor does not publish this key", "publicKey.id")
        return actor
