"""HTTP Signatures, both dialects the fediverse speaks.

* draft-cavage-http-signatures (the ``Signature:`` header): what Mastodon signs with and what
  every ActivityPub server accepts. Implemented here on ``cryptography``: no maintained
  library matches the fediverse profile (rsa-sha256 over ``(request-target) host date digest``).
* RFC 9421 (``Signature-Input:`` + ``Signature:``) with RFC 9530 ``Content-Digest``: newer
  servers (Mastodon >= 4.4 accepts it, Fedify signs with it). Done through the
  ``http-message-signatures`` library.

All functions are pure: the clock is a parameter, nothing is fetched.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import http_message_signatures as hms
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from federation.errors import SignatureError
from federation.keys import load_private_key, load_public_key

# Mastodon (app/controllers/concerns/signature_verification.rb) rejects a Date more than
# one hour ahead (clock skew margin) and a signature older than its validity window plus
# that margin; an hour either way is the working interop contract.
MAX_CLOCK_SKEW = dt.timedelta(hours=1)
MAX_SIGNATURE_AGE = dt.timedelta(hours=1)

# "hs2019" means "derive the algorithm from the key"; for RSA keys that is rsa-sha256, which
# is how Mastodon treats it too.
CAVAGE_ALGORITHMS = frozenset({"rsa-sha256", "hs2019"})
REQUEST_TARGET = "(request-target)"
CAVAGE_HEADERS_WITHOUT_BODY: tuple[str, ...] = (REQUEST_TARGET, "host", "date")
CAVAGE_HEADERS_WITH_BODY: tuple[str, ...] = (REQUEST_TARGET, "host", "date", "digest")

RFC9421_LABEL = "sig1"
RFC9421_COMPONENTS: tuple[str, ...] = ("@method", "@target-uri")


class SignatureFormat(enum.Enum):
    CAVAGE = "draft-cavage"
    RFC9421 = "rfc9421"


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """What an incoming request claims before anything is verified: enough to fetch the key."""

    format: SignatureFormat
    key_id: str


@dataclass(frozen=True, slots=True)
class CavageSignature:
    key_id: str
    algorithm: str
    headers: tuple[str, ...]
    signature: bytes
    created: int | None = None
    expires: int | None = None


# --------------------------------------------------------------------------- helpers


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _as_utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return _utcnow()
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def http_date(moment: dt.datetime | None = None) -> str:
    """RFC 7231 IMF-fixdate, e.g. ``Sun, 05 Jan 2014 21:31:40 GMT``."""
    return format_datetime(_as_utc(moment).replace(microsecond=0), usegmt=True)


def parse_http_date(value: str) -> dt.datetime:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError) as exc:
        raise SignatureError(f"unparseable date {value!r}") from exc
    return _as_utc(parsed)


def digest_header(body: bytes) -> str:
    """The RFC 3230 ``Digest`` value Mastodon requires on signed POSTs."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def content_digest_header(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value used with RFC 9421."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _split_url(url: str) -> tuple[str, str]:
    """(host[:port], path?query) as they appear in Host and (request-target)."""
    try:
        parts = urlsplit(url)
        valid = bool(parts.scheme and parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise SignatureError(f"not an absolute URL: {url[:200]!r}")
    host = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return host, path


# --------------------------------------------------------------------------- draft-cavage


_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+))\s*(?:,|$)')


def parse_signature_header(value: str) -> CavageSignature:
    """Parse a draft-cavage ``Signature`` value (an ``Authorization: Signature`` too)."""
    text = value.strip()
    if text.lower().startswith("signature "):
        text = text[len("signature ") :]
    params: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _PARAM.match(text, pos)
        if match is None or match.end() == pos:
            raise SignatureError(f"malformed Signature header near {text[pos : pos + 20]!r}")
        name = match.group(1)
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        params[name] = re.sub(r"\\(.)", r"\1", raw)
        pos = match.end()
    key_id = params.get("keyId")
    signature_b64 = params.get("signature")
    if not key_id:
        raise SignatureError("Signature header has no keyId")
    if not signature_b64:
        raise SignatureError("Signature header has no signature")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError as exc:
        raise SignatureError("signature is not base64") from exc
    # draft-cavage-12 section 2.1.6: without "headers" the signature covers "(created)"; older
    # drafts, the spec's own test vectors and Mastodon all take "date" instead.
    headers = tuple(params.get("headers", "date").lower().split())
    return CavageSignature(
        key_id=key_id,
        algorithm=params.get("algorithm", "hs2019").lower(),
        headers=headers,
        signature=signature,
        created=_int_param(params, "created"),
        expires=_int_param(params, "expires"),
    )


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    if name not in params:
        return None
    try:
        return int(params[name])
    except ValueError as exc:
        raise SignatureError(f"{name} is not an integer") from exc


