"""Recorded rooms (``recordings``): the file under the data dir's ``recordings`` area, its
size and length, and the Note that published it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True, slots=True)
class RecordingRow:
    room_id: str
    file: str
    bytes: int
    duration: float
    packets: int
    created_at: float
    note_id: str | None


class RecordingStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def add(self, room_id: str, file: str, size: int, duration: float, packets: int) -> None:
        self._db.execute(
            "insert or replace into recordings (room_id, file, bytes, duration, packets, "
            "created_at) values (?, ?, ?, ?, ?, ?)",
            [room_id, file, size, duration, packets, time.time()],
        )

    def get(self, room_id: str) -> RecordingRow | None:
        row = self._db.execute(
            "select room_id, file, bytes, duration, packets, created_at, note_id "
            "from recordings where room_id = ?",
            [room_id],
        ).fetchone()
        return None if row is None else RecordingRow(*row)

    def published(self, room_id: str, note_id: str) -> None:
        self._db.execute("update recordings set note_id = ? where room_id = ?", [note_id, room_id])

    def delete(self, room_id: str) -> None:
        self._db.execute("delete from recordings where room_id = ?", [room_id])
