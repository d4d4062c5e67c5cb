"""The one exception tree of the federation package.

::

    FederationError
    ├── SignatureError(reason)             HTTP signature missing, malformed or wrong (401)
    ├── ActivityParseError(reason, field)  a remote JSON document we cannot accept (400)
    ├── PayloadTooLarge(limit)             a body over the size cap (413)
    ├── BlockedDomain(host)                the operator refuses this domain (403)
    ├── NotAllowed(reason)                 signed correctly, but this signer may not (403)
    ├── InvalidParameter(field, reason)    a query parameter we cannot accept (400)
    ├── PrivateAddress(host, address)      SSRF guard: destination is not public
    └── RemoteFetchError(status, url)      a remote answered badly or not at all

The web layer maps these to HTTP answers in one place; they carry data as attributes.
"""

from __future__ import annotations


class FederationError(Exception):
    """Base of every error raised by the federation package."""


class SignatureError(FederationError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ActivityParseError(FederationError):
    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class PayloadTooLarge(FederationError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"payload larger than {limit} bytes")
        self.limit = limit


class BlockedDomain(FederationError):
    def __init__(self, host: str) -> None:
        super().__init__(f"domain is blocked: {host}")
        self.host = host


class NotAllowed(FederationError):
    """The request is signed correctly, but its signer may not do this."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidParameter(FederationError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PrivateAddress(FederationError):
    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to non-public address {address}")
        self.host = host
        self.address = address


class RemoteFetchError(FederationError):
    """``status`` is None when no HTTP answer arrived (DNS, connect, timeout)."""

    def __init__(self, status: int | None, url: str, reason: str = "") -> None:
        super().__init__(
            f"{url}: {status if status is not None else 'no answer'} {reason}".strip()
        )
        self.status = status
        self.url = url
        self.reason = reason
