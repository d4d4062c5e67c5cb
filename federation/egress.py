"""Where the node may connect: the address policy every outgoing request goes through.

A remote document, or a user asking the node to fetch something, can name any URL (actor
ids, key ids, inboxes, room URLs, relay WebSockets). Before a connection is opened the
host is resolved **once**, every address it resolves to is checked against the
:class:`AddressPolicy`, and the connection is made to the checked address (the URL's
host name still goes in ``Host`` and in TLS SNI and certificate checks). Resolving once
and connecting to what was checked is what closes DNS rebinding: a name that answers a
public address to the check and a private one to the connect never gets the second
look-up.

The policy refuses loopback, private, link-local, shared (CGNAT), multicast and
unspecified addresses unless ``allow_private`` (tests, LANs), or unless the exact
``host:port`` destination is on the ``allowlist`` (a LAN peer the operator trusts; tests
use it to reach their loopback peers with the checks on).

Pure except :func:`system_resolver`; the resolver is a seam (a test's fake DNS).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from federation.errors import BlockedDomain, PrivateAddress, RemoteFetchError

HostResolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses``: the one place names become addresses."""

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


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


# A host as a handle names it: a name (IDN letters allowed) or a bracketed IPv6 address,
# and an optional port.
_HOST_AND_PORT = re.compile(r"(\[[0-9a-f:.]+\]|[\w.-]+)(:[0-9]{1,5})?")


def is_host_and_port(text: str) -> bool:
    """``text`` is ``host`` or ``host:port`` that a URL can carry (a handle's server part);
    no fragment, query, path, whitespace or bad port."""
    if not _HOST_AND_PORT.fullmatch(text.lower()):
        return False
    try:
        parts = urlsplit(f"//{text}")
        # .port raises on a port out of range.
        return bool(parts.hostname) and (parts.port is None or parts.port >= 0)
    except ValueError:
        return False


def hostname_of(url: str) -> str:
    """The lower-cased host of ``url``, or "" when it has none or does not parse
    (``urlsplit`` raises ValueError on ``http://[::1``: remote input must not)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _netloc_key(host: str, port: int) -> str:
    host = host.lower().strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_allow_entry(entry: str) -> str:
    """``host:port`` (``[v6]:port``) normalised; ValueError when it is not one."""
    try:
        parts = urlsplit(f"//{entry.strip()}")
        port = parts.port
    except ValueError:
        raise ValueError(f"not host:port: {entry!r}") from None
    if not parts.hostname or port is None or parts.username or parts.path:
        raise ValueError(f"not host:port: {entry!r}")
    return _netloc_key(parts.hostname, port)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow_private: bool = False
    allowlist: frozenset[str] = frozenset()
    """``host:port`` destinations allowed although not public (host: a name or an IP)."""

    @classmethod
    def build(cls, *, allow_private: bool = False, allowlist: Iterable[str] = ()) -> AddressPolicy:
        return cls(allow_private, frozenset(parse_allow_entry(e) for e in allowlist))

    def permits(self, address: str, port: int, host: str) -> bool:
        if self.allow_private or is_public_address(address):
            return True
        return (
            _netloc_key(address, port) in self.allowlist
            or _netloc_key(host, port) in self.allowlist
        )

    def plain_http_allowed(self, netloc: str) -> bool:
        """Whether a look-up may fall back to plain http: only where private addresses are
        allowed (the public fediverse is https)."""
        if self.allow_private:
            return True
        try:
            return parse_allow_entry(netloc) in self.allowlist
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class Destination:
    """A URL's host resolved and checked: connect to ``address``, say ``netloc``."""

    scheme: str
    host: str
    port: int
    netloc: str
    address: str

    def url_to_address(self, url: str) -> str:
        """``url`` with the checked address in place of its host (same scheme, port,
        path and query), for a client that connects where its URL says."""
        parts = urlsplit(url)
        host = f"[{self.address}]" if ":" in self.address else self.address
        return urlunsplit((parts.scheme, f"{host}:{self.port}", parts.path, parts.query, ""))


async def resolve_destination(
    url: str,
    policy: AddressPolicy,
    resolver: HostResolver,
    blocked_domains: Iterable[str] = (),
) -> Destination:
    """Check ``url`` against the blocklist and the address policy; raise BlockedDomain,
    PrivateAddress or RemoteFetchError (no such host, not http(s)/ws(s))."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        raise RemoteFetchError(None, url[:200], "not a URL") from None
    if scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
        raise RemoteFetchError(None, url, "not an http(s) or ws(s) URL")
    host = parts.hostname.lower()
    if domain_is_blocked(host, blocked_domains):
        raise BlockedDomain(host)
    try:
        addresses = [str(ipaddress.ip_address(host.split("%", 1)[0]))]
    except ValueError:
        try:
            addresses = await resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise RemoteFetchError(None, url, "cannot resolve host") from exc
    if not addresses:
        raise RemoteFetchError(None, url, "host has no addresses")
    for address in addresses:
        if not policy.permits(address, port, host):
            raise PrivateAddress(host, address)
    return Destination(scheme, host, port, parts.netloc.rsplit("@", 1)[-1], addresses[0])
