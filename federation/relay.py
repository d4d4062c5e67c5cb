"""The node-to-node relay stream: its frames, as pure data (no I/O).

A relaying node opens one WebSocket per room to the node carrying the room
(``GET /relay/v1/rooms/{id}``, HTTP-signed by its instance actor). Audio travels in
binary messages, one :class:`AudioFrame` each::

    0        1        2        3 .. 3+n    .. +4         .. +8          ..
    +--------+--------+--------+-----------+-------------+--------------+---------+
    |version | kind   | n      | key (n B) | seq (u32be) | pts (u64be)  | Opus    |
    +--------+--------+--------+-----------+-------------+--------------+---------+

``kind`` is :class:`FrameKind`; ``key`` is empty for the program and the speaker's handle
(``bob@node-b.example``, UTF-8) for a mix-minus or an uplink; ``pts`` counts 48 kHz
samples; the payload is one Opus packet holding one mono 20 ms frame. State travels in
text messages, one JSON object each, whose ``type`` names it (:data:`DOWNSTREAM_TYPES`,
:data:`UPSTREAM_TYPES`). The carrying node closes the connection with a
:class:`CloseCode` that tells the relay what to do next (:func:`after_close`). See
FEDERATION.md, "Node-to-node audio relay"; test vectors in tests/vectors/.

Receivers drop what does not parse (:class:`RelayFrameError`) and, per stream key,
duplicated or late packets (:class:`SequenceFilter`), and count both.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from federation import jsonlimits
from federation.errors import ActivityParseError, FederationError

__all__ = [
    "AfterClose",
    "AudioFrame",
    "CloseCode",
    "DOWNSTREAM_TYPES",
    "FrameKind",
    "MAX_CONTROL_BYTES",
    "MAX_KEY_BYTES",
    "MAX_PAYLOAD_BYTES",
    "RELAY_PATH",
    "RelayFrameError",
    "SequenceFilter",
    "SuccessionEntry",
    "merge_succession",
    "UPSTREAM_TYPES",
    "VERSION",
    "after_close",
    "opus_problem",
    "parse_control",
    "parse_succession",
    "serialize_control",
]

VERSION = 1
RELAY_PATH = "/relay/v1/rooms/{room_id}"
MAX_KEY_BYTES = 255
MAX_PAYLOAD_BYTES = 1275  # RFC 6716 section 3.2.1: the largest Opus frame
MAX_PRESENCE = 1000
"""Handles of a ``presence`` message that are looked at (the rest are ignored)."""
MAX_CONTROL_BYTES = 256 * 1024
MAX_RELAYS = 64
"""Entries of a ``relays`` report that are kept (a relay's own relays, and theirs)."""
HTTP_SCHEMES = ("http", "https")
WS_SCHEMES = ("ws", "wss")
_FIXED = struct.Struct(">BBB")
_SEQ_PTS = struct.Struct(">IQ")
SEQ_MODULO = 1 << 32

DOWNSTREAM_TYPES = frozenset(
    {
        "snapshot",
        "member",
        "member_left",
        "room",
        "levels",
        "listeners",
        "kicked",
        "ping",
        "handover",
    }
)
"""Text messages the carrying node sends to a relay (room events as on the room socket)."""

UPSTREAM_TYPES = frozenset({"listeners", "presence", "relays", "ping"})
"""Text messages a relay sends to the node it relays."""


class RelayFrameError(FederationError):
    """A relay message that does not follow the wire format; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CloseCode(enum.IntEnum):
    """Why the carrying node closed a relay's connection (WebSocket close codes; 4900s
    are Parley's, apart from the room socket's 4000 + HTTP status)."""

    GOING_AWAY = 1001
    """The carrying node shuts down."""
    REPLACED = 4901
    """A newer subscription from the same node replaced this one."""
    ROOM_ENDED = 4902
    """The room ended (after the ``room`` event saying so, when it could be sent)."""
    HANDED_OVER = 4903
    """The room moved (after the ``handover`` message)."""
    TOO_SLOW = 4904
    """The relay did not read fast enough: its queue was full."""
    SILENT = 4905
    """Nothing came from the relay for :data:`RELAY_SILENCE_S`."""


RELAY_SILENCE_S = 5.0
"""A relay the carrying node hears nothing from (not even a ping) for this long is
closed with ``SILENT``."""


class AfterClose(enum.Enum):
    """What a relay does when its upstream connection closes."""

    RECONNECT = "reconnect"
    """The upstream is lost: try that node once more, then walk the succession order."""
    RESUBSCRIBE = "resubscribe"
    """A stale connection: subscribe to the same node again; never walk."""
    END = "end"
    """The room ended: end this node's copy; never walk."""
    FOLLOW_HANDOVER = "follow_handover"
    """The room moved: do what the ``handover`` message said; never walk."""


