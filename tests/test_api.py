"""The JSON API against a real node process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx

from tests.conftest import ROOT, Api, NodeProcess

ROOM_KEYS = {
    "id", "title", "state", "url", "host", "speakers", "listener_count",
    "whip_url", "whep_url", "listen_url",
}  # fmt: skip


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"]
    # A bad field is named, for the client to show the error next to it.
    if body["error"] == "invalid_input":
        assert set(body) == {"error", "detail", "field"} and body["field"], body
    else:
        assert set(body) - {"field"} == {"error", "detail"}, body
    if code:
        assert body["error"] == code


def test_signup_login_logout_and_sessions(api: Api) -> None:
    created = api.http.post("/api/v1/accounts", json={"username": "Alice", "password": "pw123456"})
    assert created.status_code == 201
    assert created.json()["username"] == "alice"
    cookie = created.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    token = created.json()["token"]
    me = api.request("GET", "/api/v1/me", token).json()
    assert me["username"] == "alice" and me["handle"].startswith("@alice@127.0.0.1:")
    api.http.cookies.clear()
    assert_error(
        api.http.post("/api/v1/sessions", json={"username": "alice", "password": "nope1234"}), 401
    )
    login = api.http.post("/api/v1/sessions", json={"username": "alice", "password": "pw123456"})
    assert login.status_code == 200
    second = login.json()["token"]
    # The browser path: the cookie alone authenticates.
    assert api.http.get("/api/v1/me").json()["username"] == "alice"
    sessions = api.request("GET", "/api/v1/sessions", second).json()["sessions"]
    assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
    first_id = next(s["id"] for s in sessions if not s["current"])
    assert api.request("DELETE", f"/api/v1/sessions/{first_id}", second).status_code == 204
    assert_error(api.request("GET", "/api/v1/me", token), 401)
    assert api.request("DELETE", "/api/v1/sessions/current", second).status_code == 204
    assert_error(api.request("GET", "/api/v1/me", second), 401)
    patched = api.request(
        "PATCH", "/api/v1/me", api.signup("bob"), json={"display_name": "Bob B", "bio": "hi"}
    )
    assert patched.json()["display_name"] == "Bob B"


def test_bad_input_gets_json_errors(api: Api) -> None:
    token = api.signup("carol")
    assert_error(
        api.http.post(
            "/api/v1/accounts", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
    )
    assert_error(api.http.post("/api/v1/accounts", json=["a"]), 400)
    assert_error(
        api.http.post("/api/v1/accounts", json={"username": "carol", "password": "another1"}), 409
    )
    assert_error(
        api.http.post("/api/v1/accounts", json={"username": "no spaces", "password": "pw123456"}),
        422,
    )
    assert_error(
        api.http.post("/api/v1/accounts", json={"username": "dan", "password": "short"}), 422
    )
    assert_error(
        api.http.post("/api/v1/accounts", json={"username": 5, "password": "pw123456"}), 422
    )
    assert_error(api.request("POST", "/api/v1/rooms", token, json={"title": "x" * 121}), 422)
    assert_error(api.request("POST", "/api/v1/rooms", token, json={"title": ""}), 422)
    assert_error(
        api.request("POST", "/api/v1/rooms", token, json={"title": "t", "visibility": "secret"}),
        422,
    )
    assert_error(api.request("POST", "/api/v1/rooms", token, content=b"x" * 70_000), 413)
    assert_error(api.http.post("/api/v1/rooms", json={"title": "t"}), 401)
    assert_error(api.request("POST", "/api/v1/rooms", "forged", json={"title": "t"}), 401)
    assert_error(
        api.http.post("/api/v1/rooms", json={"title": "t"}, headers={"Authorization": "Basic a"}),
        401,
    )
    assert_error(api.http.get("/api/v1/rooms/doesnotexist"), 404)
    assert_error(api.http.get("/api/v1/nothing"), 404)
    assert_error(api.http.delete("/api/v1/rooms"), 405)
    # Nothing half-written: the failed sign-ups left no accounts behind.
    assert_error(
        api.http.post("/api/v1/sessions", json={"username": "dan", "password": "short"}), 401
    )


def test_room_life_cycle_and_permissions(api: Api) -> None:
    host = api.signup("host1")
    other = api.signup("other1")
    room = api.create_room(host, "Morning show", description="news", visibility="public")
    assert ROOM_KEYS <= set(room)
    assert room["state"] == "scheduled"
    assert room["url"] == f"{api.base_url}/rooms/{room['id']}"
    assert room["whip_url"].startswith(api.base_url) and room["listen_url"].endswith(".ogg")
    assert room["host"]["username"] == "host1"
    assert api.http.get("/api/v1/rooms").json()["rooms"] == []
    assert_error(api.request("POST", f"/api/v1/rooms/{room['id']}/start", other), 403)
    assert_error(api.request("POST", f"/api/v1/rooms/{room['id']}/hand", other), 409)
    live = api.request("POST", f"/api/v1/rooms/{room['id']}/start", host).json()
    assert live["state"] == "live"
    assert [r["id"] for r in api.http.get("/api/v1/rooms").json()["rooms"]] == [room["id"]]
    assert_error(
        api.request("POST", f"/api/v1/rooms/{room['id']}/start", host), 409, "illegal_transition"
    )
    assert_error(
        api.request("PATCH", f"/api/v1/rooms/{room['id']}", other, json={"title": "mine"}), 403
    )
    renamed = api.request(
        "PATCH", f"/api/v1/rooms/{room['id']}", host, json={"title": "Evening show"}
    )
    assert renamed.json()["title"] == "Evening show"
    assert_error(api.request("POST", f"/api/v1/rooms/{room['id']}/end", other), 403)
    assert api.request("POST", f"/api/v1/rooms/{room['id']}/end", host).json()["state"] == "ended"
    assert api.http.get("/api/v1/rooms").json()["rooms"] == []
    assert api.http.get(f"/api/v1/rooms/{room['id']}").json()["state"] == "ended"


def test_unlisted_rooms_are_not_listed(api: Api) -> None:
    host = api.signup("host2")
    room = api.create_room(host, "Secret-ish", visibility="unlisted")
    api.request("POST", f"/api/v1/rooms/{room['id']}/start", host)
    assert api.http.get("/api/v1/rooms").json()["rooms"] == []
    assert api.http.get(f"/api/v1/rooms/{room['id']}").json()["state"] == "live"


def test_registration_closed_and_approval(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    closed = api_factory(node_factory(accounts={"registration": "closed"}))
    assert_error(
        closed.http.post("/api/v1/accounts", json={"username": "x", "password": "pw123456"}), 403
    )
    approval_node = node_factory(accounts={"registration": "approval"})
    approval = api_factory(approval_node)
    pending = approval.http.post(
        "/api/v1/accounts", json={"username": "y", "password": "pw123456"}
    )
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    assert_error(
        approval.http.post("/api/v1/sessions", json={"username": "y", "password": "pw123456"}), 403
    )
    # An administrator (made with the CLI, as an operator would) approves the sign-up.
    node = approval_node
    made = subprocess.run(
        [sys.executable, "-m", "node", "--config", str(node.config_path), "create-user", "root"]
        + ["--admin"],
        input="root password\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    admin = approval.http.post(
        "/api/v1/sessions", json={"username": "root", "password": "root password"}
    ).json()["token"]
    approval.http.cookies.clear()
    assert_error(approval.http.get("/api/v1/admin/accounts/pending"), 401)
    pending_list = approval.request("GET", "/api/v1/admin/accounts/pending", admin).json()
    assert [a["username"] for a in pending_list["accounts"]] == ["y"]
    approved = approval.request("POST", "/api/v1/admin/accounts/y/approve", admin)
    assert approved.status_code == 200
    assert_error(approval.request("POST", "/api/v1/admin/accounts/y/approve", admin), 409)
    login = approval.http.post("/api/v1/sessions", json={"username": "y", "password": "pw123456"})
    assert login.status_code == 200
    assert_error(
        approval.request("GET", "/api/v1/admin/accounts/pending", login.json()["token"]), 403
    )


def test_login_is_rate_limited(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    api = api_factory(node_factory(accounts={"auth_rate_per_minute": 3}))
    statuses = [
        api.http.post(
            "/api/v1/sessions", json={"username": "nobody", "password": "pw123456"}
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    limited = api.http.post("/api/v1/accounts", json={"username": "z", "password": "pw123456"})
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1


def test_openapi_and_pages(api: Api) -> None:
    schema = api.http.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/accounts",
        "/api/v1/sessions",
        "/api/v1/rooms",
        "/api/v1/rooms/{room_id}/whip",
    ):
        assert path in schema["paths"]
    # An unknown room is still the client's page (it says so), with status 404.
    page = api.http.get("/rooms/anything")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
