"""The admin API and what users have of moderation, against a real node process.

Every admin route refuses non-staff (403; 401 without credentials); moderators get the
staff routes but not roles, settings, domain blocks, deletions or password links, and
never act on other staff.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import websockets.sync.client as ws_client

from federation.actors import ACTIVITY_JSON
from tests.conftest import Api, NodeProcess, free_port
from tests.federation_helpers import db_rows, wait_for
from tests.moderation_helpers import make_admin
from tests.test_api import assert_error

NodeFactory = Callable[..., NodeProcess]
ApiFactory = Callable[[NodeProcess], Api]

STAFF_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/admin/dashboard", None),
    ("GET", "/api/v1/admin/accounts", None),
    ("GET", "/api/v1/admin/accounts/pending", None),
    ("POST", "/api/v1/admin/accounts/target/approve", {}),
    ("POST", "/api/v1/admin/accounts/target/reject", {}),
    ("POST", "/api/v1/admin/accounts/target/suspend", {"reason": "x"}),
    ("POST", "/api/v1/admin/accounts/target/unsuspend", {}),
    ("POST", "/api/v1/admin/accounts/target/silence", {}),
    ("POST", "/api/v1/admin/accounts/target/unsilence", {}),
    ("GET", "/api/v1/admin/rooms", None),
    ("POST", "/api/v1/admin/rooms/ROOM/end", {"reason": "x"}),
    ("GET", "/api/v1/admin/reports", None),
    ("GET", "/api/v1/admin/reports/1", None),
    ("POST", "/api/v1/admin/reports/1/resolve", {}),
    ("POST", "/api/v1/admin/reports/1/reopen", {}),
    ("GET", "/api/v1/admin/settings", None),
]
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/admin/storage", None),
    ("POST", "/api/v1/admin/accounts/target/delete", {}),
    ("POST", "/api/v1/admin/accounts/target/role", {"role": "moderator"}),
    ("POST", "/api/v1/admin/accounts/target/password-reset", {}),
    ("GET", "/api/v1/admin/domain-blocks", None),
    ("POST", "/api/v1/admin/domain-blocks", {"domain": "x.example", "severity": "suspend"}),
    ("DELETE", "/api/v1/admin/domain-blocks/x.example", None),
    ("PATCH", "/api/v1/admin/settings", {"name": "x"}),
]


def _call(api: Api, token: str | None, method: str, path: str, body: Any) -> httpx.Response:
    return (
        api.request(method, path, token, json=body)
        if body is not None
        else api.request(method, path, token)
    )


def _route(path: str, room_id: str) -> str:
    return path.replace("ROOM", room_id)


def test_every_admin_route_refuses_users_and_moderators_cannot_change_roles(
    node: NodeProcess, api: Api
) -> None:
    root = make_admin(node, api)
    user = api.signup("plainuser")
    mod = api.signup("moddy")
    api.signup("target")
    room = api.live_room(user, "A room")
    made = api.request(
        "POST", "/api/v1/admin/accounts/moddy/role", root, json={"role": "moderator"}
    )
    assert made.status_code == 200 and made.json()["role"] == "moderator"

    for method, path, body in STAFF_ROUTES + ADMIN_ROUTES:
        path = _route(path, room["id"])
        assert_error(_call(api, None, method, path, body), 401)
        assert_error(_call(api, user, method, path, body), 403, "forbidden")
    for method, path, body in ADMIN_ROUTES:
        assert_error(_call(api, mod, method, _route(path, room["id"]), body), 403)
    # Moderators cannot change roles, nor act on staff: only on users.
    assert_error(
        api.request("POST", "/api/v1/admin/accounts/plainuser/role", mod, json={"role": "admin"}),
        403,
    )
    assert_error(api.request("POST", "/api/v1/admin/accounts/root/suspend", mod, json={}), 403)
    # An admin cannot suspend, demote or delete themselves (no locked-out node).
    assert_error(api.request("POST", "/api/v1/admin/accounts/root/suspend", root, json={}), 403)
    assert_error(
        api.request("POST", "/api/v1/admin/accounts/root/role", root, json={"role": "user"}), 403
    )
    # What a moderator may do, they can.
    assert api.request("GET", "/api/v1/admin/dashboard", mod).status_code == 200
    silenced = api.request("POST", "/api/v1/admin/accounts/target/silence", mod, json={})
    assert silenced.status_code == 200 and silenced.json()["silenced"] is True
    assert api.request("GET", "/api/v1/admin/settings", mod).status_code == 200


def test_accounts_search_approve_reject_suspend_silence_and_delete(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    node = node_factory(accounts={"registration": "approval"})
    api = api_factory(node)
    root = make_admin(node, api)
    for name, reason in [("pat", "I run a podcast"), ("quinn", "spam spam")]:
        created = api.http.post(
            "/api/v1/accounts", json={"username": name, "password": "pw123456", "reason": reason}
        )
        assert created.status_code == 202, created.text
    pending = api.request("GET", "/api/v1/admin/accounts?status=pending", root).json()
    assert {a["username"]: a["signup_reason"] for a in pending["accounts"]} == {
        "pat": "I run a podcast",
        "quinn": "spam spam",
    }
    assert api.request("POST", "/api/v1/admin/accounts/pat/approve", root).status_code == 200
    assert api.request("POST", "/api/v1/admin/accounts/quinn/reject", root).status_code == 204
    # A rejected sign-up is gone; its name is free again.
    assert_error(api.request("POST", "/api/v1/admin/accounts/quinn/approve", root), 404)
    found = api.request("GET", "/api/v1/admin/accounts?q=pa", root).json()["accounts"]
    assert [a["username"] for a in found] == ["pat"]
    assert found[0]["status"] == "active" and found[0]["role"] == "user"

    login = api.http.post("/api/v1/sessions", json={"username": "pat", "password": "pw123456"})
    pat = login.json()["token"]
    api.http.cookies.clear()
    room = api.create_room(pat, "Pat's show")
    assert api.request("POST", f"/api/v1/rooms/{room['id']}/start", pat).status_code == 200
    suspended = api.request(
        "POST", "/api/v1/admin/accounts/pat/suspend", root, json={"reason": "spam"}
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    # Sessions revoked, no sign-in, the live room ended here by the operator.
    assert_error(api.request("GET", "/api/v1/me", pat), 401)
    assert_error(
        api.http.post("/api/v1/sessions", json={"username": "pat", "password": "pw123456"}), 403
    )
    api.http.cookies.clear()
    doc = api.http.get(f"/api/v1/rooms/{room['id']}").json()
    assert doc["state"] == "ended" and doc["ended_by"]["by"] == "operator"
    assert doc["ended_by"]["reason"] == "spam"
    # Its actor and WebFinger answer 410 to other servers; no Delete yet.
    actor = api.http.get("/users/pat", headers={"Accept": ACTIVITY_JSON})
    assert actor.status_code == 410
    finger = api.http.get(
        "/.well-known/webfinger", params={"resource": f"acct:pat@127.0.0.1:{node.port}"}
    )
    assert finger.status_code == 410
    assert_error(api.request("GET", "/api/v1/accounts/pat", root), 404)
    assert _deletes(node) == []
    # Lifting it lets them sign in again.
    assert api.request("POST", "/api/v1/admin/accounts/pat/unsuspend", root).status_code == 200
    again = api.http.post("/api/v1/sessions", json={"username": "pat", "password": "pw123456"})
    assert again.status_code == 200
    api.http.cookies.clear()
    # Delete is the final step after a suspension only.
    assert_error(api.request("POST", "/api/v1/admin/accounts/pat/delete", root), 409)
    api.request("POST", "/api/v1/admin/accounts/pat/suspend", root, json={})
    deleted = api.request("POST", "/api/v1/admin/accounts/pat/delete", root)
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert deleted.json()["display_name"] == "pat"
    assert_error(
        api.http.post("/api/v1/sessions", json={"username": "pat", "password": "pw123456"}), 401
    )
    # The name stays taken.
    taken = api.http.post(
        "/api/v1/accounts", json={"username": "pat", "password": "pw123456", "reason": "me"}
    )
    assert_error(taken, 409)


def _deletes(node: NodeProcess) -> list[str]:
    rows = db_rows(node, "select activity from fed_outbox")
    return [json.loads(r[0])["id"] for r in rows if json.loads(r[0])["type"] == "Delete"]


def test_silenced_accounts_rooms_are_unlisted_and_not_announced(
    node: NodeProcess, api: Api
) -> None:
    root = make_admin(node, api)
    sam = api.signup("sam")
    assert api.request("POST", "/api/v1/admin/accounts/sam/silence", root).status_code == 200
    room = api.live_room(sam, "Quiet room")
    listed = api.http.get("/api/v1/rooms").json()["rooms"]
    assert room["id"] not in [r["id"] for r in listed]
    # Still reachable by its link.
    assert api.http.get(f"/api/v1/rooms/{room['id']}").status_code == 200
    creates = db_rows(node, "select activity from fed_outbox")
    assert [r for r in creates if json.loads(r[0])["type"] == "Create"] == []
    api.request("POST", "/api/v1/admin/accounts/sam/unsilence", root)
    listed = api.http.get("/api/v1/rooms").json()["rooms"]
    assert room["id"] in [r["id"] for r in listed]


def test_roles_and_a_one_time_password_reset_link(node: NodeProcess, api: Api) -> None:
    root = make_admin(node, api)
    token = api.signup("forgetful")
    made = api.request("POST", "/api/v1/admin/accounts/forgetful/role", root, json={"role": "x"})
    assert_error(made, 422)
    link = api.request("POST", "/api/v1/admin/accounts/forgetful/password-reset", root)
    assert link.status_code == 201, link.text
    url = link.json()["url"]
    assert url.startswith(f"{api.base_url}/reset-password#")
    secret = url.split("#", 1)[1]
    assert_error(
        api.http.post("/api/v1/password-reset", json={"token": secret, "password": "short"}), 422
    )
    reset = api.http.post(
        "/api/v1/password-reset", json={"token": secret, "password": "a new password"}
    )
    assert reset.status_code == 200 and reset.json()["username"] == "forgetful"
    # Used once; the old sessions are revoked; the new password works.
    assert_error(
        api.http.post("/api/v1/password-reset", json={"token": secret, "password": "another pw"}),
        401,
    )
    assert_error(api.request("GET", "/api/v1/me", token), 401)
    login = api.http.post(
        "/api/v1/sessions", json={"username": "forgetful", "password": "a new password"}
    )
    assert login.status_code == 200
    api.http.cookies.clear()
    # Only the stored hash: the token is nowhere in the database.
    assert db_rows(node, "select 1 from password_resets where token_hash = ?", (secret,)) == []


def test_server_settings_feed_about_nodeinfo_and_registration(node: NodeProcess, api: Api) -> None:
    root = make_admin(node, api)
    api.signup("helen")
    patched = api.request(
        "PATCH",
        "/api/v1/admin/settings",
        root,
        json={
            "name": "Harbour Rooms",
            "description": "Live audio for the harbour town.",
            "rules": ["Be kind", "No spam"],
            "contact": "helen",
            "registration": "closed",
        },
    )
    assert patched.status_code == 200, patched.text
    about = api.http.get("/api/v1/about").json()
    assert about["name"] == "Harbour Rooms"
    assert about["rules"] == ["Be kind", "No spam"]
    assert about["contact"]["username"] == "helen"
    assert about["registration"] == "closed"
    info = api.http.get("/nodeinfo/2.1").json()
    assert info["metadata"]["nodeName"] == "Harbour Rooms"
    assert info["metadata"]["nodeDescription"] == "Live audio for the harbour town."
    assert info["openRegistrations"] is False
    # At once: sign-ups are closed now, whatever node.toml says.
    assert_error(
        api.http.post("/api/v1/accounts", json={"username": "late", "password": "pw123456"}), 403
    )
    assert api.http.get("/api/v1/config").json()["registration"] == "closed"
    for bad in ({"registration": "sometimes"}, {"rules": "be kind"}, {"name": 3}, {"x": 1}):
        assert_error(api.request("PATCH", "/api/v1/admin/settings", root, json=bad), 422)
    assert_error(
        api.request("PATCH", "/api/v1/admin/settings", root, json={"contact": "nobody"}), 404
    )


def test_domain_blocks_are_listed_on_about_without_their_private_note(
    node: NodeProcess, api: Api
) -> None:
    root = make_admin(node, api)
    added = api.request(
        "POST",
        "/api/v1/admin/domain-blocks",
        root,
        json={
            "domain": "https://Spam.Example/",
            "severity": "silence",
            "public_comment": "floods rooms",
            "private_note": "see report 12",
        },
    )
    assert added.status_code == 201, added.text
    assert added.json()["domain"] == "spam.example"
    listed = api.request("GET", "/api/v1/admin/domain-blocks", root).json()["domain_blocks"]
    assert listed[0]["private_note"] == "see report 12"
    about = api.http.get("/api/v1/about").json()
    assert about["domain_blocks"] == [
        {"domain": "spam.example", "severity": "silence", "comment": "floods rooms"}
    ]
    for bad in (
        {"domain": "not a domain", "severity": "suspend"},
        {"domain": "ok.example", "severity": "nuke"},
        {"domain": "ok.example", "severity": "suspend", "public_comment": "x" * 1001},
    ):
        assert_error(api.request("POST", "/api/v1/admin/domain-blocks", root, json=bad), 422)
    gone = api.request("DELETE", "/api/v1/admin/domain-blocks/spam.example", root)
    assert gone.status_code == 204
    assert api.http.get("/api/v1/about").json()["domain_blocks"] == []
    assert_error(api.request("DELETE", "/api/v1/admin/domain-blocks/spam.example", root), 404)


def test_reports_are_filed_listed_resolved_with_who_did_what(node: NodeProcess, api: Api) -> None:
    root = make_admin(node, api)
    api.request("PATCH", "/api/v1/admin/settings", root, json={"rules": ["Be kind", "No spam"]})
    reporter = api.signup("rita")
    troll = api.signup("troll")
    room = api.live_room(troll, "Shouting")
    for body, status in [
        ({"target": "planet"}, 422),
        ({"target": "account", "account": "nobody"}, 404),
        ({"target": "account", "account": "troll", "rule": "Be rude"}, 422),
        ({"target": "account", "account": "rita"}, 422),
        ({"target": "room", "room": "nope"}, 404),
        ({"target": "account", "account": "troll", "comment": "x" * 1001}, 422),
        ({"target": "account", "account": "troll", "forward": "yes"}, 422),
    ]:
        assert_error(api.request("POST", "/api/v1/reports", reporter, json=body), status)
    filed = api.request(
        "POST",
        "/api/v1/reports",
        reporter,
        json={"target": "room", "room": room["id"], "comment": "slurs", "rule": "Be kind"},
    )
    assert filed.status_code == 201, filed.text
    report = filed.json()
    assert report["target"]["kind"] == "room" and report["target"]["account"] == "troll"
    assert report["state"] == "open" and report["forwarded_from"] is None
    queue = api.request("GET", "/api/v1/admin/reports", root).json()["reports"]
    assert [r["id"] for r in queue] == [report["id"]]
    assert queue[0]["reporter"] == "rita"
    resolved = api.request(
        "POST",
        f"/api/v1/admin/reports/{report['id']}/resolve",
        root,
        json={"action": "suspend", "note": "repeat offender"},
    )
    assert resolved.status_code == 200, resolved.text
    done = resolved.json()
    assert done["state"] == "resolved" and done["resolved_by"] == "root"
    assert done["action_taken"] == "suspended troll; repeat offender"
    doc = api.http.get(f"/api/v1/rooms/{room['id']}").json()
    assert doc["state"] == "ended" and doc["ended_by"]["by"] == "operator"
    assert api.request("GET", "/api/v1/admin/reports", root).json()["reports"] == []
    everything = api.request("GET", "/api/v1/admin/reports?state=all", root).json()["reports"]
    assert len(everything) == 1
    # Resolving twice is not a state the report can reach; reopening is.
    assert_error(
        api.request("POST", f"/api/v1/admin/reports/{report['id']}/resolve", root, json={}), 409
    )
    reopened = api.request("POST", f"/api/v1/admin/reports/{report['id']}/reopen", root)
    assert reopened.json()["state"] == "open"
    mine = api.request("GET", "/api/v1/reports", reporter).json()["reports"]
    assert [r["id"] for r in mine] == [report["id"]] and "resolved_by" not in mine[0]


def test_personal_blocks_hide_rooms_and_keep_the_blocked_out(node: NodeProcess, api: Api) -> None:
    host = api.signup("hana")
    pest = api.signup("pest")
    muted = api.signup("loud")
    pest_room = api.live_room(pest, "Pest's room")
    loud_room = api.live_room(muted, "Loud's room")
    assert api.request("POST", "/api/v1/blocks", host, json={"handle": "@pest"}).status_code == 201
    assert api.request("POST", "/api/v1/mutes", host, json={"handle": "loud"}).status_code == 201
    assert_error(api.request("POST", "/api/v1/blocks", host, json={"handle": "hana"}), 422)
    assert_error(api.request("POST", "/api/v1/blocks", host, json={"handle": "<b>"}), 422)
    shown = [r["id"] for r in api.request("GET", "/api/v1/rooms", host).json()["rooms"]]
    assert pest_room["id"] not in shown and loud_room["id"] not in shown
    everyone = [r["id"] for r in api.http.get("/api/v1/rooms").json()["rooms"]]
    assert pest_room["id"] in everyone and loud_room["id"] in everyone
    # The blocked account cannot join the blocker's rooms, nor raise a hand there.
    room = api.live_room(host, "Hana's room")
    ws_url = room["ws_url"]
    with ws_client.connect(ws_url, additional_headers={"Authorization": f"Bearer {pest}"}) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "error" and first["error"] == "forbidden"
    assert_error(api.request("POST", f"/api/v1/rooms/{room['id']}/hand", pest), 403)
    blocks = api.request("GET", "/api/v1/blocks", host).json()["blocks"]
    assert [b["handle"] for b in blocks] == ["pest"]
    assert api.request("DELETE", "/api/v1/blocks/pest", host).status_code == 204
    assert_error(api.request("DELETE", "/api/v1/blocks/pest", host), 404)


def test_admin_bodies_that_are_not_objects_or_too_deep_are_4xx(
    node: NodeProcess, api: Api
) -> None:
    root = make_admin(node, api)
    api.signup("victim")
    for path in (
        "/api/v1/admin/accounts/victim/suspend",
        "/api/v1/admin/domain-blocks",
        "/api/v1/reports",
    ):
        for raw in (b"[1]", b"not json", b"[" * 100 + b"]" * 100):
            response = api.request(
                "POST", path, root, content=raw, headers={"Content-Type": "application/json"}
            )
            assert_error(response, 400)
    big = api.request("PATCH", "/api/v1/admin/settings", root, json={"description": "x" * 70_000})
    assert_error(big, 413)


def test_the_dashboard_shows_rooms_listeners_federation_and_problems(
    node: NodeProcess, api: Api
) -> None:
    root = make_admin(node, api)
    alice = api.signup("alice")
    room = api.live_room(alice, "Dashboard room")
    # A delivery to a server that refuses connections: it waits, and its host is failing.
    dead = f"http://127.0.0.1:{free_port()}/inbox"
    conn = sqlite3.connect(node.directory / "data" / "parley.db", timeout=10)
    with conn:
        conn.execute(
            "insert into fed_deliveries (activity_json, inbox_url, signing_actor, next_try, "
            "created_at, updated_at) values (?, ?, ?, 0, 0, 0)",
            ['{"type": "Note"}', dead, f"{node.base_url}/users/alice"],
        )
    conn.close()
    with httpx.stream("GET", room["listen_url"], timeout=20) as ogg:
        assert ogg.status_code == 200

        def snapshot() -> dict[str, Any] | None:
            doc = api.request("GET", "/api/v1/admin/dashboard", root).json()
            rooms = doc["rooms"]
            ok = (
                rooms
                and rooms[0]["listeners_here"]["ogg"] == 1
                and doc["federation"]["failing_hosts"]
            )
            return dict(doc) if ok else None

        doc = wait_for(snapshot, what="the dashboard showing the room and the failing host")
    summary = doc["rooms"][0]
    assert summary["id"] == room["id"] and summary["ours"] is True
    assert summary["acting_origin"] == node.base_url and summary["acting_here"] is True
    assert summary["speakers"] == 1 and summary["listeners"] == 1
    assert doc["listeners"] == {"webrtc": 0, "ogg": 1, "relayed": 0}
    failing = doc["federation"]["failing_hosts"][0]
    assert failing["host"] == dead.split("//")[1].split("/")[0] and failing["waiting"] == 1
    breaker = doc["federation"]["circuit_breakers"][0]
    assert breaker["failures"] >= 1
    assert doc["federation"]["deliveries"]["queued"] == 1
    assert doc["accounts"]["active"] == 2 and doc["reports_open"] == 0
    assert isinstance(doc["recent_problems"], list)
    assert doc["media"]["workers"] is None
