"""The admin-editable server settings (table ``node_settings``: one row per setting,
its value as JSON). node.server_settings says what they are."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import sqlite_utils

from node.config import Config
from node.server_settings import ServerSettings
from node.store.database import transaction


class SettingsStore:
    def __init__(self, db: sqlite_utils.Database, config: Config) -> None:
        self._db = db
        self._defaults = ServerSettings(
            name="",
            # node.toml's [node] description until an admin writes one.
            description=config.node.description.strip(),
            rules=(),
            contact="",
            registration=config.accounts.registration,
        )
        self._current = self._load()

    def _load(self) -> ServerSettings:
        stored = {
            name: json.loads(value)
            for name, value in self._db.execute("select name, value from node_settings")
        }
        # Stored values were validated when they were written; lists come back as lists.
        known: dict[str, Any] = {
            k: tuple(v) if k == "rules" else v
            for k, v in stored.items()
            if k in ServerSettings.__slots__
        }
        return replace(self._defaults, **known)

    def current(self) -> ServerSettings:
        return self._current

    def update(self, settings: ServerSettings) -> ServerSettings:
        with transaction(self._db):
            for name, value in settings.to_json().items():
                self._db.execute(
                    "insert into node_settings (name, value) values (?, ?) "
                    "on conflict (name) do update set value = excluded.value",
                    [name, json.dumps(value)],
                )
        self._current = self._load()
        return self._current
