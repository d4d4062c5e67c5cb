"""Rooms on air: a `Room` joined to its mixer, its WebRTC sessions and its watchers.

`Stage` is the node-wide registry; `OnAir` is one room's runtime. The room (node.rooms)
decides who may do what; this module carries the consequences into media: a mute drops
that speaker's audio in the mixer, a move to the audience closes their publishing session,
a removal closes everything they had open, and an ended room stops its mixer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from node.accounts import Account, AccountDirectory
from node.config import Config
from node.errors import Conflict, Forbidden, NotFound
from node.mailbox import Mailbox
from node.media.errors import SessionNotFound, StreamClosed, WorkerUnavailable
from node.media.mixer import RoomMixer, SpeakerInput
from node.media.packets import PacketStream
from node.media.peers import ListenerSessions, PeerSessions
from node.media.stream import OggOpusPages
from node.media.workers import WorkerPool
from node.rooms import (
    Event,
    Role,
    Room,
    RoomState,
    RoomStore,
    Visibility,
    new_room_id,
    room_from_row,
)

if TYPE_CHECKING:
    from node.relay import Mirror, Names, RelayHub

logger = logging.getLogger(__name__)

LEVELS_INTERVAL_S = 0.25


class Watcher(Mailbox[dict[str, Any]]):
    """One WebSocket client of a room: events are queued and sent by its own task, so a
    slow client never blocks the room (its queue is bounded; overflow disconnects it)."""

    def __init__(self, username: str | None) -> None:
        super().__init__(maxsize=256)
        self.username = username
        self.levels_in_audio = False
        """The client said it reads speaking levels from its WebRTC audio (the CSRCs of
        program packets), so ``levels`` messages are of no use to it. Recorded only: the
        room's event bus may skip them for such a watcher (docs/API.md)."""


@dataclass
class Publisher:
    username: str
    session_id: str
    sink: SpeakerInput
    since: float = field(default_factory=time.monotonic)

    def silent_for(self, now: float) -> float:
        return now - max(self.sink.last_audio_at, self.since)


