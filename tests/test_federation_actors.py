from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from federation.actors import (
    ACTIVITY_JSON,
    AS_CONTEXT,
    SECURITY_CONTEXT,
    ActorUrls,
    build_host_meta,
    build_instance_actor,
    build_nodeinfo,
    build_nodeinfo_links,
    build_person,
    build_webfinger,
    parse_acct,
    parse_actor,
    parse_webfinger,
)
from federation.errors import ActivityParseError
from federation.keys import generate_keypair, load_public_key

FIXTURES = Path(__file__).parent / "fixtures" / "federation"
BASE = "https://parley.example"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


@pytest.fixture(scope="module")
def pem() -> str:
    return generate_keypair().public_pem


def test_keypair_is_rsa_2048() -> None:
    pair = generate_keypair()
    assert load_public_key(pair.public_pem).key_size == 2048
    assert pair.private_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_person_document(pem: str) -> None:
    urls = ActorUrls.for_user(BASE, "alice")
    doc = build_person(
        urls, username="alice", name="Alice", summary="<p>hi</p>", public_key_pem=pem
    )
    assert doc["@context"] == [AS_CONTEXT, SECURITY_CONTEXT]
    assert doc["id"] == "https://parley.example/users/alice"
    assert doc["type"] == "Person"
    assert doc["inbox"] == "https://parley.example/users/alice/inbox"
    assert doc["endpoints"] == {"sharedInbox": "https://parley.example/inbox"}
    assert doc["publicKey"] == {
        "id": "https://parley.example/users/alice#main-key",
        "owner": "https://parley.example/users/alice",
        "publicKeyPem": pem,
    }
    assert doc["url"] == "https://parley.example/@alice"
    assert doc["manuallyApprovesFollowers"] is False
    assert doc["discoverable"] is True
    # What we publish, we can read back.
    actor = parse_actor(doc)
    assert actor.shared_inbox == "https://parley.example/inbox"
    assert actor.public_key_id == urls.key_id


def test_instance_actor(pem: str) -> None:
    doc = build_instance_actor(
        ActorUrls.for_instance(BASE), host="parley.example", public_key_pem=pem
    )
    assert doc["type"] == "Application"
    assert doc["id"] == "https://parley.example/actor"
    assert parse_actor(doc).preferred_username == "parley.example"


def test_webfinger_round_trip() -> None:
    urls = ActorUrls.for_user(BASE, "alice")
    jrd = build_webfinger("alice", "parley.example", urls)
    assert jrd["subject"] == "acct:alice@parley.example"
    assert urls.id in jrd["aliases"]
    assert {"rel": "self", "type": ACTIVITY_JSON, "href": urls.id} in jrd["links"]
    profile = [link for link in jrd["links"] if link["rel"].endswith("profile-page")]
    assert profile == [
        {
            "rel": "http://webfinger.net/rel/profile-page",
            "type": "text/html",
            "href": urls.profile,
        }
    ]
    assert parse_webfinger(jrd) == urls.id


def test_parse_webfinger_without_self() -> None:
    with pytest.raises(ActivityParseError) as info:
        parse_webfinger({"links": [{"rel": "x"}]})
    assert info.value.field == "links"


@pytest.mark.parametrize(
    "resource", ["acct:alice@Parley.Example", "@alice@parley.example", "alice@parley.example"]
)
def test_parse_acct(resource: str) -> None:
    assert parse_acct(resource) == ("alice", "parley.example")


@pytest.mark.parametrize("resource", ["acct:alice", "acct:@host", "https://x/y", "a@b@c"])
def test_parse_acct_rejects(resource: str) -> None:
    with pytest.raises(ActivityParseError):
        parse_acct(resource)


