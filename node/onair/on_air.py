"""One room on air: the room (node.rooms), its one program source, its sessions and its
event bus.

The room decides who may do what; the source decides where audio goes and who decides
the room's state (this node as origin, or the node upstream); this module carries the
consequences into sessions: a mute reaches the speaker's audio, a move to the audience
closes their publishing session, a removal closes everything they had open, and an ended
room stops its source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from node.errors import Conflict, Forbidden, NotFound
from node.media.errors import SessionNotFound, StreamClosed, WorkerUnavailable
from node.media.packets import PacketStream
from node.media.peers import ListenerSessions, PeerSessions
from node.media.stream import OggOpusPages
from node.media.workers import WorkerPool
from node.onair.events import Event, RoomEvents
from node.onair.source import ProgramSource, Republisher, Speaker
from node.onair.watchers import RemoteWatcher, RoomEventsPath, RoomWatchers, Watcher
from node.room_actions import Act, RoomAction
from node.rooms import Role, Room, RoomState
from node.succession import Carriage
from node.visitors import Person, Visitor

logger = logging.getLogger(__name__)

HOUSEKEEPING_S = 0.25


@dataclass
class Publisher:
    """A speaker of this node publishing over WebRTC (WHIP)."""

    username: str
    session_id: str
    sink: Speaker
    since: float = field(default_factory=time.monotonic)

    def silent_for(self, now: float) -> float:
        return now - max(self.sink.last_audio_at, self.since)


@dataclass(frozen=True)
class Sessions:
    """What an OnAir needs of its node: sessions, its registry's hooks, settings."""

    peers: PeerSessions
    listeners: ListenerSessions
    by_id: dict[str, OnAir]
    room_json: Callable[[OnAir], dict[str, Any]]
    persist: Callable[[Room], None]
    persist_block: Callable[[Room, str, bool], None]
    forget: Callable[[OnAir], None]
    ogg_packets_per_page: int
    speaker_timeout_s: float
    room_events: RoomEventsPath = "shared"


