"""Files under the data dir (recordings, avatars...): where they live and how to write
them so that a crash or a full disk never leaves half a file in place.

``FILE_AREAS`` lists every directory of the data dir that holds files. ``python -m node
backup --with-files`` copies these and restore puts them back, so a feature that keeps
files adds its directory here (docs/ARCHITECTURE.md, "Where to add things") and writes
through ``DataFiles``:

- ``write(area, name, data)``: the whole file at once (an avatar): written beside its
  place under a temporary name, fsynced, then renamed over it; readers and backups see
  the old file or the new one, never a part;
- ``growing(area, name)``: a file written piece by piece (a recording), under a
  temporary name until ``finish()`` renames it into place.

A write that fails for want of space (ENOSPC, EDQUOT) removes its temporary file, tells
node.store.health (the admin's storage view, the log) and raises
``InsufficientStorage`` (a 507 JSON answer), which stops that feature's write and
nothing else.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from node.errors import InsufficientStorage
from node.store.health import StorageHealth


@dataclass(frozen=True)
class FileArea:
    directory: str
    """Under the data dir; created on first write (it may not exist yet)."""
    feature: str
    """As the admin reads it in errors and in the storage view."""


FILE_AREAS: tuple[FileArea, ...] = (
    FileArea("recordings", "recordings"),
    FileArea("avatars", "avatars"),
)

TEMP_PREFIX = ".partial-"
"""Files being written; backups skip them and restore never brings them back."""

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def is_no_space(exc: OSError) -> bool:
    return exc.errno in _NO_SPACE


def area(directory: str) -> FileArea:
    for found in FILE_AREAS:
        if found.directory == directory:
            return found
    raise ValueError(f"{directory!r} is not a file area of the data dir (FILE_AREAS)")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GrowingFile:
    """A file written in pieces; in place only after ``finish()``."""

    def __init__(self, files: DataFiles, file_area: FileArea, final: Path) -> None:
        self._files = files
        self._area = file_area
        self.path = final
        self._temp = final.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{final.name}")
        self._handle = files.guard(file_area, lambda: open(self._temp, "xb"))  # noqa: SIM115
        self.size = 0

    def write(self, data: bytes) -> None:
        self._files.guard(self._area, lambda: self._handle.write(data), on_error=self.abort)
        self.size += len(data)

    def finish(self) -> Path:
        def complete() -> None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self._temp, self.path)
            _fsync_dir(self.path.parent)

        self._files.guard(self._area, complete, on_error=self.abort)
        self._files.health.recovered(self._area.feature)
        return self.path

    def abort(self) -> None:
        if not self._handle.closed:
            try:
                self._handle.close()
            except OSError:
                pass  # the buffered rest could not be written either: it is dropped
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> GrowingFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            if not self._handle.closed:
                self.finish()
        else:
            self.abort()


class DataFiles:
    def __init__(self, data_dir: str | Path, health: StorageHealth) -> None:
        self.data_dir = Path(data_dir)
        self.health = health

    def path(self, directory: str, name: str) -> Path:
        """Where ``name`` of an area lives. Names are one plain component: no path."""
        found = area(directory)
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a file name for {found.directory}: {name!r}")
        return self.data_dir / found.directory / name

    def guard(
        self,
        file_area: FileArea,
        action: Callable[[], T],
        on_error: Callable[[], None] | None = None,
    ) -> T:
        """Run a write; a full disk becomes InsufficientStorage (reported), after cleanup."""
        try:
            return action()
        except OSError as exc:
            if on_error is not None:
                on_error()
            if is_no_space(exc):
                self.health.report(file_area.feature, f"{exc.strerror} ({exc.filename or ''})")
                raise InsufficientStorage(file_area.feature) from exc
            raise

    def write(self, directory: str, name: str, data: bytes) -> Path:
        final = self.path(directory, name)
        file_area = area(directory)
        self.guard(file_area, lambda: final.parent.mkdir(parents=True, exist_ok=True))
        with GrowingFile(self, file_area, final) as growing:
            growing.write(data)
        return final

    def growing(self, directory: str, name: str) -> GrowingFile:
        final = self.path(directory, name)
        file_area = area(directory)
        self.guard(file_area, lambda: final.parent.mkdir(parents=True, exist_ok=True))
        return GrowingFile(self, file_area, final)

    def delete(self, directory: str, name: str) -> None:
        self.path(directory, name).unlink(missing_ok=True)
