"""The relay wire format (federation/relay.py): frames round-trip, bad input is refused."""

from __future__ import annotations

import json

import pytest

from federation.relay import (
    DOWNSTREAM_TYPES,
    UPSTREAM_TYPES,
    AudioFrame,
    FrameKind,
    RelayFrameError,
    SequenceFilter,
    SuccessionEntry,
    merge_succession,
    parse_control,
    parse_succession,
    serialize_control,
)


def test_program_frame_layout() -> None:
    frame = AudioFrame(FrameKind.PROGRAM, "", 7, 960 * 7, b"\xf8\x01\x02")
    data = frame.serialize()
    # version 1, kind 0, empty key, seq 7, pts 6720, then the Opus bytes.
    assert data == bytes([1, 0, 0]) + (7).to_bytes(4, "big") + (6720).to_bytes(8, "big") + (
        b"\xf8\x01\x02"
    )
    assert AudioFrame.parse(data) == frame


@pytest.mark.parametrize("kind", [FrameKind.MIX_MINUS, FrameKind.UPLINK])
def test_speaker_frames_carry_the_handle(kind: FrameKind) -> None:
    frame = AudioFrame(kind, "bob@b.example:8443", 2**32 - 1, 2**40, b"x" * 80)
    data = frame.serialize()
    assert data[2] == len("bob@b.example:8443")
    assert AudioFrame.parse(data) == frame


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter"),
        (bytes([2, 0, 0]) + bytes(12) + b"x", "version"),
        (bytes([1, 9, 0]) + bytes(12) + b"x", "kind"),
        (bytes([1, 0, 3]) + b"bob" + bytes(12) + b"x", "key does not fit"),
        (bytes([1, 2, 0]) + bytes(12) + b"x", "key does not fit"),
        (bytes([1, 2, 2]) + b"\xff\xfe" + bytes(12) + b"x", "UTF-8"),
        (bytes([1, 0, 0]) + bytes(12), "empty payload"),
        (bytes([1, 0, 0]) + bytes(12) + b"x" * 1276, "larger"),
        (bytes([1, 1, 200]) + b"a" * 10, "shorter"),
    ],
)
def test_malformed_frames_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(RelayFrameError, match=reason):
        AudioFrame.parse(data)


@pytest.mark.parametrize(
    ("toc", "reason"),
    [
        (0xFC, "stereo"),  # CELT FB 20 ms, s = 1
        (0xF9, "more than one frame"),  # c = 1: two frames
        (0xFB, "more than one frame"),  # c = 3: a count follows
        (0xF0, "not 20 ms"),  # CELT FB 10 ms
        (0x18, "not 20 ms"),  # SILK NB 60 ms
    ],
)
def test_a_payload_is_one_mono_20_ms_opus_frame(toc: int, reason: str) -> None:
    data = bytes([1, 0, 0]) + bytes(12) + bytes([toc, 1, 2])
    with pytest.raises(RelayFrameError, match=reason):
        AudioFrame.parse(data)
    with pytest.raises(RelayFrameError, match=reason):
        AudioFrame(FrameKind.PROGRAM, "", 0, 0, bytes([toc, 1, 2])).serialize()
    for config in (1, 5, 9, 13, 15, 19, 23, 27, 31):  # every 20 ms configuration
        assert AudioFrame.parse(bytes([1, 0, 0]) + bytes(12) + bytes([config << 3])).payload


def test_serialize_refuses_what_parse_would() -> None:
    with pytest.raises(RelayFrameError):
        AudioFrame(FrameKind.UPLINK, "", 0, 0, b"x").serialize()
    with pytest.raises(RelayFrameError):
        AudioFrame(FrameKind.PROGRAM, "bob@b", 0, 0, b"x").serialize()
    with pytest.raises(RelayFrameError):
        AudioFrame(FrameKind.UPLINK, "b" * 256, 0, 0, b"x").serialize()


def test_sequence_filter_drops_duplicates_and_late_packets() -> None:
    seen = SequenceFilter()
    accepted = [s for s in [1, 2, 2, 4, 3, 5, 5, 6] if seen.accept("", s)]
    assert accepted == [1, 2, 4, 5, 6]
    assert (seen.duplicates, seen.late) == (2, 1)
    # Keys are independent; wrap-around counts as newer.
    assert seen.accept("bob@b", 2**32 - 1)
    assert seen.accept("bob@b", 0)
    assert not seen.accept("bob@b", 2**32 - 2)
    seen.reset("bob@b")
    assert seen.accept("bob@b", 10)


