"""The node's registry of rooms on air, and its WebRTC sessions.

Rooms of this node are loaded from the store and put on air with a local mix; rooms of
other nodes are put on air by node.relaying with the program arriving from upstream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from federation.relay import RELAY_PATH, SuccessionEntry
from node.accounts import Account
from node.config import Config
from node.errors import Conflict, NotFound
from node.media.peers import ListenerSessions, PeerSessions
from node.onair.local_mix import LocalMix
from node.onair.on_air import OnAir, Sessions
from node.onair.source import ProgramSource
from node.rooms import OPEN_DOORS, Room, RoomPolicy, RoomState, Visibility, new_room_id
from node.store.accounts import AccountDirectory
from node.store.rooms import RoomStore, room_from_row
from node.succession import Carriage

logger = logging.getLogger(__name__)

ENDED_COPIES_KEPT = 256


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)


class Stage:
    """All rooms of this node that are not ended, and the node's WebRTC sessions."""

    def __init__(
        self,
        config: Config,
        accounts: AccountDirectory,
        store: RoomStore,
        peers: PeerSessions,
        *,
        room_url: Callable[[Room], dict[str, str]],
        listeners: ListenerSessions | None = None,
        policy: RoomPolicy = OPEN_DOORS,
    ) -> None:
        self.config = config
        self.base_url = config.node.base_url.rstrip("/")
        self.accounts = accounts
        self.store = store
        self.peers = peers
        """Speakers' sessions (and listeners' unless ``listeners`` is given)."""
        self.listeners: ListenerSessions = listeners if listeners is not None else peers
        """WHEP listeners' sessions: these peers, or worker processes ([media] workers)."""
        self._room_urls = room_url
        self.policy = policy
        """The node's rules for every room it carries (node.onair.admission)."""
        self.rooms_on_air: dict[str, OnAir] = {}
        self.sessions: dict[str, OnAir] = {}
        self._on_air_callbacks: list[Callable[[OnAir], None]] = []
        self.ended_copies: dict[str, OnAir] = {}
        """Copies of other nodes' rooms that ended here, newest last (read-only)."""
        self._load_callbacks: list[Callable[[Room], None]] = []
        self.recovering: set[str] = set()
        """Our rooms that were live when we stopped, while node.relaying asks the nodes
        that relayed them whether one carries them on (they are not served meanwhile)."""
        self._sessions = Sessions(
            peers=peers,
            listeners=self.listeners,
            by_id=self.sessions,
            room_json=lambda on_air: self.room_json(on_air.room),
            persist=self._persist,
            persist_block=self._persist_block,
            forget=lambda on_air: self._forget(on_air),
            ogg_packets_per_page=config.media.ogg_page_ms // 20,
            speaker_timeout_s=config.media.speaker_timeout_s,
            room_events=config.node.room_events,
        )
        peers.on_closed(self._peer_closed)
        if self.listeners is not peers:
            self.listeners.on_closed(self._peer_closed)

    def on_air(self, callback: Callable[[OnAir], None]) -> None:
        """Call ``callback`` with every room this node puts on air (created, loaded or
        carried), so other parts (announcements, relays) can subscribe to its events."""
        self._on_air_callbacks.append(callback)

    def on_load(self, callback: Callable[[Room], None]) -> None:
        """Call ``callback`` with every room of ours read from the store or created (so
        other parts can fill in what they keep of it: its comments)."""
        self._load_callbacks.append(callback)

    def _loaded(self, room: Room) -> Room:
        for callback in self._load_callbacks:
            callback(room)
        return room

    def own_entry(self, room_id: str) -> SuccessionEntry:
        """This node's succession entry for a room: its base URL and relay URL."""
        return SuccessionEntry(
            self.base_url, ws_url(self.base_url) + RELAY_PATH.format(room_id=room_id)
        )

    def local_mix(self, on_air: OnAir) -> LocalMix:
        return LocalMix(on_air, host_grace_s=self.config.media.host_grace_s)

    def put_on_air(
        self,
        room: Room,
        carriage: Carriage,
        source: Callable[[OnAir], ProgramSource] | None = None,
    ) -> OnAir:
        """Put ``room`` on air with ``source`` (default: our mixer, we act as origin)."""
        room.policy = self.policy
        on_air = OnAir(room, carriage, None, self._sessions)
        on_air.source = (source or self.local_mix)(on_air)
        self.rooms_on_air[room.id] = on_air
        for callback in self._on_air_callbacks:
            callback(on_air)
        on_air.go_live()
        return on_air

    def _peer_closed(self, session_id: str) -> None:
        on_air = self.sessions.get(session_id)
        if on_air is None:
            return
        if session_id in on_air.listener_sessions:
            on_air.listener_gone(session_id)
        elif on_air.watchers.remote(session_id) is not None:
            on_air.remote_watcher_gone(session_id)
        else:
            on_air.publisher_gone(session_id)

    def _forget(self, on_air: OnAir) -> None:
        if self.rooms_on_air.get(on_air.room.id) is on_air:
            del self.rooms_on_air[on_air.room.id]
        if on_air.room.state is RoomState.ENDED and not self.store.exists(on_air.room.id):
            # A copy of another node's room is in no table: its page still says how it
            # ended (by its host, or by an operator) for a while.
            self.ended_copies[on_air.room.id] = on_air
            while len(self.ended_copies) > ENDED_COPIES_KEPT:
                self.ended_copies.pop(next(iter(self.ended_copies)))

    def room_json(self, room: Room) -> dict[str, Any]:
        doc = {**room.to_json(), **self._room_urls(room)}
        if doc.get("announcement") is None and "@" not in room.owner:
            doc["announcement"] = self.announcement_of(room)
        if doc.get("replay_url") and isinstance(doc.get("summary"), dict):
            doc["summary"] = {**doc["summary"], "replay_url": doc["replay_url"]}
        on_air = self.rooms_on_air.get(room.id)
        if on_air is not None:
            carriage = on_air.carriage
            own_origin = carriage.origin == doc.get("url")
            if carriage.remote or carriage.epoch > 0 or not own_origin:
                doc.update(carriage.to_json())
        return doc

    def announcement_of(self, room: Room) -> str | None:
        """The public object our users reply to when they comment: the room's live Note,
        or its scheduled Note before it goes live (node.fediverse.schedule); None for an
        unlisted room (nothing public to reply to) or an unscheduled one not live yet."""
        if room.visibility is not Visibility.PUBLIC or not self.store.exists(room.id):
            return None
        note = f"{self.base_url}/users/{room.owner}/rooms/{room.id}"
        if room.state is RoomState.SCHEDULED or (room.cancelled and room.starts_at):
            return f"{note}/scheduled" if room.starts_at is not None else None
        return note

    def create_room(
        self,
        host: Account,
        title: str,
        description: str,
        visibility: Any,
        *,
        starts_at: float | None = None,
        recording: bool = False,
    ) -> Room:
        room = Room(
            id=new_room_id(),
            host=host.username,
            host_display_name=host.display_name,
            title=title,
            description=description,
            visibility=visibility,
            max_speakers=self.config.media.max_speakers,
            starts_at=starts_at,
            recording=recording,
        )
        if host.avatar_path:
            room.member_extras[host.username] = {"avatar_url": host.avatar_path}
        self.store.insert(room, host.id)
        self._loaded(room)
        self.put_on_air(room, self._origin_carriage(room))
        return room

    def _origin_carriage(self, room: Room) -> Carriage:
        return Carriage.origin_of(self.own_entry(room.id), f"{self.base_url}/rooms/{room.id}")

    def get(self, room_id: str) -> OnAir:
        on_air = self.rooms_on_air.get(room_id) or self.ended_copies.get(room_id)
        if on_air is not None:
            return on_air
        if room_id in self.recovering:
            raise Conflict("the room is reconnecting to the node that carries it on")
        rows = self.store.rows("rooms.id = ?", [room_id])
        if not rows:
            raise NotFound("no such room")
        room = room_from_row(
            rows[0],
            max_speakers=self.config.media.max_speakers,
            blocked=self.store.blocked_usernames(room_id),
        )
        self._loaded(room)
        if room.state is RoomState.ENDED:
            room.ending = self.store.ending(room_id)
            # Ended rooms are read-only history: not kept on air.
            carriage = self._origin_carriage(room)
            carriage.end()
            return OnAir(room, carriage, None, self._sessions)
        return self.put_on_air(room, self._origin_carriage(room))

    def live_public_rooms(self) -> list[Room]:
        """Live public rooms of this node: its own, whoever acts as their origin now, and
        rooms of other nodes it acts as origin for."""
        rooms = [
            on_air.room
            for on_air in self.rooms_on_air.values()
            if on_air.room.state is RoomState.LIVE
            and on_air.room.visibility == Visibility.PUBLIC
            and (on_air.carriage.acting or self.store.exists(on_air.room.id))
        ]
        return sorted(rooms, key=lambda r: r.started_at or 0.0, reverse=True)

    def rooms_hosted_by(self, username: str) -> list[Room]:
        rows = self.store.rows(
            "accounts.username = ? order by rooms.created_at desc limit 50", [username]
        )
        return [self.get(r["id"]).room for r in rows]

    def _persist(self, room: Room) -> None:
        if self.store.exists(room.id):
            self.store.save(room)
            if room.state is RoomState.ENDED and room.ending is not None:
                self.store.save_ending(room.id, room.ending, room.ended_at or time.time())

    def _persist_block(self, room: Room, username: str, blocked: bool) -> None:
        if self.store.exists(room.id):
            self.store.save_removal(room.id, username, blocked=blocked)

    def load_unfinished(self, keep: Collection[str] = ()) -> None:
        """``keep``: live rooms node.relaying takes care of (carried on by other nodes)."""
        ended = self.store.end_unfinished(time.time(), keep)
        if ended:
            logger.info("%d rooms were live when the node stopped; marked ended", ended)
        for row in self.store.rows("rooms.state = 'scheduled'", []):
            self.get(row["id"])

    async def close(self) -> None:
        for on_air in list(self.rooms_on_air.values()):
            await on_air.shut_down()
        await self.peers.close_all()
        if self.listeners is not self.peers:
            await self.listeners.close_all()
