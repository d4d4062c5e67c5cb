"""Who may subscribe to a room's relay stream, and what its signature covers. Pure: the
key was fetched and the signature checked before (federation.routes.verify_signed_get).

A subscription is a WebSocket upgrade ``GET {relay URL}[?relay={subscriber's relay URL}]``
signed by the subscribing node's **instance actor**: the subscription speaks for a node
(its place on the succession list, its users' uplink), not for one of its users. An
RFC 9421 ``@target-uri`` may be the ``http(s)://`` form of the URL (RFC 9110 section 7.1
reconstructs that for the upgrade request) or the ``ws(s)://`` URL the subscriber dialled;
draft-cavage's ``(request-target)`` is the path and query either way. FEDERATION.md,
"Subscribing"; vectors in tests/vectors/subscriptions.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from federation.actors import RemoteActor
from federation.errors import InvalidParameter, NotAllowed
from federation.relay import WS_SCHEMES, SuccessionEntry, is_url

INSTANCE_ACTOR_TYPES = frozenset({"Application", "Service"})
"""Actor types a node's own actor has (Mastodon, Parley: ``Application``)."""
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_TRANSPORT = {"ws": "http", "wss": "https", "http": "ws", "https": "wss"}


def authority(url: str) -> str:
    """``host[:port]`` of ``url`` as handles write it: the host lower-cased, the port only
    when it is not the scheme's default. "" when ``url`` does not parse."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def other_form(url: str) -> str:
    """The same URL over the other transport: ``ws://`` <-> ``http://``, ``wss://`` <->
    ``https://`` (the two ``@target-uri`` forms of a subscription)."""
    scheme, sep, rest = url.partition("://")
    return f"{_TRANSPORT.get(scheme.lower(), scheme)}{sep}{rest}"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A node subscribing to a room: its authority and, when it serves a copy of the
    room, its succession entry."""

    host: str
    entry: SuccessionEntry | None


def subscriber_of(signer: RemoteActor, relay: str | None) -> Subscriber:
    """The subscribing node, from the actor whose key signed the subscription and the
    ``relay`` query parameter; NotAllowed (403) or InvalidParameter (400) otherwise."""
    if signer.type not in INSTANCE_ACTOR_TYPES:
        raise NotAllowed(
            f"a relay subscription must be signed by the subscribing node's instance actor "
            f"(an Application or Service), not by the {signer.type} {signer.id}"
        )
    host = authority(signer.id)
    scheme = urlsplit(signer.id).scheme.lower()
    if relay is None or relay == "":
        return Subscriber(host, None)
    if not is_url(relay, WS_SCHEMES):
        raise InvalidParameter("relay", "must be a ws:// or wss:// URL")
    relay_scheme = urlsplit(relay).scheme.lower()
    if authority(relay) != host or _TRANSPORT[relay_scheme] != scheme:
        expected = _TRANSPORT[scheme]
        raise NotAllowed(
            f"relay: must be on the signing node ({expected}://{host}), not {relay[:300]}"
        )
    return Subscriber(host, SuccessionEntry(f"{scheme}://{host}", relay))
