"""node.toml -> frozen dataclasses.

Every key is declared here with its type; an unknown key or a value of the wrong type stops
start-up with a `ConfigError` naming the key (``media.max_speakers``), so a typo never runs
silently with a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints
from urllib.parse import urlsplit

MAX_NODE_DESCRIPTION = 500

Registration = Literal["open", "approval", "closed"]
WebRtcFanout = Literal["native", "batched", "aiortc"]
EventLoop = Literal["asyncio", "uvloop"]
HttpParser = Literal["h11", "httptools"]
RoomEventsPath = Literal["shared", "per_watcher"]


class ConfigError(Exception):
    """node.toml cannot be used; `key` names the offending setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class NodeSettings:
    base_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    # Largest request body the JSON API accepts, in bytes.
    max_body_bytes: int = 64 * 1024
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks). Empty: nobody's; the client is the socket's peer. Rate limits key on
    # the address this yields.
    trusted_proxies: tuple[str, ...] = ()
    # The event loop and HTTP/1.1 parser uvicorn runs with. uvloop + httptools: a third
    # less CPU per Ogg listener than asyncio + h11, and no worse for WebRTC (bench/RESULTS.md).
    event_loop: EventLoop = "uvloop"
    http_parser: HttpParser = "httptools"
    # How a room's events reach its WebSocket clients: "shared" (encoded once per room,
    # the same strings to every socket, gathered per event-loop tick) or "per_watcher"
    # (each event to each client on its own: the path before issue 18, kept for
    # bench/). node/onair/watchers.py.
    room_events: RoomEventsPath = "shared"
    # permessage-deflate on WebSockets. Off: a room's events are tiny JSON messages, and
    # compressing each for each client costs more CPU than it saves bytes (bench/RESULTS.md).
    ws_compression: bool = False
    # What this node is, in a sentence or two: shown to logged-out visitors on the home
    # page and in link previews. Optional (node.web.about reads it).
    description: str = ""


@dataclass(frozen=True)
class AccountSettings:
    registration: Registration = "open"
    # Attempts per client address per minute on sign-up and log-in.
    auth_rate_per_minute: int = 10


@dataclass(frozen=True)
class MediaSettings:
    ice_servers: tuple[str, ...] = ()
    # Addresses offered as ICE host candidates. Empty: every non-loopback interface
    # (aioice's default). Set the public IP behind NAT, or 127.0.0.1 on a loopback-only
    # test network (aioice leaves loopback out by default).
    host_addresses: tuple[str, ...] = ()
    udp_port_min: int = 0
    udp_port_max: int = 0
    max_speakers: int = 10
    # A speaker whose audio stops for this long (and whose peer did not say goodbye) is
    # taken off the stage.
    speaker_timeout_s: float = 15.0
    # How long a live room waits for a host who left without ending it.
    host_grace_s: float = 60.0
    max_sdp_bytes: int = 16 * 1024
    # How WebRTC listeners get their packets: "native" (one send loop per room, the
    # per-listener step in C: node/media/native.py), "batched" (the same loop in pure
    # Python, node/media/fanout.py) or "aiortc" (aiortc's own sender per listener).
    webrtc_fanout: WebRtcFanout = "native"
    # Audio per RTP packet for WebRTC listeners on the batched fan-out (native or Python
    # step), in ms: 20, 40 or 60. A packet costs about the same whatever its size, so 40
    # cuts a listener's cost (by a fifth to a third with the native step: what is left is
    # ICE consent and RTCP) and adds 20 ms of delay (speakers' own returns stay at 20).
    webrtc_packet_ms: int = 40
    # Audio per Ogg page for HTTP listeners, in ms (a multiple of the 20 ms Opus frame):
    # each listener is woken and written to once per page, so longer pages cost less CPU
    # per listener and add latency (200 ms: ~40 % less CPU than 100 ms, Ogg mouth-to-ear
    # still far under 1 s; bench/RESULTS.md).
    ogg_page_ms: int = 200
    # Worker processes holding listeners (WebRTC: ICE, DTLS, SRTP, the send loop; Ogg: the
    # TCP connection, handed over); 0 keeps them in the node process. One Python process
    # uses one core: about one per core (node/media/workers.py).
    workers: int = 0


