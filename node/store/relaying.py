"""Rooms carried across nodes, in SQLite.

- ``relay_rooms``: every room this node carries for another node (a *mirror*, or our own
  room carried on elsewhere since a move or a restart): its origin, upstream, epoch,
  succession list and replicated room JSON, so a restart resumes it.
- ``relay_origin_rooms``: the acting origin's succession list of each of its rooms with
  relays, so after a crash it asks those nodes before ending the room.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from federation.relay import SuccessionEntry
from node.store.health import kept_in_memory


def _entries(text: str) -> list[SuccessionEntry]:
    return [SuccessionEntry(e["node"], e["relay"]) for e in json.loads(text)]


def _text(entries: list[SuccessionEntry]) -> str:
    return json.dumps([e.to_json() for e in entries])


@dataclass(frozen=True)
class CarriedRoomRow:
    id: str
    origin: str
    upstream: str
    epoch: int
    succession: list[SuccessionEntry]
    room: dict[str, Any]
    promoted: bool


class RelayRooms:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def save_mirror(self, row: CarriedRoomRow) -> None:
        with kept_in_memory(f"carried room {row.id}"):
            self._save_mirror(row)

    def _save_mirror(self, row: CarriedRoomRow) -> None:
        self._db.execute(
            "insert into relay_rooms (id, origin, upstream, epoch, succession, room, promoted, "
            "updated_at) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (id) do update set "
            "upstream = excluded.upstream, epoch = excluded.epoch, "
            "succession = excluded.succession, room = excluded.room, "
            "promoted = excluded.promoted, updated_at = excluded.updated_at",
            [
                row.id,
                row.origin,
                row.upstream,
                row.epoch,
                _text(row.succession),
                json.dumps(row.room),
                int(row.promoted),
                time.time(),
            ],
        )

    def live_mirrors(self) -> list[CarriedRoomRow]:
        rows = self._db.execute(
            "select id, origin, upstream, epoch, succession, room, promoted from relay_rooms"
        ).fetchall()
        found = []
        for room_id, origin, upstream, epoch, succession, room, promoted in rows:
            doc = json.loads(room)
            if doc.get("state") == "live":
                found.append(
                    CarriedRoomRow(
                        room_id,
                        origin,
                        upstream,
                        int(epoch),
                        _entries(succession),
                        doc,
                        bool(promoted),
                    )
                )
        return found

    def forget_mirror(self, room_id: str) -> None:
        with kept_in_memory(f"carried room {room_id}"):
            self._db.execute("delete from relay_rooms where id = ?", [room_id])

    def save_origin(self, room_id: str, epoch: int, succession: list[SuccessionEntry]) -> None:
        with kept_in_memory(f"succession list of room {room_id}"):
            self._db.execute(
                "insert into relay_origin_rooms (id, epoch, succession, updated_at) "
                "values (?, ?, ?, ?) on conflict (id) do update set epoch = excluded.epoch, "
                "succession = excluded.succession, updated_at = excluded.updated_at",
                [room_id, epoch, _text(succession), time.time()],
            )

    def forget_origin(self, room_id: str) -> None:
        with kept_in_memory(f"succession list of room {room_id}"):
            self._db.execute("delete from relay_origin_rooms where id = ?", [room_id])

    def origins_to_recover(self, own_node: str) -> dict[str, tuple[int, list[SuccessionEntry]]]:
        """Our rooms left live by the previous run that had relays: room id -> (epoch,
        the other nodes of the succession list, in order)."""
        rows = self._db.execute(
            "select o.id, o.epoch, o.succession from relay_origin_rooms o "
            "join rooms r on r.id = o.id where r.state = 'live'"
        ).fetchall()
        found: dict[str, tuple[int, list[SuccessionEntry]]] = {}
        for room_id, epoch, succession in rows:
            entries = [e for e in _entries(succession) if e.node != own_node]
            if entries:
                found[room_id] = (int(epoch), entries)
        return found
