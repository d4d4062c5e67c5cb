"""The node's own rules for the rooms it carries (node.rooms.RoomPolicy): whom a host
has blocked cannot join their rooms; users of a silenced or suspended server cannot come
on stage. They apply wherever this node decides a room's state (as its acting origin);
whoever is refused is kept out for the room's life, on every node carrying it.
"""

from __future__ import annotations

from node.rooms import Room
from node.store.domain_blocks import DomainBlockList
from node.store.personal_blocks import PersonalBlocks


class Admission:
    def __init__(self, blocks: PersonalBlocks, domains: DomainBlockList) -> None:
        self._blocks = blocks
        self._domains = domains

    def admits(self, room: Room, username: str) -> str | None:
        if self._blocks.blocks(room.host, username):
            return "the host has blocked you"
        if "@" in username and self._domains.is_blocked(username):
            return "this node does not federate with your server"
        return None

    def may_speak(self, room: Room, username: str) -> bool:
        return "@" not in username or not self._domains.is_silenced(username)

    def host_blocked(self, room: Room, username: str) -> None:
        if "@" in room.host:
            return  # the host is on another node: their blocks are kept there
        try:
            self._blocks.add_for(room.host, username)
        except LookupError:
            pass
