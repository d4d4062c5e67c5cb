"""Rooms' durable part in SQLite (tables ``rooms``, ``room_removals``, ``room_endings``
and release 0.1's ``room_blocks``): identity, title, life cycle, who was removed or
blocked (kept out for the room's life, whatever node they are on), how it ended, its
schedule, whether it is recorded, its pinned comment or link and its end-of-room summary.
What happens in a live room is in memory (node.rooms.Room)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any

import sqlite_utils

from node.rooms import EndedBy, Ending, Room, RoomState, Visibility
from node.store.health import kept_in_memory
from node.store.text_search import contains_pattern


class RoomStore:
    """Durable part of rooms: identity, title, life cycle, blocks."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def insert(self, room: Room, host_id: int) -> None:
        self._db.table("rooms").insert(
            {
                "id": room.id,
                "host_id": host_id,
                "title": room.title,
                "description": room.description,
                "visibility": room.visibility.value,
                "state": room.state.value,
                "created_at": room.created_at,
                "started_at": room.started_at,
                "ended_at": room.ended_at,
                "starts_at": room.starts_at,
                "recording": int(room.recording),
            }
        )

    def save(self, room: Room) -> None:
        """A room's changed state; with the disk full, the room on air goes on unsaved."""
        with kept_in_memory(f"room {room.id}"):
            self._save(room)

    def _save(self, room: Room) -> None:
        self._db.table("rooms").update(
            room.id,
            {
                "title": room.title,
                "description": room.description,
                "state": room.state.value,
                "started_at": room.started_at,
                "ended_at": room.ended_at,
                "starts_at": room.starts_at,
                "recording": int(room.recording),
                "cancelled": int(room.cancelled),
                "summary": json.dumps(room.summary) if room.summary is not None else None,
                "pinned": json.dumps(room.board.pinned) if room.board.pinned else None,
            },
        )

    def save_pinned(self, room_id: str, pinned: dict[str, Any] | None) -> None:
        self._db.execute(
            "update rooms set pinned = ? where id = ?",
            [json.dumps(pinned) if pinned else None, room_id],
        )

    def scheduled_public(self, limit: int = 50) -> list[dict[str, Any]]:
        """Rows of public rooms not started yet: soonest start first, unscheduled last."""
        return self.rows(
            "rooms.state = 'scheduled' and rooms.visibility = 'public' "
            "order by rooms.starts_at is null, rooms.starts_at, rooms.created_at desc limit ?",
            [limit],
        )

    def save_removal(self, room_id: str, member: str, *, blocked: bool) -> None:
        """``member`` (named as rooms name them: ours bare, others ``user@host``) stays
        out of the room for its life (in memory too, should the disk be full)."""
        with kept_in_memory(f"a removal from room {room_id}"):
            self._db.execute(
                "insert into room_removals (room_id, member, blocked, created_at) "
                "values (?, ?, ?, ?) on conflict (room_id, member) do update "
                "set blocked = max(blocked, excluded.blocked)",
                [room_id, member, int(blocked), time.time()],
            )

    def save_ending(self, room_id: str, ending: Ending, ended_at: float) -> None:
        with kept_in_memory(f"the end of room {room_id}"):
            self._db.execute(
                "insert or replace into room_endings (room_id, by_whom, node, reason, "
                "carried_on, ended_at) values (?, ?, ?, ?, ?, ?)",
                [
                    room_id,
                    ending.by.value,
                    ending.node,
                    ending.reason,
                    json.dumps(list(ending.carried_on)),
                    ended_at,
                ],
            )

    def ending(self, room_id: str) -> Ending | None:
        row = self._db.execute(
            "select by_whom, node, reason, carried_on from room_endings where room_id = ?",
            [room_id],
        ).fetchone()
        if row is None:
            return None
        return Ending(EndedBy(row[0]), row[1], row[2], tuple(json.loads(row[3])))

    def rows(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        sql = (
            "select rooms.*, accounts.username as host_username, "
            "accounts.display_name as host_display_name from rooms "
            "join accounts on accounts.id = rooms.host_id where " + where
        )
        return [dict(r) for r in self._db.query(sql, params)]

    def public_ids_titled(self, text: str, limit: int) -> list[str]:
        """Public rooms whose title contains ``text`` (any case): live first, then
        scheduled, then ended, newest first."""
        rows = self._db.query(
            "select id from rooms where visibility = 'public' "
            "and lower(title) like ? escape '\\' "
            "order by case state when 'live' then 0 when 'scheduled' then 1 else 2 end, "
            "created_at desc limit ?",
            [contains_pattern(text.lower()), limit],
        )
        return [str(row["id"]) for row in rows]

    def blocked_usernames(self, room_id: str) -> set[str]:
        """Everyone kept out of the room: removed or blocked, of any node (and the
        blocks release 0.1 kept, of our own accounts)."""
        sql = (
            "select accounts.username as name from room_blocks join accounts "
            "on accounts.id = room_blocks.account_id where room_blocks.room_id = ? "
            "union select member as name from room_removals where room_id = ?"
        )
        return {r["name"] for r in self._db.query(sql, [room_id, room_id])}

    def end_unfinished(self, now: float, keep: Collection[str] = ()) -> int:
        """Rooms left live by a previous run of this node end at start-up: their audio
        and connections did not survive the restart. ``keep``: rooms that other nodes may
        carry on (node.relaying asks them first, FEDERATION.md "Survival")."""
        marks = ", ".join("?" for _ in keep)
        cursor = self._db.execute(
            "update rooms set state = 'ended', ended_at = ? where state = 'live'"
            + (f" and id not in ({marks})" if keep else ""),
            [now, *keep],
        )
        return int(cursor.rowcount)

    def end_live(self, room_id: str, now: float) -> None:
        self._db.execute(
            "update rooms set state = 'ended', ended_at = ? where id = ? and state = 'live'",
            [now, room_id],
        )

    def exists(self, room_id: str) -> bool:
        return bool(self._db.execute("select 1 from rooms where id = ?", [room_id]).fetchone())


def room_from_row(row: dict[str, Any], *, max_speakers: int, blocked: set[str]) -> Room:
    room = Room(
        id=row["id"],
        host=row["host_username"],
        host_display_name=row["host_display_name"] or row["host_username"],
        title=row["title"],
        description=row["description"] or "",
        visibility=Visibility(row["visibility"]),
        state=RoomState(row["state"]),
        max_speakers=max_speakers,
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        blocked=blocked,
        starts_at=row.get("starts_at"),
        recording=bool(row.get("recording")),
        cancelled=bool(row.get("cancelled")),
        summary=json.loads(row["summary"]) if row.get("summary") else None,
    )
    room.board.pinned = json.loads(row["pinned"]) if row.get("pinned") else None
    return room
