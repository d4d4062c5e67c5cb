"""What the admin is told about storage: writes that failed because the disk is full.

The database connection (node.store.database) and the data dir's file writer
(node.store.files) report here when a write fails for want of space, and again when one
of the same feature succeeds; GET /api/v1/admin/storage shows it with the free space,
and the log says it once per episode (not once per failed request).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from node.errors import InsufficientStorage

log = logging.getLogger(__name__)


@contextlib.contextmanager
def kept_in_memory(what: str) -> Iterator[None]:
    """For writes that mirror state the node holds in memory (a live room's state, a
    carried room's succession list): with the disk full the room goes on, unsaved, rather
    than stopping. The failure was already reported (the admin sees it); a restart would
    find the state of the last successful save."""
    try:
        yield
    except InsufficientStorage:
        log.warning("%s not saved: the disk is full; it goes on in memory", what)


@dataclass
class StorageProblem:
    feature: str
    message: str
    since: float
    last: float
    failures: int


class StorageHealth:
    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self._problems: dict[str, StorageProblem] = {}

    def report(self, feature: str, message: str) -> None:
        now = time.time()
        problem = self._problems.get(feature)
        if problem is None:
            self._problems[feature] = StorageProblem(feature, message, now, now, 1)
            log.error(
                "storage: %s cannot write (%s); free space under %s: %s bytes",
                feature,
                message,
                self.data_dir,
                self._free_bytes(),
            )
        else:
            problem.last, problem.message = now, message
            problem.failures += 1

    def recovered(self, feature: str) -> None:
        problem = self._problems.pop(feature, None)
        if problem is not None:
            log.warning(
                "storage: %s writes again (%d writes failed since %s)",
                feature,
                problem.failures,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(problem.since)),
            )

    def failing(self, feature: str) -> bool:
        return feature in self._problems

    def problems(self) -> list[StorageProblem]:
        return sorted(self._problems.values(), key=lambda p: p.since)

    def _free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.data_dir).free
        except OSError:
            return None

    def to_json(self) -> dict[str, Any]:
        free: int | None = None
        total: int | None = None
        try:
            usage = shutil.disk_usage(self.data_dir)
            free, total = usage.free, usage.total
        except OSError:
            pass
        database = sum(p.stat().st_size for p in self.data_dir.glob("parley.db*") if p.is_file())
        return {
            "ok": not self._problems,
            "data_dir": str(self.data_dir),
            "free_bytes": free,
            "total_bytes": total,
            "database_bytes": database,
            "problems": [asdict(p) for p in self.problems()],
        }