def cavage_signing_string(
    method: str,
    path_with_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    *,
    created: int | None = None,
    expires: int | None = None,
) -> str:
    """draft-cavage-12 section 2.3: one ``name: value`` line per signed header, in order."""
    lines = []
    for name in signed_headers:
        name = name.lower()
        if name == REQUEST_TARGET:
            lines.append(f"{name}: {method.lower()} {path_with_query}")
        elif name in ("(created)", "(expires)"):
            value = created if name == "(created)" else expires
            if value is None:
                raise SignatureError(f"{name} is signed but has no parameter")
            lines.append(f"{name}: {value}")
        else:
            header_value = _header(headers, name)
            if header_value is None:
                raise SignatureError(f"signed header {name!r} is missing from the request")
            lines.append(f"{name}: {header_value.strip()}")
    return "\n".join(lines)


def sign_cavage(
    method: str,
    path_with_query: str,
    headers: Mapping[str, str],
    key_id: str,
    private_key_pem: str | bytes,
    signed_headers: Sequence[str] | None,
) -> str:
    """Return the ``Signature`` header value over already-present headers.

    ``signed_headers=None`` reproduces the spec's default form (no ``headers`` parameter,
    only ``date`` signed).
    """
    covered = ("date",) if signed_headers is None else tuple(h.lower() for h in signed_headers)
    text = cavage_signing_string(method, path_with_query, headers, covered)
    key = load_private_key(private_key_pem)
    raw = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    parts = [f'keyId="{key_id}"', 'algorithm="rsa-sha256"']
    if signed_headers is not None:
        parts.append(f'headers="{" ".join(covered)}"')
    parts.append(f'signature="{base64.b64encode(raw).decode("ascii")}"')
    return ",".join(parts)


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    key_id: str,
    private_key_pem: str | bytes,
    *,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Sign a request the way Mastodon expects; return the headers to send.

    Adds ``Host``, ``Date`` and, when there is a body, ``Digest`` (kept if the caller set them),
    and signs ``(request-target) host date [digest]``. The query string is part of
    ``(request-target)``.
    """
    host, path = _split_url(url)
    out = dict(headers)
    if _header(out, "host") is None:
        out["Host"] = host
    if _header(out, "date") is None:
        out["Date"] = http_date(now)
    covered = CAVAGE_HEADERS_WITHOUT_BODY
    if body is not None:
        out = {k: v for k, v in out.items() if k.lower() != "digest"}
        out["Digest"] = digest_header(body)
        covered = CAVAGE_HEADERS_WITH_BODY
    out["Signature"] = sign_cavage(method, path, out, key_id, private_key_pem, covered)
    return out


def _check_digest(headers: Mapping[str, str], body: bytes | None) -> None:
    value = _header(headers, "digest")
    if value is None:
        if body:
            raise SignatureError("request has a body but no Digest header")
        return
    found = False
    expected = hashlib.sha256(body or b"").digest()
    for item in value.split(","):
        algorithm, _, encoded = item.strip().partition("=")
        # RFC 3230 algorithm names are case-insensitive; Mastodon only honours SHA-256.
        if algorithm.strip().lower() != "sha-256":
            continue
        try:
            claimed = base64.b64decode(encoded.strip(), validate=True)
        except ValueError as exc:
            raise SignatureError("Digest is not base64") from exc
        if not hmac.compare_digest(claimed, expected):
            raise SignatureError("Digest does not match the body")
        found = True
    if not found:
        raise SignatureError("Digest has no SHA-256 value")


def _check_freshness(
    headers: Mapping[str, str],
    parsed: CavageSignature,
    now: dt.datetime,
    max_age: dt.timedelta,
) -> None:
    if parsed.created is not None and "(created)" in parsed.headers:
        sent = dt.datetime.fromtimestamp(parsed.created, dt.UTC)
    else:
        date_value = _header(headers, "date")
        if date_value is None:
            raise SignatureError("request has no Date header")
        sent = parse_http_date(date_value)
    if sent > now + MAX_CLOCK_SKEW:
        raise SignatureError("Date is too far in the future")
    if now - sent > max_age:
        raise SignatureError("signature has expired")
    if parsed.expires is not None and "(expires)" in parsed.headers:
        if dt.datetime.fromtimestamp(parsed.expires, dt.UTC) < now:
            raise SignatureError("signature has expired")


def verify_cavage(
    method: str,
    path_with_query: str,
    headers: Mapping[str, str],
    body: bytes | None,
    public_key_pem: str | bytes,
    *,
    now: dt.datetime | None = None,
    required_headers: Sequence[str] | None = None,
    max_age: dt.timedelta = MAX_SIGNATURE_AGE,
) -> CavageSignature:
    """Verify a draft-cavage signature under Mastodon's rules; return the parsed signature.

    ``required_headers=None`` applies Mastodon's policy: ``(request-target)``, ``host`` and
    ``date`` must be signed, and ``digest`` too when there is a body. Pass an explicit
    sequence (even empty) to relax it, e.g. for the spec's minimal test vectors.
    Raises SignatureError with a reason.
    """
    raw = _header(headers, "signature")
    if raw is None:
        auth = _header(headers, "authorization")
        if auth is not None and auth.lower().startswith("signature "):
            raw = auth
    if raw is None:
        raise SignatureError("request is not signed")
    parsed = parse_signature_header(raw)
    if parsed.algorithm not in CAVAGE_ALGORITHMS:
        raise SignatureError(f"unsupported algorithm {parsed.algorithm!r}")
    if required_headers is None:
        required: tuple[str, ...] = (
            CAVAGE_HEADERS_WITH_BODY if body else CAVAGE_HEADERS_WITHOUT_BODY
        )
    else:
        required = tuple(h.lower() for h in required_headers)
    missing = [name for name in required if name not in parsed.headers]
    if missing:
        raise SignatureError(f"headers not signed: {' '.join(missing)}")
    _check_freshness(headers, parsed, _as_utc(now), max_age)
    _check_digest(headers, body)
    text = cavage_signing_string(
        method,
        path_with_query,
        headers,
        parsed.headers,
        created=parsed.created,
        expires=parsed.expires,
    )
    key = load_public_key(public_key_pem)
    try:
        key.verify(parsed.signature, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise SignatureError("signature does not match") from exc
    return parsed


# --------------------------------------------------------------------------- RFC 9421


@dataclass(slots=True)
class _Message:
    """The request shape http-message-signatures reads: method, absolute url, headers."""

    method: str
    url: str
    headers: dict[str, str]


class _FixedKey(hms.HTTPSignatureKeyResolver):
    def __init__(self, *, public: Any = None, private: Any = None) -> None:
        self._public = public
        self._private = private

    def resolve_public_key(self, key_id: str) -> Any:
        return self._public

    def resolve_private_key(self, key_id: str) -> Any:
        return self._private


class _ClockedVerifier(hms.HTTPMessageVerifier):
    """The library reads the wall clock; tests and replays need an injected one."""

    def __init__(self, now: dt.datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._now = now

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        created = sig_input.params.get("created")
        if type(created) is not int:
            raise SignatureError("RFC 9421 signature has no created parameter")
        sent = dt.datetime.fromtimestamp(created, dt.UTC)
        if sent > self._now + MAX_CLOCK_SKEW:
            raise SignatureError("signature created in the future")
        if max_age is not None and self._now - sent > max_age:
            raise SignatureError("signature has expired")
        expires = sig_input.params.get("expires")
        if type(expires) is int and dt.datetime.fromtimestamp(expires, dt.UTC) < self._now:
            raise SignatureError("signature has expired")


def sign_request_rfc9421(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    key_id: str,
    private_key_pem: str | bytes,
    *,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Sign with RFC 9421 over ``@method @target-uri [content-digest]``, alg rsa-v1_5-sha256."""
    _split_url(url)
    out = {k: v for k, v in headers.items() if k.lower() != "content-digest"}
    message = _Message(method=method.upper(), url=url, headers=out)
    signer = hms.HTTPMessageSigner(
        signature_algorithm=hms.algorithms.RSA_V1_5_SHA256,
        key_resolver=_FixedKey(private=load_private_key(private_key_pem)),
    )
    try:
        signer.sign(
            message,
            key_id=key_id,
            created=_as_utc(now),
            label=RFC9421_LABEL,
            covered_component_ids=RFC9421_COMPONENTS,
            body=body,
        )
    except hms.HTTPMessageSignaturesException as exc:
        raise SignatureError(f"cannot sign: {exc}") from exc
    return dict(message.headers)