class OnAir:
    def __init__(
        self, room: Room, carriage: Carriage, source: ProgramSource | None, node: Sessions
    ) -> None:
        self.room = room
        self.carriage = carriage
        self._node = node
        self.events = RoomEvents()
        self.program = PacketStream()
        """What listeners and outputs read: one object and one packet line for the
        room's whole time on air, whichever source feeds it."""
        self.program_feed = Republisher(self.program)
        self.speakers: dict[str, Speaker] = {}
        """Everyone whose audio is in the room via this node: publishers of ours, and
        remote speakers arriving over the relay (node.relaying.hub)."""
        self.publishers: dict[str, Publisher] = {}
        self.listener_sessions: set[str] = set()
        self.http_listeners = 0
        self.relayed_listeners = 0
        """Listeners of the relays subscribed to this room (node.relaying.hub)."""
        self.listeners_started = 0
        """WebRTC and Ogg listening sessions this node started for the room."""
        self.relayed_totals: dict[str, int] = {}
        """Per relay host: the sessions it (and its relays) started (the summary)."""
        pool = node.listeners if isinstance(node.listeners, WorkerPool) else None
        self.watchers = RoomWatchers(
            path=node.room_events, dropped=self._watcher_dropped, host=pool
        )
        """The room's WebSocket clients (node/onair/watchers.py)."""
        self.source: ProgramSource | None = source
        self._started = False
        self._housekeeping: asyncio.Task[None] | None = None
        self._ogg_pages: OggOpusPages | None = None
        room.subscribe(self._room_event)
        self.events.subscribe(self.watchers.publish)
        self.events.subscribe(self._to_sessions)

    # -- the source -----------------------------------------------------------------------

    def go_live(self) -> None:
        """Start the source once the room is live (idempotent)."""
        if self._started or self.source is None or self.room.state is not RoomState.LIVE:
            return
        self._started = True
        self.source.start()
        for speaker in self.speakers.values():
            self.source.attach(speaker)
        if self._housekeeping is None or self._housekeeping.done():
            self._housekeeping = asyncio.get_running_loop().create_task(self._check_publishers())

    async def use_source(self, source: ProgramSource) -> None:
        """Feed the room from ``source`` from now on (a relay takes the room over, a room
        moves on). Sessions, listeners and the program stream stay."""
        old, self.source = self.source, source
        if old is not None and self._started:
            for speaker in self.speakers.values():
                old.detach(speaker)
            await old.stop()
        self._started = False
        self.go_live()
        self.count_listeners()

    def _source(self) -> ProgramSource:
        if self.source is None:
            raise Conflict("the room is not on air here")
        return self.source

    @property
    def pages(self) -> OggOpusPages:
        """Ogg pages built once per room and shared by every HTTP listener."""
        if self._ogg_pages is None:
            self._ogg_pages = OggOpusPages(
                self.program, packets_per_page=self._node.ogg_packets_per_page
            )
        return self._ogg_pages

    # -- speakers -------------------------------------------------------------------------

    async def publish(self, account: Person, offer_sdp: str) -> tuple[str, str]:
        username = account.username
        if not self.room.can_publish(username):
            if self.room.state is not RoomState.LIVE:
                raise Conflict("the room is not live")
            raise Forbidden("only the host and invited speakers may publish")
        existing = self.publishers.get(username)
        if existing is not None:
            # A reconnecting browser replaces its old session rather than doubling up.
            await self._node.peers.close(existing.session_id)
            self.publisher_gone(existing.session_id)
        speaker = Speaker(username)
        speaker.muted = self.room.members[username].muted
        session_id, answer = await self._node.peers.publish(
            offer_sdp, sink=speaker, returns=speaker.returns
        )
        self.publishers[username] = Publisher(username, session_id, speaker)
        self._node.by_id[session_id] = self
        self.add_speaker(speaker)
        # A mute, unmute or move to the audience made while the peer connection was being
        # set up found no publisher to apply to: apply the member as it is now.
        member = self.room.members.get(username)
        if member is not None:
            self._member_to_media(member.to_json())
        return session_id, answer

    def add_speaker(self, speaker: Speaker) -> None:
        """A speaker whose audio is now in the room (ours, or arriving over the relay)."""
        old = self.speakers.pop(speaker.name, None)
        if old is not None and old is not speaker:
            self._detach(old)
        self.speakers[speaker.name] = speaker
        if self._started and self.source is not None:
            self.source.attach(speaker)

    def remove_speaker(self, name: str) -> None:
        speaker = self.speakers.pop(name, None)
        if speaker is not None:
            self._detach(speaker)

    def _detach(self, speaker: Speaker) -> None:
        if self._started and self.source is not None:
            self.source.detach(speaker)
        speaker.close()

    def publisher_gone(self, session_id: str) -> None:
        for username, publisher in list(self.publishers.items()):
            if publisher.session_id == session_id:
                del self.publishers[username]
                if self.speakers.get(username) is publisher.sink:
                    self.remove_speaker(username)
        self._node.by_id.pop(session_id, None)

    async def close_publisher(self, username: str) -> None:
        publisher = self.publishers.get(username)
        if publisher is not None:
            with contextlib.suppress(Exception):
                await self._node.peers.close(publisher.session_id)
            self.publisher_gone(publisher.session_id)

    async def _check_publishers(self) -> None:
        """A speaker whose session went silent on the wire is closed (its peer died)."""
        timeout = self._node.speaker_timeout_s
        while self.room.state is RoomState.LIVE:
            await asyncio.sleep(HOUSEKEEPING_S)
            now = time.monotonic()
            for publisher in list(self.publishers.values()):
                if publisher.silent_for(now) > timeout:
                    logger.info("speaker %s went silent on the wire; closing", publisher.username)
                    await self.close_publisher(publisher.username)

    # -- listeners ------------------------------------------------------------------------

    async def listen(self, offer_sdp: str) -> tuple[str, str]:
        if self.room.state is not RoomState.LIVE:
            raise Conflict("the room is not live")
        session_id, answer = await self._node.listeners.listen(offer_sdp, stream=self.program)
        self._add_listener(session_id)
        return session_id, answer

    def _add_listener(self, session_id: str) -> None:
        self.listeners_started += 1
        self.listener_sessions.add(session_id)
        self._node.by_id[session_id] = self
        self.count_listeners()

    def listener_gone(self, session_id: str) -> None:
        self.listener_sessions.discard(session_id)
        self._node.by_id.pop(session_id, None)
        self.count_listeners()

    def hand_off_http(self, sock: socket.socket, head: bytes) -> str | None:
        """Give an Ogg listener's accepted socket to a media worker ([media] workers).

        Returns the listener's session id (counted and ended like a WHEP listener's), or
        None when the node has no workers or none can take it now: the caller serves the
        listener itself.
        """
        if self.room.state is not RoomState.LIVE:
            raise Conflict("the room is not live")
        pool = self._node.listeners
        if not isinstance(pool, WorkerPool):
            return None
        try:
            session_id = pool.hand_off(sock, stream=self.program, head=head)
        except WorkerUnavailable as exc:
            logger.warning("serving an Ogg listener in the node process: %s", exc)
            return None
        except StreamClosed:
            return None  # the room is ending: the node process's stream ends at once
        self._add_listener(session_id)
        return session_id

    def http_listener(self, delta: int) -> None:
        if delta > 0:
            self.listeners_started += delta
        self.http_listeners += delta
        self.count_listeners()

    def local_listener_count(self) -> int:
        """Listeners served by this node, plus those of the relays it serves."""
        return len(self.listener_sessions) + self.http_listeners + self.relayed_listeners

    def local_listener_total(self) -> int:
        """Listening sessions ever started here, plus those the relays report."""
        return self.listeners_started + sum(self.relayed_totals.values())

    def count_listeners(self) -> None:
        if self.source is not None:
            self.source.listeners(self.local_listener_count())

    async def close_session(self, session_id: str, username: str | None) -> None:
        if session_id in self.listener_sessions:
            with contextlib.suppress(SessionNotFound):
                await self._node.listeners.close(session_id)
            self.listener_gone(session_id)
            return
        for publisher in self.publishers.values():
            if publisher.session_id == session_id:
                if username != publisher.username:
                    raise Forbidden("this session is not yours")
                with contextlib.suppress(SessionNotFound):
                    await self._node.peers.close(session_id)
                self.publisher_gone(session_id)
                return
        # Also the answer for a session the node already closed (moved to the audience).
        raise NotFound("no such session")

    # -- actions --------------------------------------------------------------------------

    async def act(
        self, account: Person, action: RoomAction, target: str, arguments: Mapping[str, Any]
    ) -> bool:
        """A user or visitor of this node acts in the room (node/room_actions.py): True if
        applied here, False if sent on to the room's acting origin."""
        self._remember(account)
        act = Act(account.username, target, arguments)
        return await self._source().act(action, act, account.display_name)

    async def drop_user(self, username: str) -> None:
        """Close everything ``username`` has open in the room (their account was
        suspended): their publishing session and their room sockets."""
        await self.close_publisher(username)
        for watcher in [w for w in self.watchers if w.username == username]:
            self.watchers.close(watcher)
            if self.source is not None:
                self.source.leave(username)

    def _remember(self, person: Person) -> None:
        """What this node shows of ``person`` beyond the room's state: a visitor's mark and
        avatar, an account's avatar (Room.member_extras; never replicated)."""
        if isinstance(person, Visitor):
            self.room.member_extras[person.username] = {
                "visitor": True,
                "avatar_url": person.avatar_url,
            }
        elif person.avatar_path:
            self.room.member_extras[person.username] = {"avatar_url": person.avatar_path}

    # -- watchers (WebSocket clients) -----------------------------------------------------

    def watch(self, account: Person | None) -> Watcher:
        self._join_as_watcher(account)
        watcher = Watcher(
            account.username if account else None,
            visitor=account if isinstance(account, Visitor) else None,
        )
        self.watchers.add(watcher)
        watcher.send(self._snapshot(account))
        return watcher

    def watch_elsewhere(
        self, account: Person | None, sock: socket.socket, head: Callable[[str], bytes]
    ) -> RemoteWatcher | None:
        """Hand a watcher's accepted connection to a media worker ([media] workers):
        ``head(snapshot_json)`` is what the worker writes first (the handshake's answer
        and the snapshot). None when it stays here (no workers, the per-watcher path, or
        no worker can take it now); then the caller calls :meth:`watch`."""
        pool = self.watchers.host
        if not isinstance(pool, WorkerPool) or self.watchers.path != "shared":
            return None
        self._join_as_watcher(account)
        self.watchers.flush()  # what came before is in the snapshot
        snapshot = json.dumps(self._snapshot(account))
        try:
            session_id = pool.hand_off_ws(sock, feed=self.watchers, head=head(snapshot))
        except WorkerUnavailable as exc:
            logger.warning("serving a room WebSocket in the node process: %s", exc)
            if account is not None and self.source is not None:
                self.source.leave(account.username)
            return None
        watcher = RemoteWatcher(
            account.username if account else None,
            session_id,
            visitor=account if isinstance(account, Visitor) else None,
        )
        self.watchers.add_remote(watcher)
        self._node.by_id[session_id] = self
        return watcher

    def remote_watcher_gone(self, session_id: str) -> None:
        self._node.by_id.pop(session_id, None)
        watcher = self.watchers.remote_gone(session_id)
        if watcher is not None and watcher.username is not None and self.source is not None:
            self.source.leave(watcher.username)

    def _join_as_watcher(self, account: Person | None) -> None:
        if account is not None:
            if account.username in self.room.blocked:
                raise Forbidden("you are blocked from this room")
            self._remember(account)
            self._source().join(account.username, account.display_name)

    def _snapshot(self, account: Person | None) -> dict[str, Any]:
        you: dict[str, Any] | None = None
        if account is not None:
            role = self.room.role_of(account.username) or Role.LISTENER
            you = {"username": account.username, "role": role}
            if isinstance(account, Visitor):
                you["visitor"] = True
        return {"type": "snapshot", "room": self._node.room_json(self), "you": you}

    def unwatch(self, watcher: Watcher) -> None:
        if not self.watchers.discard(watcher):
            return
        if watcher.username is not None and self.source is not None:
            self.source.leave(watcher.username)

    def _watcher_dropped(self, watcher: Watcher) -> None:
        """A watcher too slow to keep up was dropped: its user leaves."""
        if watcher.username is not None and self.source is not None:
            self.source.leave(watcher.username)

    # -- room events -> the bus -> sessions -----------------------------------------------

    def _room_event(self, event: Event) -> None:
        if event["type"] == "room":
            event = {"type": "room", "room": self._node.room_json(self)}
        self.events.publish(event)

    def _to_sessions(self, event: Event) -> None:
        kind = event["type"]
        if kind == "member":
            self._member_to_media(event["member"])
        elif kind == "kicked":
            username = event["username"]
            self._close_later(username)
            for watcher in [w for w in self.watchers if w.username == username]:
                self.watchers.close(watcher)
            self._node.persist_block(self.room, username, bool(event["blocked"]))
        elif kind == "room" and self.room.state is RoomState.LIVE:
            self._node.persist(self.room)
            self.go_live()
        elif kind == "room" and self.room.state is RoomState.ENDED:
            self._node.persist(self.room)
            self.carriage.end()
            asyncio.get_running_loop().create_task(self.shut_down())
        elif kind == "room":
            self._node.persist(self.room)

    def _member_to_media(self, member: dict[str, Any]) -> None:
        """A mute reaches the speaker's audio; a move to the audience ends the session."""
        speaker = self.speakers.get(member["username"])
        if speaker is not None:
            speaker.muted = member["muted"]
        if member["role"] == Role.LISTENER and member["username"] in self.publishers:
            self._close_later(member["username"])

    def _close_later(self, username: str) -> None:
        if username in self.publishers:
            asyncio.get_running_loop().create_task(self.close_publisher(username))

    # -- the end --------------------------------------------------------------------------

    async def shut_down(self) -> None:
        source, self.source = self.source, None
        if source is not None and self._started:
            with contextlib.suppress(Exception):
                await source.stop()
        self._started = False
        if self._housekeeping is not None and self._housekeeping is not asyncio.current_task():
            self._housekeeping.cancel()
        # Closing a session calls back into publisher_gone / listener_gone: iterate copies.
        for publisher in list(self.publishers.values()):
            with contextlib.suppress(Exception):
                await self._node.peers.close(publisher.session_id)
            self._node.by_id.pop(publisher.session_id, None)
        for session_id in list(self.listener_sessions):
            with contextlib.suppress(Exception):
                await self._node.listeners.close(session_id)
            self._node.by_id.pop(session_id, None)
        self.publishers.clear()
        self.listener_sessions.clear()
        for speaker in list(self.speakers.values()):
            speaker.close()
        self.speakers.clear()
        self.program.close()
        if self._ogg_pages is not None:
            await self._ogg_pages.close()
            self._ogg_pages = None
        self.watchers.close_all()
        self._node.forget(self)
