"""What can stop the node's storage from being used, as the operator must be told it.

StoreError
└── SchemaError
    ├── DatabaseTooNew  the database records migrations this code does not know
    └── MigrationFailed a migration raised; the database is left as it was

``python -m node`` prints these and exits; they never reach the web layer.
"""

from __future__ import annotations

from collections.abc import Sequence


class StoreError(Exception):
    pass


class SchemaError(StoreError):
    pass


class DatabaseTooNew(SchemaError):
    def __init__(self, unknown: Sequence[str], known_version: int) -> None:
        super().__init__(
            f"the database was upgraded by a newer Parley: it records migrations "
            f"{', '.join(unknown)}, and this code knows up to schema version "
            f"{known_version}. Run the newer code, or restore a backup made with this "
            f"version"
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
