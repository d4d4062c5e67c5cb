"""Our code against the machine-readable test vectors of tests/vectors/ (FEDERATION.md,
"Test vectors"): the same files another implementation of the protocol checks itself
against. Each test reads one file and runs the real code path the vectors describe."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.requests import HTTPConnection

from federation.activities import parse_activity
from federation.actors import RemoteActor, parse_actor
from federation.context import context_document
from federation.errors import ActivityParseError, FederationError
from federation.inbox import verify_and_parse
from federation.relay import (
    DOWNSTREAM_TYPES,
    UPSTREAM_TYPES,
    AfterClose,
    AudioFrame,
    FrameKind,
    RelayFrameError,
    SequenceFilter,
    SuccessionEntry,
    after_close,
    parse_control,
    serialize_control,
)
from federation.room_activities import parse_room_activity
from federation.routes import (
    FederationSite,
    error_status,
    verify_signed_get,
    verify_subscription,
)
from node.errors import InvalidInput
from node.room_actions import BY_ACTIVITY
from node.succession import PROMOTE, Carriage, CarryState, next_epoch
from tests.fedify_peer import PEER_DIR, check_installed
from tests.tonekit import dominant_frequency

VECTORS = Path(__file__).resolve().parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def named(cases: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


# ------------------------------------------------------------------ signed requests

SIGNED = load("signed_requests.json")
KEYS = load("keys.json")
NOW = dt.datetime.fromisoformat(SIGNED["now"].replace("Z", "+00:00"))


class VectorKeys:
    """The key look-up the node makes over the network, answered from keys.json."""

    async def key_owner(self, key_id: str, *, refresh: bool = False) -> RemoteActor:
        doc = KEYS["actors"].get(key_id.split("#")[0] + "#main-key")
        if doc is None:
            raise ActivityParseError("no such key", "keyId")
        return parse_actor(doc)

    async def actor(self, actor_id: str, *, refresh: bool = False) -> RemoteActor:
        return await self.key_owner(f"{actor_id}#main-key")


def site() -> FederationSite:
    return FederationSite(
        base_url=SIGNED["carrying_node"],
        actors=None,  # type: ignore[arg-type]
        follows=None,  # type: ignore[arg-type]
        outbox=None,  # type: ignore[arg-type]
        inbox=None,  # type: ignore[arg-type]
        resolver=VectorKeys(),
        clock=lambda: NOW,
    )


def connection(request: dict[str, Any]) -> HTTPConnection:
    """The upgrade request as the carrying node's ASGI server hands it over."""
    url = urlsplit(request["url"])
    headers = [(k.lower().encode(), v.encode()) for k, v in request["headers"].items()]
    return HTTPConnection(
        {
            "type": "websocket" if request.get("websocket") else "http",
            "scheme": url.scheme,
            "server": (url.hostname, url.port or 443),
            "path": url.path,
            "raw_path": url.path.encode(),
            "query_string": url.query.encode(),
            "headers": headers,
        }
    )


@named(SIGNED["relay_subscriptions"])
async def test_relay_subscription_vectors(case: dict[str, Any]) -> None:
    request = connection(case["request"])
    try:
        subscriber = await verify_subscription(site(), request)  # type: ignore[arg-type]
    except FederationError as exc:
        status, code = error_status(exc)
        expect = dict(case["expect"])
        assert str(expect.pop("detail", "")) in str(exc)
        assert {"status": status, "error": code} == expect, str(exc)
        return
    assert case["expect"]["status"] == 101
    entry = case["expect"].get("entry")
    assert (subscriber.entry.to_json() if subscriber.entry else None) == entry


@named(SIGNED["signed_gets"])
async def test_signed_get_vectors(case: dict[str, Any]) -> None:
    owner = await verify_signed_get(site(), connection(case["request"]))  # type: ignore[arg-type]
    assert case["expect"] == {"status": 200}
    assert owner.id == "https://b.example/users/bob"


