"""Issue 12's API refuses what does not fit, with the right status and a JSON error."""

from __future__ import annotations

import time

from tests.conftest import Api


def test_what_does_not_fit_is_refused(api: Api) -> None:
    alice = api.signup("alice")
    bob = api.signup("bob")
    bad_starts = [
        "2026-11-23T18:00:00",  # no offset: whose evening?
        "soon",
        time.time() - 3600,
        time.time() + 400 * 86400,
        True,
    ]
    for starts in bad_starts:
        response = api.request(
            "POST", "/api/v1/rooms", alice, json={"title": "x", "starts_at": starts}
        )
        assert response.status_code == 422 and response.json()["error"] == "invalid_input", starts
    response = api.request("POST", "/api/v1/rooms", alice, json={"title": "x", "recording": "yes"})
    assert response.status_code == 422

    room = api.create_room(alice, "Later", starts_at=time.time() + 600)
    base = f"/api/v1/rooms/{room['id']}"
    # Before going live: reactions and taking over refused (not live); schedule editable.
    assert api.request("POST", f"{base}/reactions", alice, json={"emoji": "👏"}).status_code == 409
    response = api.request("PATCH", base, alice, json={"starts_at": "2099-01-01T00:00:00Z"})
    assert response.status_code == 422  # more than a year ahead
    response = api.request("PATCH", base, bob, json={"recording": True})
    assert response.status_code == 403
    assert api.request("PATCH", base, alice, json={"recording": True}).json()["recording"]
    assert api.request("POST", f"{base}/start", alice).status_code == 200
    response = api.request("PATCH", base, alice, json={"recording": False})
    assert response.status_code == 409  # decided before going live
    assert api.request("GET", f"{base}/calendar.ics").status_code == 200

    for emoji in ("💩", "", None, 7, "👏" * 20):
        response = api.request("POST", f"{base}/reactions", alice, json={"emoji": emoji})
        assert response.status_code == 422, (emoji, response.text)
    assert api.request("POST", f"{base}/reactions", json={"emoji": "👏"}).status_code == 401
    for text in ("", "   ", "x" * 501, 5):
        response = api.request("POST", f"{base}/comments", alice, json={"text": text})
        assert response.status_code == 422, text
    assert (
        api.request("POST", f"{base}/comments/hide", bob, json={"comment": "x"}).status_code == 403
    )
    response = api.request(
        "POST", f"{base}/comments/hide", alice, json={"comment": "https://x.example/1"}
    )
    assert response.status_code == 404
    for pin in ({"link": "javascript:alert(1)"}, {"link": "ftp://x"}, {}):
        response = api.request("PUT", f"{base}/pin", alice, json=pin)
        assert response.status_code == 422, pin
    response = api.request(
        "PUT", f"{base}/pin", alice, json={"link": "https://x.example/", "label": "Read"}
    )
    assert response.json()["comments"]["pinned"] == {"link": "https://x.example/", "label": "Read"}
    assert api.request("POST", f"{base}/take-host", alice).status_code == 403  # not a cohost
    assert api.request("POST", f"{base}/hand-over", alice, json={"to": "bob"}).status_code == 404
    assert api.request("POST", f"{base}/hand-over", alice, json={}).status_code == 422
    assert api.request("GET", f"{base}/comments?limit=x").status_code == 400
    assert api.request("GET", f"{base}/comments?before=nan").status_code == 400
    assert api.request("GET", f"{base}/recording").status_code == 404

    for room_ref in ("not a url", 5, None):
        response = api.request("POST", "/api/v1/reminders", bob, json={"room": room_ref})
        assert response.status_code == 422
    response = api.request("POST", "/api/v1/reminders", bob, json={"room": room["url"]})
    assert response.status_code == 409  # live already: nothing to remind of
    response = api.request(
        "POST", "/api/v1/reminders", bob, json={"room": "https://x.example/rooms/r"}
    )
    assert response.status_code == 404
    assert api.request("DELETE", "/api/v1/reminders", bob).status_code == 400
    assert api.request("GET", "/api/v1/notifications").status_code == 401
    response = api.request("POST", "/api/v1/notifications/read", bob, json={"ids": [2**60]})
    assert response.status_code == 422
    assert api.request("GET", "/api/v1/rooms?state=ended").status_code == 422
