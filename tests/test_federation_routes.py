"""federation/routes.py through a real node process: discovery, actors, collections."""

from __future__ import annotations

import time

import httpx
import pytest

from federation.actors import LD_JSON_PROFILE, NODEINFO_21_SCHEMA
from federation.routes import PAGE_SIZE, ordered_collection
from tests.conftest import Api, NodeProcess

AP = {"Accept": "application/activity+json"}


@pytest.fixture
def alice(api: Api) -> str:
    return api.signup("alice")


def host(node: NodeProcess) -> str:
    return f"127.0.0.1:{node.port}"


def test_webfinger(node: NodeProcess, alice: str) -> None:
    url = f"{node.base_url}/.well-known/webfinger"
    response = httpx.get(url, params={"resource": f"acct:alice@{host(node)}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jrd+json")
    jrd = response.json()
    assert jrd["subject"] == f"acct:alice@{host(node)}"
    assert {
        "rel": "self",
        "type": "application/activity+json",
        "href": f"{node.base_url}/users/alice",
    } in jrd["links"]
    by_url = httpx.get(url, params={"resource": f"{node.base_url}/users/alice"}).json()
    assert by_url["subject"] == jrd["subject"]
    instance = httpx.get(url, params={"resource": f"acct:{host(node)}@{host(node)}"}).json()
    assert instance["links"][0]["href"] == f"{node.base_url}/actor"
    assert httpx.get(url, params={"resource": f"acct:nobody@{host(node)}"}).status_code == 404
    assert httpx.get(url, params={"resource": "acct:alice@elsewhere.example"}).status_code == 404
    missing = httpx.get(url)
    assert missing.status_code == 400
    assert missing.json()["error"] == "bad_request"
    assert httpx.get(url, params={"resource": "acct:nonsense"}).status_code == 400


def test_nodeinfo_and_host_meta(node: NodeProcess, alice: str) -> None:
    links = httpx.get(f"{node.base_url}/.well-known/nodeinfo").json()["links"]
    assert links == [{"rel": NODEINFO_21_SCHEMA, "href": f"{node.base_url}/nodeinfo/2.1"}]
    response = httpx.get(links[0]["href"])
    assert "nodeinfo.diaspora.software/ns/schema/2.1" in response.headers["content-type"]
    info = response.json()
    assert info["version"] == "2.1"
    assert info["software"]["name"] == "parley"
    assert info["protocols"] == ["activitypub"]
    assert info["usage"]["users"]["total"] == 1
    assert info["openRegistrations"] is True
    meta = httpx.get(f"{node.base_url}/.well-known/host-meta")
    assert meta.headers["content-type"].startswith("application/xrd+xml")
    assert f"{node.base_url}/.well-known/webfinger?resource={{uri}}" in meta.text


@pytest.mark.parametrize("accept", ["application/activity+json", LD_JSON_PROFILE])
def test_actor_document(node: NodeProcess, alice: str, accept: str) -> None:
    response = httpx.get(f"{node.base_url}/users/alice", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/activity+json")
    actor = response.json()
    base = f"{node.base_url}/users/alice"
    assert actor["@context"] == [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
    ]
    assert actor["id"] == base
    assert actor["type"] == "Person"
    assert actor["preferredUsername"] == "alice"
    assert actor["inbox"] == f"{base}/inbox"
    assert actor["outbox"] == f"{base}/outbox"
    assert actor["followers"] == f"{base}/followers"
    assert actor["following"] == f"{base}/following"
    assert actor["endpoints"] == {"sharedInbox": f"{node.base_url}/inbox"}
    assert actor["publicKey"]["id"] == f"{base}#main-key"
    assert actor["publicKey"]["owner"] == base
    assert actor["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert actor["url"] == f"{node.base_url}/@alice"


def test_browsers_get_the_html_profile(node: NodeProcess, alice: str) -> None:
    response = httpx.get(
        f"{node.base_url}/users/alice", headers={"Accept": "text/html,application/xhtml+xml"}
    )
    assert response.status_code == 302
    assert response.headers["location"] == f"{node.base_url}/@alice"
    assert httpx.get(f"{node.base_url}/users/nobody", headers=AP).status_code == 404


def test_instance_actor_is_fetchable_unsigned(node: NodeProcess) -> None:
    response = httpx.get(f"{node.base_url}/actor", headers=AP)
    assert response.status_code == 200
    doc = response.json()
    assert doc["type"] == "Application"
    assert doc["id"] == f"{node.base_url}/actor"
    assert doc["publicKey"]["id"] == f"{node.base_url}/actor#main-key"


def test_collections_are_paged(node: NodeProcess, api: Api, alice: str) -> None:
    api.live_room(alice, "Paged")
    outbox_url = f"{node.base_url}/users/alice/outbox"
    collection = httpx.get(outbox_url, headers=AP).json()
    assert collection["type"] == "OrderedCollection"
    assert collection["totalItems"] == 1
    assert collection["first"] == f"{outbox_url}?page=1"
    page = httpx.get(collection["first"], headers=AP).json()
    assert page["type"] == "OrderedCollectionPage"
    assert page["partOf"] == outbox_url
    assert [item["type"] for item in page["orderedItems"]] == ["Create"]
    assert page["orderedItems"][0]["object"]["room"]["roomState"] == "live"
    bad = httpx.get(f"{outbox_url}?page=0", headers=AP)
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_input", "detail": "page: must be a positive integer"}
    followers = httpx.get(f"{node.base_url}/users/alice/followers", headers=AP).json()
    assert followers == {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{node.base_url}/users/alice/followers",
        "type": "OrderedCollection",
        "totalItems": 0,
    }


def test_ordered_collection_pages() -> None:
    url = "https://parley.example/users/alice/followers"
    total = PAGE_SIZE * 2 + 5
    root = ordered_collection(url, total, None, [])
    assert root["last"] == f"{url}?page=3"
    middle = ordered_collection(url, total, 2, ["x"] * PAGE_SIZE)
    assert middle["next"] == f"{url}?page=3"
    assert middle["prev"] == f"{url}?page=1"
    last = ordered_collection(url, total, 3, ["x"] * 5)
    assert "next" not in last


def test_unknown_inbox_is_404(node: NodeProcess) -> None:
    response = httpx.post(f"{node.base_url}/users/nobody/inbox", content=b"{}")
    assert response.status_code == 404


def test_a_room_note_can_be_fetched_by_its_id(node: NodeProcess, api: Api, alice: str) -> None:
    room = api.live_room(alice, "Fetch me")
    outbox = f"{node.base_url}/users/alice/outbox"
    create = None
    for _ in range(100):
        items = httpx.get(outbox, params={"page": 1}, headers=AP).json()["orderedItems"]
        create = next((i for i in items if i["type"] == "Create"), None)
        if create is not None:
            break
        time.sleep(0.1)
    assert create is not None
    note_id = create["object"]["id"]
    assert note_id == f"{node.base_url}/users/alice/rooms/{room['id']}"
    note = httpx.get(note_id, headers=AP)
    assert note.status_code == 200
    assert note.headers["content-type"].startswith("application/activity+json")
    doc = note.json()
    assert doc["type"] == "Note" and doc["id"] == note_id and "@context" in doc
    assert "Fetch me" in doc["content"]
    browser = httpx.get(note_id, headers={"Accept": "text/html"})
    assert browser.status_code == 302
    assert browser.headers["location"] == room["url"]
    missing = httpx.get(f"{node.base_url}/users/alice/rooms/nothing", headers=AP)
    assert missing.status_code == 404
