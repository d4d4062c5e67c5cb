"""Backups an admin can trust: `python -m node backup` while a real node is under write
load, restored onto the stopped node and compared row by row; restore refused while the
node runs; a damaged database stops the node with a clear message."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from node.store.backup import BackupError, backup, restore, verify
from node.store.database import DB_FILENAME, close_database, open_database
from node.store.errors import DatabaseDamaged, DatabaseTooNew
from node.store.files import DataFiles
from node.store.health import StorageHealth
from node.store.lock import DataDirLock
from node.store.migrate import migrate
from node.store.schema import MIGRATIONS, Migration
from tests.conftest import NodeProcess, free_port, write_config
from tests.store_helpers import WriteLoad, all_rows, node_command, read_rows

# Columns a running node changes in rows it already has, with the load used here.
MUTABLE = {"sessions": {"last_used_at"}}


def _keyed(path: Path, table: str) -> dict[object, dict[str, object]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return {
            row[0]: {k: row[k] for k in row.keys() if k not in MUTABLE.get(table, set())}
            for row in conn.execute(f'select rowid, * from "{table}"')
        }
    finally:
        conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backup_under_write_load_restores_row_for_row(
    node_factory: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    node = node_factory()
    data = node.directory / "data"
    files = DataFiles(data, StorageHealth(data))
    files.write("avatars", "alice.png", b"\x89PNG" + b"a" * 5000)
    with files.growing("recordings", "room1.ogg") as recording:
        for _ in range(50):
            recording.write(b"OggS" + b"r" * 4000)
    unfinished = files.growing("recordings", "room2.ogg")
    unfinished.write(b"OggS half")

    load = WriteLoad(node, room_writers=2, signup_writers=2).start()
    load.wait_for(signups=3, rooms=30)
    before = load.snapshot()
    target = tmp_path / "backups" / "one"
    made = node_command(node, "backup", str(target), "--with-files")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"backup {target}: database ")
    after = load.snapshot()
    load.wait_for(signups=after.counts()[0] + 2, rooms=after.counts()[1] + 20)
    done = load.stop()
    assert done.errors == []

    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["schema_version"] == len(MIGRATIONS)
    assert manifest["rows"]["rooms"] == len(
        read_rows(target / DB_FILENAME, "select id from rooms")
    )
    assert read_rows(target / DB_FILENAME, "PRAGMA integrity_check") == [("ok",)]
    assert read_rows(target / DB_FILENAME, "PRAGMA foreign_key_check") == []
    assert sorted(manifest["files"]) == ["avatars/alice.png", "recordings/room1.ogg"]

    # A snapshot: everything acknowledged before the backup began is in it; what it has of
    # each writer's rooms is a run from the first with no hole; and every row it has is
    # the row the node still has.
    backed_rooms = {r[0] for r in read_rows(target / DB_FILENAME, "select id from rooms")}
    assert {room_id for _, _, room_id in before.rooms} <= backed_rooms
    assert set(before.signups) <= {
        r[0] for r in read_rows(target / DB_FILENAME, "select username from accounts")
    }
    for writer in (0, 1):
        seqs = sorted(
            seq for w, seq, room_id in done.rooms if w == writer and room_id in backed_rooms
        )
        assert seqs == list(range(len(seqs)))
    assert {room_id for _, _, room_id in done.rooms} - backed_rooms, "nothing written after it"
    live = data / DB_FILENAME
    for table in ("accounts", "sessions", "rooms", "fed_instance", "_sqlite_migrations"):
        backed, now = _keyed(target / DB_FILENAME, table), _keyed(live, table)
        assert backed, table
        assert {k: now.get(k) for k in backed} == backed, table

    # Restore is refused while the node runs ...
    refused = node_command(node, "restore", str(target))
    assert refused.returncode == 1
    assert "a node is running on" in refused.stderr and "stop it first" in refused.stderr
    assert "Traceback" not in refused.stderr
    # ... and done once it is stopped: the database is the backup's, row for row.
    node.stop()
    restored = node_command(node, "restore", str(target))
    assert restored.returncode == 0, restored.stderr
    assert "The previous data is kept in" in restored.stdout
    assert all_rows(data / DB_FILENAME) == all_rows(target / DB_FILENAME)
    assert _digest(data / "avatars" / "alice.png") == _digest(target / "avatars" / "alice.png")
    assert (data / "recordings" / "room1.ogg").stat().st_size == 50 * 4004
    assert not list((data / "recordings").glob(".partial-*"))
    kept = next(data.glob("before-restore-*"))
    assert {r[0] for r in read_rows(kept / DB_FILENAME, "select id from rooms")} >= {
        room_id for _, _, room_id in done.rooms
    }
    unfinished.abort()

    # The node runs on it: an account from before the backup logs in; a room made after
    # the backup is not there.
    node.start()
    login = httpx.post(
        f"{node.base_url}/api/v1/sessions",
        json={"username": before.signups[0], "password": "correct horse battery"},
    )
    assert login.status_code == 200, login.text
    gone = sorted({room_id for _, _, room_id in done.rooms} - backed_rooms)[0]
    assert httpx.get(f"{node.base_url}/api/v1/rooms/{gone}").status_code == 404
    kept_room = sorted(backed_rooms & {room_id for _, _, room_id in before.rooms})[0]
    assert httpx.get(f"{node.base_url}/api/v1/rooms/{kept_room}").status_code == 200


def _filled(data: Path) -> None:
    db = open_database(data)
    db.execute("insert into accounts (username, password_hash) values ('host', 'x')")
    for n in range(400):
        db.execute(
            "insert into rooms (id, host_id, title, description, visibility, state) "
            "values (?, 1, ?, ?, ?, ?)",
            [f"room{n}", f"Room {n}", "d" * 300, "public", "ended"],
        )
    close_database(db)


def _damage(path: Path) -> None:
    """Overwrite the b-tree page header of the rooms table's root page: what a torn
    write or a bad sector does to a file."""
    page_size, root = read_rows(
        path,
        "select (select page_size from pragma_page_size), rootpage from sqlite_master "
        "where name = 'rooms'",
    )[0]
    with open(path, "r+b") as handle:
        handle.seek(page_size * (root - 1))
        handle.write(b"\xff" * 64)


def test_a_damaged_database_stops_the_node_with_a_clear_message(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, free_port())
    data = tmp_path / "data"
    _filled(data)
    backup(data, tmp_path / "last-night")
    _damage(data / DB_FILENAME)
    with pytest.raises(DatabaseDamaged):
        open_database(data, check=True)
    with pytest.raises(RuntimeError, match="node exited at start-up"):
        node.start()
    node.stop()
    log = node.log()
    assert "is damaged (SQLite integrity check" in log
    assert "python -m node restore PATH" in log
    assert "Traceback" not in log
    assert node.process is not None and node.process.returncode == 1
    # Not a database at all (its header overwritten): the same clear refusal.
    (data / DB_FILENAME).write_bytes(b"this is not a database" * 1000)
    shown = node_command(node, "migrate")
    assert shown.returncode == 1
    assert "is damaged" in shown.stderr and "Traceback" not in shown.stderr
    # What the message says to do works: restore the backup, and the node starts on it.
    restored = node_command(node, "restore", str(tmp_path / "last-night"))
    assert restored.returncode == 0, restored.stderr
    node.start()
    assert httpx.get(f"{node.base_url}/api/v1/rooms/room7").json()["title"] == "Room 7"
    node.stop()
    kept = next(data.glob("before-restore-*"))
    assert (kept / DB_FILENAME).read_bytes().startswith(b"this is not a database")


def test_a_backup_of_a_damaged_database_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _filled(data)
    _damage(data / DB_FILENAME)
    with pytest.raises(DatabaseDamaged):
        backup(data, tmp_path / "b1")
    assert not (tmp_path / "b1").exists()
    assert not list(tmp_path.glob(".partial-*"))


def test_restore_checks_the_backup_before_touching_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _filled(data)
    good = tmp_path / "good"
    backup(data, good)
    before = all_rows(data / DB_FILENAME)
    with pytest.raises(BackupError, match="exists"):
        backup(data, good)
    with pytest.raises(BackupError, match="not a Parley backup"):
        restore(data, tmp_path)
    # A backup whose rows are not the ones its manifest lists.
    tampered = tmp_path / "tampered"
    backup(data, tampered)
    conn = sqlite3.connect(tampered / DB_FILENAME)
    conn.execute("delete from rooms where id = 'room7'")
    conn.commit()
    conn.close()
    with pytest.raises(BackupError, match="does not hold the rows"):
        restore(data, tampered)
    # A backup made by newer code.
    newer = tmp_path / "newer"
    backup(data, newer)
    db = open_database(newer, upgrade=False)
    migrate(db, (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "future", ("create table f (x)",))))
    db.close()
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["rows"]["f"] = 0
    manifest["rows"]["_sqlite_migrations"] += 1
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatabaseTooNew):
        verify(newer)
    with pytest.raises(DatabaseTooNew):
        restore(data, newer)
    # A damaged one.
    damaged = tmp_path / "damaged"
    backup(data, damaged)
    _damage(damaged / DB_FILENAME)
    with pytest.raises(DatabaseDamaged):
        restore(data, damaged)
    assert all_rows(data / DB_FILENAME) == before
    assert not list(data.glob("before-restore-*"))
    # The good one goes in, the old file is kept aside.
    restore(data, good)
    assert all_rows(data / DB_FILENAME) == all_rows(good / DB_FILENAME)
    assert len(list(data.glob(f"before-restore-*/{DB_FILENAME}"))) == 1


def test_one_process_holds_a_data_dir(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, free_port())
    write_config(node.config_path, node.sections())
    with DataDirLock(tmp_path / "data", "node http://a.example"):
        shown = node_command(node, "restore", str(tmp_path / "nothing"))
        assert shown.returncode == 1
        assert (
            f"a node is running on {tmp_path / 'data'} (node http://a.example, pid" in shown.stderr
        )
        migrating = node_command(node, "migrate")
        assert migrating.returncode == 1 and "stop it first" in migrating.stderr
        with pytest.raises(RuntimeError, match="node exited at start-up"):
            node.start()
        node.stop()
        assert "a node is running on" in node.log()
    # Released (as when a node stops, however it stops): restore goes on to read the backup.
    shown = node_command(node, "restore", str(tmp_path / "nothing"))
    assert shown.returncode == 1 and "not a Parley backup" in shown.stderr
