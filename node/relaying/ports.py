"""What the relaying package needs from the node's federation side, as Protocols
(node.fediverse implements them; node/web/app.py wires them in)."""

from __future__ import annotations

from typing import Any, Protocol

from federation.client import FederationClient


class RelaySigner(Protocol):
    """Signs what this node sends to other nodes about rooms."""

    blocked_domains: frozenset[str]

    def federation_client(self) -> FederationClient:
        """The node's one outgoing client (address policy, blocklist): every request to
        another node goes through it, relay WebSockets included."""
        ...

    def instance_key(self) -> tuple[str, str]:
        """(key id, private PEM) of the node's instance actor: relay subscriptions."""
        ...

    def actor_id(self, username: str) -> str: ...

    async def post_as(self, username: str, inbox: str, activity: dict[str, Any]) -> int:
        """POST ``activity`` to ``inbox`` signed with the user's key; the HTTP status."""
        ...

    async def handle_of(self, actor_id: str) -> str:
        """``user@host`` of a remote actor (fetched and cached)."""
        ...
