"""``python -m node backup PATH`` and ``python -m node restore PATH``.

A backup is a directory: ``parley.db`` (a consistent copy made with SQLite's online
backup API while the node runs: one read transaction, so it is the database as it was at
one instant, and in WAL mode the node's writes go on meanwhile), ``manifest.json`` (when,
schema version, row count per table, files and sizes) and, with ``--with-files``, the
data dir's file areas (node.store.files.FILE_AREAS). It is written under a temporary name
and renamed into place once complete and checked (``PRAGMA integrity_check`` of the
copy), so a PATH that exists is a whole backup.

Restore refuses while a node runs on the data dir (node.store.lock), checks the backup
(integrity, not newer than this code, the row counts of its manifest), then moves the
current database (and the file areas it replaces) aside into
``before-restore-<time>/`` in the data dir and puts the backup's in place. The next
start migrates it if it is older than the code.

Files are copied after the database snapshot: a recording finished during the backup may
be there without its row, or the reverse; files being written (``.partial-*``) are left
out.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from node.store.database import DB_FILENAME, integrity_problems, is_damage
from node.store.errors import DatabaseDamaged, DatabaseTooNew, StoreError
from node.store.files import FILE_AREAS, TEMP_PREFIX
from node.store.lock import DataDirLock
from node.store.migrate import status
from node.store.schema import MIGRATIONS

MANIFEST = "manifest.json"
FORMAT = 1


class BackupError(StoreError):
    pass


@dataclass
class BackupSummary:
    path: str
    created_at: float
    schema_version: int
    database_bytes: int
    rows: dict[str, int]
    files: dict[str, int] = field(default_factory=dict)
    """Relative path -> size, for the file areas copied (empty without --with-files)."""
    seconds: float = 0.0
    with_files: bool = False

    def describe(self) -> str:
        file_bytes = sum(self.files.values())
        text = (
            f"{self.path}: database {self.database_bytes / 1e6:.1f} MB, schema version "
            f"{self.schema_version}, {sum(self.rows.values())} rows in {len(self.rows)} tables"
        )
        if self.with_files:
            text += f"; {len(self.files)} files, {file_bytes / 1e6:.1f} MB"
        return text + f" ({self.seconds:.2f} s)"


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = [
        r[0]
        for r in conn.execute(
            "select name from sqlite_master where type = 'table' "
            "and name not like 'sqlite_%' order by name"
        )
    ]
    return {t: int(conn.execute(f'select count(*) from "{t}"').fetchone()[0]) for t in tables}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_areas(source: Path, target: Path) -> dict[str, int]:
    copied: dict[str, int] = {}
    for file_area in FILE_AREAS:
        top = source / file_area.directory
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*")):
            relative = path.relative_to(source)
            if path.name.startswith(TEMP_PREFIX) or not path.is_file():
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(path, destination)
            except FileNotFoundError:
                continue  # deleted while we copied
            _fsync(destination)
            copied[str(relative)] = destination.stat().st_size
    return copied


def backup(data_dir: str | Path, target: str | Path, *, with_files: bool = False) -> BackupSummary:
    """Copy the data dir's database (and file areas) to ``target``, a new directory."""
    started = time.monotonic()
    data = Path(data_dir)
    out = Path(target)
    source_path = data / DB_FILENAME
    if not source_path.exists():
        raise BackupError(f"no database at {source_path}: is data_dir right in node.toml?")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} exists: a backup goes to a new (or empty) directory")
    work = out.with_name(f"{TEMP_PREFIX}{out.name}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        source = sqlite3.connect(source_path, timeout=30)
        copy = sqlite3.connect(work / DB_FILENAME)
        try:
            # pages=-1: the whole database in one step, under one read transaction: a
            # snapshot. (Stepwise copies restart whenever another connection writes.)
            source.backup(copy, pages=-1)
        except sqlite3.DatabaseError as exc:
            copy.close()
            if is_damage(exc):
                raise DatabaseDamaged(source_path, [str(exc)]) from exc
            raise
        finally:
            source.close()
        try:
            problems = integrity_problems(copy, full=True)
            if problems:
                raise DatabaseDamaged(source_path, problems)
            copy.execute("PRAGMA journal_mode = DELETE")
            rows = _row_counts(copy)
            found = status(sqlite_utils.Database(copy))
        finally:
            copy.close()
        _fsync(work / DB_FILENAME)
        summary = BackupSummary(
            path=str(out),
            created_at=time.time(),
            schema_version=found.version,
            database_bytes=(work / DB_FILENAME).stat().st_size,
            rows=rows,
            with_files=with_files,
        )
        if with_files:
            summary.files = _copy_areas(data, work)
        summary.seconds = time.monotonic() - started
        manifest = {"format": FORMAT, **asdict(summary), "migrations": list(found.applied)}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _fsync(work / MANIFEST)
        if out.exists():
            out.rmdir()
        work.rename(out)
        _fsync(out.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(
            f"{source} is not a Parley backup (no readable {MANIFEST}): {exc}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source / MANIFEST}: not a backup format this code reads")
    return manifest


def verify(source: str | Path) -> dict[str, Any]:
    """Check a backup before it is restored: readable, undamaged, not newer than this
    code, and holding the rows its manifest lists. Returns the manifest."""
    path = Path(source)
    manifest = read_manifest(path)
    db_path = path / DB_FILENAME
    if not db_path.is_file():
        raise BackupError(f"{path} has no {DB_FILENAME}")
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        problems = integrity_problems(conn, full=True)
        if problems:
            raise DatabaseDamaged(db_path, problems)
        found = status(sqlite_utils.Database(conn))
        if found.unknown:
            raise DatabaseTooNew(found.unknown, len(MIGRATIONS))
        rows = _row_counts(conn)
    finally:
        conn.close()
    if rows != manifest.get("rows"):
        raise BackupError(f"{db_path} does not hold the rows {MANIFEST} lists")
    for relative, size in dict(manifest.get("files", {})).items():
        file_path = path / relative
        if not file_path.is_file() or file_path.stat().st_size != size:
            raise BackupError(f"{file_path} is missing or not the size {MANIFEST} lists")
    return manifest


@dataclass
class RestoreSummary:
    source: str
    schema_version: int
    code_version: int
    rows: int
    files: int
    kept: str
    """Where the data dir's previous database (and replaced file areas) were moved."""

    def describe(self) -> str:
        text = (
            f"restored {self.source}: {self.rows} rows, {self.files} files; schema version "
            f"{self.schema_version}"
        )
        if self.schema_version < self.code_version:
            text += f" (the node upgrades it to {self.code_version} when it starts)"
        return text + f". The previous data is kept in {self.kept}"


def restore(data_dir: str | Path, source: str | Path) -> RestoreSummary:
    """Put a backup in place of the data dir's database (and file areas, if it has them).
    Refused while a node runs on the data dir."""
    data = Path(data_dir)
    backup_dir = Path(source)
    with DataDirLock(data, "python -m node restore"):
        manifest = verify(backup_dir)
        files = dict(manifest.get("files", {}))
        # Everything new is staged beside its place first; then the old is moved aside
        # and the new renamed in, so a failure midway never leaves the data dir empty.
        staged = data / f"{TEMP_PREFIX}{DB_FILENAME}"
        shutil.copyfile(backup_dir / DB_FILENAME, staged)
        _fsync(staged)
        staged_areas: dict[str, Path] = {}
        if manifest.get("with_files"):
            for file_area in FILE_AREAS:
                staged_area = data / f"{TEMP_PREFIX}{file_area.directory}"
                shutil.rmtree(staged_area, ignore_errors=True)
                staged_area.mkdir()
                staged_areas[file_area.directory] = staged_area
            for relative in files:
                directory, _, rest = relative.partition("/")
                destination = staged_areas[directory] / rest
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(backup_dir / relative, destination)
                _fsync(destination)
        kept = data / time.strftime("before-restore-%Y%m%d-%H%M%S")
        kept.mkdir(parents=True)
        current = data / DB_FILENAME
        if current.exists():
            os.link(current, kept / DB_FILENAME)
        # The old WAL belongs to the old file: left here it would be replayed onto the
        # restored one.
        for suffix in ("-wal", "-shm", "-journal"):
            part = data / f"{DB_FILENAME}{suffix}"
            if part.exists():
                part.rename(kept / part.name)
        os.replace(staged, current)
        for directory, staged_area in staged_areas.items():
            if (data / directory).exists():
                (data / directory).rename(kept / directory)
            staged_area.rename(data / directory)
        _fsync(kept)
        _fsync(data)
    return RestoreSummary(
        source=str(backup_dir),
        schema_version=int(manifest["schema_version"]),
        code_version=len(MIGRATIONS),
        rows=sum(dict(manifest["rows"]).values()),
        files=len(files),
        kept=str(kept),
    )
