"""What can stop the node's storage from being used, as the operator must be told it.

StoreError
├── DataDirInUse        another process (a running node) holds the data dir's lock
├── DatabaseDamaged     the database file fails SQLite's integrity check
└── SchemaError
    ├── DatabaseTooNew  the database records migrations this code does not know
    └── MigrationFailed a migration raised; the database is left as it was

``python -m node`` prints these and exits; they never reach the web layer.

A full disk is a request's error, not the node's: ``DatabaseFull`` is a
node.errors.InsufficientStorage (a 507 JSON answer) and a sqlite3.OperationalError.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from node.errors import InsufficientStorage


class StoreError(Exception):
    pass


class DataDirInUse(StoreError):
    def __init__(self, data_dir: Path, holder: str) -> None:
        super().__init__(
            f"a node is running on {data_dir} ({holder} holds {data_dir / 'node.lock'}); "
            f"stop it first"
        )
        self.data_dir = data_dir
        self.holder = holder


class DatabaseDamaged(StoreError):
    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        shown = "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
        super().__init__(
            f"{path} is damaged (SQLite integrity check: {shown}). The node will not run "
            f"on it. Restore the latest backup with `python -m node restore PATH` (it "
            f"moves the damaged file aside, into before-restore-*/); README.md, 'Backups'"
        )
        self.path = path
        self.problems = tuple(problems)


class SchemaError(StoreError):
    pass


class DatabaseTooNew(SchemaError):
    def __init__(self, unknown: Sequence[str], known_version: int) -> None:
        super().__init__(
            f"the database was upgraded by a newer Parley: it records migrations "
            f"{', '.join(unknown)}, and this code knows up to schema version "
            f"{known_version}. Run the newer code, or restore a backup made with this "
            f"version (python -m node restore PATH)"
        )
        self.unknown = tuple(unknown)
        self.known_version = known_version


class MigrationFailed(SchemaError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(
            f"migration {key} failed: {reason}; the database is unchanged (nothing of this "
            f"upgrade was committed)"
        )
        self.key = key
        self.reason = reason


class DatabaseFull(InsufficientStorage, sqlite3.OperationalError):
    """SQLite could not write (SQLITE_FULL): the statement's transaction was rolled back.
    Also a ``sqlite3.OperationalError``, so code that handles SQLite errors still does;
    the web layer answers it as a 507 like any ``InsufficientStorage``."""

    def __init__(self) -> None:
        InsufficientStorage.__init__(self, "the database")