@named(SIGNED["inbox"])
async def test_inbox_vectors(case: dict[str, Any]) -> None:
    request = case["request"]
    try:
        activity = await verify_and_parse(
            request["method"],
            request["url"],
            request["headers"],
            request["body"].encode(),
            VectorKeys(),
            now=NOW,
        )
    except FederationError as exc:
        status, code = error_status(exc)
        assert {"status": status, "error": code} == case["expect"], str(exc)
        return
    assert case["expect"] == {"status": 202}
    assert activity.type == "parley:RaiseHand"


def _signer_key(headers: dict[str, str]) -> rsa.RSAPublicKey:
    raw = headers.get("Signature-Input") or headers["Signature"]
    key_id = raw.split('keyid="' if "Signature-Input" in headers else 'keyId="')[1].split('"')[0]
    pem = KEYS["actors"][key_id]["publicKey"]["publicKeyPem"]
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


@named(
    [
        c
        for c in SIGNED["relay_subscriptions"] + SIGNED["signed_gets"] + SIGNED["inbox"]
        if c["signed_text"] is not None
    ]
)
def test_signed_text_is_what_the_signature_covers(case: dict[str, Any]) -> None:
    """The signing string / signature base in the vectors is the exact text signed (so an
    implementer can compare theirs), checked with the public key alone."""
    headers = case["request"]["headers"]
    if "Signature-Input" in headers:
        signature = headers["Signature"].split(":")[1]
    else:
        signature = headers["Signature"].split('signature="')[1].rstrip('"')
    _signer_key(headers).verify(
        base64.b64decode(signature),
        case["signed_text"].encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def _fedify_reading(case: dict[str, Any]) -> bool:
    """Whether Fedify's verifier takes the signature (an independent implementation's
    reading). It reads a draft-cavage ``(request-target)`` as the path without its query
    string (Mastodon before 4.1 did too), and does not insist on ``host`` being signed;
    otherwise its reading is ours."""
    if case["dialect"] is None:
        return False
    if case["dialect"] == "rfc9421" or "?" not in case["request"]["url"]:
        return case["expect"]["status"] != 401 or case["name"] == "cavage, host not signed"
    return "?" not in case["signed_text"].splitlines()[0]


def test_fedify_reads_the_signed_requests_as_we_say() -> None:
    check_installed()
    done = subprocess.run(
        ["node", str(PEER_DIR / "verify_vectors.mjs")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    verdicts = json.loads(done.stdout)
    cases = SIGNED["relay_subscriptions"] + SIGNED["signed_gets"] + SIGNED["inbox"]
    assert set(verdicts) == {c["name"] for c in cases}
    for case in cases:
        assert verdicts[case["name"]]["verified"] is _fedify_reading(case), (
            case["name"],
            verdicts,
        )


# ------------------------------------------------------------------ frames

FRAMES = load("frames.json")


@named(FRAMES["valid"])
def test_frame_vectors(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    frame = AudioFrame.parse(data)
    assert frame == AudioFrame(
        FrameKind(case["kind"]),
        case["key"],
        case["seq"],
        case["pts"],
        bytes.fromhex(case["payload_hex"]),
    )
    assert frame.serialize() == data
    toc = frame.payload[0]
    assert case["opus_toc"] == {
        "config": toc >> 3,
        "stereo": bool(toc & 4),
        "frame_count_code": toc & 3,
    }


def test_the_program_run_decodes_to_a_440_hz_tone() -> None:
    frames = [AudioFrame.parse(bytes.fromhex(h)) for h in FRAMES["program_run"]["hex"]]
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert [f.pts for f in frames] == [960 * n for n in range(len(frames))]
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate, decoder.layout = 48000, "mono"
    pcm = [
        d.to_ndarray().reshape(-1) for f in frames for d in decoder.decode(av.Packet(f.payload))
    ]
    assert [p.size for p in pcm] == [960] * len(frames)  # one mono 20 ms frame each
    tail = np.concatenate(pcm[4:]).astype(np.float64)  # past the codec's start-up
    assert dominant_frequency(tail) == pytest.approx(440, abs=15)


@named(FRAMES["invalid"])
def test_invalid_frame_vectors(case: dict[str, Any]) -> None:
    with pytest.raises(RelayFrameError, match=case["reason"]):
        AudioFrame.parse(bytes.fromhex(case["hex"]))


def test_sequence_vectors() -> None:
    seen = SequenceFilter()
    verdicts = []
    for seq, _ in FRAMES["sequence"]["arrivals"]:
        duplicates, late = seen.duplicates, seen.late
        accepted = seen.accept("0/", seq)
        verdicts.append(
            "accept" if accepted else "duplicate" if seen.duplicates > duplicates else "late"
        )
        assert seen.late >= late
    assert verdicts == [verdict for _, verdict in FRAMES["sequence"]["arrivals"]]


# ------------------------------------------------------------------ state messages

MESSAGES = load("messages.json")


def _text(case: dict[str, Any]) -> str:
    if "text" in case:
        return str(case["text"])
    if "repeat" in case:
        return serialize_control({"type": "ping", "pad": "x" * case["repeat"]["pad_bytes"]})
    return serialize_control(case["message"])


def _message_cases(kind: str) -> list[dict[str, Any]]:
    direction = {"down": DOWNSTREAM_TYPES, "up": UPSTREAM_TYPES}
    return [
        {**case, "name": f"{way} {kind}: {case['name']}", "allowed": sorted(direction[way])}
        for way in ("down", "up")
        for case in MESSAGES[way][kind]
    ]


@named(_message_cases("valid"))
def test_valid_message_vectors(case: dict[str, Any]) -> None:
    parsed = parse_control(_text(case), frozenset(case["allowed"]))
    expected = {**case["message"], **case["parsed"]}
    assert {k: parsed[k] for k in expected} == expected


@named(_message_cases("invalid"))
def test_invalid_message_vectors(case: dict[str, Any]) -> None:
    with pytest.raises(RelayFrameError) as info:
        parse_control(_text(case), frozenset(case["allowed"]))
    assert case["field"] in str(info.value)


def test_close_code_vectors() -> None:
    for entry in load("close_codes.json")["codes"]:
        action = after_close(entry["code"], handover_seen=entry.get("handover_seen", False))
        assert action is AfterClose(entry["after"]), entry


# ------------------------------------------------------------------ room actions

ACTIVITIES = load("activities.json")


def test_the_types_are_the_action_table() -> None:
    listed = {t["type"]: t for t in ACTIVITIES["types"]}
    assert set(listed) == set(BY_ACTIVITY)
    for kind, action in BY_ACTIVITY.items():
        assert set(listed[kind]["arguments"]) == set(action.arguments)
        assert listed[kind]["who"] == action.who.value


def _read_action(doc: dict[str, Any]) -> dict[str, Any]:
    """What the acting origin does with a room action: the envelope (as for every
    activity), the codec, then the table's argument checks."""
    parse_activity(doc)
    action = BY_ACTIVITY[doc["type"]]
    parsed = parse_room_activity(doc, tuple(action.arguments))
    try:
        arguments = action.parse(parsed.arguments)
    except InvalidInput as exc:
        raise ActivityParseError(exc.reason, f"parley:{exc.field}") from None
    return {
        "type": parsed.type,
        "actor": parsed.actor,
        "room": parsed.room,
        "member": parsed.member,
        "arguments": {k: v for k, v in arguments.items() if k in parsed.arguments},
    }


@named(ACTIVITIES["valid"])
def test_valid_activity_vectors(case: dict[str, Any]) -> None:
    assert _read_action(case["activity"]) == case["parsed"]


@named(ACTIVITIES["invalid"])
def test_invalid_activity_vectors(case: dict[str, Any]) -> None:
    with pytest.raises(ActivityParseError) as info:
        _read_action(case["activity"])
    assert info.value.field == case["field"]


def test_unknown_room_actions_are_not_in_the_table() -> None:
    for case in ACTIVITIES["ignored"]:
        parse_activity(case["activity"])
        assert case["activity"]["type"] not in BY_ACTIVITY


def test_the_context_document() -> None:
    assert load("context.jsonld") == context_document()


# ------------------------------------------------------------------ succession

SUCCESSION = load("succession.json")
ENTRIES = {
    name: SuccessionEntry(e["node"], e["relay"]) for name, e in SUCCESSION["entries"].items()
}


def test_next_epoch_vectors() -> None:
    for row in SUCCESSION["next_epoch"]:
        assert next_epoch(row["above"], row["slot"]) == row["epoch"], row


def _entries(names: list[str]) -> list[SuccessionEntry]:
    return [ENTRIES[n] for n in names]


def _start(scenario: dict[str, Any]) -> Carriage:
    own, start = ENTRIES[scenario["own"]], scenario["start"]
    if start["as"] == "origin":
        return Carriage.origin_of(own, SUCCESSION["origin"], start.get("epoch", 0))
    return Carriage.relay_of(
        own,
        SUCCESSION["origin"],
        ENTRIES[start["upstream"]].relay,
        succession=_entries(start.get("succession", [])),
        resumed=start.get("resumed", False),
    )


def _do(carriage: Carriage, step: dict[str, Any]) -> Any:
    kind = step["do"]
    if kind == "snapshot":
        return carriage.snapshot(
            ENTRIES[step["from"]].relay,
            step["epoch"],
            ENTRIES[step["acting_origin"]].node,
            _entries(step["succession"]),
            [ENTRIES[n].node for n in step["path"]],
        )
    if kind == "upstream_lost":
        plan = carriage.upstream_lost(silent=step["silent"])
        by_relay = {e.relay: n for n, e in ENTRIES.items()}
        return ["PROMOTE" if s is PROMOTE else by_relay[s.relay] for s in plan]  # type: ignore[union-attr]
    if kind == "take_over":
        return carriage.take_over(step.get("epoch"))
    if kind == "took_over":
        return carriage.took_over()
    if kind == "published":
        return carriage.published(_entries(step["succession"]))
    if kind == "hand_over":
        return carriage.hand_over(ENTRIES[step["to"]])
    if kind == "handover":
        decision = carriage.handover(
            step["epoch"], ENTRIES[step["acting_origin"]].node, ENTRIES[step["relay"]].relay
        )
        if decision is PROMOTE or decision is None:
            return "PROMOTE" if decision is PROMOTE else None
        return next(n for n, e in ENTRIES.items() if e.relay == decision)
    if kind == "probe_answer":
        entry = ENTRIES[step["entry"]]
        return carriage.probe_answer(entry, step["epoch"], ENTRIES[step["acting_origin"]].node)
    raise AssertionError(f"unknown step {kind}")


@named(SUCCESSION["scenarios"])
def test_succession_scenarios(case: dict[str, Any]) -> None:
    carriage = _start(case)
    by_relay = {e.relay: n for n, e in ENTRIES.items()}
    by_node = {e.node: n for n, e in ENTRIES.items()}
    for number, step in enumerate(case["steps"]):
        result = _do(carriage, step)
        expect = step.get("expect", {})
        seen = {
            "return": result,
            "state": carriage.state.value,
            "epoch": carriage.epoch,
            "slot": carriage.slot(),
            "upstream": by_relay.get(carriage.upstream or ""),
            "acting_origin": by_node.get(carriage.acting_origin),
            "succession": [by_node[e.node] for e in carriage.succession],
        }
        assert {k: seen[k] for k in expect} == expect, f"step {number}: {step}"
    assert carriage.state in CarryState
