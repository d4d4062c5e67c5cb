"""Visitors: people of any ActivityPub server (Mastodon, Misskey, GoToSocial, another
Parley node ...) who join a room here as themselves, without an account.

A visitor proves they hold a fediverse handle by reading a one-time code the node sends
to that actor as a direct message (node.fediverse.visitors sends it; the rules are here).
What the node then knows of them is a ``Visitor``: the verified handle, the actor, the
display name and the avatar this node keeps for them. A visitor is not an account: no
password, no keys, no rooms of their own, nothing stored beyond the session and profile.

Room code treats who acts uniformly (``Person``): a member is named by ``username``,
which for an account of this node is bare (``alice``) and for a visitor is the handle
(``kim@mastodon.example``), as every member of another server is named.

Codes: ``CODE_LENGTH`` characters of an alphabet without look-alikes (no 0/O, 1/I/L),
valid ``CODE_TTL_S``, used once, ``MAX_CODE_ATTEMPTS`` wrong tries burn them; only their
SHA-256 is stored and an entered code is compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.accounts import Account
from node.errors import InvalidInput

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
CODE_TTL_S = 600.0
"""A code expires 10 minutes after it was sent."""
MAX_CODE_ATTEMPTS = 5
"""Wrong codes entered for one request before it is burned (30^6 codes: a guess in five
tries succeeds once in about 150 million)."""
REPORT_PAUSE_S = 24 * 3600.0
"""After "it was not me", no code is sent to that handle for this long."""
SEND_WINDOW_S = 3600.0
"""The window the per-handle, per-server and per-address send limits count in."""
TOKEN_PREFIX = "pv_"
"""Visitor session tokens start with this, so a bearer token tells which kind it is."""
MAX_HANDLE = 320
MAX_DISPLAY_NAME = 64

_HANDLE_RE = re.compile(r"^@?([^@\s/]+)@([^@\s/]+)$")


@dataclass(frozen=True, slots=True)
class Visitor:
    """A verified fediverse handle acting on this node (not an account)."""

    handle: str
    """``user@host[:port]``: the actor's ``preferredUsername`` at its id's host."""
    actor: str
    display_name: str
    avatar_url: str | None = None
    """Where this node serves the avatar it fetched (never the remote server's URL)."""
    session_id: str | None = None

    @property
    def username(self) -> str:
        """The visitor's name as a room member: the handle."""
        return self.handle

    @property
    def server(self) -> str:
        return self.handle.rpartition("@")[2]

    def to_json(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "username": self.handle,
            "display_name": self.display_name,
            "actor": self.actor,
            "server": self.server,
            "avatar_url": self.avatar_url,
            "visitor": True,
        }


Person = Account | Visitor
"""Who acts in a room: an account of this node, or a verified visitor."""


@dataclass(frozen=True, slots=True)
class SendLimits:
    """Direct messages with codes the node sends per ``SEND_WINDOW_S``."""

    per_handle: int
    per_server: int
    per_address: int


def parse_handle(value: Any) -> tuple[str, str]:
    """``@kim@host``, ``kim@host`` -> (``kim``, ``host``) with the host lower-cased."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("handle", "must be a handle like @kim@mastodon.example")
    text = value.strip()
    match = _HANDLE_RE.fullmatch(text)
    if match is None or len(text) > MAX_HANDLE:
        raise InvalidInput("handle", "must be a handle like @kim@mastodon.example")
    return match.group(1), match.group(2).lower()


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(value: Any) -> str:
    """What a person typed, as a code: upper case, without spaces or dashes."""
    if not isinstance(value, str):
        raise InvalidInput("code", "must be the code from the message")
    code = re.sub(r"[\s-]", "", value).upper()
    if not code or len(code) > 32:
        raise InvalidInput("code", "must be the code from the message")
    return code


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def code_matches(stored_hash: str, entered: str) -> bool:
    """Constant time in the entered code: both sides are hashes of equal length."""
    return hmac.compare_digest(stored_hash.encode(), code_hash(entered).encode())


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_visitor_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def vouch_refusal(
    handle: str, *, own_host: str, voucher_host: str, blocked: Callable[[str], bool]
) -> str | None:
    """Why this node refuses a visitor that node ``voucher_host`` verified and vouches
    for (a room carried from here: FEDERATION.md "Visitors across nodes"), or None.

    This node trusts another node's verification as it trusts that node's own users,
    and for no more: never for a handle of this node (its users sign in here) nor of the
    voucher's own host (its users sign their own activities), nor on a blocked domain.
    """
    try:
        _, host = parse_handle(handle)
    except InvalidInput:
        return "not a handle"
    if host == own_host.lower():
        return "a handle of this node"
    if host == voucher_host.lower():
        return "a handle of the vouching node itself"
    if blocked(host):
        return "a blocked domain"
    return None
