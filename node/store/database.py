"""The node's SQLite database: one file under the data dir, how it is opened (durability
settings), checked and brought to the newest schema.

Durability (README.md, "Durability"): WAL journal, ``synchronous = FULL``: every commit
is fsynced to the WAL before it returns, so what the node acknowledged (an HTTP 2xx) is on
disk; a kill -9 loses nothing committed and a power cut at most the transaction that had
not returned yet. NORMAL would fsync only at checkpoints: safe against a crash of the
process but able to lose the last second(s) of commits to a power cut, and the rows here
(accounts, keys, followers) are what other servers cannot teach us again. The cost, one
fsync per commit, is measured in bench/RESULTS.md (bench.bench_store). Checkpoints are
SQLite's automatic ones (every ``WAL_AUTOCHECKPOINT_PAGES`` pages written) plus a
truncating one when the node closes the database.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils

from node.store.errors import DatabaseDamaged, DatabaseFull
from node.store.health import StorageHealth
from node.store.migrate import migrate

log = logging.getLogger(__name__)

DB_FILENAME = "parley.db"
SYNCHRONOUS = "FULL"
WAL_AUTOCHECKPOINT_PAGES = 1000
"""SQLite's default (about 4 MB of WAL), stated: a checkpoint after this many pages."""
BUSY_TIMEOUT_MS = 5000

# Result codes (sqlite3.h) that mean the file itself is bad, not that it is busy.
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_SQLITE_FULL = 13
DATABASE_FEATURE = "the database"


def database_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / DB_FILENAME


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _DAMAGE_CODES


def is_disk_full(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == _SQLITE_FULL


class _Connection(sqlite3.Connection):
    """Every statement of the node goes through ``execute`` (sqlite-utils' too): a write
    refused for want of space becomes ``DatabaseFull`` (a 507 for the web layer) and is
    reported to the admin's storage view; the next committed change clears it."""

    health: StorageHealth | None = None
    _changes_when_full = -1

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            cursor = super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            if self.health is not None:
                self.health.report(DATABASE_FEATURE, str(exc))
                self._changes_when_full = self.total_changes
            raise DatabaseFull() from exc
        if (
            self._changes_when_full >= 0
            and not self.in_transaction
            and self.total_changes > self._changes_when_full
        ):
            # Rows were changed and committed since: the disk took them.
            self._changes_when_full = -1
            if self.health is not None:
                self.health.recovered(DATABASE_FEATURE)
        return cursor


def _connect(path: Path, health: StorageHealth | None = None) -> sqlite3.Connection:
    # check_same_thread=False: the node runs on one event loop thread, but start-up and
    # CLI commands may open it from another thread; sqlite serialises access itself.
    # isolation_level=None: autocommit; a store that needs several statements together
    # says BEGIN itself (or uses db.atomic()).
    conn = sqlite3.connect(
        path, check_same_thread=False, isolation_level=None, factory=_Connection
    )
    assert isinstance(conn, _Connection)
    conn.health = health
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _configure(db: sqlite_utils.Database) -> None:
    db.enable_wal()
    db.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
    db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    db.execute("PRAGMA foreign_keys = ON")


def integrity_problems(conn: sqlite3.Connection, *, full: bool = False) -> list[str]:
    """``PRAGMA quick_check``: what is wrong with the file (empty: nothing). It reads every
    page once (O(size)) and skips only the check that indexes match their tables, which
    ``full`` (``integrity_check``) adds."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}").fetchall()]
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return [str(exc)]
        raise
    return [] if rows == ["ok"] else rows


def open_database(
    data_dir: str | Path,
    *,
    check: bool = False,
    upgrade: bool = True,
    health: StorageHealth | None = None,
) -> sqlite_utils.Database:
    """Open the data dir's database (created if missing), with the durability settings,
    after ``check`` (quick_check: DatabaseDamaged) and then migrated to the newest schema
    (``upgrade``: DatabaseTooNew, MigrationFailed). ``health`` hears of a full disk."""
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    conn = _connect(path / DB_FILENAME, health)
    try:
        if check:
            problems = integrity_problems(conn)
            if problems:
                raise DatabaseDamaged(path / DB_FILENAME, problems)
        db = sqlite_utils.Database(conn)
        try:
            _configure(db)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise DatabaseDamaged(path / DB_FILENAME, [str(exc)]) from exc
            raise
        if upgrade:
            migrate(db)
    except BaseException:
        conn.close()
        raise
    return db


def close_database(db: sqlite_utils.Database) -> None:
    """Close, folding the WAL back into the file first (the file alone is then complete)."""
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:  # busy (a backup reading) or the disk is full: SQLite
        log.warning("checkpoint at close skipped: %s", exc)  # checkpoints next time
    db.close()