class OnAir:
    def __init__(self, room: Room, stage: Stage) -> None:
        self.room = room
        self._stage = stage
        self.mixer: RoomMixer | None = None
        self.ogg_pages: OggOpusPages | None = None
        self._mixer_task: asyncio.Task[None] | None = None
        self._levels_task: asyncio.Task[None] | None = None
        self._grace_task: asyncio.Task[None] | None = None
        self.publishers: dict[str, Publisher] = {}
        self.listener_sessions: set[str] = set()
        self.http_listeners = 0
        self.watchers: set[Watcher] = set()
        self.mirror: Mirror | None = None
        """Set when this node carries a room of another node (node.relay)."""
        self.relay_hub: RelayHub | None = None
        """Set once another node relays this room from us."""
        self.epoch = 0
        room.subscribe(self._on_event)

    def attach_mirror(self, mirror: Mirror) -> None:
        self.mirror = mirror

    @property
    def relaying(self) -> bool:
        """True while the room's mixer runs elsewhere and we carry its stream."""
        return self.mirror is not None and not self.mirror.promoted

    # Media ---------------------------------------------------------------------------

    def ensure_mixer(self) -> RoomMixer:
        if self.mixer is None:
            self.mixer = RoomMixer(csrc_of=self.room.csrc_for)
            # Ogg pages are built once per room and shared by every HTTP listener.
            if self.mirror is None:
                self.ogg_pages = OggOpusPages(
                    self.mixer.program, packets_per_page=self._ogg_packets_per_page
                )
            self._mixer_task = asyncio.create_task(self.mixer.run(), name=f"mixer-{self.room.id}")
            self._levels_task = asyncio.create_task(self._levels_loop())
        return self.mixer

    @property
    def program(self) -> PacketStream:
        if self.mirror is not None:
            # Listeners of a carried room read the republished stream, which stays the
            # same object across upstream changes and a promotion.
            return self.mirror.program
        return self.ensure_mixer().program

    @property
    def _ogg_packets_per_page(self) -> int:
        return self._stage.config.media.ogg_page_ms // 20

    @property
    def pages(self) -> OggOpusPages:
        if self.mirror is not None:
            if self.ogg_pages is None:
                self.ogg_pages = OggOpusPages(
                    self.mirror.program, packets_per_page=self._ogg_packets_per_page
                )
            return self.ogg_pages
        self.ensure_mixer()
        assert self.ogg_pages is not None
        return self.ogg_pages

    async def _levels_loop(self) -> None:
        timeout = self._stage.config.media.speaker_timeout_s
        last_sent: dict[str, float] = {}
        while self.mixer is not None:
            await asyncio.sleep(LEVELS_INTERVAL_S)
            if self.mixer is None:
                break
            levels = {k: round(v, 3) for k, v in self.mixer.levels().items()}
            if levels != last_sent:
                self.broadcast({"type": "levels", "levels": levels})
                last_sent = levels
            now = time.monotonic()
            for publisher in list(self.publishers.values()):
                if publisher.silent_for(now) > timeout:
                    logger.info("speaker %s went silent on the wire; closing", publisher.username)
                    await self._stage.peers.close(publisher.session_id)
                    self.publisher_gone(publisher.session_id)

    async def publish(self, account: Account, offer_sdp: str) -> tuple[str, str]:
        username = account.username
        if not self.room.can_publish(username):
            if self.room.state is not RoomState.LIVE:
                raise Conflict("the room is not live")
            raise Forbidden("only the host and invited speakers may publish")
        existing = self.publishers.get(username)
        if existing is not None:
            # A reconnecting browser replaces its old session rather than doubling up.
            await self._stage.peers.close(existing.session_id)
            self.publisher_gone(existing.session_id)
        if self.mirror is not None:
            return await self._publish_up(username, offer_sdp)
        mixer = self.ensure_mixer()
        sink = mixer.add_speaker(username)
        sink.muted = self.room.members[username].muted
        try:
            session_id, answer = await self._stage.peers.publish(
                offer_sdp, sink=sink, returns=mixer.return_stream(username)
            )
        except Exception:
            mixer.remove_speaker(username)
            raise
        self._register_publisher(username, session_id, sink)
        self.room.set_publishing(username, True)
        self._update_host_grace()
        return session_id, answer

    async def _publish_up(self, username: str, offer_sdp: str) -> tuple[str, str]:
        # A speaker of ours in a carried room: the uplink goes to the acting origin, whose
        # state (replicated here) says whether they are on stage.
        assert self.mirror is not None
        sink = self.mirror.uplink(username)
        sink.muted = self.room.members[username].muted
        try:
            session_id, answer = await self._stage.peers.publish(
                offer_sdp, sink=sink, returns=sink.returns
            )
        except Exception:
            self.mirror.uplink_gone(username)
            raise
        self._register_publisher(username, session_id, sink)
        if not self.relaying:
            self.room.set_publishing(username, True)
        return session_id, answer

    def _register_publisher(self, username: str, session_id: str, sink: SpeakerInput) -> None:
        self.publishers[username] = Publisher(username, session_id, sink)
        self._stage.sessions[session_id] = self
        # A mute, unmute or move to the audience made while the peer connection was being
        # set up found no publisher to apply to: apply the member as it is now.
        member = self.room.members.get(username)
        if member is not None:
            self._member_to_media(member.to_json())

    def publisher_gone(self, session_id: str) -> None:
        for username, publisher in list(self.publishers.items()):
            if publisher.session_id == session_id:
                del self.publishers[username]
                if self.mirror is not None:
                    self.mirror.uplink_gone(username)
                elif self.mixer is not None:
                    self.mixer.remove_speaker(username)
                if not self.relaying:
                    self.room.set_publishing(username, False)
        self._stage.sessions.pop(session_id, None)
        self._update_host_grace()

    async def listen(self, offer_sdp: str) -> tuple[str, str]:
        if self.room.state is not RoomState.LIVE:
            raise Conflict("the room is not live")
        session_id, answer = await self._stage.listeners.listen(offer_sdp, stream=self.program)
        self._add_listener(session_id)
        return session_id, answer

    def _add_listener(self, session_id: str) -> None:
        self.listener_sessions.add(session_id)
        self._stage.sessions[session_id] = self
        self._count_listeners()

    def listener_gone(self, session_id: str) -> None:
        self.listener_sessions.discard(session_id)
        self._stage.sessions.pop(session_id, None)
        self._count_listeners()

    def hand_off_http(self, sock: socket.socket, head: bytes) -> str | None:
        """Give an Ogg listener's accepted socket to a media worker ([media] workers).

        Returns the listener's session id (counted and ended like a WHEP listener's), or
        None when the node has no workers or none can take it now: the caller serves the
        listener itself.
        """
        if self.room.state is not RoomState.LIVE:
            raise Conflict("the room is not live")
        pool = self._stage.listeners
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
        self.http_listeners += delta
        self._count_listeners()

    def local_listener_count(self) -> int:
        """Listeners served by this node, plus those of the relays it serves."""
        relayed = self.relay_hub.relayed_listeners() if self.relay_hub is not None else 0
        return len(self.listener_sessions) + self.http_listeners + relayed

    def count_listeners(self) -> None:
        self._count_listeners()

    def _count_listeners(self) -> None:
        if self.relaying:
            return  # the acting origin counts; our total goes up the relay stream
        self.room.set_listener_count(self.local_listener_count())

    async def close_session(self, session_id: str, username: str | None) -> None:
        if session_id in self.listener_sessions:
            with contextlib.suppress(SessionNotFound):
                await self._stage.listeners.close(session_id)
            self.listener_gone(session_id)
            return
        for publisher in self.publishers.values():
            if publisher.session_id == session_id:
                if username != publisher.username:
                    raise Forbidden("this session is not yours")
                with contextlib.suppress(SessionNotFound):
                    await self._stage.peers.close(session_id)
                self.publisher_gone(session_id)
                return
        # Also the answer for a session the node already closed (moved to the audience).
        raise NotFound("no such session")

    # Watchers (WebSocket clients) ------------------------------------------------------

    def watch(self, account: Account | None) -> Watcher:
        if account is not None:
            if self.relaying:
                # Presence goes to the acting origin over the relay stream; the member
                # shows up here when its state comes back.
                if account.username in self.room.blocked:
                    raise Forbidden("you are blocked from this room")
            else:
                self.room.connect(account.username, account.display_name)
        watcher = Watcher(account.username if account else None)
        self.watchers.add(watcher)
        you = None
        if account is not None:
            role = self.room.role_of(account.username) or Role.LISTENER
            you = {"username": account.username, "role": role}
        watcher.send({"type": "snapshot", "room": self._stage.room_json(self.room), "you": you})
        self._update_host_grace()
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        if watcher not in self.watchers:
            return
        self.watchers.discard(watcher)
        if watcher.username is not None and not self.relaying:
            self.room.disconnect(watcher.username)
        self._update_host_grace()

    def broadcast(self, message: dict[str, Any]) -> None:
        for watcher in list(self.watchers):
            if not watcher.send(message):
                logger.info("dropping a WebSocket client that cannot keep up")
                self.watchers.discard(watcher)
                watcher.close()
                if watcher.username is not None and not self.relaying:
                    self.room.disconnect(watcher.username)

    # Room events -> media and watchers ---------------------------------------------------

    def _on_event(self, event: Event) -> None:
        kind = event["type"]
        if kind == "room":
            event = {"type": "room", "room": self._stage.room_json(self.room)}
        self.broadcast(event)
        if self.relay_hub is not None:
            self.relay_hub.event(event)
        if kind == "member" and self.relay_hub is not None:
            self.relay_hub.member_changed(event["member"])
        if self.mirror is not None:
            self._on_mirror_event(kind, event)
            return
        if kind == "member":
            self._member_to_media(event["member"])
        elif kind == "kicked":
            username = event["username"]
            self._stop_publishing(username)
            for watcher in [w for w in self.watchers if w.username == username]:
                self.watchers.discard(watcher)
                watcher.close()
            if event["blocked"]:
                self._stage.persist_block(self.room, username)
        elif kind == "room" and self.room.state is RoomState.ENDED:
            self._stage.persist(self.room)
            asyncio.get_running_loop().create_task(self.shut_down())
        elif kind == "room":
            self._stage.persist(self.room)

    def _on_mirror_event(self, kind: str, event: Event) -> None:
        assert self.mirror is not None
        if kind == "member":
            self._member_to_media(event["member"])
        elif kind == "kicked":
            self._stop_publishing(event["username"])
        elif kind == "room" and self.room.state is RoomState.ENDED:
            self._stage.end_mirror(self)
            if self._stage.store.exists(self.room.id):
                # Our own room, carried on by another node since a move or our restart.
                self._stage.persist(self.room)
            asyncio.get_running_loop().create_task(self.shut_down())

    def _member_to_media(self, member: dict[str, Any]) -> None:
        """A mute reaches the mixer; a move to the audience ends the publishing session."""
        publisher = self.publishers.get(member["username"])
        if publisher is not None:
            publisher.sink.muted = member["muted"]
            if member["role"] == Role.LISTENER:
                self._close_later(publisher.session_id)

    def _stop_publishing(self, username: str) -> None:
        publisher = self.publishers.get(username)
        if publisher is not None:
            self._close_later(publisher.session_id)

    def _close_later(self, session_id: str) -> None:
        async def close() -> None:
            with contextlib.suppress(Exception):
                await self._stage.peers.close(session_id)
            self.publisher_gone(session_id)

        asyncio.get_running_loop().create_task(close())

    # Host leaving without ending ----------------------------------------------------------

    def _update_host_grace(self) -> None:
        if self.mirror is not None:
            return  # the host belongs to another node; nobody here can come back as them
        if self.room.state is not RoomState.LIVE or self.room.host_present:
            if self._grace_task is not None:
                self._grace_task.cancel()
                self._grace_task = None
            return
        if self._grace_task is None:
            self._grace_task = asyncio.get_running_loop().create_task(self._end_after_grace())

    async def _end_after_grace(self) -> None:
        await asyncio.sleep(self._stage.config.media.host_grace_s)
        self._grace_task = None
        if self.room.state is RoomState.LIVE and not self.room.host_present:
            logger.info("host of room %s did not come back; ending it", self.room.id)
            self.room.end(None)

    async def stop_mixing(self, *, keep_program: bool, close_speakers: bool) -> None:
        """Hand the room's mixing to another node (a move). With ``close_speakers`` our
        speakers' sessions end (their sinks feed this mixer; their clients publish again,
        through the relay); with ``keep_program`` the program stream stays open so our
        listeners go on reading it, fed from the relay."""
        if close_speakers:
            for publisher in list(self.publishers.values()):
                with contextlib.suppress(Exception):
                    await self._stage.peers.close(publisher.session_id)
                self.publisher_gone(publisher.session_id)
        if self._grace_task is not None:
            self._grace_task.cancel()
            self._grace_task = None
        if self._levels_task is not None:
            self._levels_task.cancel()
            self._levels_task = None
        mixer, self.mixer = self.mixer, None
        if mixer is None:
            return
        mixer.stop()
        for name in mixer.speakers():
            mixer.remove_speaker(name)
        if not keep_program:
            mixer.close()
        if self._mixer_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._mixer_task, 2)
            self._mixer_task = None

    async def shut_down(self) -> None:
        if self.relay_hub is not None:
            self.relay_hub.close()
        if self.mirror is not None:
            await self.mirror.close()
        for task in (self._grace_task, self._levels_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        # Closing a session calls back into publisher_gone / listener_gone: iterate copies.
        for publisher in list(self.publishers.values()):
            with contextlib.suppress(Exception):
                await self._stage.peers.close(publisher.session_id)
            self._stage.sessions.pop(publisher.session_id, None)
        for session_id in list(self.listener_sessions):
            with contextlib.suppress(Exception):
                await self._stage.listeners.close(session_id)
            self._stage.sessions.pop(session_id, None)
        self.publishers.clear()
        self.listener_sessions.clear()
        if self.mixer is not None:
            self.mixer.stop()
            self.mixer.close()
            self.mixer = None
        if self.ogg_pages is not None:
            await self.ogg_pages.close()
            self.ogg_pages = None
        if self._mixer_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._mixer_task, 2)
        for watcher in list(self.watchers):
            watcher.close()
        self.watchers.clear()
        self._stage.rooms_on_air.pop(self.room.id, None)


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
    ) -> None:
        self.config = config
        self.accounts = accounts
        self.store = store
        self.peers = peers
        """Speakers' sessions (and listeners' unless ``listeners`` is given)."""
        self.listeners: ListenerSessions = listeners if listeners is not None else peers
        """WHEP listeners' sessions: these peers, or worker processes ([media] workers)."""
        self._room_urls = room_url
        self.rooms_on_air: dict[str, OnAir] = {}
        self.sessions: dict[str, OnAir] = {}
        self._room_watchers: list[Callable[[Room], None]] = []
        self.recovering: set[str] = set()
        """Our rooms that were live when we stopped, while node.relay asks the nodes
        that relayed them whether one carries them on (they are not served meanwhile)."""
        self._mirror_ended: list[Callable[[str], None]] = []
        peers.on_closed(self._peer_closed)
        if self.listeners is not peers:
            self.listeners.on_closed(self._peer_closed)

    def on_room(self, callback: Callable[[Room], None]) -> None:
        """Call `callback` with every room this node puts on air (created or loaded), so
        other parts (federation announcements) can subscribe to its events."""
        self._room_watchers.append(callback)

    def _on_air(self, room: Room) -> OnAir:
        on_air = self.rooms_on_air[room.id] = OnAir(room, self)
        for callback in self._room_watchers:
            callback(room)
        return on_air

    def _peer_closed(self, session_id: str) -> None:
        on_air = self.sessions.get(session_id)
        if on_air is None:
            return
        if session_id in on_air.listener_sessions:
            on_air.listener_gone(session_id)
        else:
            on_air.publisher_gone(session_id)

    def room_json(self, room: Room) -> dict[str, Any]:
        doc = {**room.to_json(), **self._room_urls(room)}
        on_air = self.rooms_on_air.get(room.id)
        if on_air is not None and on_air.mirror is not None:
            doc.update(on_air.mirror.to_json())
        return doc

    def open_mirror(
        self,
        doc: dict[str, Any],
        names: Names,
        peer_host: str | None,
        *,
        room_id: str | None = None,
    ) -> OnAir:
        """A live room of another node, carried here under a local id (node.relay fills in
        its state and stream). Mirrors are not in the rooms table and are not announced."""
        from node.relay import replicate, visibility_of

        def name(n: str) -> str:
            return names.from_peer(n, peer_host) if peer_host else n

        host = doc.get("host") or {}
        room = Room(
            id=room_id or new_room_id(),
            host=name(str(host.get("username") or "host")),
            host_display_name=str(host.get("display_name") or ""),
            title=str(doc.get("title") or "Remote room"),
            visibility=visibility_of(doc),
            max_speakers=int(doc.get("max_speakers") or self.config.media.max_speakers),
        )
        room.state = RoomState.LIVE
        replicate(room, doc, name)
        on_air = self.rooms_on_air[room.id] = OnAir(room, self)
        return on_air

    def end_mirror(self, on_air: OnAir) -> None:
        for callback in self._mirror_ended:
            callback(on_air.room.id)

    def create_room(self, host: Account, title: str, description: str, visibility: Any) -> Room:
        room = Room(
            id=new_room_id(),
            host=host.username,
            host_display_name=host.display_name,
            title=title,
            description=description,
            visibility=visibility,
            max_speakers=self.config.media.max_speakers,
        )
        self.store.insert(room, host.id)
        self._on_air(room)
        return room

    def get(self, room_id: str) -> OnAir:
        on_air = self.rooms_on_air.get(room_id)
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
        if room.state is RoomState.ENDED:
            # Ended rooms are read-only history: not kept on air.
            return OnAir(room, self)
        return self._on_air(room)

    def on_mirror_ended(self, callback: Callable[[str], None]) -> None:
        self._mirror_ended.append(callback)

    def live_public_rooms(self) -> list[Room]:
        rooms = [
            on_air.room
            for on_air in self.rooms_on_air.values()
            if on_air.room.state is RoomState.LIVE
            and on_air.room.visibility == Visibility.PUBLIC
            and on_air.mirror is None
        ]
        return sorted(rooms, key=lambda r: r.started_at or 0.0, reverse=True)

    def rooms_hosted_by(self, username: str) -> list[Room]:
        rows = self.store.rows(
            "accounts.username = ? order by rooms.created_at desc limit 50", [username]
        )
        return [self.get(r["id"]).room for r in rows]

    def persist(self, room: Room) -> None:
        self.store.save(room)

    def persist_block(self, room: Room, username: str) -> None:
        with contextlib.suppress(NotFound):
            self.store.save_block(room.id, self.accounts.get(username).id)

    def load_unfinished(self, keep: Collection[str] = ()) -> None:
        """``keep``: live rooms node.relay takes care of (carried on by other nodes)."""
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
