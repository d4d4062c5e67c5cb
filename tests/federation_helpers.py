"""Helpers for federation tests against real node processes (no tests live here)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from federation.actors import ACTIVITY_JSON
from federation.signatures import sign_request, sign_request_rfc9421
from tests.conftest import Api, NodeProcess

T = TypeVar("T")


def wait_for(fn: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Poll ``fn`` until it returns something truthy (async delivery: no timing asserts)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or fn}")
        time.sleep(0.1)


def db_rows(node: NodeProcess, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the node's SQLite database directly (WAL: safe next to the running node)."""
    conn = sqlite3.connect(node.directory / "data" / "parley.db", timeout=10)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def private_key(node: NodeProcess, username: str) -> str:
    rows = db_rows(node, "select private_key_pem from accounts where username = ?", (username,))
    return str(rows[0][0])


def handle(node: NodeProcess, username: str) -> str:
    return f"{username}@127.0.0.1:{node.port}"


def actor_url(node: NodeProcess, username: str) -> str:
    return f"{node.base_url}/users/{username}"


def signed_post(
    url: str,
    body: bytes,
    *,
    key_id: str,
    pem: str,
    rfc9421: bool = False,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Content-Type": ACTIVITY_JSON, **(extra or {})}
    sign = sign_request_rfc9421 if rfc9421 else sign_request
    signed = sign("POST", url, headers, body, key_id, pem)
    return httpx.post(url, content=body, headers=signed, timeout=15)


def signed_get(url: str, *, key_id: str, pem: str, rfc9421: bool = False) -> httpx.Response:
    headers = {"Accept": ACTIVITY_JSON}
    sign = sign_request_rfc9421 if rfc9421 else sign_request
    return httpx.get(url, headers=sign("GET", url, headers, None, key_id, pem), timeout=15)


def follows(api: Api, token: str) -> list[dict[str, Any]]:
    response = api.request("GET", "/api/v1/follows", token)
    assert response.status_code == 200, response.text
    return list(response.json()["following"])


def follow(api: Api, token: str, target: str) -> dict[str, Any]:
    response = api.request("POST", "/api/v1/follows", token, json={"handle": target})
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_accepted(api: Api, token: str, target_actor: str) -> None:
    wait_for(
        lambda: any(
            f["actor"] == target_actor and f["state"] == "accepted" for f in follows(api, token)
        ),
        what=f"follow of {target_actor} accepted",
    )


def remote_rooms(api: Api) -> list[dict[str, Any]]:
    response = api.http.get("/api/v1/rooms")
    assert response.status_code == 200, response.text
    return [r for r in response.json()["rooms"] if r.get("remote")]


def deliveries(node: NodeProcess, activity_type: str) -> list[dict[str, Any]]:
    rows = db_rows(node, "select activity_json, inbox_url, state, tries from fed_deliveries")
    result = []
    for activity_json, inbox_url, state, tries in rows:
        activity = json.loads(activity_json)
        if activity.get("type") == activity_type:
            result.append(
                {"activity": activity, "inbox": inbox_url, "state": state, "tries": tries}
            )
    return result


def inbox_rows(node: NodeProcess, activity_id: str) -> list[tuple[Any, ...]]:
    return db_rows(
        node, "select state, receipts from fed_inbox where activity_id = ?", (activity_id,)
    )
