from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from federation.errors import SignatureError
from federation.keys import generate_keypair, load_private_key, public_pem_of
from federation.signatures import (
    SignatureFormat,
    content_digest_header,
    digest_header,
    http_date,
    identify_signature,
    parse_signature_header,
    sign_cavage,
    sign_request,
    sign_request_rfc9421,
    verify_cavage,
    verify_request,
    verify_rfc9421,
)

FIXTURES = Path(__file__).parent / "fixtures" / "federation"

# draft-cavage-http-signatures-12, Appendix C: the test key and request.
SPEC_PRIVATE_KEY = (FIXTURES / "cavage_test_private.pem").read_text()
SPEC_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
oYi+1hqp1fIekaxsyQIDAQAB
-----END PUBLIC KEY-----
"""
SPEC_BODY = b'{"hello": "world"}'
SPEC_PATH = "/foo?param=value&pet=dog"
SPEC_HEADERS = {
    "Host": "example.com",
    "Date": "Sun, 05 Jan 2014 21:31:40 GMT",
    "Content-Type": "application/json",
    "Digest": "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    "Content-Length": "18",
}
SPEC_NOW = dt.datetime(2014, 1, 5, 21, 31, 40, tzinfo=dt.UTC)

DEFAULT_TEST = (
    'keyId="Test",algorithm="rsa-sha256",'
    'signature="SjWJWbWN7i0wzBvtPl8rbASWz5xQW6mcJmn+ibttBqtifLN7Sazz6m79cNfwwb8DMJ5cou1s7uEG'
    "KKCs+FLEEaDV5lp7q25WqS+lavg7T8hc0GppauB6hbgEKTwblDHYGEtbGmtdHgVCk9SuS13F0hZ8FD0k/5OxEPXe"
    '5WozsbM="'
)
BASIC_TEST = (
    'keyId="Test",algorithm="rsa-sha256",headers="(request-target) host date",'
    'signature="qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn7n'
    "dmw2iicw3HMbe8VfEdKFYRqzic+efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn04swr2"
    'Os0="'
)
# The -12 text also lists (created) (expires) in C.3, but its signature value only verifies over
# the header list of earlier revisions (a known erratum), which is what we reproduce.
ALL_HEADERS = ("(request-target)", "host", "date", "content-type", "digest", "content-length")
ALL_HEADERS_TEST = (
    'keyId="Test",algorithm="rsa-sha256",'
    'headers="(request-target) host date content-type digest content-length",'
    'signature="vSdrb+dS3EceC9bcwHSo4MlyKS59iFIrhgYkz8+oVLEEzmYZZvRs8rgOp+63LEM3v+MFHB32NfpB2bE'
    "KBIvB1q52LaEUHFv120V01IL+TAD48XaERZFukWgHoBTLMhYS2Gb51gWxpeIq8knRmPnYePbF5MOkR0Zkly4zKH7s"
    '1dE="'
)


def test_spec_key_pair_matches() -> None:
    assert public_pem_of(load_private_key(SPEC_PRIVATE_KEY)) == SPEC_PUBLIC_KEY


def test_spec_digest() -> None:
    assert digest_header(SPEC_BODY) == SPEC_HEADERS["Digest"]


@pytest.mark.parametrize(
    ("signed", "expected"),
    [(None, DEFAULT_TEST), (["(request-target)", "host", "date"], BASIC_TEST)],
    ids=["default", "basic"],
)
def test_spec_vectors_sign(signed: list[str] | None, expected: str) -> None:
    assert (
        sign_cavage("POST", SPEC_PATH, SPEC_HEADERS, "Test", SPEC_PRIVATE_KEY, signed) == expected
    )


def test_spec_all_headers_sign() -> None:
    got = sign_cavage("POST", SPEC_PATH, SPEC_HEADERS, "Test", SPEC_PRIVATE_KEY, ALL_HEADERS)
    assert got == ALL_HEADERS_TEST


@pytest.mark.parametrize(
    ("signature", "covered"),
    [
        (DEFAULT_TEST, ("date",)),
        (BASIC_TEST, ("(request-target)", "host", "date")),
        (ALL_HEADERS_TEST, ALL_HEADERS),
    ],
    ids=["default", "basic", "all-headers"],
)
def test_spec_vectors_verify(signature: str, covered: tuple[str, ...]) -> None:
    headers = {**SPEC_HEADERS, "Signature": signature}
    parsed = verify_cavage(
        "POST", SPEC_PATH, headers, SPEC_BODY, SPEC_PUBLIC_KEY, now=SPEC_NOW, required_headers=()
    )
    assert parsed.key_id == "Test"
    assert parsed.headers == covered


def test_spec_vectors_as_authorization_header() -> None:
    headers = {**SPEC_HEADERS, "Authorization": "Signature " + BASIC_TEST}
    verify_cavage(
        "POST", SPEC_PATH, headers, SPEC_BODY, SPEC_PUBLIC_KEY, now=SPEC_NOW, required_headers=()
    )


def test_mastodon_policy_rejects_spec_basic_test_on_post() -> None:
    # Basic signs no digest: Mastodon requires the digest to be signed when there is a body.
    headers = {**SPEC_HEADERS, "Signature": BASIC_TEST}
    with pytest.raises(SignatureError, match="digest"):
        verify_cavage("POST", SPEC_PATH, headers, SPEC_BODY, SPEC_PUBLIC_KEY, now=SPEC_NOW)


def test_spec_vector_tampered_path_fails() -> None:
    headers = {**SPEC_HEADERS, "Signature": BASIC_TEST}
    with pytest.raises(SignatureError, match="does not match"):
        verify_cavage(
            "POST", "/foo?param=value&pet=cat", headers, SPEC_BODY, SPEC_PUBLIC_KEY,
            now=SPEC_NOW, required_headers=(),
        )  # fmt: skip


def test_parse_signature_header() -> None:
    parsed = parse_signature_header(
        'keyId="https://a.example/users/x#main-key",algorithm="hs2019",'
        'created=1402170695, expires=1402170699,headers="(request-target) (created) host",'
        'signature="AAAA"'
    )
    assert parsed.key_id == "https://a.example/users/x#main-key"
    assert parsed.algorithm == "hs2019"
    assert parsed.created == 1402170695
    assert parsed.expires == 1402170699
    assert parsed.headers == ("(request-target)", "(created)", "host")
    assert parsed.signature == b"\x00\x00\x00"


@pytest.mark.parametrize(
    "value", ['keyId="x"', 'signature="AAAA"', 'keyId="x",signature="%%%"', "garbage"]
)
def test_parse_signature_header_rejects(value: str) -> None:
    with pytest.raises(SignatureError):
        parse_signature_header(value)


# ---------------------------------------------------------------- our own round trips

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
URL = "https://remote.example/users/bob/inbox?x=1"
KEY_ID = "https://parley.example/users/alice#main-key"
BODY = b'{"type":"Follow"}'


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    pair = generate_keypair()
    return pair.private_pem, pair.public_pem


def test_http_date_format() -> None:
    assert http_date(SPEC_NOW) == "Sun, 05 Jan 2014 21:31:40 GMT"


def test_cavage_round_trip_post(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("POST", URL, {"Content-Type": "x"}, BODY, KEY_ID, private, now=NOW)
    assert headers["Host"] == "remote.example"
    assert headers["Date"] == "Sat, 01 Mar 2025 12:00:00 GMT"
    assert headers["Digest"] == digest_header(BODY)
    assert 'headers="(request-target) host date digest"' in headers["Signature"]
    parsed = verify_cavage("POST", "/users/bob/inbox?x=1", headers, BODY, public, now=NOW)
    assert parsed.key_id == KEY_ID


def test_cavage_round_trip_get_signs_query(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("GET", URL, {}, None, KEY_ID, private, now=NOW)
    assert "Digest" not in headers
    verify_cavage("GET", "/users/bob/inbox?x=1", headers, None, public, now=NOW)
    with pytest.raises(SignatureError):
        verify_cavage("GET", "/users/bob/inbox?x=2", headers, None, public, now=NOW)


def test_cavage_keeps_port_in_host(keys: tuple[str, str]) -> None:
    headers = sign_request("GET", "http://127.0.0.1:8080/a", {}, None, KEY_ID, keys[0], now=NOW)
    assert headers["Host"] == "127.0.0.1:8080"


def test_cavage_tampered_body(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    with pytest.raises(SignatureError, match="Digest does not match"):
        verify_cavage("POST", "/users/bob/inbox?x=1", headers, b"{}", public, now=NOW)


def test_cavage_tampered_digest(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    headers["Digest"] = digest_header(b"{}")
    # The digest now matches the new body, but the signature covered the old digest.
    with pytest.raises(SignatureError, match="signature does not match"):
        verify_cavage("POST", "/users/bob/inbox?x=1", headers, b"{}", public, now=NOW)


def test_cavage_body_without_digest(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("GET", URL, {}, None, KEY_ID, private, now=NOW)
    with pytest.raises(SignatureError):
        verify_cavage("POST", "/users/bob/inbox?x=1", headers, BODY, public, now=NOW)


def test_cavage_tampered_date(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    headers["Date"] = http_date(NOW + dt.timedelta(minutes=1))
    with pytest.raises(SignatureError, match="signature does not match"):
        verify_cavage("POST", "/users/bob/inbox?x=1", headers, BODY, public, now=NOW)


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(dt.timedelta(hours=2), "expired"), (dt.timedelta(hours=-2), "future")],
)
def test_cavage_clock_window(keys: tuple[str, str], offset: dt.timedelta, reason: str) -> None:
    private, public = keys
    headers = sign_request("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    with pytest.raises(SignatureError, match=reason):
        verify_cavage("POST", "/users/bob/inbox?x=1", headers, BODY, public, now=NOW + offset)


def test_cavage_within_window(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    for offset in (dt.timedelta(minutes=50), dt.timedelta(minutes=-50)):
        verify_cavage("POST", "/users/bob/inbox?x=1", headers, BODY, public, now=NOW + offset)


def test_cavage_wrong_key(keys: tuple[str, str]) -> None:
    headers = sign_request("POST", URL, {}, BODY, KEY_ID, keys[0], now=NOW)
    other = generate_keypair().public_pem
    with pytest.raises(SignatureError, match="signature does not match"):
        verify_cavage("POST", "/users/bob/inbox?x=1", headers, BODY, other, now=NOW)


def test_cavage_rejects_unknown_algorithm(keys: tuple[str, str]) -> None:
    headers = sign_request("GET", URL, {}, None, KEY_ID, keys[0], now=NOW)
    headers["Signature"] = headers["Signature"].replace("rsa-sha256", "rsa-sha1")
    with pytest.raises(SignatureError, match="algorithm"):
        verify_cavage("GET", "/users/bob/inbox?x=1", headers, None, keys[1], now=NOW)


def test_cavage_accepts_hs2019(keys: tuple[str, str]) -> None:
    headers = sign_request("GET", URL, {}, None, KEY_ID, keys[0], now=NOW)
    headers["Signature"] = headers["Signature"].replace("rsa-sha256", "hs2019")
    verify_cavage("GET", "/users/bob/inbox?x=1", headers, None, keys[1], now=NOW)


def test_cavage_unsigned() -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify_cavage("GET", "/", {"Host": "x"}, None, SPEC_PUBLIC_KEY, now=NOW)


# ---------------------------------------------------------------- RFC 9421


def test_rfc9421_round_trip(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421(
        "POST", URL, {"Content-Type": "x"}, BODY, KEY_ID, private, now=NOW
    )
    assert headers["Content-Digest"] == content_digest_header(BODY)
    assert '"@method" "@target-uri" "content-digest"' in headers["Signature-Input"]
    assert 'alg="rsa-v1_5-sha256"' in headers["Signature-Input"]
    assert f'keyid="{KEY_ID}"' in headers["Signature-Input"]
    assert verify_rfc9421("POST", URL, headers, BODY, public, now=NOW) == KEY_ID


def test_rfc9421_get(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421("GET", URL, {}, None, KEY_ID, private, now=NOW)
    assert "Content-Digest" not in headers
    assert verify_rfc9421("GET", URL, headers, None, public, now=NOW) == KEY_ID
    with pytest.raises(SignatureError):
        verify_rfc9421("GET", URL.replace("x=1", "x=2"), headers, None, public, now=NOW)


def test_rfc9421_tampered_body(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    with pytest.raises(SignatureError):
        verify_rfc9421("POST", URL, headers, b"{}", public, now=NOW)


def test_rfc9421_tampered_digest(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    headers["Content-Digest"] = content_digest_header(b"{}")
    with pytest.raises(SignatureError):
        verify_rfc9421("POST", URL, headers, b"{}", public, now=NOW)


def test_rfc9421_expired_and_future(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign_request_rfc9421("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    with pytest.raises(SignatureError, match="expired"):
        verify_rfc9421("POST", URL, headers, BODY, public, now=NOW + dt.timedelta(hours=2))
    with pytest.raises(SignatureError, match="future"):
        verify_rfc9421("POST", URL, headers, BODY, public, now=NOW - dt.timedelta(hours=2))


def test_rfc9421_wrong_key(keys: tuple[str, str]) -> None:
    headers = sign_request_rfc9421("POST", URL, {}, BODY, KEY_ID, keys[0], now=NOW)
    with pytest.raises(SignatureError):
        verify_rfc9421("POST", URL, headers, BODY, generate_keypair().public_pem, now=NOW)


# ---------------------------------------------------------------- dispatch


def test_identify_both_formats(keys: tuple[str, str]) -> None:
    private, public = keys
    cavage = sign_request("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    rfc = sign_request_rfc9421("POST", URL, {}, BODY, KEY_ID, private, now=NOW)
    assert identify_signature(cavage).format is SignatureFormat.CAVAGE
    assert identify_signature(cavage).key_id == KEY_ID
    assert identify_signature(rfc).format is SignatureFormat.RFC9421
    assert identify_signature(rfc).key_id == KEY_ID
    assert verify_request("POST", URL, cavage, BODY, public, now=NOW).key_id == KEY_ID
    assert verify_request("POST", URL, rfc, BODY, public, now=NOW).key_id == KEY_ID


def test_identify_unsigned() -> None:
    with pytest.raises(SignatureError, match="not signed"):
        identify_signature({"Host": "x"})