@dataclass(frozen=True)
class HlsSettings:
    # Where listeners fetch the rooms' LL-HLS streams (hls_url in the room JSON): empty
    # for this node's own base_url, or the origin of an HTTP cache or CDN that pulls
    # from this node (deploy/nginx-hls.conf), e.g. "https://cdn.example.org".
    base_url: str = ""
    # The web client listens over WebRTC while the node serves fewer than this many
    # listeners of a room itself (WebRTC and Ogg); past it, or when no media worker can
    # take a WebRTC listener, new web listeners get the room over HLS. 0: always HLS.
    after_listeners: int = 500


@dataclass(frozen=True)
class FederationSettings:
    authorized_fetch: bool = False
    allow_private_addresses: bool = False
    # "host:port" destinations reachable although private (a LAN peer), with
    # allow_private_addresses off; plain http is tried for them too.
    allow_private_destinations: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    # Look-ups the node makes on a user's behalf (follow, remote-join, remote-rooms), per
    # account and per client address per minute.
    fetch_rate_per_minute: int = 30


@dataclass(frozen=True)
class VisitorSettings:
    # People of any ActivityPub server (Mastodon, Misskey, another Parley ...) may join
    # rooms here as themselves: the node sends a one-time code to their handle as a
    # direct message (docs/SECURITY.md "Visitors").
    enabled: bool = True
    # Direct messages with codes the node sends per hour, per handle, per server and per
    # client address: nobody can make it spam anyone.
    codes_per_handle_per_hour: int = 3
    codes_per_server_per_hour: int = 30
    codes_per_address_per_hour: int = 10
    # How long a visitor stays signed in (a cookie for this node only; revocable).
    session_days: int = 30
    # Where the direct message tells people to report abuse (an address or URL), besides
    # its "it was not me" link. Empty: the link only.
    abuse_contact: str = ""


