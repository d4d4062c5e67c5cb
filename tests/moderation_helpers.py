"""Helpers for moderation tests against real node processes (no tests live here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, Api, NodeProcess, free_port


class NodeOn(NodeProcess):
    """A node on another loopback address (127.0.0.2 ...): a domain block of one node's
    host then does not cover the others (which all live on 127.0.0.1)."""

    def __init__(
        self, directory: Path, port: int, overrides: dict[str, dict[str, Any]], address: str
    ) -> None:
        super().__init__(directory, port, overrides)
        self.address = address

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def sections(self) -> dict[str, dict[str, Any]]:
        sections = super().sections()
        sections["node"].update(base_url=self.base_url, host=self.address)
        return sections


def make_admin(node: NodeProcess, api: Api, username: str = "root") -> str:
    """An admin made as an operator makes one (the CLI, next to the running node); its
    token."""
    password = f"{username} password"
    made = subprocess.run(
        [sys.executable, "-m", "node", "--config", str(node.config_path), "create-user"]
        + [username, "--admin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    response = api.http.post("/api/v1/sessions", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    api.http.cookies.clear()
    return str(response.json()["token"])


def admin_post(api: Api, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = api.request("POST", f"/api/v1/admin/{path}", token, json=body or {})
    assert response.status_code in (200, 201, 204), response.text
    return response.json() if response.content else None


def node_on(directory: Path, address: str, **overrides: dict[str, Any]) -> NodeOn:
    """Start a node on ``address`` (stop it yourself)."""
    directory.mkdir(parents=True, exist_ok=True)
    node = NodeOn(directory, free_port(), overrides, address)
    node.start()
    return node
