"""schemathesis against the OpenAPI schema a real node serves (/api/v1/openapi.json).

Every operation, signed in and not: no 500, and every answer matches the schema (its
status is documented, its body fits the declared schema or the Error schema, its
content type is the declared one). The node runs with the address policy on, so the
look-ups random input asks for (follows, remote rooms) cannot reach loopback services.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from tests.conftest import NodeProcess, free_port

# An SDP offer is text: send what the schema's string generates, as text/plain would be.
schemathesis.serializer.alias("application/sdp", "text/plain")

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = 12  # per operation and per mode; the long fuzz profile multiplies it


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, str]]:
    directory = Path(tmp_path_factory.mktemp("openapi-node"))
    node = NodeProcess(
        directory,
        free_port(),
        {
            "accounts": {"auth_rate_per_minute": 100_000},
            "federation": {"allow_private_addresses": False, "fetch_rate_per_minute": 100_000},
        },
    )
    node.start()
    username = f"fuzz{secrets.token_hex(3)}"
    response = httpx.post(
        f"{node.base_url}/api/v1/accounts",
        json={"username": username, "password": "correct horse"},
        timeout=10,
    )
    token = response.json()["token"]
    # Something to find: a live room, so room operations do more than 404.
    room = httpx.post(
        f"{node.base_url}/api/v1/rooms",
        json={"title": "Fuzzed"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    httpx.post(
        f"{node.base_url}/api/v1/rooms/{room['id']}/start",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    yield node, token
    node.stop()
    log = (directory / "node.log").read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 :]


def _run(node: NodeProcess, headers: dict[str, str], *, secured_only: bool) -> list[str]:
    """The served schema's operations through hypothesis; returns what ran.
    ``secured_only``: those that take credentials (the others answer a signed-in client
    as they answer a guest, and sign-up/log-in cost an argon2 hash each)."""
    schema = schemathesis.openapi.from_url(f"{node.base_url}/api/v1/openapi.json")
    ran: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if secured_only and not operation.definition.raw.get("security"):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=20)

        call()
        ran.append(f"{operation.method.upper()} {operation.path}")
    return ran


def test_api_as_a_guest(served: tuple[NodeProcess, str]) -> None:
    node, _ = served
    ran = _run(node, {}, secured_only=False)
    assert "POST /api/v1/rooms/{room_id}/whip" in ran and len(ran) >= 40, ran


def test_api_signed_in(served: tuple[NodeProcess, str]) -> None:
    node, token = served
    ran = _run(node, {"Authorization": f"Bearer {token}"}, secured_only=True)
    assert "POST /api/v1/publish-keys" in ran and len(ran) >= 25, ran
