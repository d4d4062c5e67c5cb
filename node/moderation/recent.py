"""The node's recent warnings and errors, kept in memory for the admin dashboard (the
full log is wherever the operator sends the process's output)."""

from __future__ import annotations

import collections
import logging
from typing import Any

MAX_KEPT = 100
MAX_MESSAGE = 500


class RecentProblems(logging.Handler):
    """A logging handler keeping the last ``MAX_KEPT`` records of WARNING and above."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self._records: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_KEPT)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self._records.append(
            {
                "at": record.created,
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": message[:MAX_MESSAGE],
            }
        )

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first."""
        return list(reversed(self._records))[:limit]

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
