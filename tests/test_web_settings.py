"""Account settings against a real node: changing the password signs out the other
sessions; wrong or weak passwords are refused with the field named."""

from __future__ import annotations

from tests.conftest import Api
from tests.test_api import assert_error


def login(api: Api, username: str, password: str) -> str:
    response = api.http.post("/api/v1/sessions", json={"username": username, "password": password})
    api.http.cookies.clear()
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_changing_the_password(api: Api) -> None:
    first = api.signup("erin", password="first password")
    second = login(api, "erin", "first password")
    path = "/api/v1/me/password"

    wrong = api.request(
        "POST", path, first, json={"current_password": "nope", "new_password": "second pw"}
    )
    assert_error(wrong, 422, "invalid_input")
    assert wrong.json()["field"] == "current_password"
    weak = api.request(
        "POST", path, first, json={"current_password": "first password", "new_password": "short"}
    )
    assert_error(weak, 422, "invalid_input")
    assert weak.json()["field"] == "new_password"
    missing = api.request("POST", path, first, json={"new_password": "second password"})
    assert missing.json()["field"] == "current_password"
    assert_error(api.http.post(path, json={}), 401)

    changed = api.request(
        "POST",
        path,
        first,
        json={"current_password": "first password", "new_password": "second password"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"revoked_sessions": 1}
    # The session that asked stays; the other is signed out; only the new password works.
    assert api.request("GET", "/api/v1/me", first).status_code == 200
    assert_error(api.request("GET", "/api/v1/me", second), 401)
    assert_error(
        api.http.post("/api/v1/sessions", json={"username": "erin", "password": "first password"}),
        401,
    )
    login(api, "erin", "second password")
