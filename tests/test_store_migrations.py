"""Schema migrations (node.store.migrate): every migration once, in order, all pending ones
in one transaction; a database newer than the code is refused, also by a real node."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlite_utils

from node.store.database import DB_FILENAME, open_database
from node.store.errors import DatabaseTooNew, MigrationFailed
from node.store.migrate import MIGRATION_SET, check_order, migrate, status
from node.store.schema import MIGRATIONS, Migration
from tests.conftest import ROOT, NodeProcess, free_port, write_config


def _columns(db: sqlite_utils.Database, table: str) -> list[str]:
    return [c.name for c in db[table].columns]  # type: ignore[union-attr]


def _recorded(db: sqlite_utils.Database) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "select name from _sqlite_migrations where migration_set = ? order by id",
            [MIGRATION_SET],
        )
    ]


ADD_NICKNAME = Migration(
    len(MIGRATIONS) + 1,
    "accounts_nickname",
    ("alter table accounts add column nickname text not null default ''",),
)


def _fill_nickname(db: sqlite_utils.Database) -> None:
    db.execute("update accounts set nickname = upper(username)")


def test_a_new_database_gets_every_migration_in_order_and_records_them(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    assert _recorded(db) == [m.key for m in MIGRATIONS]
    found = status(db)
    assert found.version == len(MIGRATIONS)
    assert found.pending == () and found.unknown == ()
    assert "publish_keys" in db.table_names()
    db.close()


def test_each_migration_runs_exactly_once(tmp_path: Path) -> None:
    open_database(tmp_path).close()
    db = open_database(tmp_path)
    assert migrate(db) == []
    assert migrate(db, (*MIGRATIONS, ADD_NICKNAME)) == [ADD_NICKNAME.key]
    # Run again, the ALTER would fail ("duplicate column"): it is not run again.
    assert migrate(db, (*MIGRATIONS, ADD_NICKNAME)) == []
    assert _recorded(db).count(ADD_NICKNAME.key) == 1
    db.close()


def test_a_later_migration_keeps_rows_and_python_steps_see_them(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    db.execute("insert into accounts (username, password_hash) values ('alice', 'h')")
    fill = Migration(len(MIGRATIONS) + 2, "fill_nickname", (_fill_nickname,))
    assert migrate(db, (*MIGRATIONS, ADD_NICKNAME, fill)) == [ADD_NICKNAME.key, fill.key]
    assert db.execute("select username, nickname from accounts").fetchall() == [("alice", "ALICE")]
    assert status(db, (*MIGRATIONS, ADD_NICKNAME, fill)).version == fill.number
    db.close()


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    broken = Migration(len(MIGRATIONS) + 2, "broken", ("alter table no_such_table add x int",))
    with pytest.raises(MigrationFailed) as failed:
        migrate(db, (*MIGRATIONS, ADD_NICKNAME, broken))
    assert failed.value.key == broken.key
    assert "no_such_table" in str(failed.value)
    # The migration before it, in the same upgrade, was rolled back too.
    assert "nickname" not in _columns(db, "accounts")
    assert _recorded(db) == [m.key for m in MIGRATIONS]
    assert not db.conn.in_transaction
    db.close()


def test_a_table_rebuild_with_transform_keeps_references(tmp_path: Path) -> None:
    """The step SQLite's ALTER TABLE cannot do (change a column's type) through
    sqlite-utils' transform(), on a table other tables reference."""
    db = open_database(tmp_path)
    db.execute("insert into accounts (username, password_hash) values ('alice', 'h')")
    db.execute("insert into sessions (id, account_id, token_hash) values ('s1', 1, 't')")

    def rebuild(db: sqlite_utils.Database) -> None:
        db["accounts"].transform(types={"created_at": int})  # type: ignore[union-attr]

    rebuilt = Migration(len(MIGRATIONS) + 1, "rebuild_accounts", (rebuild,))
    assert migrate(db, (*MIGRATIONS, rebuilt)) == [rebuilt.key]
    assert db["accounts"].columns_dict["created_at"] is int  # type: ignore[union-attr]
    assert db.execute("select account_id from sessions").fetchall() == [(1,)]
    assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    db.close()


