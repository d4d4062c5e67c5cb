"""Property tests (hypothesis) for every parser of outside input in ``federation``.

The property: whatever arrives, a parser returns its value or raises an error of our own
tree (``FederationError``): never a KeyError, TypeError, ValueError or RecursionError that
would become a 500. Inputs are random JSON and near-misses of real documents (a real
Mastodon or Fedify document with fields replaced by random values). ``HYPOTHESIS_PROFILE=
long`` runs many more examples (tests/conftest.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import html.parser
import json
from pathlib import Path
from typing import Any

from hypothesis import assume, example, given
from hypothesis import strategies as st

from federation import jsonlimits
from federation.activities import (
    RoomAnnouncement,
    RoomState,
    build_create,
    build_room_note,
    parse_activity,
    room_from_note,
)
from federation.actors import (
    parse_acct,
    parse_actor,
    parse_webfinger,
    parse_webfinger_resource,
    same_origin,
)
from federation.egress import AddressPolicy, hostname_of, parse_allow_entry, resolve_destination
from federation.errors import FederationError
from federation.keys import generate_keypair
from federation.relay import (
    DOWNSTREAM_TYPES,
    UPSTREAM_TYPES,
    AudioFrame,
    FrameKind,
    RelayFrameError,
    parse_control,
    parse_succession,
)
from federation.sanitize import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, clean_html, plain_text
from federation.signatures import (
    identify_signature,
    parse_signature_header,
    sign_request,
    sign_request_rfc9421,
    verify_request,
)

FIXTURES = Path(__file__).parent / "fixtures" / "federation"
KEYS = generate_keypair()
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

# ---------------------------------------------------------------------------- strategies

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),  # fmt: skip
    max_leaves=20,
)
urls = st.one_of(
    st.sampled_from(
        [
            "https://a.example/users/alice",
            "https://a.example:8443/users/alice",
            "http://a.example/x",
            "https://b.example/users/bob#main-key",
            "http://[::1/x",
            "https://a.example:99999/",
            "https://",
            "ftp://a.example/x",
            "https://a.example/users/alice\n",
            "",
        ]
    ),
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
        st.sampled_from(["http", "https", "HTTPS", "ws", "mailto", ""]),
        st.sampled_from(["a.example", "b.example", "[::1]", "127.0.0.1", "xn--x", "a b"]),
        st.sampled_from(["", ":80", ":443", ":8080", ":0", ":x", ":65536"]),
        st.text(max_size=12),
    ),
    st.text(max_size=40),
)


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with some top-level fields replaced by URLs or random JSON, or dropped."""
    keys = sorted(base)

    def apply(changes: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
        doc = {k: v for k, v in base.items() if k not in dropped}
        doc.update(changes)
        return doc

    return st.builds(
        apply,
        st.dictionaries(st.sampled_from(keys), urls | json_values, max_size=3),
        st.lists(st.sampled_from(keys), max_size=2),
    )


def _fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


MASTODON_ACTOR = _fixture("mastodon_actor.json")
FEDIFY_ACTOR = _fixture("fedify_actor.json")
NOTE = build_room_note(
    RoomAnnouncement(
        id="https://a.example/rooms/r1",
        url="https://a.example/rooms/r1",
        state=RoomState.LIVE,
        title="Show",
        description="",
        host="https://a.example/users/alice",
        listen_url="https://a.example/api/v1/rooms/r1/listen.ogg",
        speakers=("https://a.example/users/alice",),
    ),
    note_id="https://a.example/users/alice/rooms/r1",
    host_name="Alice",
    followers_url="https://a.example/users/alice/followers",
    published=NOW,
    base_url="https://a.example",
)
CREATE = build_create("https://a.example/users/alice/a/1", "https://a.example/users/alice", NOTE)


def _our_error(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call; a FederationError is an accepted outcome (returned as None)."""
    try:
        return call(*args, **kwargs)
    except FederationError:
        return None


# ---------------------------------------------------------------------------- documents


@given(json_values | mutated(MASTODON_ACTOR) | mutated(FEDIFY_ACTOR))
@example({**MASTODON_ACTOR, "type": ["Person"]})  # was a TypeError (unhashable list)
def test_parse_actor_raises_only_our_errors(doc: Any) -> None:
    actor = _our_error(parse_actor, doc)
    if actor is not None:
        # What it accepts keeps to the rules: the key lives with the actor.
        assert same_origin(actor.public_key_id, actor.id)
        assert "<" not in (actor.name or "") or "<" in plain_text(actor.name or "")


@given(json_values | mutated(CREATE) | mutated({**CREATE, "object": "https://a.example/n"}))
def test_parse_activity_raises_only_our_errors(doc: Any) -> None:
    activity = _our_error(parse_activity, doc)
    if activity is not None:
        assert same_origin(activity.id, activity.actor)


@given(mutated(NOTE) | mutated({**NOTE, "room": {}}) | st.builds(
    lambda room: {**NOTE, "room": room}, mutated(NOTE["room"]) | json_values))  # fmt: skip
def test_room_from_note_raises_only_our_errors(note: dict[str, Any]) -> None:
    room = _our_error(room_from_note, note)
    if room is not None:
        assert same_origin(room.id, room.note_id) and same_origin(room.host, room.note_id)
        assert room.title == plain_text(room.title)


@given(json_values.filter(lambda v: isinstance(v, dict)) | st.fixed_dictionaries(
    {"links": st.lists(st.dictionaries(st.sampled_from(["rel", "type", "href"]),
                                       urls | json_values), max_size=3)}))  # fmt: skip
def test_parse_webfinger_raises_only_our_errors(jrd: dict[str, Any]) -> None:
    _our_error(parse_webfinger, jrd)


@given(st.text(max_size=60) | urls | st.builds("acct:{}@{}".format, st.text(max_size=8),
                                                st.text(max_size=12)))  # fmt: skip
def test_webfinger_resources_and_handles(resource: str) -> None:
    parsed = _our_error(parse_webfinger_resource, resource)
    if parsed is not None:
        scheme, rest = parsed
        assert scheme == scheme.lower() and rest
        if scheme == "acct":
            user, host = parse_acct(f"acct:{rest}")  # what the route does next
            assert user and host
    _our_error(parse_acct, resource)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode) | json_values.map(
    lambda v: json.dumps(v).encode()) | st.integers(1, 5000).map(
    lambda n: b"[" * n + b"]" * n))  # fmt: skip
def test_json_loads_raises_only_our_errors(data: bytes) -> None:
    value = _our_error(jsonlimits.loads, data)
    if value is not None:
        assert not jsonlimits.json_depth_exceeds(value, jsonlimits.MAX_JSON_DEPTH)


@given(st.integers(1, 200))
def test_json_depth_limit_is_exact(depth: int) -> None:
    text = "[" * depth + "]" * depth
    if depth <= jsonlimits.MAX_JSON_DEPTH:
        assert jsonlimits.loads(text) is not None
    else:
        assert _our_error(jsonlimits.loads, text) is None


# ---------------------------------------------------------------------------- signatures

header_names = st.sampled_from(
    ["Signature", "Signature-Input", "Authorization", "Date", "Digest", "Content-Digest",
     "Host", "Content-Type"]
)  # fmt: skip
signature_params = st.lists(
    st.tuples(
        st.sampled_from(["keyId", "algorithm", "headers", "signature", "created", "expires",
                         "x", "KEYID"]),
        st.text(max_size=30) | st.integers().map(str),
    ),
    max_size=6,
).map(lambda items: ",".join(f'{k}="{v}"' for k, v in items))  # fmt: skip


@given(signature_params | st.text(max_size=120))
def test_signature_header_parser(value: str) -> None:
    _our_error(parse_signature_header, value)
    _our_error(identify_signature, {"Signature": value})
    _our_error(identify_signature, {"Authorization": f"Signature {value}"})


@given(
    st.dictionaries(header_names, st.text(max_size=80) | signature_params, max_size=6),
    st.none() | st.binary(max_size=64),
    urls,
)
def test_verify_request_on_random_headers(
    headers: dict[str, str], body: bytes | None, url: str
) -> None:
    _our_error(verify_request, "POST", url, headers, body, KEYS.public_pem, now=NOW)


def _signed(rfc9421: bool, body: bytes) -> dict[str, str]:
    sign = sign_request_rfc9421 if rfc9421 else sign_request
    url, key_id = "https://b.example/inbox", "https://a.example/k"
    return sign("POST", url, {}, body, key_id, KEYS.private_pem, now=NOW)


SIGNED_CAVAGE = _signed(False, b'{"a":1}')
SIGNED_9421 = _signed(True, b'{"a":1}')


@given(
    st.booleans(),
    st.sampled_from(["Digest", "Content-Digest", "Signature", "Signature-Input", "Date", "Host"]),
    st.text(max_size=120)
    | st.builds(lambda b: "SHA-256=" + base64.b64encode(b).decode(), st.binary(max_size=40))
    | st.builds(
        lambda b: "sha-256=:" + base64.b64encode(b).decode() + ":", st.binary(max_size=40)
    ),
    st.binary(max_size=20),
)
def test_digests_and_signature_fields_tampered(
    rfc9421: bool, name: str, value: str, body: bytes
) -> None:
    """A real signature with one header replaced (Digest, Content-Digest, Signature-Input
    ...) or another body: refused with a SignatureError, never anything else."""
    headers = dict(SIGNED_9421 if rfc9421 else SIGNED_CAVAGE)
    headers[name] = value
    result = _our_error(
        verify_request, "POST", "https://b.example/inbox", headers, body, KEYS.public_pem, now=NOW
    )
    if result is not None:
        # Accepted only when the body is the one signed (its digest is covered).
        assert body == b'{"a":1}', (name, value)


# ---------------------------------------------------------------------------- relay frames


@given(st.binary(max_size=1400))
def test_audio_frame_parser(data: bytes) -> None:
    try:
        frame = AudioFrame.parse(data)
    except RelayFrameError:
        return
    assert AudioFrame.parse(frame.serialize()) == frame


@given(
    st.sampled_from(list(FrameKind)),
    st.text(max_size=60),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    # One mono 20 ms Opus frame: a TOC byte of a 20 ms config, s = 0, c = 0, then anything.
    st.builds(
        lambda config, rest: bytes([config << 3]) + rest,
        st.sampled_from([1, 5, 9, 13, 15, 19, 23, 27, 31]),
        st.binary(max_size=1274),
    ),
)
def test_audio_frames_round_trip(
    kind: FrameKind, key: str, seq: int, pts: int, payload: bytes
) -> None:
    frame = AudioFrame(kind, "" if kind is FrameKind.PROGRAM else key, seq, pts, payload)
    try:
        data = frame.serialize()
    except RelayFrameError:
        assume(False)
    assert AudioFrame.parse(data) == frame


control_messages = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.builds(
        lambda kind, extra: json.dumps({"type": kind, **extra}),
        st.sampled_from(sorted(DOWNSTREAM_TYPES | UPSTREAM_TYPES) + ["x"]),
        st.dictionaries(
            st.sampled_from(
                [
                    "count",
                    "users",
                    "room",
                    "epoch",
                    "succession",
                    "acting_origin",
                    "relay",
                    "origin",
                ]
            ),
            urls | json_values,
            max_size=4,
        ),
    ),  # fmt: skip
)


@given(control_messages, st.sampled_from([DOWNSTREAM_TYPES, UPSTREAM_TYPES]))
def test_control_message_parser(text: str, allowed: frozenset[str]) -> None:
    _our_error(parse_control, text, allowed)


@given(json_values | st.lists(st.dictionaries(st.sampled_from(["node", "relay"]), urls)))
def test_succession_parser(value: Any) -> None:
    try:
        parse_succession(value)
    except RelayFrameError:
        pass


# ---------------------------------------------------------------------------- URLs, HTML


@given(urls, st.booleans())
async def test_destinations(url: str, allow_private: bool) -> None:
    async def dns(host: str, port: int) -> list[str]:
        return ["10.0.0.1"]

    destination = await _async_our_error(
        resolve_destination(url, AddressPolicy(allow_private=allow_private), dns)
    )
    if destination is not None and not allow_private:
        raise AssertionError(f"{url} passed the policy to {destination.address}")
    hostname_of(url)
    try:
        parse_allow_entry(url)
    except ValueError:
        pass


async def _async_our_error(awaitable: Any) -> Any:
    try:
        return await awaitable
    except FederationError:
        return None


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


html_like = st.lists(
    st.sampled_from(
        ["<script>", "</script>", "<img src=x onerror=alert(1)>", "<a href=\"javascript:x\">",
         "<a href='https://ok.example' class='mention evil'>", "<p class=h-card>", "</p>",
         "<style>", "&lt;b&gt;", "<!--", "-->", "<iframe>", "<svg onload=x>", "<b>", "text",
         "\"", "'", "<", ">", "&amp;", "\x00", "<span class=\"invisible\">"]
    ) | st.text(max_size=10),
    max_size=12,
).map("".join)  # fmt: skip


@given(html_like)
def test_clean_html_keeps_only_mastodons_set(value: str) -> None:
    cleaned = clean_html(value)
    parser = _Tags()
    parser.feed(cleaned)
    for tag, attrs in parser.found:
        assert tag in ALLOWED_TAGS, cleaned
        for name, attr_value in attrs:
            assert name in ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel"}, cleaned
            if name == "href":
                assert (attr_value or "").split(":", 1)[0].lower() in (
                    "http", "https", "dat", "dweb", "ipfs", "ipns", "ssb", "gopher", "xmpp",
                    "magnet", "gemini",
                ) or ":" not in (attr_value or ""), cleaned  # fmt: skip


@given(html_like, st.none() | st.integers(0, 50))
def test_plain_text_has_no_markup(value: str, limit: int | None) -> None:
    text = plain_text(value, limit)
    parser = _Tags()
    parser.feed(text)
    assert parser.found == [], text
    assert limit is None or len(text) <= limit
