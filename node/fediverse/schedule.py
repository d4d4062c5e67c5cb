"""Scheduled rooms to the fediverse, RSVPs from it, and telling our users a room started.

A public room of ours with a start time is announced to the host's followers as a
``Create{Event}`` (federation.events: what event software and Parley nodes read; Mastodon
shows it as a post of its name, time and link) and a ``Create{Note}`` "Alice scheduled a
room" (what Mastodon shows best; replies to either become comments). Changes of its
title, description or time are ``Update``s of both; cancelling it updates both to say so;
going live updates the Event (``roomState: live``), while node.fediverse.announcer posts
the "is live" Note as for any room. Every update of the Event also goes to the inboxes of
those elsewhere who sent ``Accept{Event}`` (``EventRsvps``, implemented here): their node
tells them the room started.

When any room on air here goes live, our users who asked to be reminded, and (public
rooms) our users who follow its host, are notified (node.notifications); a user of ours
invited to speak is notified too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from federation.activities import (
    RoomAnnouncement,
    build_create,
    build_room_note,
    build_update,
)
from federation.activities import RoomState as AnnouncedState
from federation.actors import ActorUrls
from federation.errors import FederationError
from federation.events import ScheduledRoom, build_event
from federation.inbox import ActorLookup
from federation.outbox import OutboxPublisher
from node.notifications import Notifier
from node.onair.events import Event
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.rooms import Room, RoomState, Visibility
from node.schedule import readable_utc
from node.store.reminders import AnnouncedEvent, Reminders

log = logging.getLogger(__name__)

UPDATE_COALESCE_S = 1.0


class ScheduleAnnouncer:
    def __init__(
        self,
        base_url: str,
        stage: Stage,
        reminders: Reminders,
        notifier: Notifier,
        publisher: Callable[[], OutboxPublisher | None],
        resolver: Callable[[], ActorLookup | None],
    ) -> None:
        self._base = base_url.rstrip("/")
        self._stage = stage
        self._reminders = reminders
        self._notifier = notifier
        self._publisher = publisher
        self._resolver = resolver
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._seen: dict[str, tuple[Any, ...]] = {}
        stage.on_air(self.watch)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def watch(self, on_air: OnAir) -> None:
        room = on_air.room
        ours = on_air.carriage.acting and self._stage.store.exists(room.id)
        invited: set[str] = set()

        def on_event(event: Event) -> None:
            kind = event["type"]
            if kind == "member":
                self._invitation(on_air, event["member"], invited)
            elif kind == "room" and ours:
                self._room_changed(on_air)

        on_air.events.subscribe(on_event)
        if ours:
            self._room_changed(on_air)

    # -- our users ----------------------------------------------------------------------

    def _invitation(self, on_air: OnAir, member: dict[str, Any], invited: set[str]) -> None:
        username = str(member.get("username"))
        if "@" in username:
            return
        if member.get("invited") and username not in invited:
            invited.add(username)
            room = on_air.room
            url = str(self._stage.room_json(room)["url"])
            self._notifier.invited(
                username, title=room.title, host=room.host_display_name, url=url, at=time.time()
            )
        elif not member.get("invited"):
            invited.discard(username)

    def _started(self, room: Room) -> None:
        url = f"{self._base}/rooms/{room.id}"
        self._notifier.room_started(
            url=url,
            title=room.title,
            host=room.host_display_name or room.owner,
            host_actor=ActorUrls.for_user(self._base, room.owner).id
            if room.visibility is Visibility.PUBLIC
            else "",
            event_id=None,
        )

    # -- the room's life cycle ------------------------------------------------------------

    def _room_changed(self, on_air: OnAir) -> None:
        room = on_air.room
        state = (room.state, room.title, room.description, room.starts_at, room.cancelled)
        before = self._seen.get(room.id)
        if state == before:
            return
        self._seen[room.id] = state
        if room.state is RoomState.LIVE and (before is None or before[0] is not RoomState.LIVE):
            self._started(room)
        if room.visibility is not Visibility.PUBLIC or room.starts_at is None:
            return
        announced = self._reminders.event_of(room.id)
        if room.state is RoomState.SCHEDULED and announced is None:
            self._spawn(self._announce(room, "Create"))
        elif announced is not None and announced.state != "ended":
            pending = self._pending.get(room.id)
            if pending is not None and not pending.done():
                pending.cancel()
            self._pending[room.id] = self._spawn(self._later(room))

    async def _later(self, room: Room) -> None:
        await asyncio.sleep(UPDATE_COALESCE_S)
        await self._announce(room, "Update")

    def _objects(
        self, room: Room, announced: AnnouncedEvent, updated: dt.datetime | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        urls = ActorUrls.for_user(self._base, room.owner)
        room_urls = self._stage.room_json(room)
        assert room.starts_at is not None
        live = room.state is RoomState.LIVE
        state = AnnouncedState(room.state.value)
        announcement = RoomAnnouncement(
            id=f"{self._base}/rooms/{room.id}",
            url=str(room_urls.get("url", f"{self._base}/rooms/{room.id}")),
            state=state,
            title=room.title,
            description=room.description,
            host=urls.id,
            listen_url=room_urls.get("listen_url") if live else None,
            whep_url=room_urls.get("whep_url") if live else None,
            speakers=(),
        )
        published = dt.datetime.fromtimestamp(announced.published_at, dt.UTC)
        starts = dt.datetime.fromtimestamp(room.starts_at, dt.UTC)
        event = build_event(
            ScheduledRoom(announcement, starts, cancelled=room.cancelled),
            event_id=announced.event_id,
            host_name=room.host_display_name or room.owner,
            followers_url=urls.followers,
            published=published,
            updated=updated,
        )
        when = readable_utc(room.starts_at)
        said = "Cancelled. " if room.cancelled else ("Live now. " if live else "")
        note_room = dataclasses.replace(
            announcement,
            state=AnnouncedState.SCHEDULED,
            description=f"{said}Starts {when}. {room.description}".strip(),
        )
        note = build_room_note(
            note_room,
            note_id=announced.note_id,
            host_name=room.host_display_name or room.owner,
            followers_url=urls.followers,
            published=published,
            base_url=self._base,
            hashtags=("ParleyScheduled",),
            updated=updated,
        )
        return event, note

    async def _announce(self, room: Room, kind: str) -> None:
        async with self._lock:
            publisher = self._publisher()
            if publisher is None:
                return
            actor = ActorUrls.for_user(self._base, room.owner).id
            announced = self._reminders.event_of(room.id)
            try:
                if kind == "Create":
                    if announced is not None:
                        return
                    announced = AnnouncedEvent(
                        room_id=room.id,
                        event_id=f"{actor}/rooms/{room.id}/event",
                        note_id=f"{actor}/rooms/{room.id}/scheduled",
                        actor=actor,
                        published_at=time.time(),
                        state="scheduled",
                    )
                    self._reminders.event_announced(announced)
                    event, note = self._objects(room, announced, None)
                    wrap = build_create
                else:
                    if announced is None or announced.state == "ended":
                        return
                    event, note = self._objects(room, announced, dt.datetime.now(dt.UTC))
                    wrap = build_update
                    if room.state is not RoomState.SCHEDULED:
                        self._reminders.set_event_state(room.id, "ended")
                note_activity = wrap(f"{actor}/activities/{uuid.uuid4()}", actor, note)
                event_activity = wrap(f"{actor}/activities/{uuid.uuid4()}", actor, event)
                event_activity["@context"] = event["@context"]
                if kind == "Create" or room.state is not RoomState.LIVE:
                    await publisher.publish(actor, note_activity)
                targets = set(await publisher.publish(actor, event_activity))
                for inbox in {i for _, i in self._reminders.rsvps(room.id)} - targets:
                    await publisher.send(actor, event_activity, inbox)
            except Exception:
                log.exception("announcing the schedule of room %s failed", room.id)

    # -- federation.ports.EventRsvps ------------------------------------------------------

    async def rsvp(self, actor: str, event_id: str, activity_id: str) -> bool:
        room_id = self._reminders.room_of_event(event_id)
        resolver = self._resolver()
        if room_id is None or resolver is None:
            return False
        try:
            remote = await resolver.actor(actor)
        except FederationError as exc:
            log.info("RSVP of %s not recorded: %s", actor, exc)
            return True
        self._reminders.add_rsvp(room_id, actor, remote.delivery_inbox, activity_id)
        return True

    async def cancel(self, actor: str, event_id: str | None) -> None:
        room_id = self._reminders.room_of_event(event_id) if event_id else None
        if event_id is None or room_id is not None:
            self._reminders.remove_rsvp(actor, room_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