def verify_rfc9421(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    public_key_pem: str | bytes,
    *,
    now: dt.datetime | None = None,
    max_age: dt.timedelta = MAX_SIGNATURE_AGE,
) -> str:
    """Verify an RFC 9421 signature; return its keyid.

    ``url`` is the absolute URL as the client addressed it (scheme, Host, path, query):
    ``@target-uri`` covers all of it, so a proxy must pass the public URL.
    """
    verifier = _ClockedVerifier(
        _as_utc(now),
        signature_algorithm=hms.algorithms.RSA_V1_5_SHA256,
        key_resolver=_FixedKey(public=load_public_key(public_key_pem)),
    )
    message = _Message(method=method.upper(), url=url, headers=dict(headers))
    try:
        results = verifier.verify(
            message,
            max_age=max_age,
            require_components=RFC9421_COMPONENTS,
            body=body if body is not None else b"",
        )
    except SignatureError:
        raise
    except hms.HTTPMessageSignaturesException as exc:
        cause = exc.__cause__
        if isinstance(cause, SignatureError):
            raise cause from exc
        if isinstance(cause, InvalidSignature):
            # The library says nothing here; the likely cause is a different @target-uri.
            raise SignatureError(
                f"RFC 9421: signature does not match (@method {method.upper()}, "
                f"@target-uri {url[:300]})"
            ) from exc
        raise SignatureError(f"RFC 9421: {exc or type(exc).__name__}") from exc
    key_id = results[0].parameters.get("keyid")
    if not isinstance(key_id, str):
        raise SignatureError("RFC 9421 signature has no keyid")
    return key_id