def test_control_messages() -> None:
    snapshot = {
        "type": "snapshot",
        "room": {"id": "r1"},
        "origin": "https://a.example/rooms/r1",
        "acting_origin": "https://b.example/",
        "epoch": 3,
        "succession": [
            {"node": "https://b.example/", "relay": "wss://b.example/relay/v1/rooms/x"}
        ],
    }
    parsed = parse_control(serialize_control(snapshot), DOWNSTREAM_TYPES)
    assert parsed["succession"] == [
        {"node": "https://b.example", "relay": "wss://b.example/relay/v1/rooms/x"}
    ]
    assert parsed["acting_origin"] == "https://b.example"
    assert parsed["path"] == []  # an older node's snapshot without a path
    assert parse_control('{"type":"listeners","count":4}', UPSTREAM_TYPES)["count"] == 4
    assert parse_control('{"type":"presence","users":["bob"]}', UPSTREAM_TYPES)["users"] == ["bob"]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1]",
        '{"type":"snapshot","room":{},"epoch":1}',  # not something a relay may send up
        '{"type":"listeners","count":-1}',
        '{"type":"listeners","count":true}',
        '{"type":"presence","users":[1]}',
        json.dumps({"type": "ping", "pad": "x" * 300_000}),
    ],
)
def test_bad_upstream_control_messages(text: str) -> None:
    with pytest.raises(RelayFrameError):
        parse_control(text, UPSTREAM_TYPES)


def test_bad_snapshots() -> None:
    urls = {"origin": "https://a.example/rooms/r1", "acting_origin": "https://a.example"}
    for doc in (
        {"type": "snapshot", "room": [], "epoch": 1, **urls},
        {"type": "snapshot", "room": {}, "epoch": -1, **urls},
        {"type": "snapshot", "room": {}, "epoch": 2**53, **urls},
        {"type": "snapshot", "room": {}, "epoch": 1},
        {"type": "snapshot", "room": {}, "epoch": 1, **urls, "acting_origin": "ws://a"},
        {"type": "snapshot", "room": {}, "epoch": 1, **urls, "path": "https://a.example"},
        {"type": "snapshot", "room": {}, "epoch": 1, **urls, "path": [7]},
        {"type": "snapshot", "room": {}, "epoch": 1, **urls, "succession": [{"node": "ftp://x"}]},
        {"type": "snapshot", "room": {}, "epoch": 1, **urls, "succession": "b"},
        {"type": "levels", "levels": {"alice": 2}},
        {"type": "levels", "levels": {"alice": {"deep": 1}}},
        {"type": "levels", "levels": [0.5]},
        {"type": "member", "member": {"username": "bob"}},
        {"type": "member_left"},
        {"type": "kicked", "username": "bob"},
        {"type": "room", "room": None},
        {"type": "handover", "epoch": 0, "acting_origin": "https://b", "relay": "wss://b/r"},
        {"type": "handover", "epoch": 2, "acting_origin": "https://b", "relay": "https://b/r"},
    ):
        with pytest.raises(RelayFrameError):
            parse_control(json.dumps(doc), DOWNSTREAM_TYPES)


def test_succession_merge_keeps_order_and_one_entry_per_node() -> None:
    b = SuccessionEntry("http://b", "ws://b/relay/v1/rooms/1")
    c = SuccessionEntry("http://c", "ws://c/relay/v1/rooms/2")
    c2 = SuccessionEntry("http://c", "ws://c/relay/v1/rooms/9")
    assert merge_succession([b], [c2, b, c]) == [b, c2]
    assert parse_succession(None) == []


def test_a_relays_report_is_a_succession_list() -> None:
    text = '{"type":"relays","relays":[{"node":"http://c.example","relay":"ws://c.example/r"}]}'
    assert parse_control(text, UPSTREAM_TYPES)["relays"] == [
        {"node": "http://c.example", "relay": "ws://c.example/r"}
    ]
    with pytest.raises(RelayFrameError):
        parse_control('{"type":"relays","relays":[{"node":"ftp://x"}]}', UPSTREAM_TYPES)
