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
samples. State travels in text messages, one JSON object each, whose ``type`` names it
(:data:`DOWNSTREAM_TYPES`, :data:`UPSTREAM_TYPES`). See FEDERATION.md, "Node-to-node
audio relay".

Receivers drop what does not parse (:class:`RelayFrameError`) and, per stream key,
duplicated or late packets (:class:`SequenceFilter`), and count both.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federation import jsonlimits
from federation.errors import ActivityParseError, FederationError

__all__ = [
    "AudioFrame",
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
    "parse_control",
    "parse_succession",
    "serialize_control",
]

VERSION = 1
RELAY_PATH = "/relay/v1/rooms/{room_id}"
MAX_KEY_BYTES = 255
MAX_PAYLOAD_BYTES = 1275  # RFC 6716 section 3.2.1: the largest Opus frame
MAX_CONTROL_BYTES = 256 * 1024
MAX_RELAYS = 64
"""Entries of a ``relays`` report that are kept (a relay's own relays, and theirs)."""
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
        "reaction",
        "comment",
        "comment_hidden",
        "pinned",
        "engagement",
        "host_away",
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
        if not payload:
            raise RelayFrameError("empty payload")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise RelayFrameError("payload larger than an Opus frame")
        return cls(frame_kind, key, seq, pts, payload)


def parse_control(text: str, allowed: frozenset[str]) -> dict[str, Any]:
    """A text message as a JSON object whose ``type`` is one of ``allowed``."""
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
    if kind == "listeners":
        for name in ("count", "total"):
            count = doc.get(name)
            if name == "total" and count is None:
                continue  # a relay of before the summary (issue 12) sends no total
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 1 << 31:
                raise RelayFrameError(f"listeners.{name} must be a non-negative integer")
    elif kind == "presence":
        users = doc.get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise RelayFrameError("presence.users must be a list of handles")
    elif kind == "relays":
        doc["relays"] = [e.to_json() for e in parse_succession(doc.get("relays"))][:MAX_RELAYS]
    elif kind == "snapshot":
        if not isinstance(doc.get("room"), dict):
            raise RelayFrameError("snapshot.room must be an object")
        epoch = doc.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise RelayFrameError("snapshot.epoch must be a non-negative integer")
        doc["succession"] = [e.to_json() for e in parse_succession(doc.get("succession"))]
    elif kind == "handover":
        epoch = doc.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            raise RelayFrameError("handover.epoch must be a positive integer")
        successor = parse_succession(
            [{"node": doc.get("acting_origin"), "relay": doc.get("relay")}]
        )[0]
        doc["acting_origin"], doc["relay"] = successor.node, successor.relay
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
        if not isinstance(node, str) or not node.startswith(("http://", "https://")):
            raise RelayFrameError("succession node must be an http(s) URL")
        if not isinstance(relay, str) or not relay.startswith(("ws://", "wss://")):
            raise RelayFrameError("succession relay must be a ws(s) URL")
        entries.append(SuccessionEntry(node.rstrip("/"), relay))
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
