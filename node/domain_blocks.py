"""Domain blocks: what a node refuses of another server, and how hard. Pure rules.

- ``SUSPEND``: refused both ways (as ``[federation] blocked_domains``): no inbox, no
  fetch, no delivery, no relay either way; follows with its accounts are severed, rooms
  carried from it stop here.
- ``SILENCE``: still federated, but its rooms are not listed here and its users cannot
  come on stage in rooms this node acts as origin for.

A block of ``example.com`` covers its subdomains too. Storage and the live list that every
part of the node consults: node.store.domain_blocks.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from node.errors import InvalidInput

MAX_COMMENT = 1000
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class Severity(enum.StrEnum):
    SILENCE = "silence"
    SUSPEND = "suspend"


@dataclass(frozen=True, slots=True)
class DomainBlock:
    domain: str
    severity: Severity
    public_comment: str = ""
    private_note: str = ""
    created_at: float = 0.0
    created_by: str | None = None
    """Username of the admin who added it; None for one of node.toml's."""
    configured: bool = False
    """From ``[federation] blocked_domains`` (removed only by editing node.toml)."""

    def public_json(self) -> dict[str, Any]:
        """What /about shows anyone: never the private note."""
        return {
            "domain": self.domain,
            "severity": self.severity.value,
            "comment": self.public_comment,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.public_json(),
            "public_comment": self.public_comment,
            "private_note": self.private_note,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "configured": self.configured,
        }


def normalize_domain(value: Any) -> str:
    """A host name as blocks name it (lower case, no trailing dot), or InvalidInput.
    A port is not part of a domain: a block covers every port of the host."""
    if not isinstance(value, str):
        raise InvalidInput("domain", "must be a host name like example.org")
    text = value.strip().lower().rstrip(".")
    if text.startswith(("http://", "https://")):
        text = text.split("//", 1)[1].split("/", 1)[0]
    text = text.rsplit("@", 1)[-1]
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    if ":" in text:
        return text  # an IPv6 address
    labels = text.split(".")
    if not text or len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput("domain", "must be a host name like example.org")
    return text


def parse_severity(value: Any) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise InvalidInput("severity", "must be 'silence' or 'suspend'") from None


def host_of(handle_or_url: str) -> str:
    """The host part of ``user@host[:port]``, ``host[:port]`` or a URL, without port."""
    text = handle_or_url.strip().lower()
    if "//" in text:
        text = text.split("//", 1)[1].split("/", 1)[0]
    text = text.rsplit("@", 1)[-1]
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.split(":", 1)[0] if text.count(":") == 1 else text


def covers(domain: str, host: str) -> bool:
    """Does a block of ``domain`` cover ``host`` (itself or a subdomain)?"""
    host = host.lower().rstrip(".")
    return host == domain or host.endswith("." + domain)