# --------------------------------------------------------------------------- dispatch

_KEYID = re.compile(r';\s*keyid\s*=\s*"((?:[^"\\]|\\.)*)"')


def identify_signature(headers: Mapping[str, str]) -> SignatureInfo:
    """Tell which dialect signed a request and which key it claims, before verifying.

    ``Signature-Input`` only exists in RFC 9421; otherwise a draft-cavage ``Signature``
    (or ``Authorization: Signature ...``) header is expected.
    """
    signature_input = _header(headers, "signature-input")
    if signature_input is not None:
        match = _KEYID.search(signature_input)
        if match is None:
            raise SignatureError("Signature-Input has no keyid")
        return SignatureInfo(SignatureFormat.RFC9421, re.sub(r"\\(.)", r"\1", match.group(1)))
    raw = _header(headers, "signature")
    if raw is None:
        auth = _header(headers, "authorization")
        if auth is not None and auth.lower().startswith("signature "):
            raw = auth
    if raw is None:
        raise SignatureError("request is not signed")
    return SignatureInfo(SignatureFormat.CAVAGE, parse_signature_header(raw).key_id)


def verify_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    public_key_pem: str | bytes,
    *,
    now: dt.datetime | None = None,
    also_target: str | None = None,
    query_signed: bool = True,
) -> SignatureInfo:
    """Verify whichever dialect signed the request; ``url`` is the absolute request URL.

    ``also_target``: another form of the same URL an RFC 9421 ``@target-uri`` may carry
    (a WebSocket upgrade: the ``ws(s)://`` URL the client dialled, beside the
    ``http(s)://`` target URI RFC 9110 section 7.1 reconstructs). draft-cavage signs only
    the path and query, which both forms share.

    ``query_signed=False``: a draft-cavage ``(request-target)`` of the path without its
    query string is accepted too. Fedify, and Mastodon before 4.1, sign it so; Mastodon
    accepts both since. Where the query matters (a relay subscription's ``relay=``) the
    caller keeps the default, and such a signature is refused with that reason.
    """
    info = identify_signature(headers)
    if info.format is SignatureFormat.RFC9421:
        try:
            key_id = verify_rfc9421(method, url, headers, body, public_key_pem, now=now)
        except SignatureError as first:
            if also_target is None or "does not match" not in first.reason:
                raise
            try:
                key_id = verify_rfc9421(
                    method, also_target, headers, body, public_key_pem, now=now
                )
            except SignatureError as second:
                if "does not match" not in second.reason:
                    raise
                raise SignatureError(
                    f"RFC 9421: signature does not match (@method {method.upper()}, "
                    f"@target-uri {url[:300]} or {also_target[:300]})"
                ) from second
        return SignatureInfo(SignatureFormat.RFC9421, key_id)
    _, path = _split_url(url)
    try:
        parsed = verify_cavage(method, path, headers, body, public_key_pem, now=now)
    except SignatureError as first:
        bare = path.split("?", 1)[0]
        if bare == path or first.reason != "signature does not match":
            raise
        try:
            parsed = verify_cavage(method, bare, headers, body, public_key_pem, now=now)
        except SignatureError:
            raise first from None
        if query_signed:
            raise SignatureError(
                "draft-cavage: the signature covers the path without its query string; "
                f"(request-target) must be {method.lower()} {path[:300]}"
            ) from None
    return SignatureInfo(SignatureFormat.CAVAGE, parsed.key_id)
