"""Write tests/vectors/signed_requests.json (and keys.json, once) and frames.json from
the cases below.

    .venv/bin/python -m tests.vectors.generate

Signing is RSASSA-PKCS1-v1_5 over SHA-256 (deterministic), the dates are fixed, so the
output is the same every run. The keys are made once and kept in keys.json: they are test
keys, published here on purpose. Each case records the request as the carrying node (or
inbox) receives it, the exact text that was signed (draft-cavage's signing string or
RFC 9421's signature base, built here by hand from the specs, not by the library that
verifies), and the verdict FEDERATION.md prescribes. tests/test_vectors.py checks our
code against them; another implementation can do the same.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HERE = Path(__file__).resolve().parent
NOW = dt.datetime(2026, 1, 15, 12, 0, 30, tzinfo=dt.UTC)
SIGNED = NOW - dt.timedelta(seconds=30)
CARRYING = "https://a.example"
ROOM_PATH = "/relay/v1/rooms/r1"
AS = "https://www.w3.org/ns/activitystreams"

ACTORS = {
    # name: (actor id, type, key)
    "b": ("https://b.example/actor", "Application", "node_b"),
    "b8443": ("https://b.example:8443/actor", "Application", "node_b8443"),
    "bob": ("https://b.example/users/bob", "Person", "bob"),
}


def keys() -> dict[str, dict[str, str]]:
    path = HERE / "keys.json"
    if path.exists():
        return dict(json.loads(path.read_text())["keys"])
    made = {}
    for name in ("node_b", "node_b8443", "bob"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        made[name] = {
            "private_pem": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "public_pem": key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
        }
    return made


def actor_document(name: str, public_pem: str) -> dict[str, Any]:
    actor_id, kind, _ = ACTORS[name]
    base = actor_id.rsplit("/", 2)[0] if kind == "Person" else actor_id.rsplit("/", 1)[0]
    return {
        "@context": [AS, "https://w3id.org/security/v1"],
        "id": actor_id,
        "type": kind,
        "preferredUsername": actor_id.rsplit("/", 1)[-1],
        "inbox": f"{actor_id}/inbox",
        "endpoints": {"sharedInbox": f"{base}/inbox"},
        "publicKey": {"id": f"{actor_id}#main-key", "owner": actor_id, "publicKeyPem": public_pem},
    }


def sign(private_pem: str, text: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    raw = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def http_date(moment: dt.datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def cavage(
    method: str,
    url: str,
    key_id: str,
    private_pem: str,
    *,
    body: bytes | None = None,
    at: dt.datetime = SIGNED,
    covered: tuple[str, ...] | None = None,
) -> tuple[dict[str, str], str]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Host": parts.netloc, "Date": http_date(at)}
    if body is not None:
        headers["Digest"] = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    names = covered or (
        ("(request-target)", "host", "date", "digest")
        if body is not None
        else ("(request-target)", "host", "date")
    )
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        else:
            lines.append(f"{name}: {headers[name.capitalize()]}")
    text = "\n".join(lines)
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
        f'signature="{sign(private_pem, text)}"'
    )
    return headers, text


def rfc9421(
    method: str,
    target_uri: str,
    key_id: str,
    private_pem: str,
    *,
    body: bytes | None = None,
    at: dt.datetime = SIGNED,
) -> tuple[dict[str, str], str]:
    """RFC 9421 section 2.5: one line per covered component, then @signature-params."""
    components = ['"@method"', '"@target-uri"']
    lines = [f'"@method": {method.upper()}', f'"@target-uri": {target_uri}']
    headers: dict[str, str] = {"Host": urlsplit(target_uri).netloc}
    if body is not None:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        headers["Content-Digest"] = f"sha-256=:{digest}:"
        components.append('"content-digest"')
        lines.append(f'"content-digest": {headers["Content-Digest"]}')
    params = (
        f'({" ".join(components)});created={int(at.timestamp())};keyid="{key_id}";'
        f'alg="rsa-v1_5-sha256"'
    )
    lines.append(f'"@signature-params": {params}')
    base = "\n".join(lines)
    headers["Signature-Input"] = f"sig1={params}"
    headers["Signature"] = f"sig1=:{sign(private_pem, base)}:"
    return headers, base


def subscription_url(relay: str | None = None, room_path: str = ROOM_PATH) -> str:
    url = f"wss://a.example{room_path}"
    return url + ("?" + urlencode({"relay": relay}) if relay is not None else "")


def http_form(url: str) -> str:
    return url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)


def subscriptions(made: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    def key(name: str) -> tuple[str, str]:
        actor_id, _, key_name = ACTORS[name]
        return f"{actor_id}#main-key", made[key_name]["private_pem"]

    relay_b = "wss://b.example/relay/v1/rooms/c1"
    cases: list[dict[str, Any]] = []

    def case(
        name: str,
        why: str,
        *,
        signer: str | None = "b",
        relay: str | None = None,
        dialect: str = "draft-cavage",
        signed_url: str | None = None,
        at: dt.datetime = SIGNED,
        covered: tuple[str, ...] | None = None,
        expect: dict[str, Any],
    ) -> None:
        url = subscription_url(relay)
        headers: dict[str, str] = {"Host": "a.example"}
        signed_text = None
        if signer is not None:
            key_id, pem = key(signer)
            if dialect == "draft-cavage":
                headers, signed_text = cavage(
                    "GET", signed_url or url, key_id, pem, at=at, covered=covered
                )
            else:
                headers, signed_text = rfc9421("GET", signed_url or url, key_id, pem, at=at)
        cases.append(
            {
                "name": name,
                "why": why,
                "dialect": dialect if signer else None,
                "request": {"method": "GET", "url": url, "websocket": True, "headers": headers},
                "signed_text": signed_text,
                "expect": expect,
            }
        )

    ok = {"status": 101}
    case("cavage, no relay", "a probe or a relay that serves no copy: accepted", expect=ok)
    case(
        "cavage, with relay",
        "the subscriber joins the succession list with this entry",
        relay=relay_b,
        expect={**ok, "entry": {"node": "https://b.example", "relay": relay_b}},
    )
    case(
        "rfc9421, http form of @target-uri",
        "RFC 9110 section 7.1 reconstructs the upgrade request's target URI with https",
        relay=relay_b,
        dialect="rfc9421",
        signed_url=http_form(subscription_url(relay_b)),
        expect={**ok, "entry": {"node": "https://b.example", "relay": relay_b}},
    )
    case(
        "rfc9421, ws form of @target-uri",
        "the URL the subscriber dialled: accepted as well",
        relay=relay_b,
        dialect="rfc9421",
        signed_url=subscription_url(relay_b),
        expect={**ok, "entry": {"node": "https://b.example", "relay": relay_b}},
    )
    case(
        "rfc9421, another room's URL",
        "@target-uri covers path and query: a signature for r2 does not open r1",
        dialect="rfc9421",
        signed_url=subscription_url(room_path="/relay/v1/rooms/r2"),
        expect={"status": 401, "error": "unauthorized"},
    )
    case(
        "cavage, another query",
        "(request-target) covers the query: relay= cannot be changed after signing",
        relay=relay_b,
        signed_url=subscription_url("wss://b.example/relay/v1/rooms/other"),
        expect={"status": 401, "error": "unauthorized"},
    )
    case(
        "cavage, (request-target) without the query",
        "as Fedify signs it: accepted for a signed GET, refused here, where relay= must be "
        "signed (the detail says so)",
        relay=relay_b,
        signed_url=subscription_url(),
        expect={"status": 401, "error": "unauthorized", "detail": "without its query string"},
    )
    case(
        "cavage, two hours old",
        "Date more than one hour old",
        at=SIGNED - dt.timedelta(hours=2),
        expect={"status": 401, "error": "unauthorized"},
    )
    case(
        "cavage, host not signed",
        "(request-target), host and date must be signed",
        covered=("(request-target)", "date"),
        expect={"status": 401, "error": "unauthorized"},
    )
    case(
        "unsigned",
        "no signature at all",
        signer=None,
        expect={"status": 401, "error": "unauthorized"},
    )
    case(
        "signed by a user",
        "only the subscribing node's instance actor (Application or Service) may subscribe",
        signer="bob",
        expect={"status": 403, "error": "forbidden"},
    )
    case(
        "relay is not a ws(s) URL",
        "relay must be ws:// or wss://",
        relay="https://b.example/relay/v1/rooms/c1",
        expect={"status": 400, "error": "invalid_input"},
    )
    case(
        "relay on another host",
        "relay must be on the signer's host",
        relay="wss://c.example/relay/v1/rooms/c1",
        expect={"status": 403, "error": "forbidden"},
    )
    case(
        "relay over the other transport",
        "an https node serves wss, an http node ws",
        relay="ws://b.example/relay/v1/rooms/c1",
        expect={"status": 403, "error": "forbidden"},
    )
    case(
        "relay on another port",
        "the host includes the port: b.example:8443 is not b.example",
        relay="wss://b.example:8443/relay/v1/rooms/c1",
        expect={"status": 403, "error": "forbidden"},
    )
    case(
        "a node on a port, relay on it",
        "the port appears in the host when it is not the scheme's default",
        signer="b8443",
        relay="wss://b.example:8443/relay/v1/rooms/c1",
        expect={
            **ok,
            "entry": {
                "node": "https://b.example:8443",
                "relay": "wss://b.example:8443/relay/v1/rooms/c1",
            },
        },
    )
    case(
        "a node on a port, relay with the default port written out",
        "wss://b.example:443 is b.example, not b.example:8443",
        signer="b8443",
        relay="wss://b.example:443/relay/v1/rooms/c1",
        expect={"status": 403, "error": "forbidden"},
    )
    return cases


def signed_gets(made: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Authorized fetch: a GET of a collection page, signed by a user of b.example."""
    actor_id, _, key_name = ACTORS["bob"]
    pem = made[key_name]["private_pem"]
    key_id = f"{actor_id}#main-key"
    url = "https://a.example/users/alice/outbox?page=1"
    cases = []
    for name, why, dialect, signed in (
        ("draft-cavage", "(request-target) with the query", "draft-cavage", url),
        (
            "draft-cavage, (request-target) without the query",
            "as Fedify (and Mastodon before 4.1) sign it: accepted, as Mastodon does",
            "draft-cavage",
            url.split("?")[0],
        ),
        ("rfc9421", "@target-uri is the whole URL", "rfc9421", url),
    ):
        if dialect == "draft-cavage":
            headers, text = cavage("GET", signed, key_id, pem)
        else:
            headers, text = rfc9421("GET", signed, key_id, pem)
        cases.append(
            {
                "name": name,
                "why": why,
                "dialect": dialect,
                "request": {"method": "GET", "url": url, "headers": headers},
                "signed_text": text,
                "expect": {"status": 200},
            }
        )
    return cases


