"""Which live rooms a person is shown in the node's lists: not those of silenced accounts
(ours) or of silenced and suspended servers, nor those of accounts the viewer blocked or
whose announcements they muted. A block applies at once, on the next listing."""

from __future__ import annotations

from typing import Any

from node.accounts import Account
from node.errors import NotFound
from node.store.accounts import AccountDirectory
from node.store.domain_blocks import DomainBlockList
from node.store.personal_blocks import PersonalBlocks, Shun


def _host_name(doc: dict[str, Any]) -> str:
    """The room's host as rooms name members: ours bare, others ``user@host``."""
    host = doc.get("host") or {}
    handle = host.get("handle")
    if isinstance(handle, str) and handle:
        return handle.lower().lstrip("@")
    return str(host.get("username") or "").lower()


class RoomListing:
    def __init__(
        self, accounts: AccountDirectory, domains: DomainBlockList, blocks: PersonalBlocks
    ) -> None:
        self._accounts = accounts
        self._domains = domains
        self._blocks = blocks

    def _silenced_here(self, name: str) -> bool:
        if "@" in name:
            return self._domains.is_silenced(name)
        try:
            return self._accounts.get(name).silenced
        except NotFound:
            return False

    def visible(self, rooms: list[dict[str, Any]], viewer: Account | None) -> list[dict[str, Any]]:
        shunned = (
            self._blocks.targets(viewer.id, Shun.BLOCK, Shun.MUTE) if viewer is not None else set()
        )
        own = self._blocks.own_host.lower()
        shown = []
        for doc in rooms:
            host = _host_name(doc)
            if host.endswith("@" + own):
                host = host.rsplit("@", 1)[0]
            origin = doc.get("origin")
            if isinstance(origin, str) and origin and self._domains.is_silenced(origin):
                continue
            if host in shunned or self._silenced_here(host):
                continue
            shown.append(doc)
        return shown