def after_close(code: int | None, *, handover_seen: bool = False) -> AfterClose:
    """What a relay does after its upstream closed with ``code`` (None: no close frame,
    the connection was lost or aborted)."""
    if code == CloseCode.REPLACED:
        return AfterClose.RESUBSCRIBE
    if code == CloseCode.ROOM_ENDED:
        return AfterClose.END
    if code == CloseCode.HANDED_OVER and handover_seen:
        return AfterClose.FOLLOW_HANDOVER
    return AfterClose.RECONNECT


# RFC 6716 section 3.1: the TOC byte is config (5 bits), s (stereo), c (frame count code).
_TWENTY_MS_CONFIGS = frozenset({1, 5, 9, 13, 15, 19, 23, 27, 31})


def opus_problem(payload: bytes) -> str | None:
    """Why ``payload`` is not one mono 20 ms Opus frame (RFC 6716 section 3.1), or None.
    The relay's packet lines count 960 samples a packet and its streams are mono."""
    if not payload:
        return "empty payload"
    toc = payload[0]
    if toc & 0x04:
        return "Opus packet is stereo (the relay carries mono)"
    if toc & 0x03:
        return "Opus packet holds more than one frame"
    if toc >> 3 not in _TWENTY_MS_CONFIGS:
        return "Opus frame is not 20 ms"
    return None