def test_a_migration_that_leaves_dangling_references_is_refused(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    db.execute("insert into accounts (username, password_hash) values ('alice', 'h')")
    db.execute("insert into sessions (id, account_id, token_hash) values ('s1', 1, 't')")
    dangling = Migration(len(MIGRATIONS) + 1, "drop_alice", ("delete from accounts",))
    with pytest.raises(MigrationFailed, match="reference missing rows"):
        migrate(db, (*MIGRATIONS, dangling))
    assert db.execute("select count(*) from accounts").fetchone() == (1,)
    db.close()


def test_a_database_newer_than_the_code_is_refused_untouched(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    migrate(db, (*MIGRATIONS, ADD_NICKNAME))
    db.close()
    with pytest.raises(DatabaseTooNew) as refused:
        open_database(tmp_path)
    assert refused.value.unknown == (ADD_NICKNAME.key,)
    assert f"knows up to schema version {len(MIGRATIONS)}" in str(refused.value)
    db = open_database(tmp_path, upgrade=False)
    assert status(db).version == ADD_NICKNAME.number
    assert status(db).unknown == (ADD_NICKNAME.key,)
    db.close()


def test_two_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    applied: list[list[str]] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            db = open_database(tmp_path, upgrade=False)
            applied.append(migrate(db, (*MIGRATIONS, ADD_NICKNAME)))
            db.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(len(a) for a in applied) == [0, len(MIGRATIONS) + 1]


def test_a_database_made_before_migrations_is_taken_as_it_is(tmp_path: Path) -> None:
    """main before migrations (all tables but no record): migrations 1 and 2 find their
    tables and keep them; the record is added."""
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    for statement in (s for m in MIGRATIONS[:2] for s in m.steps):
        assert isinstance(statement, str)
        conn.execute(statement)
    conn.execute("insert into accounts (username, password_hash) values ('old', 'h')")
    conn.commit()
    conn.close()
    db = open_database(tmp_path)
    assert _recorded(db) == [m.key for m in MIGRATIONS]
    assert db.execute("select username from accounts").fetchall() == [("old",)]
    db.close()


def test_migration_numbers_must_follow_each_other() -> None:
    check_order(MIGRATIONS)
    with pytest.raises(ValueError, match="1, 2, 3"):
        check_order((*MIGRATIONS, Migration(len(MIGRATIONS) + 2, "gap", ())))
    with pytest.raises(ValueError, match="1, 2, 3"):
        check_order((*MIGRATIONS, Migration(len(MIGRATIONS), "twice", ())))


def _config(tmp_path: Path) -> Path:
    node = NodeProcess(tmp_path, free_port())
    return write_config(tmp_path / "node.toml", node.sections())


def _node(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_command_reports_and_applies(tmp_path: Path) -> None:
    config = _config(tmp_path)
    db = open_database(tmp_path / "data", upgrade=False)
    db.close()
    shown = _node(config, "migrate", "--status")
    assert shown.returncode == 0, shown.stderr
    assert f"schema version 0; this code: {len(MIGRATIONS)}" in shown.stdout
    assert "pending: 0001_release_0_1" in shown.stdout
    done = _node(config, "migrate")
    assert done.returncode == 0, done.stderr
    assert "applied 0001_release_0_1" in done.stdout
    assert f"schema version {len(MIGRATIONS)}: up to date" in done.stdout


def test_a_node_refuses_to_start_on_a_newer_database(tmp_path: Path) -> None:
    config = _config(tmp_path)
    db = open_database(tmp_path / "data")
    migrate(db, (*MIGRATIONS, ADD_NICKNAME))
    db.close()
    started = _node(config)
    assert started.returncode == 1
    assert "the database was upgraded by a newer Parley" in started.stderr
    assert ADD_NICKNAME.key in started.stderr
    assert "Traceback" not in started.stderr


def test_commands_next_to_a_running_old_node_do_not_migrate_under_it(tmp_path: Path) -> None:
    """`git pull`, then `create-user` while the node of the old code still runs: the
    schema is not changed under that node; once it is stopped, the command migrates."""
    from node.store.lock import DataDirLock

    config = _config(tmp_path)
    db = open_database(tmp_path / "data", upgrade=False)
    migrate(db, MIGRATIONS[:1])
    db.close()

    def create_user(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "node", "--config", str(config), "create-user", name],
            cwd=ROOT,
            input="correct horse battery\n",
            capture_output=True,
            text=True,
            timeout=120,
        )

    with DataDirLock(tmp_path / "data", "node of release 0.1"):
        refused = create_user("early")
        assert refused.returncode == 1
        assert "restart the node with this code first" in refused.stderr
        db = open_database(tmp_path / "data", upgrade=False)
        assert status(db).version == 1
        db.close()
    done = create_user("later")
    assert done.returncode == 0, done.stderr
    db = open_database(tmp_path / "data", upgrade=False)
    assert status(db).version == len(MIGRATIONS)
    assert db.execute("select username from accounts").fetchall() == [("later",)]
    db.close()
