"""Who wants to hear when a room starts (``room_reminders``: our users, for rooms here or
elsewhere; ``event_rsvps``: other servers' users who sent ``Accept{Event}`` for one of our
rooms), and the Events we announced (``fed_room_events``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True, slots=True)
class AnnouncedEvent:
    room_id: str
    event_id: str
    note_id: str
    actor: str
    published_at: float
    state: str


class Reminders:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    # -- our users -------------------------------------------------------------------------

    def add(self, room_url: str, account_id: int, event_id: str | None) -> bool:
        cursor = self._db.execute(
            "insert or ignore into room_reminders (room_url, account_id, event_id, created_at) "
            "values (?, ?, ?, ?)",
            [room_url, account_id, event_id, time.time()],
        )
        return cursor.rowcount > 0

    def remove(self, room_url: str, account_id: int) -> str | None:
        """The Event id the reminder was about (to undo an RSVP sent for it), if any;
        None also when there was no reminder."""
        row = self._db.execute(
            "select event_id from room_reminders where room_url = ? and account_id = ?",
            [room_url, account_id],
        ).fetchone()
        self._db.execute(
            "delete from room_reminders where room_url = ? and account_id = ?",
            [room_url, account_id],
        )
        return None if row is None else (row[0] or "")

    def has(self, room_url: str, account_id: int) -> bool:
        return bool(
            self._db.execute(
                "select 1 from room_reminders where room_url = ? and account_id = ?",
                [room_url, account_id],
            ).fetchone()
        )

    def accounts_for(self, room_url: str, event_id: str | None = None) -> list[int]:
        rows = self._db.execute(
            "select distinct account_id from room_reminders where room_url = ? "
            "or (event_id is not null and event_id = ?)",
            [room_url, event_id or ""],
        ).fetchall()
        return [int(r[0]) for r in rows]

    def of_account(self, account_id: int) -> list[tuple[str, str | None]]:
        rows = self._db.execute(
            "select room_url, event_id from room_reminders where account_id = ? "
            "order by created_at desc",
            [account_id],
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def count(self, room_url: str) -> int:
        row = self._db.execute(
            "select count(*) from room_reminders where room_url = ?", [room_url]
        ).fetchone()
        return int(row[0])

    # -- other servers' users (RSVPs) ------------------------------------------------------

    def add_rsvp(self, room_id: str, actor: str, inbox: str, activity_id: str) -> None:
        self._db.execute(
            "insert into event_rsvps (room_id, actor, inbox, activity_id, created_at) "
            "values (?, ?, ?, ?, ?) on conflict (room_id, actor) do update set "
            "inbox = excluded.inbox, activity_id = excluded.activity_id",
            [room_id, actor, inbox, activity_id, time.time()],
        )

    def remove_rsvp(self, actor: str, room_id: str | None) -> int:
        if room_id is None:
            cursor = self._db.execute("delete from event_rsvps where actor = ?", [actor])
        else:
            cursor = self._db.execute(
                "delete from event_rsvps where actor = ? and room_id = ?", [actor, room_id]
            )
        return int(cursor.rowcount)

    def rsvps(self, room_id: str) -> list[tuple[str, str]]:
        """(actor, inbox) of everyone elsewhere who asked."""
        rows = self._db.execute(
            "select actor, inbox from event_rsvps where room_id = ? order by created_at",
            [room_id],
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- the Events we announced -----------------------------------------------------------

    def event_announced(self, event: AnnouncedEvent) -> None:
        self._db.execute(
            "insert or replace into fed_room_events (room_id, event_id, note_id, actor, "
            "published_at, state) values (?, ?, ?, ?, ?, ?)",
            [
                event.room_id,
                event.event_id,
                event.note_id,
                event.actor,
                event.published_at,
                event.state,
            ],
        )

    def event_of(self, room_id: str) -> AnnouncedEvent | None:
        row = self._db.execute(
            "select room_id, event_id, note_id, actor, published_at, state "
            "from fed_room_events where room_id = ?",
            [room_id],
        ).fetchone()
        return None if row is None else AnnouncedEvent(*row)

    def room_of_event(self, event_id: str) -> str | None:
        row = self._db.execute(
            "select room_id from fed_room_events where event_id = ?", [event_id]
        ).fetchone()
        return None if row is None else str(row[0])

    def set_event_state(self, room_id: str, state: str) -> None:
        self._db.execute(
            "update fed_room_events set state = ? where room_id = ?", [state, room_id]
        )
