"""The fediverse in the room: replies to our rooms' public objects become comments; likes
and boosts of them are counted; our users comment with a federated reply.

Implements federation.ports.RoomComments for the inbox. A reply counts when its
``inReplyTo`` is one of our rooms' objects (``{base}/users/{owner}/rooms/{id}`` and its
``/scheduled``, ``/event`` and ``/replay``) or a comment already in a room (a thread).
Comments are stored (node.store.comments) and put on the room's bus when the room is on
air here, so relays carry them to every node that shows the room; a moderator's hide and
pin come back over the same bus and are stored here.

Our user's comment is a ``Create{Note}`` replying to the room's announcement: delivered to
their followers and, when the room is another node's, to the room's host; in a room of
ours it is also put in the room at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from federation.activities import build_create
from federation.actors import ActorUrls
from federation.errors import FederationError
from federation.outbox import OutboxPublisher
from federation.replies import Reply, build_comment
from federation.sanitize import plain_text
from node.accounts import Account
from node.comments import BOARD_SIZE, MAX_NAME, Comment, validate_comment_text
from node.onair.events import Event
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.rooms import Room
from node.store.comments import CommentStore
from node.store.federation import SqliteActorCache

log = logging.getLogger(__name__)


class RoomCommentService:
    def __init__(
        self,
        base_url: str,
        stage: Stage,
        store: CommentStore,
        actors: SqliteActorCache,
        publisher: Callable[[], OutboxPublisher | None],
        inbox_of: Callable[[str], Any],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self.stage = stage
        self.store = store
        self.actors = actors
        self._publisher = publisher
        self._inbox_of = inbox_of
        """``await inbox_of(actor_id)``: where to deliver to that actor (its shared inbox)."""
        stage.on_load(self.load)
        stage.on_air(self.watch)

    # -- which room --------------------------------------------------------------------

    def room_of(self, object_id: str) -> str | None:
        prefix = f"{self.base_url}/users/"
        if object_id.startswith(prefix) and "/rooms/" in object_id:
            room_id = object_id.split("/rooms/", 1)[1].split("/", 1)[0]
            return room_id if room_id and self.stage.store.exists(room_id) else None
        return self.store.room_of(object_id)

    def _room(self, room_id: str) -> Room | None:
        on_air = self.stage.rooms_on_air.get(room_id)
        return on_air.room if on_air is not None else None

    # -- federation.ports.RoomComments -------------------------------------------------

    async def reply(self, reply: Reply) -> None:
        room_id = self.room_of(reply.in_reply_to)
        if room_id is None:
            return
        cached = await self.actors.get(reply.author)
        username = cached.preferred_username if cached else reply.author.rsplit("/", 1)[-1]
        comment = Comment(
            id=reply.id,
            author=reply.author,
            handle=f"{username}@{urlsplit(reply.author).netloc}",
            name=plain_text((cached.name if cached else "") or username, MAX_NAME),
            content=reply.content,
            url=reply.url,
            in_reply_to=reply.in_reply_to,
            published=reply.published,
            local=reply.author.startswith(f"{self.base_url}/users/"),
        )
        self._add(room_id, comment)

    def _add(self, room_id: str, comment: Comment) -> None:
        if not self.store.save(room_id, comment):
            return
        room = self._room(room_id)
        if room is not None:
            room.add_comment(comment)

    async def deleted(self, object_id: str, by: str) -> None:
        room_id = self.store.delete(object_id, by)
        room = self._room(room_id) if room_id else None
        if room is not None:
            room.remove_comment(object_id)

    async def engagement(self, kind: str, actor: str, object_id: str, activity_id: str) -> None:
        prefix = f"{self.base_url}/users/"
        room_id = self.room_of(object_id) if object_id.startswith(prefix) else None
        if room_id is None:
            return
        self.store.add_engagement(room_id, object_id, actor, kind, activity_id)
        self._count(room_id)

    async def undo_engagement(self, kind: str, actor: str, object_id: str | None) -> None:
        room_id = self.store.remove_engagement(kind, actor, object_id)
        if room_id is not None:
            self._count(room_id)

    def _count(self, room_id: str) -> None:
        room = self._room(room_id)
        if room is not None:
            room.set_engagement(*self.store.counts(room_id))

    # -- rooms of ours: their comments in, moderators' decisions out -------------------

    def load(self, room: Room) -> None:
        comments = self.store.of_room(room.id, limit=BOARD_SIZE, hidden=True)
        room.board.comments = comments
        room.board.likes, room.board.boosts = self.store.counts(room.id)

    def watch(self, on_air: OnAir) -> None:
        room = on_air.room
        if not self.stage.store.exists(room.id) or not on_air.carriage.acting:
            return

        def persist(event: Event) -> None:
            if event["type"] == "comment_hidden":
                self.store.hide(str(event["id"]))
            elif event["type"] == "pinned":
                self.stage.store.save_pinned(room.id, room.board.pinned)

        on_air.events.subscribe(persist)

    # -- our users comment -------------------------------------------------------------

    async def post(self, account: Account, on_air: OnAir, text: Any) -> dict[str, Any]:
        """A comment by ``account`` in the room: a federated reply to its announcement."""
        body = validate_comment_text(text)
        room = on_air.room
        doc = self.stage.room_json(room)
        target = doc.get("announcement")
        urls = ActorUrls.for_user(self.base_url, account.username)
        note_id = f"{urls.id}/comments/{uuid.uuid4()}"
        now = dt.datetime.now(dt.UTC)
        in_reply_to = target if isinstance(target, str) else str(doc["url"])
        # The announcement's author: ``{node}/users/{owner}/rooms/{id}...``.
        room_author = in_reply_to.split("/rooms/", 1)[0]
        note = build_comment(
            note_id,
            author=urls.id,
            followers_url=urls.followers,
            in_reply_to=in_reply_to,
            reply_to_author=room_author,
            text=body,
            published=now,
        )
        comment = Comment(
            id=note_id,
            author=urls.id,
            handle=f"{account.username}@{self.host}",
            name=account.display_name or account.username,
            content=str(note["content"]),
            url=note_id,
            in_reply_to=in_reply_to,
            published=now.timestamp(),
            local=True,
        )
        publisher = self._publisher()
        local_room = self.stage.store.exists(room.id)
        if isinstance(target, str) and publisher is not None:
            activity = build_create(f"{urls.id}/activities/{uuid.uuid4()}", urls.id, note)
            await publisher.publish(urls.id, activity)
            if not local_room and not room_author.startswith(self.base_url):
                try:
                    inbox = await self._inbox_of(room_author)
                except FederationError as exc:
                    log.info("comment not delivered to %s: %s", room_author, exc)
                else:
                    await publisher.send(urls.id, activity, inbox)
        if local_room:
            self._add(room.id, comment)
        return comment.to_json()

    def page(self, room_id: str, *, limit: int, before: float | None) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.store.of_room(room_id, limit=limit, before=before)]