def test_nodeinfo() -> None:
    links = build_nodeinfo_links(BASE + "/")
    assert links["links"][0]["href"] == "https://parley.example/nodeinfo/2.1"
    assert links["links"][0]["rel"] == "http://nodeinfo.diaspora.software/ns/schema/2.1"
    doc = build_nodeinfo(
        software_version="0.1.0",
        users_total=3,
        users_active_month=2,
        users_active_halfyear=3,
        local_posts=10,
        open_registrations=False,
    )
    assert doc["version"] == "2.1"
    assert doc["software"] == {"name": "parley", "version": "0.1.0"}
    assert doc["protocols"] == ["activitypub"]
    assert doc["usage"]["users"]["activeMonth"] == 2
    assert doc["openRegistrations"] is False


def test_host_meta() -> None:
    root = ElementTree.fromstring(build_host_meta(BASE))
    link = root.find("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")
    assert link is not None
    assert link.get("rel") == "lrdd"
    assert link.get("template") == "https://parley.example/.well-known/webfinger?resource={uri}"


def test_parse_mastodon_actor() -> None:
    actor = parse_actor(load("mastodon_actor.json"))
    assert actor.id == "https://mastodon.social/users/Gargron"
    assert actor.inbox == "https://mastodon.social/users/Gargron/inbox"
    assert actor.shared_inbox == "https://mastodon.social/inbox"
    assert actor.preferred_username == "Gargron"
    assert actor.public_key_id == "https://mastodon.social/users/Gargron#main-key"
    assert actor.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert actor.followers == "https://mastodon.social/users/Gargron/followers"
    assert actor.url == "https://mastodon.social/@Gargron"
    assert actor.name == "Eugen Rochko"
    assert actor.host == "mastodon.social"
    load_public_key(actor.public_key_pem)


def test_parse_fedify_actor() -> None:
    actor = parse_actor(load("fedify_actor.json"))
    assert actor.id == "https://hollo.example/@alice"
    assert actor.shared_inbox == "https://hollo.example/inbox"
    assert actor.url == "https://hollo.example/@alice"  # from a Link object list
    assert actor.public_key_id == "https://hollo.example/@alice#main-key"


def test_parse_actor_key_list_picks_owned_key() -> None:
    doc = load("mastodon_actor.json")
    key = doc["publicKey"]
    doc["publicKey"] = [{**key, "owner": "https://elsewhere.example/x"}, key]
    assert parse_actor(doc).public_key_id == key["id"]


def _without(doc: dict[str, Any], path: str) -> dict[str, Any]:
    parts = path.split(".")
    target = doc
    for part in parts[:-1]:
        target = target[part]
    del target[parts[-1]]
    return doc


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("id", "id"),
        ("inbox", "inbox"),
        ("preferredUsername", "preferredUsername"),
        ("publicKey", "publicKey"),
        ("publicKey.publicKeyPem", "publicKey.publicKeyPem"),
        ("publicKey.id", "publicKey.id"),
    ],
)
def test_parse_actor_missing_fields(field: str, expected: str) -> None:
    with pytest.raises(ActivityParseError) as info:
        parse_actor(_without(load("mastodon_actor.json"), field))
    assert info.value.field == expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("type", "Note", "type"),
        ("inbox", 42, "inbox"),
        ("inbox", "ftp://x/y", "inbox"),
        ("name", ["x"], "name"),
        ("endpoints", "https://x", "endpoints"),
        ("followers", {"id": "x"}, "followers"),
    ],
)
def test_parse_actor_wrong_types(field: str, value: Any, expected: str) -> None:
    doc = load("mastodon_actor.json")
    doc[field] = value
    with pytest.raises(ActivityParseError) as info:
        parse_actor(doc)
    assert info.value.field == expected


def test_parse_actor_rejects_key_on_other_host() -> None:
    doc = load("mastodon_actor.json")
    doc["publicKey"]["id"] = "https://evil.example/key"
    with pytest.raises(ActivityParseError) as info:
        parse_actor(doc)
    assert info.value.field == "publicKey.id"


def test_parse_actor_not_an_object() -> None:
    with pytest.raises(ActivityParseError):
        parse_actor([])  # type: ignore[arg-type]