class FrameKind(enum.IntEnum):
    PROGRAM = 0
    """The room's program mix, downstream."""
    MIX_MINUS = 1
    """One remote speaker's return (the program without their voice), downstream."""
    UPLINK = 2
    """One remote speaker's voice, upstream."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    kind: FrameKind
    key: str
    seq: int
    pts: int
    payload: bytes

    def serialize(self) -> bytes:
        key = self.key.encode("utf-8")
        if len(key) > MAX_KEY_BYTES:
            raise RelayFrameError("key longer than 255 bytes")
        if self.kind is FrameKind.PROGRAM and key:
            raise RelayFrameError("a program frame has no key")
        if self.kind is not FrameKind.PROGRAM and not key:
            raise RelayFrameError("a speaker frame needs the speaker's handle as key")
        if len(self.payload) > MAX_PAYLOAD_BYTES:
            raise RelayFrameError("payload larger than an Opus frame")
        problem = opus_problem(self.payload)
        if problem is not None:
            raise RelayFrameError(problem)
        return b"".join(
            (
                _FIXED.pack(VERSION, int(self.kind), len(key)),
                key,
                _SEQ_PTS.pack(self.seq % SEQ_MODULO, self.pts % (1 << 64)),
                self.payload,
            )
        )

    @classmethod
    def parse(cls, data: bytes) -> AudioFrame:
        if len(data) < _FIXED.size:
            raise RelayFrameError("frame shorter than its header")
        version, kind, key_len = _FIXED.unpack_from(data)
        if version != VERSION:
            raise RelayFrameError(f"unknown version {version}")
        try:
            frame_kind = FrameKind(kind)
        except ValueError:
            raise RelayFrameError(f"unknown kind {kind}") from None
        start = _FIXED.size + key_len
        if len(data) < start + _SEQ_PTS.size:
            raise RelayFrameError("frame shorter than its header")
        try:
            key = data[_FIXED.size : start].decode("utf-8")
        except UnicodeDecodeError:
            raise RelayFrameError("key is not UTF-8") from None
        if (frame_kind is FrameKind.PROGRAM) != (key == ""):
            raise RelayFrameError("key does not fit the kind")
        seq, pts = _SEQ_PTS.unpack_from(data, start)
        payload = bytes(data[start + _SEQ_PTS.size :])
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise RelayFrameError("payload larger than an Opus frame")
        problem = opus_problem(payload)
        if problem is not None:
            raise RelayFrameError(problem)
        return cls(frame_kind, key, seq, pts, payload)


MAX_EPOCH = (1 << 53) - 1
"""Epochs stay exact in every JSON implementation (a double holds them)."""
MAX_LEVELS = 64


def _epoch(doc: Mapping[str, Any], name: str, least: int) -> int:
    value = doc.get("epoch")
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= MAX_EPOCH:
        raise RelayFrameError(f"{name}.epoch must be an integer from {least} to 2**53-1")
    return value


def _string(doc: Mapping[str, Any], name: str, field_name: str) -> str:
    value = doc.get(field_name)
    if not isinstance(value, str) or not value:
        raise RelayFrameError(f"{name}.{field_name} must be a non-empty string")
    return value


def is_url(value: Any, schemes: tuple[str, ...]) -> bool:
    """``value`` is an absolute URL with a host, one of ``schemes`` and no whitespace."""
    if not isinstance(value, str) or any(c.isspace() or ord(c) < 0x20 for c in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number raises
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)


_ROOM_STATES = ("scheduled", "live", "ended")
_ROOM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "title": str,
    "description": str,
    "host": dict,
    "speakers": list,
    "audience": list,
    "hands": list,
    "max_speakers": int,
}


def _check_room_json(doc: dict[str, Any], name: str) -> None:
    """The fields of a room JSON (docs/API.md) a relay replicates have their types."""
    room = doc.get("room")
    if not isinstance(room, dict):
        raise RelayFrameError(f"{name}.room must be an object")
    if room.get("state", "live") not in _ROOM_STATES:
        raise RelayFrameError(f"{name}.room.state must be scheduled, live or ended")
    for field_name, kind in _ROOM_FIELDS.items():
        value = room.get(field_name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise RelayFrameError(f"{name}.room.{field_name} has the wrong type")
    count = room.get("listener_count", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise RelayFrameError(f"{name}.room.listener_count must be a non-negative integer")
    started = room.get("started_at")
    if started is not None and (not isinstance(started, int | float) or isinstance(started, bool)):
        raise RelayFrameError(f"{name}.room.started_at must be a number or null")


def _check_snapshot(doc: dict[str, Any]) -> None:
    _check_room_json(doc, "snapshot")
    _epoch(doc, "snapshot", 0)
    for name in ("origin", "acting_origin"):
        if not is_url(doc.get(name), HTTP_SCHEMES):
            raise RelayFrameError(f"snapshot.{name} must be an http(s) URL")
    doc["acting_origin"] = doc["acting_origin"].rstrip("/")
    doc["succession"] = [e.to_json() for e in parse_succession(doc.get("succession"))]
    path = doc.get("path", [])
    if not isinstance(path, list) or not all(is_url(p, HTTP_SCHEMES) for p in path):
        raise RelayFrameError("snapshot.path must be a list of http(s) URLs")
    doc["path"] = [p.rstrip("/") for p in path]


def _check_levels(doc: dict[str, Any]) -> None:
    levels = doc.get("levels")
    if not isinstance(levels, dict) or len(levels) > MAX_LEVELS:
        raise RelayFrameError(f"levels.levels must be an object of at most {MAX_LEVELS} names")
    for value in levels.values():
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise RelayFrameError("levels.levels values must be numbers from 0 to 1")


def _check_member(doc: dict[str, Any]) -> None:
    member = doc.get("member")
    if not isinstance(member, dict):
        raise RelayFrameError("member.member must be an object")
    _string(member, "member.member", "username")
    _string(member, "member.member", "role")


def _check_member_left(doc: dict[str, Any]) -> None:
    _string(doc, "member_left", "username")


def _check_listeners(doc: dict[str, Any]) -> None:
    count = doc.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 1 << 31:
        raise RelayFrameError("listeners.count must be a non-negative integer")


def _check_presence(doc: dict[str, Any]) -> None:
    users = doc.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise RelayFrameError("presence.users must be a list of handles")


def _check_kicked(doc: dict[str, Any]) -> None:
    _string(doc, "kicked", "username")
    if not isinstance(doc.get("blocked"), bool):
        raise RelayFrameError("kicked.blocked must be a boolean")


def _check_handover(doc: dict[str, Any]) -> None:
    _epoch(doc, "handover", 1)
    successor = parse_succession([{"node": doc.get("acting_origin"), "relay": doc.get("relay")}])
    doc["acting_origin"], doc["relay"] = successor[0].node, successor[0].relay


def _check_relays(doc: dict[str, Any]) -> None:
    doc["relays"] = [e.to_json() for e in parse_succession(doc.get("relays"))][:MAX_RELAYS]


def _check_room(doc: dict[str, Any]) -> None:
    _check_room_json(doc, "room")


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "snapshot": _check_snapshot,
    "member": _check_member,
    "member_left": _check_member_left,
    "room": _check_room,
    "levels": _check_levels,
    "listeners": _check_listeners,
    "kicked": _check_kicked,
    "handover": _check_handover,
    "presence": _check_presence,
    "relays": _check_relays,
    "ping": lambda doc: None,
}


def parse_control(text: str, allowed: frozenset[str]) -> dict[str, Any]:
    """A text message as a JSON object whose ``type`` is one of ``allowed`` and whose
    fields have the types FEDERATION.md gives them (URLs and trailing slashes normalised;
    unknown fields are kept and ignored)."""
    if len(text) > MAX_CONTROL_BYTES:
        raise RelayFrameError("control message too large")
    try:
        doc = jsonlimits.loads(text)
    except ActivityParseError:
        raise RelayFrameError("control message is not JSON") from None
    if not isinstance(doc, dict):
        raise RelayFrameError("control message is not an object")
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        raise RelayFrameError(f"unexpected control message type {kind!r}")
    _CHECKS[kind](doc)
    return doc


def serialize_control(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SuccessionEntry:
    """One node that carries the room: its base URL and its relay URL for the room."""

    node: str
    relay: str

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, "relay": self.relay}


def parse_succession(value: Any) -> list[SuccessionEntry]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RelayFrameError("succession must be a list")
    entries = []
    for item in value:
        if not isinstance(item, dict):
            raise RelayFrameError("succession entries must be objects")
        node, relay = item.get("node"), item.get("relay")
        if not is_url(node, HTTP_SCHEMES):
            raise RelayFrameError("succession node must be an http(s) URL")
        if not is_url(relay, WS_SCHEMES):
            raise RelayFrameError("succession relay must be a ws(s) URL")
        entries.append(SuccessionEntry(str(node).rstrip("/"), str(relay)))
    return entries


def merge_succession(
    first: Sequence[SuccessionEntry], then: Sequence[SuccessionEntry]
) -> list[SuccessionEntry]:
    """``first`` in order, then whatever of ``then`` is new (one entry per node)."""
    seen = {e.node for e in first}
    merged = list(first)
    for entry in then:
        if entry.node not in seen:
            seen.add(entry.node)
            merged.append(entry)
    return merged


@dataclass(slots=True)
class SequenceFilter:
    """Per stream key: accept a packet only if its seq is newer than the last accepted.

    Comparison is modulo 2**32 (RFC 1982 serial arithmetic), so a wrap-around is new.
    ``reset(key)`` forgets a stream (the sender restarted it, e.g. after a failover).
    """

    last: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    late: int = 0

    def accept(self, key: str, seq: int) -> bool:
        previous = self.last.get(key)
        if previous is not None:
            delta = (seq - previous) % SEQ_MODULO
            if delta == 0:
                self.duplicates += 1
                return False
            if delta >= SEQ_MODULO // 2:
                self.late += 1
                return False
        self.last[key] = seq
        return True

    def reset(self, key: str | None = None) -> None:
        if key is None:
            self.last.clear()
        else:
            self.last.pop(key, None)