@dataclass(frozen=True)
class Config:
    node: NodeSettings = field(default_factory=NodeSettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    hls: HlsSettings = field(default_factory=HlsSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    visitors: VisitorSettings = field(default_factory=VisitorSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.node.data_dir)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    origin = getattr(hint, "__origin__", None)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(key, f"must be one of {', '.join(map(repr, allowed))}")
        return value
    if origin is tuple:
        (item,) = get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(key, "must be a list")
        return tuple(_coerce(f"{key}[{i}]", item, v) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, "must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, "must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, "must be a string")
        return value
    raise ConfigError(key, f"unsupported type {hint!r}")  # pragma: no cover


def _section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(name, "must be a table")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}", "unknown setting")
        values[key] = _coerce(f"{name}.{key}", hints[key], value)
    return cls(**values)


def _validate(config: Config) -> None:
    try:
        url = urlsplit(config.node.base_url)
        _ = url.port  # a port that is not a number raises too
        usable = url.scheme in ("http", "https") and bool(url.hostname) and url.path in ("", "/")
    except ValueError:
        usable = False
    if not usable:
        raise ConfigError("node.base_url", "must be an http(s) origin like https://example.org")
    if len(config.node.description) > MAX_NODE_DESCRIPTION:
        raise ConfigError("node.description", f"at most {MAX_NODE_DESCRIPTION} characters")
    if not 0 <= config.node.port <= 65535:
        raise ConfigError("node.port", "must be between 0 and 65535")
    media = config.media
    if (media.udp_port_min == 0) != (media.udp_port_max == 0):
        raise ConfigError(
            "media.udp_port_min", "set both udp_port_min and udp_port_max, or neither"
        )
    if media.udp_port_min and not 1024 <= media.udp_port_min <= media.udp_port_max <= 65535:
        raise ConfigError(
            "media.udp_port_max", "must satisfy 1024 <= udp_port_min <= max <= 65535"
        )
    if not (20 <= media.ogg_page_ms <= 1000 and media.ogg_page_ms % 20 == 0):
        raise ConfigError("media.ogg_page_ms", "must be a multiple of 20 between 20 and 1000")
    if media.webrtc_packet_ms not in (20, 40, 60):
        raise ConfigError("media.webrtc_packet_ms", "must be 20, 40 or 60")
    if not 0 <= media.workers <= 64:
        raise ConfigError("media.workers", "must be between 0 and 64")
    if not 1 <= media.max_speakers <= 50:
        raise ConfigError("media.max_speakers", "must be between 1 and 50")
    from node.media.ice import parse_ice_server

    for i, server in enumerate(media.ice_servers):
        try:
            parse_ice_server(server)
        except ValueError as exc:
            raise ConfigError(f"media.ice_servers[{i}]", str(exc)) from None
    hls = urlsplit(config.hls.base_url)
    if config.hls.base_url and (
        hls.scheme not in ("http", "https") or not hls.netloc or hls.path not in ("", "/")
    ):
        raise ConfigError("hls.base_url", "must be empty or an http(s) origin")
    if config.hls.after_listeners < 0:
        raise ConfigError("hls.after_listeners", "must be 0 or more")
    if config.accounts.auth_rate_per_minute < 1:
        raise ConfigError("accounts.auth_rate_per_minute", "must be at least 1")
    if config.federation.fetch_rate_per_minute < 1:
        raise ConfigError("federation.fetch_rate_per_minute", "must be at least 1")
    visitors = config.visitors
    for key in ("codes_per_handle_per_hour", "codes_per_server_per_hour"):
        if getattr(visitors, key) < 1:
            raise ConfigError(f"visitors.{key}", "must be at least 1")
    if visitors.codes_per_address_per_hour < 1:
        raise ConfigError("visitors.codes_per_address_per_hour", "must be at least 1")
    if not 1 <= visitors.session_days <= 365:
        raise ConfigError("visitors.session_days", "must be between 1 and 365")
    if len(visitors.abuse_contact) > 200:
        raise ConfigError("visitors.abuse_contact", "at most 200 characters")
    for i, proxy in enumerate(config.node.trusted_proxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"node.trusted_proxies[{i}]", "must be an IP address or network"
            ) from None
    from federation.egress import parse_allow_entry

    for i, entry in enumerate(config.federation.allow_private_destinations):
        try:
            parse_allow_entry(entry)
        except ValueError:
            raise ConfigError(
                f"federation.allow_private_destinations[{i}]", "must be host:port"
            ) from None


_SECTIONS: dict[str, type] = {
    "node": NodeSettings,
    "accounts": AccountSettings,
    "media": MediaSettings,
    "hls": HlsSettings,
    "federation": FederationSettings,
    "visitors": VisitorSettings,
}


def parse_config(raw: dict[str, Any]) -> Config:
    sections = {}
    for name, value in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(name, "unknown section")
        sections[name] = _section(name, _SECTIONS[name], value)
    config = Config(**sections)
    _validate(config)
    node = dataclasses.replace(config.node, base_url=canonical_origin(config.node.base_url))
    return dataclasses.replace(config, node=node)


def canonical_origin(url: str) -> str:
    """``scheme://host[:port]`` as every URL and handle of the node writes it: scheme and
    host lower-cased, no trailing slash, the port only when it is not the scheme's
    default (``https://Rooms.Example:443/`` is ``https://rooms.example``), so that
    ``alice@host`` in a handle and the host of a signing key compare equal."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(str(path), "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text: {exc}") from exc
    except RecursionError:
        # tomllib recurses once per nested array or inline table.
        raise ConfigError(str(path), "not valid TOML: nested too deeply") from None
    config = parse_config(raw)
    # A relative data_dir is relative to the config file, not to the working directory.
    data_dir = Path(config.node.data_dir)
    if not data_dir.is_absolute():
        data_dir = (path.parent / data_dir).resolve()
        config = dataclasses.replace(
            config, node=dataclasses.replace(config.node, data_dir=str(data_dir))
        )
    return config
