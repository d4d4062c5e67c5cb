"""What this node is, for people who do not know it yet: its name and description.

One function answers it for the home page's welcome, ``GET /api/v1/config`` and the link
previews of every page. Both come from the admin-editable server settings
(node.store.settings): the name an admin gave the node, or its host; the admin's
description, or ``[node] description`` from node.toml until an admin writes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import State

from node.config import Config
from node.store.settings import SettingsStore


@dataclass(frozen=True, slots=True)
class NodeAbout:
    name: str
    description: str
    host: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "description": self.description, "host": self.host}


def node_about(state: State) -> NodeAbout:
    """The node's name and description; ``state`` is the app's state (``request.app.state``)."""
    config: Config = state.config
    settings: SettingsStore = state.settings
    current = settings.current()
    host = urlsplit(config.node.base_url).netloc
    return NodeAbout(name=current.name or host, description=current.description, host=host)
