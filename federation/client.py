"""Outgoing ActivityPub HTTP: every request signed, every destination checked.

Signing: draft-cavage first (every server accepts it); a 401 is retried once with RFC 9421,
and hosts that needed it are remembered for the life of the client.

SSRF guard: a remote document can make us fetch any URL (actor ids, key ids, inboxes), so
the host is resolved and every address must be public unless ``allow_private_addresses``.
Redirects are followed by hand so each hop is checked too. Known gap: httpx resolves the
name again when connecting (DNS rebinding between check and connect is not prevented).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx

from federation.actors import ACTIVITY_JSON, LD_JSON_PROFILE, RemoteActor, parse_actor
from federation.errors import (
    ActivityParseError,
    BlockedDomain,
    PayloadTooLarge,
    PrivateAddress,
    RemoteFetchError,
)
from federation.ports import RemoteActorCache
from federation.signatures import sign_request, sign_request_rfc9421

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1_000_000
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_REDIRECTS = 3
ACCEPT_ACTIVITY = f"{ACTIVITY_JSON}, {LD_JSON_PROFILE}"

HostResolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int
    retry_after: str | None


async def _getaddrinfo(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def domain_is_blocked(host: str, blocked: Iterable[str]) -> bool:
    """Exact or subdomain match: blocking ``example.com`` blocks ``a.example.com``."""
    host = host.lower().rstrip(".")
    for domain in blocked:
        domain = domain.lower().strip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


class FederationClient:
    def __init__(
        self,
        *,
        user_agent: str = "Parley/0.1",
        blocked_domains: Iterable[str] = (),
        allow_private_addresses: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve_host: HostResolver | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.blocked_domains = frozenset(d.lower() for d in blocked_domains)
        self.allow_private_addresses = allow_private_addresses
        self.max_response_bytes = max_response_bytes
        self._resolve_host = resolve_host or _getaddrinfo
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._rfc9421_hosts: set[str] = set()
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": user_agent},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> FederationClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ guards

    async def check_destination(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteFetchError(None, url, "not an http(s) URL")
        host = parts.hostname.lower()
        if domain_is_blocked(host, self.blocked_domains):
            raise BlockedDomain(host)
        if self.allow_private_addresses:
            return
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                addresses = await self._resolve_host(host, port)
            except OSError as exc:
                raise RemoteFetchError(None, url, f"cannot resolve host: {exc}") from exc
        if not addresses:
            raise RemoteFetchError(None, url, "host has no addresses")
        for address in addresses:
            if not is_public_address(address):
                raise PrivateAddress(host, address)

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
        key_id: str,
        private_pem: str,
    ) -> tuple[httpx.Response, bytes]:
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
        await self.check_destination(url)
        request = self._http.build_request(method, url, headers=dict(headers), content=body)
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

    async def get_json(self, url: str, *, key_id: str, private_pem: str) -> Any:
        """Signed GET of an ActivityPub document (works against "secure mode" servers)."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Accept": ACCEPT_ACTIVITY}
            response, content = await self._send(
                "GET", current, headers, None, key_id, private_pem
            )
            if response.status_code in (301, 302, 303, 307, 308):
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
                return json.loads(content)
            except ValueError as exc:
                raise RemoteFetchError(response.status_code, current, "body is not JSON") from exc
        raise RemoteFetchError(None, url, "too many redirects")

    async def post_activity(
        self, inbox_url: str, body: bytes, *, key_id: str, private_pem: str
    ) -> PostResult:
        """Signed POST to an inbox. HTTP errors are returned, not raised: the delivery
        policy decides. Network failures raise RemoteFetchError(None)."""
        headers = {"Content-Type": ACTIVITY_JSON, "Accept": ACCEPT_ACTIVITY}
        response, _ = await self._send("POST", inbox_url, headers, body, key_id, private_pem)
        return PostResult(response.status_code, response.headers.get("retry-after"))


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

    async def _fetch(self, url: str) -> RemoteActor:
        doc = await self._client.get_json(url, key_id=self._key_id, private_pem=self._pem)
        if not isinstance(doc, Mapping):
            raise ActivityParseError("actor document is not an object", None)
        if "inbox" not in doc and isinstance(doc.get("owner"), str):
            # The key id resolved to a bare key document (some servers serve one): follow
            # its owner and trust the key only if the owner's document lists it.
            doc = await self._client.get_json(
                doc["owner"], key_id=self._key_id, private_pem=self._pem
            )
            if not isinstance(doc, Mapping):
                raise ActivityParseError("actor document is not an object", None)
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
