"""The data dir's lock: the running node holds ``node.lock`` for its whole life, so a
restore (or a second node, or ``migrate``) on the same data dir is refused while it runs.

A POSIX record lock (``fcntl.lockf``): the kernel drops it when the process ends, however
it ends (kill -9 included), so a stale file never blocks; unlike ``flock`` it is not
shared with forked children (media workers), which must not keep a data dir locked after
the node died. The file holds the holder's pid, for the message only.

One lock per process: POSIX drops all of a process's locks on a file when it closes ANY
descriptor of that file, so nothing else in the node opens ``node.lock``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from node.store.errors import DataDirInUse

LOCK_FILENAME = "node.lock"


class DataDirLock:
    def __init__(self, data_dir: str | Path, purpose: str) -> None:
        self.data_dir = Path(data_dir)
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.data_dir / LOCK_FILENAME

    def acquire(self) -> DataDirLock:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataDirInUse(self.data_dir, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.purpose}, pid {os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
