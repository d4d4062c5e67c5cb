"""Finding people and rooms: search, upcoming rooms, and following people of this node.

Real node processes. The loopback cases run with `[federation] allow_private_addresses`
off, as a node is shipped: a handle on the node's own host must resolve from its own
accounts (no WebFinger to itself, which the address policy refuses), while a handle on
another loopback node is still refused.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Api, NodeProcess
from tests.federation_helpers import handle, wait_for
from tests.test_api import assert_error


def search(api: Api, q: str, token: str | None = None) -> dict:
    response = api.request("GET", "/api/v1/search", token, params={"q": q})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_search_finds_people_by_name_and_handle_and_rooms_by_title(api: Api) -> None:
    alice = api.signup("alice")
    api.request("PATCH", "/api/v1/me", alice, json={"display_name": "Alice Aardvark"})
    bob = api.signup("bob_b")
    api.signup("carol")
    live = api.live_room(alice, "Aardvark hour")
    scheduled = api.create_room(bob, "Aardvarks at dawn")
    api.create_room(bob, "Hidden aardvark", visibility="unlisted")
    ended = api.live_room(bob, "Old aardvark news")
    api.request("POST", f"/api/v1/rooms/{ended['id']}/end", bob)

    by_name = search(api, "aardVARK")
    assert [p["username"] for p in by_name["accounts"]] == ["alice"]
    person = by_name["accounts"][0]
    host = api.base_url.removeprefix("http://")
    assert person == {
        "username": "alice",
        "display_name": "Alice Aardvark",
        "handle": f"alice@{host}",
        "actor": f"{api.base_url}/users/alice",
        "local": True,
        "url": f"{api.base_url}/@alice",
        "bio": "",
        "following": None,
    }
    # Live first, then scheduled, then ended; unlisted rooms are never found.
    assert [r["id"] for r in by_name["rooms"]] == [live["id"], scheduled["id"], ended["id"]]
    assert by_name["lookup"] is None

    # LIKE wildcards are plain characters; a handle on this host finds the account.
    assert search(api, "b_b")["accounts"][0]["username"] == "bob_b"
    assert search(api, "%")["accounts"] == []
    assert [p["username"] for p in search(api, f"@carol@{host}")["accounts"]] == ["carol"]
    assert [p["username"] for p in search(api, f"{api.base_url}/users/carol")["accounts"]] == [
        "carol"
    ]
    missing = search(api, f"nobody@{host}")
    assert missing["accounts"] == [] and missing["lookup"]["error"] == "not_found"

    for bad in ("", " ", "x" * 201):
        assert_error(api.http.get("/api/v1/search", params={"q": bad}), 422, "invalid_input")


def test_upcoming_rooms_are_listed(api: Api) -> None:
    host = api.signup("dora")
    soon = api.create_room(host, "Soon")
    api.create_room(host, "Soon but hidden", visibility="unlisted")
    api.live_room(host, "Now")
    upcoming = api.http.get("/api/v1/rooms", params={"state": "scheduled"}).json()["rooms"]
    assert [r["id"] for r in upcoming] == [soon["id"]]
    assert [r["title"] for r in api.http.get("/api/v1/rooms").json()["rooms"]] == ["Now"]
    assert_error(api.http.get("/api/v1/rooms", params={"state": "ended"}), 422)


def test_following_someone_of_this_node_on_a_loopback_node(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    shipped = {"federation": {"allow_private_addresses": False}}
    node, other = node_factory(**shipped), node_factory(**shipped)
    api = api_factory(node)
    alice, bob = api.signup("alice"), api.signup("bob")
    api_factory(other).signup("zed")
    host = node.base_url.removeprefix("http://")

    # By handle on our own host (with or without @, any case): accepted at once, locally.
    for text in (f"bob@{host}", f"@BOB@{host}", f"{node.base_url}/users/bob"):
        response = api.request("POST", "/api/v1/follows", alice, json={"handle": text})
        assert response.status_code == 201, response.text
        assert response.json() == {
            "handle": f"bob@{host}",
            "actor": f"{node.base_url}/users/bob",
            "state": "accepted",
        }
    assert api.http.get("/api/v1/accounts/bob/followers").json()["followers"] == [
        {"handle": f"alice@{host}", "actor": f"{node.base_url}/users/alice", "state": "accepted"}
    ]
    assert search(api, "bob", alice)["accounts"][0]["following"] == "accepted"
    # The federation followers collection lists her too.
    collection = api.http.get(
        "/users/bob/followers", headers={"Accept": "application/activity+json"}
    ).json()
    assert collection["totalItems"] == 1

    # Bob going live is not delivered to our own inbox over the network.
    api.live_room(bob, "Local news")
    stats_rooms = api.http.get("/api/v1/rooms").json()["rooms"]
    assert [r["title"] for r in stats_rooms] == ["Local news"]

    assert_error(
        api.request("POST", "/api/v1/follows", alice, json={"handle": f"alice@{host}"}), 422
    )
    assert_error(
        api.request("POST", "/api/v1/follows", alice, json={"handle": f"nobody@{host}"}), 404
    )
    # Another node on loopback is still refused by the address policy, looked up or followed
    # (as "unreachable": the answer never tells what a private address would have said).
    zed = handle(other, "zed")
    assert_error(api.request("POST", "/api/v1/follows", alice, json={"handle": zed}), 404)
    refused = search(api, zed, alice)
    assert refused["accounts"] == [] and refused["lookup"]["error"] == "not_found"
    assert "unreachable" in refused["lookup"]["detail"]

    # "Join from your server" with a handle of this node goes straight to the room.
    room = api.live_room(alice, "Alice live")
    join = api.http.get(
        "/api/v1/remote-join", params={"handle": f"bob@{host}", "room": room["id"]}
    )
    assert join.status_code == 200, join.text
    assert join.json() == {"redirect": room["url"], "handle": f"bob@{host}"}

    # Unfollow removes both sides.
    response = api.request("DELETE", "/api/v1/follows", alice, params={"handle": f"bob@{host}"})
    assert response.status_code == 200 and response.json()["state"] == "removed"
    assert api.http.get("/api/v1/accounts/bob/followers").json()["followers"] == []
    assert api.request("GET", "/api/v1/follows", alice).json()["following"] == []
    assert_error(
        api.request("DELETE", "/api/v1/follows", alice, params={"handle": f"bob@{host}"}), 404
    )


def test_search_looks_remote_handles_up_by_webfinger(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    a, b = node_factory(), node_factory()
    api_a, api_b = api_factory(a), api_factory(b)
    token = api_b.signup("bea")
    api_b.request("PATCH", "/api/v1/me", token, json={"display_name": "Bea on B"})
    viewer = api_a.signup("ann")
    found = search(api_a, handle(b, "bea"), viewer)
    assert found["lookup"] is None
    (person,) = found["accounts"]
    assert person["local"] is False
    assert person["handle"] == handle(b, "bea")
    assert person["display_name"] == "Bea on B"
    assert person["actor"] == f"{b.base_url}/users/bea"
    assert person["following"] is None
    response = api_a.request("POST", "/api/v1/follows", viewer, json={"handle": person["handle"]})
    assert response.status_code == 201, response.text
    wait_for(
        lambda: search(api_a, handle(b, "bea"), viewer)["accounts"][0]["following"] == "accepted",
        timeout=20,
        what="the follow accepted",
    )
    unknown = search(api_a, handle(b, "nobody"), viewer)
    assert unknown["accounts"] == [] and unknown["lookup"]["error"] == "not_found"
