"""The node's SQLite database (sqlite-utils, WAL mode): one file under the data dir,
brought to the newest schema (node.store.schema's migrations) whenever it is opened."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from node.store.migrate import migrate

DB_FILENAME = "parley.db"


def open_database(data_dir: str | Path, *, upgrade: bool = True) -> sqlite_utils.Database:
    """Open the data dir's database (created if missing) and apply the pending migrations
    (``upgrade``; DatabaseTooNew, MigrationFailed)."""
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    # check_same_thread=False: the node runs on one event loop thread, but start-up and
    # CLI commands may open it from another thread; sqlite serialises access itself.
    conn = sqlite3.connect(path / DB_FILENAME, check_same_thread=False, isolation_level=None)
    try:
        db = sqlite_utils.Database(conn)
        db.enable_wal()
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        if upgrade:
            migrate(db)
    except BaseException:
        conn.close()
        raise
    return db


_savepoints = itertools.count()


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """Everything inside commits together or not at all. The connection is in autocommit
    mode (``isolation_level=None``), where ``with conn:`` opens no transaction; inside
    another transaction this is a savepoint."""
    conn = db.conn
    if conn.in_transaction:
        name = f"sp{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
