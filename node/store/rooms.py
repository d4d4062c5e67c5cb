"""Rooms' durable part in SQLite (tables ``rooms`` and ``room_blocks``): identity, title,
life cycle, blocks. What happens in a live room is in memory (node.rooms.Room)."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import sqlite_utils

from node.rooms import Room, RoomState, Visibility
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
            },
        )

    def save_block(self, room_id: str, account_id: int) -> None:
        with kept_in_memory(f"a block in room {room_id}"):
            self._db.table("room_blocks").insert(
                {"room_id": room_id, "account_id": account_id, "created_at": time.time()},
                replace=True,
            )

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
        sql = (
            "select accounts.username from room_blocks join accounts "
            "on accounts.id = room_blocks.account_id where room_blocks.room_id = ?"
        )
        return {r["username"] for r in self._db.query(sql, [room_id])}

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
    return Room(
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
    )
