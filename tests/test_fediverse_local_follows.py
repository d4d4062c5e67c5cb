"""node.fediverse.local_follows: handles naming this node, follows between its accounts, and the
outbox that never delivers to its own accounts over the network. The node's real SQLite
stores on an in-memory database; no network at all."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlite_utils
from hypothesis import given
from hypothesis import strategies as st

from federation.actors import RemoteActor
from federation.client import ActorResolver, FederationClient
from federation.keys import generate_keypair
from federation.outbox import OutboxPublisher
from federation.ports import FollowState
from node.errors import InvalidInput, NotFound
from node.fediverse.local_follows import LocalFollows
from node.store.accounts import AccountDirectory
from node.store.federation import (
    SqliteActorCache,
    SqliteDeliveries,
    SqliteFollows,
    SqliteOutbox,
)
from node.store.migrate import migrate

BASE = "https://rooms.example"


@pytest.fixture
def db() -> Iterator[sqlite_utils.Database]:
    database = sqlite_utils.Database(memory=True)
    migrate(database)
    yield database
    database.close()


@pytest.fixture
def accounts(db: sqlite_utils.Database) -> AccountDirectory:
    directory = AccountDirectory(db)
    for name in ("alice", "bob"):
        directory.create(name, "correct horse")
    directory.create("pat", "correct horse", pending=True)
    return directory


@pytest.fixture
def local(db: sqlite_utils.Database, accounts: AccountDirectory) -> LocalFollows:
    return LocalFollows(SqliteFollows(db), accounts, BASE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bob@rooms.example", "bob"),
        ("@BOB@Rooms.Example", "bob"),
        ("  bob@rooms.example ", "bob"),
        (f"{BASE}/users/bob", "bob"),
        (f"{BASE}/@bob", "bob"),
        ("bob@other.example", None),
        ("bob@rooms.example.evil", None),
        ("https://rooms.example.evil/users/bob", None),
        (f"{BASE}/users/bob/inbox", None),
        ("not a handle", None),
        (None, None),
    ],
)
def test_handles_naming_this_node(local: LocalFollows, text: str | None, expected: str) -> None:
    assert local.username_of(text) == expected


def test_a_handle_here_without_an_account_is_not_looked_up_elsewhere(local: LocalFollows) -> None:
    for text in ("nobody@rooms.example", "pat@rooms.example", f"{BASE}/users/nobody"):
        with pytest.raises(NotFound):
            local.username_of(text)


@given(st.text(max_size=300))
def test_any_text_is_a_local_name_none_or_not_found(text: str) -> None:
    database = sqlite_utils.Database(memory=True)
    migrate(database)
    directory = AccountDirectory(database)
    checker = LocalFollows(SqliteFollows(database), directory, BASE)
    try:
        assert checker.username_of(text) is None
    except NotFound:
        pass


async def test_local_follows_are_accepted_on_both_sides(
    db: sqlite_utils.Database, accounts: AccountDirectory, local: LocalFollows
) -> None:
    alice = accounts.get("alice")
    assert await local.follow(alice, "bob") == {
        "handle": "bob@rooms.example",
        "actor": f"{BASE}/users/bob",
        "state": "accepted",
    }
    follows = SqliteFollows(db)
    assert await follows.followers(f"{BASE}/users/bob") == [f"{BASE}/users/alice"]
    assert await follows.following(f"{BASE}/users/alice") == [f"{BASE}/users/bob"]
    with pytest.raises(InvalidInput):
        await local.follow(alice, "alice")
    assert (await local.unfollow(alice, "bob"))["state"] == "removed"
    assert await follows.followers(f"{BASE}/users/bob") == []
    with pytest.raises(NotFound):
        await local.unfollow(alice, "bob")


async def test_the_outbox_delivers_to_remote_followers_only(
    db: sqlite_utils.Database, accounts: AccountDirectory, local: LocalFollows
) -> None:
    follows = SqliteFollows(db)
    await local.follow(accounts.get("alice"), "bob")
    remote = RemoteActor(
        id="https://remote.example/users/zed",
        inbox="https://remote.example/users/zed/inbox",
        shared_inbox="https://remote.example/inbox",
        preferred_username="zed",
        public_key_id="https://remote.example/users/zed#main-key",
        public_key_pem="",
        followers=None,
        url=None,
        name=None,
    )
    cache = SqliteActorCache(db)
    await cache.put(remote)
    bob = f"{BASE}/users/bob"
    await follows.add_follower(bob, remote.id, "https://remote.example/f/1", FollowState.ACCEPTED)
    asked: list[str] = []

    def transport(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(503)

    async def public_address(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]  # a public address; the mock transport answers

    client = FederationClient(
        transport=httpx.MockTransport(transport), resolve_host=public_address
    )
    async with client:
        publisher = OutboxPublisher(
            follows,
            ActorResolver(
                client,
                cache,
                signing_key_id=f"{BASE}/actor#main-key",
                signing_private_pem=generate_keypair().private_pem,
            ),
            SqliteDeliveries(db, lambda: None),
            SqliteOutbox(db),
            is_local_actor=local.is_local_actor,
        )
        activity = {"id": f"{bob}/activities/1", "type": "Create", "actor": bob}
        assert await publisher.publish(bob, activity) == ["https://remote.example/inbox"]
    # Alice, a follower on this node, was not even looked up over the network.
    assert asked == []
