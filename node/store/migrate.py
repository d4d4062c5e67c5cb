"""Apply node.store.schema's migrations to a database: the pending ones, in order, once.

Built on sqlite-utils' own ``Migrations`` (sqlite-utils 4): it records every applied
migration by name in the ``_sqlite_migrations`` table and runs each with its record in
one transaction. On top of it this module gives a node what it needs:

- every pending migration in ONE transaction (``BEGIN IMMEDIATE``): an upgrade that
  fails half-way leaves the database as the old code left it, and a second process
  starting at the same moment waits, then finds nothing left to do;
- a database that records a migration this code does not know was written by newer
  code: ``DatabaseTooNew``, and nothing is touched;
- foreign keys are off while migrations run (the procedure SQLite's ALTER TABLE page
  gives for rebuilding a table, which is what ``Table.transform`` does) and checked
  before the commit: a migration may not add a dangling reference.

Errors (node.store.errors): ``DatabaseTooNew``, ``MigrationFailed``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlite_utils

from node.store.errors import DatabaseTooNew, MigrationFailed
from node.store.schema import MIGRATIONS, Migration

log = logging.getLogger(__name__)

MIGRATION_SET = "parley"
"""The name of our set in ``_sqlite_migrations`` (sqlite-utils allows several sets)."""


@dataclass(frozen=True)
class SchemaStatus:
    version: int
    """The number of the newest migration applied (0: a new or pre-migration database)."""
    applied: tuple[str, ...]
    pending: tuple[str, ...]
    unknown: tuple[str, ...]
    """Applied by newer code: this code must not run on it."""


def check_order(migrations: Sequence[Migration]) -> None:
    """Numbers 1, 2, 3... with no gap or repeat (two branches that picked the same number
    must be renumbered when merged, before release)."""
    numbers = [m.number for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migration numbers must run 1, 2, 3...: found {numbers}")


def _applied(db: sqlite_utils.Database) -> list[str]:
    return [m.name for m in _migration_set(()).applied(db)]


def status(
    db: sqlite_utils.Database, migrations: Sequence[Migration] = MIGRATIONS
) -> SchemaStatus:
    check_order(migrations)
    applied = _applied(db)
    known = {m.key: m for m in migrations}
    unknown = tuple(k for k in applied if k not in known)
    done = set(applied)
    version = max((known[k].number for k in applied if k in known), default=0)
    if unknown:
        version = max(version, *(_number(k) for k in unknown))
    return SchemaStatus(
        version=version,
        applied=tuple(applied),
        pending=tuple(m.key for m in migrations if m.key not in done),
        unknown=unknown,
    )


def _number(key: str) -> int:
    head = key.split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def _step_runner(migration: Migration) -> Callable[[sqlite_utils.Database], None]:
    def run(db: sqlite_utils.Database) -> None:
        for step in migration.steps:
            try:
                if isinstance(step, str):
                    db.execute(step)
                else:
                    step(db)
            except Exception as exc:
                raise MigrationFailed(migration.key, f"{type(exc).__name__}: {exc}") from exc

    run.__name__ = migration.key
    return run


def _migration_set(migrations: Sequence[Migration]) -> sqlite_utils.Migrations:
    migration_set = sqlite_utils.Migrations(MIGRATION_SET)
    for migration in migrations:
        migration_set(name=migration.key)(_step_runner(migration))
    return migration_set


def _dangling(conn: sqlite3.Connection) -> set[tuple[object, ...]]:
    return {tuple(row) for row in conn.execute("PRAGMA foreign_key_check").fetchall()}


def migrate(db: sqlite_utils.Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply the pending migrations; returns their keys (empty: it was up to date)."""
    check_order(migrations)
    conn = db.conn
    if conn.in_transaction:
        raise RuntimeError("migrate() needs a connection with no open transaction")
    foreign_keys = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    # A no-op inside a transaction, so before BEGIN.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        # IMMEDIATE: the write lock first, then read what is applied, so two processes
        # never both decide to run the same migration.
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = status(db, migrations)
            if found.unknown:
                raise DatabaseTooNew(found.unknown, len(migrations))
            if found.pending:
                before = _dangling(conn)
                # Nested in our transaction, sqlite-utils' per-migration transactions
                # become savepoints: all pending migrations commit together or not at all.
                _migration_set(migrations).apply(db)
                added = _dangling(conn) - before
                if added:
                    raise MigrationFailed(
                        found.pending[-1],
                        f"{len(added)} rows would reference missing rows "
                        f"(PRAGMA foreign_key_check: {sorted(added, key=str)[:3]}...)",
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
    for key in found.pending:
        log.info("schema migration %s applied", key)
    return list(found.pending)