def inbox(made: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    actor_id, _, key_name = ACTORS["bob"]
    pem = made[key_name]["private_pem"]
    key_id = f"{actor_id}#main-key"
    activity = {
        "@context": [AS, {"parley": "https://w3id.org/parley#"}],
        "id": f"{actor_id}/activities/0b7e3c",
        "type": "parley:RaiseHand",
        "actor": actor_id,
        "object": "https://a.example/rooms/r1",
    }
    body = json.dumps(activity, separators=(",", ":")).encode()
    url = "https://a.example/inbox"
    cases = []
    for dialect in ("draft-cavage", "rfc9421"):
        if dialect == "draft-cavage":
            headers, text = cavage("POST", url, key_id, pem, body=body)
        else:
            headers, text = rfc9421("POST", url, key_id, pem, body=body)
        headers["Content-Type"] = "application/activity+json"
        cases.append(
            {
                "name": f"{dialect}, a room action",
                "why": "a user of b.example raises a hand in a room a.example carries",
                "dialect": dialect,
                "request": {
                    "method": "POST",
                    "url": url,
                    "headers": headers,
                    "body": body.decode(),
                },
                "signed_text": text,
                "expect": {"status": 202},
            }
        )
    tampered = dict(cases[0])
    tampered.update(
        name="draft-cavage, body changed after signing",
        why="Digest covers the body",
        request={**cases[0]["request"], "body": body.decode().replace("RaiseHand", "LowerHand")},
        expect={"status": 401, "error": "unauthorized"},
    )
    cases.append(tampered)
    return cases


def frame(kind: int, key: str, seq: int, pts: int, payload: bytes, version: int = 1) -> bytes:
    """FEDERATION.md, "Audio frames": packed here by hand, not by federation/relay.py."""
    raw_key = key.encode()
    return (
        bytes([version, kind, len(raw_key)])
        + raw_key
        + seq.to_bytes(4, "big")
        + pts.to_bytes(8, "big")
        + payload
    )


def tone_packets(count: int) -> list[bytes]:
    """libopus (through PyAV): 20 ms mono frames of a 440 Hz tone."""
    import av
    import numpy as np

    encoder = av.CodecContext.create("libopus", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.open()
    packets: list[bytes] = []
    for n in range(count):
        t = (np.arange(960) + n * 960) / 48000
        pcm = av.AudioFrame.from_ndarray(
            (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(1, -1),
            format="s16",
            layout="mono",
        )
        pcm.sample_rate, pcm.pts = 48000, n * 960
        packets += [bytes(p) for p in encoder.encode(pcm)]
    return packets


def frames() -> dict[str, Any]:
    tone = tone_packets(12)
    opus = tone[10]  # past libopus's start-up
    valid = []

    def ok(name: str, kind: int, key: str, seq: int, pts: int, payload: bytes) -> None:
        valid.append(
            {
                "name": name,
                "hex": frame(kind, key, seq, pts, payload).hex(),
                "kind": kind,
                "key": key,
                "seq": seq,
                "pts": pts,
                "payload_hex": payload.hex(),
                "opus_toc": {
                    "config": payload[0] >> 3,
                    "stereo": bool(payload[0] & 4),
                    "frame_count_code": payload[0] & 3,
                },
            }
        )

    ok("program: 20 ms of a 440 Hz tone (libopus, CELT fullband)", 0, "", 7, 7 * 960, opus)
    ok("mix-minus of bob, a user of b.example", 1, "bob@b.example", 1234, 1234 * 960, opus)
    bob = "bob@b.example:8443"
    ok("uplink of bob on a node with a port; seq wraps next", 2, bob, 2**32 - 1, 0, opus)
    zoe = "zoë@b.example"
    ok("uplink, a non-ASCII handle (its length counts UTF-8 bytes)", 2, zoe, 3, 0, b"\xf8\xff")
    ok("SILK wideband 20 ms, the smallest payload (the TOC byte alone)", 0, "", 0, 0, b"\x48")
    bad = [
        ("empty message", b"", "shorter"),
        ("header cut short", bytes([1, 0, 0, 0, 0]), "shorter"),
        ("version 2", frame(0, "", 1, 960, opus, version=2), "version"),
        ("kind 9", frame(9, "", 1, 960, opus), "kind"),
        ("program with a key", frame(0, "bob@b.example", 1, 960, opus), "key does not fit"),
        ("uplink without a key", frame(2, "", 1, 0, opus), "key does not fit"),
        ("key not UTF-8", bytes([1, 2, 2, 0xFF, 0xFE]) + bytes(12) + opus, "UTF-8"),
        ("no payload", frame(0, "", 1, 960, b""), "empty payload"),
        ("payload of 1276 bytes", frame(0, "", 1, 960, b"\xf8" + bytes(1275)), "larger"),
        ("stereo Opus (s = 1)", frame(0, "", 1, 960, b"\xfc\x01\x02"), "stereo"),
        ("two frames (c = 1)", frame(0, "", 1, 960, b"\xf9\x01\x02"), "more than one frame"),
        ("a frame count (c = 3)", frame(0, "", 1, 960, b"\xfb\x02\x01"), "more than one frame"),
        ("a 10 ms frame (config 30)", frame(0, "", 1, 480, b"\xf0\x01\x02"), "not 20 ms"),
        ("a 60 ms SILK frame (config 3)", frame(0, "", 1, 2880, b"\x18\x01\x02"), "not 20 ms"),
    ]  # fmt: skip
    return {
        "about": (
            "Binary relay messages (FEDERATION.md, 'Audio frames'). valid: the message as "
            "hex and its decoded fields; every payload is one mono 20 ms Opus frame (the "
            "program one decodes to 960 samples of a 440 Hz tone). invalid: messages a "
            "receiver drops and counts; 'reason' is a word of our error message."
        ),
        "valid": valid,
        "invalid": [{"name": n, "hex": d.hex(), "reason": r} for n, d, r in bad],
        "program_run": {
            "about": (
                "Twelve consecutive program frames from one encoder (seq 0..11, pts "
                "0..10560): decoded in order they are 240 ms of a 440 Hz tone."
            ),
            "hex": [frame(0, "", n, n * 960, packet).hex() for n, packet in enumerate(tone)],
        },
        "sequence": {
            "about": (
                "Per (kind, key): the seq of each packet as it arrives and whether the "
                "receiver keeps it (RFC 1982 serial arithmetic, modulo 2**32)."
            ),
            "arrivals": [
                [1, "accept"],
                [2, "accept"],
                [2, "duplicate"],
                [4, "accept"],
                [3, "late"],
                [5, "accept"],
                [4294967295, "late"],
                [2147483652, "accept"],
                [2147483652, "duplicate"],
                [4294967295, "accept"],
                [0, "accept"],
                [4294967294, "late"],
            ],
        },
    }


def main() -> None:
    made = keys()
    (HERE / "frames.json").write_text(json.dumps(frames(), indent=2, ensure_ascii=False) + "\n")
    (HERE / "keys.json").write_text(
        json.dumps(
            {
                "about": "Test keys of the signed request vectors. Never use them elsewhere.",
                "keys": made,
                "actors": {
                    f"{ACTORS[name][0]}#main-key": actor_document(
                        name, made[ACTORS[name][2]]["public_pem"]
                    )
                    for name in ACTORS
                },
            },
            indent=2,
        )
        + "\n"
    )
    doc = {
        "about": (
            "Signed requests as a carrying node receives them: relay subscriptions (a "
            "WebSocket upgrade of the wss:// URL dialled), signed GETs (authorized fetch) "
            "and inbox POSTs. Keys and the "
            "actor documents their keyId resolves to: keys.json. Verify at 'now'. "
            "signed_text is what was signed (draft-cavage signing string or RFC 9421 "
            "signature base). FEDERATION.md, 'Subscribing' and 'HTTP Signatures'."
        ),
        "now": NOW.isoformat().replace("+00:00", "Z"),
        "carrying_node": CARRYING,
        "relay_subscriptions": subscriptions(made),
        "signed_gets": signed_gets(made),
        "inbox": inbox(made),
    }
    (HERE / "signed_requests.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
