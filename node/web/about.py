"""What this node is, for people who do not know it yet: its name and description.

One function answers it for the home page's welcome, ``GET /api/v1/config`` and the link
previews of every page. For now the name is the node's host and the description comes from
``[node] description`` in node.toml; admin-editable settings will replace this lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import State

from node.config import Config


@dataclass(frozen=True, slots=True)
class NodeAbout:
    name: str
    description: str
    host: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "description": self.description, "host": self.host}


def node_about(state: State) -> NodeAbout:
    """The node's name and description; ``state`` is the app's state (``request.app.state``),
    where admin-editable settings will be read from once they exist."""
    config: Config = state.config
    host = urlsplit(config.node.base_url).netloc
    return NodeAbout(name=host, description=config.node.description.strip(), host=host)
