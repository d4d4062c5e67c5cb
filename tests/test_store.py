"""The storage package: data dirs of earlier versions keep working (same tables, same
columns) once migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.store.database import DB_FILENAME, open_database

# Tables as the previous versions created them (sqlite-utils and executescript).
LEGACY = """
CREATE TABLE "accounts" ("id" INTEGER PRIMARY KEY, "username" TEXT NOT NULL,
  "password_hash" TEXT NOT NULL, "display_name" TEXT DEFAULT '', "bio" TEXT DEFAULT '',
  "is_admin" INTEGER DEFAULT 0, "status" TEXT NOT NULL DEFAULT 'active',
  "private_key_pem" TEXT, "public_key_pem" TEXT, "created_at" REAL);
CREATE UNIQUE INDEX "idx_accounts_username" ON "accounts" ("username");
CREATE TABLE "rooms" ("id" TEXT PRIMARY KEY, "host_id" INTEGER REFERENCES "accounts"("id"),
  "title" TEXT, "description" TEXT, "visibility" TEXT, "state" TEXT, "created_at" REAL,
  "started_at" REAL, "ended_at" REAL);
CREATE TABLE relay_origin_rooms (id text primary key, epoch integer not null,
  succession text not null, updated_at real not null);
INSERT INTO accounts (username, password_hash, status) VALUES ('alice', 'x', 'active');
INSERT INTO rooms (id, host_id, title, state) VALUES ('r1', 1, 'Old room', 'ended');
"""


def columns(path: Path) -> dict[str, list[tuple[str, str]]]:
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
    found = {t: [(c[1], c[2]) for c in conn.execute(f'pragma table_info("{t}")')] for t in tables}
    conn.close()
    return found


def test_a_data_dir_of_an_earlier_version_opens_with_its_rows(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    conn = sqlite3.connect(old / DB_FILENAME)
    conn.executescript(LEGACY)
    conn.commit()
    conn.close()
    open_database(old).close()
    open_database(new).close()
    assert columns(old / DB_FILENAME) == columns(new / DB_FILENAME)
    db = open_database(old)
    assert db.execute("select title from rooms where id = 'r1'").fetchone() == ("Old room",)
    db.close()
