from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pytest

from federation.activities import (
    RemoteRoom,
    RoomAnnouncement,
    RoomState,
    build_accept,
    build_create,
    build_delete,
    build_follow,
    build_room_note,
    build_undo,
    build_update,
)
from federation.actors import ActorUrls, RemoteActor, build_person, parse_actor
from federation.errors import ActivityParseError, PayloadTooLarge, RemoteFetchError, SignatureError
from federation.inbox import (
    InboxContext,
    InboxWorker,
    handler_for,
    http_status_for,
    receive,
    verify_and_parse,
)
from federation.keys import KeyPair, generate_keypair
from federation.ports import FollowState, StoredActivity
from federation.signatures import sign_request, sign_request_rfc9421

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
ALICE = "https://parley.example/users/alice"
BOB_URLS = ActorUrls.for_user("https://remote.example", "bob")
BOB = BOB_URLS.id
INBOX_URL = "https://parley.example/inbox"


@pytest.fixture(scope="module")
def bob_keys() -> KeyPair:
    return generate_keypair()


def bob_actor(pem: str) -> RemoteActor:
    return parse_actor(
        build_person(BOB_URLS, username="bob", name="Bob", summary="", public_key_pem=pem)
    )


class Resolver:
    """Test double for the remote side: serves Bob's actor, counts refreshes."""

    def __init__(self, actor: RemoteActor, fresh: RemoteActor | None = None) -> None:
        self.cached = actor
        self.fresh = fresh or actor
        self.refreshes = 0

    async def actor(self, actor_id: str, *, refresh: bool = False) -> RemoteActor:
        if actor_id != self.cached.id:
            raise RemoteFetchError(404, actor_id)
        return self.cached

    async def key_owner(self, key_id: str, *, refresh: bool = False) -> RemoteActor:
        if key_id != self.cached.public_key_id:
            raise RemoteFetchError(404, key_id)
        if refresh:
            self.refreshes += 1
            self.cached = self.fresh
        return self.cached


def signed(doc: Any, keys: KeyPair, *, rfc9421: bool = False) -> tuple[dict[str, str], bytes]:
    body = json.dumps(doc).encode()
    sign = sign_request_rfc9421 if rfc9421 else sign_request
    headers = sign("POST", INBOX_URL, {"Content-Type": "application/activity+json"}, body,
                   BOB_URLS.key_id, keys.private_pem, now=NOW)  # fmt: skip
    return headers, body


FOLLOW = build_follow(f"{BOB}#follows/1", BOB, ALICE)


@pytest.mark.parametrize("rfc9421", [False, True], ids=["cavage", "rfc9421"])
async def test_verify_and_parse(bob_keys: KeyPair, rfc9421: bool) -> None:
    headers, body = signed(FOLLOW, bob_keys, rfc9421=rfc9421)
    resolver = Resolver(bob_actor(bob_keys.public_pem))
    activity = await verify_and_parse("POST", INBOX_URL, headers, body, resolver, now=NOW)
    assert activity.type == "Follow"
    assert activity.actor == BOB
    assert activity.object_id == ALICE


async def test_too_large(bob_keys: KeyPair) -> None:
    resolver = Resolver(bob_actor(bob_keys.public_pem))
    with pytest.raises(PayloadTooLarge) as info:
        await verify_and_parse("POST", INBOX_URL, {}, b"x" * 1_000_001, resolver, now=NOW)
    assert http_status_for(info.value) == 413


async def test_unsigned(bob_keys: KeyPair) -> None:
    resolver = Resolver(bob_actor(bob_keys.public_pem))
    with pytest.raises(SignatureError) as info:
        await verify_and_parse("POST", INBOX_URL, {}, b"{}", resolver, now=NOW)
    assert http_status_for(info.value) == 401


async def test_malformed_json_after_valid_signature(bob_keys: KeyPair) -> None:
    body = b"{not json"
    headers = sign_request("POST", INBOX_URL, {}, body, BOB_URLS.key_id, bob_keys.private_pem,
                           now=NOW)  # fmt: skip
    with pytest.raises(ActivityParseError) as info:
        await verify_and_parse("POST", INBOX_URL, headers, body,
                               Resolver(bob_actor(bob_keys.public_pem)), now=NOW)  # fmt: skip
    assert "malformed JSON" in info.value.reason
    assert http_status_for(info.value) == 400


async def test_unknown_key(bob_keys: KeyPair) -> None:
    headers, body = signed(FOLLOW, bob_keys)
    headers["Signature"] = headers["Signature"].replace(BOB_URLS.key_id, BOB + "#other")
    with pytest.raises(SignatureError, match="cannot obtain key"):
        await verify_and_parse("POST", INBOX_URL, headers, body,
                               Resolver(bob_actor(bob_keys.public_pem)), now=NOW)  # fmt: skip


async def test_actor_must_own_key(bob_keys: KeyPair) -> None:
    forged = build_follow("https://parley.example/x", ALICE, ALICE)  # Bob signs as Alice
    headers, body = signed(forged, bob_keys)
    with pytest.raises(SignatureError, match="does not belong"):
        await verify_and_parse("POST", INBOX_URL, headers, body,
                               Resolver(bob_actor(bob_keys.public_pem)), now=NOW)  # fmt: skip


async def test_key_rotation_refetches_once(bob_keys: KeyPair) -> None:
    old = generate_keypair()
    resolver = Resolver(bob_actor(old.public_pem), fresh=bob_actor(bob_keys.public_pem))
    headers, body = signed(FOLLOW, bob_keys)
    activity = await verify_and_parse("POST", INBOX_URL, headers, body, resolver, now=NOW)
    assert activity.id == FOLLOW["id"]
    assert resolver.refreshes == 1


async def test_bad_signature_refetches_once_then_fails(bob_keys: KeyPair) -> None:
    resolver = Resolver(bob_actor(generate_keypair().public_pem))
    headers, body = signed(FOLLOW, bob_keys)
    with pytest.raises(SignatureError):
        await verify_and_parse("POST", INBOX_URL, headers, body, resolver, now=NOW)
    assert resolver.refreshes == 1


# ----------------------------------------------------------------------- in-memory ports


class Follows:
    def __init__(self) -> None:
        self.followers_of: dict[tuple[str, str], tuple[str, FollowState]] = {}
        self.following_of: dict[tuple[str, str], tuple[str, FollowState]] = {}

    async def add_follower(
        self, local: str, remote: str, follow_id: str, state: FollowState
    ) -> None:
        self.followers_of[(local, remote)] = (follow_id, state)

    async def remove_follower(self, local: str, remote: str) -> bool:
        return self.followers_of.pop((local, remote), None) is not None

    async def followers(self, local: str) -> list[str]:
        return [r for (lo, r), (_, s) in self.followers_of.items()
                if lo == local and s is FollowState.ACCEPTED]  # fmt: skip

    async def add_following(
        self, local: str, remote: str, follow_id: str, state: FollowState
    ) -> None:
        self.following_of[(local, remote)] = (follow_id, state)

    async def set_following_state(self, local: str, remote: str, state: FollowState) -> bool:
        if (local, remote) not in self.following_of:
            return False
        self.following_of[(local, remote)] = (self.following_of[(local, remote)][0], state)
        return True

    async def remove_following(self, local: str, remote: str) -> bool:
        return self.following_of.pop((local, remote), None) is not None

    async def find_following(self, follow_id: str) -> tuple[str, str] | None:
        for pair, (fid, _) in self.following_of.items():
            if fid == follow_id:
                return pair
        return None

    async def following(self, local: str) -> list[str]:
        return [r for (lo, r) in self.following_of if lo == local]

    async def remove_actor(self, remote: str) -> int:
        before = len(self.followers_of) + len(self.following_of)
        self.followers_of = {k: v for k, v in self.followers_of.items() if k[1] != remote}
        self.following_of = {k: v for k, v in self.following_of.items() if k[1] != remote}
        return before - len(self.followers_of) - len(self.following_of)


class Deliveries:
    def __init__(self) -> None:
        self.queued: list[tuple[dict[str, Any], str, str]] = []

    async def enqueue(self, activity_json: str, inbox_url: str, signing_actor: str) -> None:
        self.queued.append((json.loads(activity_json), inbox_url, signing_actor))


class Keys:
    async def local_actor_key(self, actor_id: str) -> tuple[str, str] | None:
        return (f"{actor_id}#main-key", "PEM") if actor_id == ALICE else None


class Rooms:
    def __init__(self) -> None:
        self.rooms: dict[str, RemoteRoom] = {}
        self.ended: list[str] = []

    async def upsert(self, room: RemoteRoom) -> None:
        self.rooms[room.id] = room

    async def end(self, room_id: str, by: str) -> bool:
        room = self.rooms.get(room_id)
        if room is not None and room.host != by:
            return False
        self.ended.append(room_id)
        return self.rooms.pop(room_id, None) is not None

    async def end_by_note(self, note_id: str, by: str) -> bool:
        for room in list(self.rooms.values()):
            if room.note_id == note_id:
                return await self.end(room.id, by)
        return False

    async def list_rooms(self) -> list[RemoteRoom]:
        return list(self.rooms.values())


class ActorCache:
    def __init__(self) -> None:
        self.actors: dict[str, RemoteActor] = {}

    async def get(self, actor_id: str) -> RemoteActor | None:
        return self.actors.get(actor_id)

    async def get_by_key_id(self, key_id: str) -> RemoteActor | None:
        return next((a for a in self.actors.values() if a.public_key_id == key_id), None)

    async def put(self, actor: RemoteActor) -> None:
        self.actors[actor.id] = actor

    async def remove(self, actor_id: str) -> None:
        self.actors.pop(actor_id, None)


class Inbox:
    def __init__(self) -> None:
        self.rows: list[tuple[str, Mapping[str, Any], str]] = []

    async def store(self, activity_id: str, payload: Mapping[str, Any]) -> bool:
        if any(r[0] == activity_id for r in self.rows):
            return False
        self.rows.append((activity_id, payload, "new"))
        return True

    async def claim_next(self) -> StoredActivity | None:
        for i, (aid, payload, state) in enumerate(self.rows):
            if state == "new":
                self.rows[i] = (aid, payload, "claimed")
                return StoredActivity(i, aid, payload)
        return None

    async def mark_processed(self, row_id: int) -> None:
        self.rows[row_id] = (*self.rows[row_id][:2], "done")

    async def mark_failed(self, row_id: int, reason: str) -> None:
        self.rows[row_id] = (*self.rows[row_id][:2], f"failed: {reason}")


class World:
    def __init__(self, keys: KeyPair) -> None:
        self.keys = keys
        self.resolver = Resolver(bob_actor(keys.public_pem))
        self.follows = Follows()
        self.deliveries = Deliveries()
        self.rooms = Rooms()
        self.cache = ActorCache()
        self.inbox = Inbox()
        ctx = InboxContext(
            follows=self.follows,
            deliveries=self.deliveries,  # type: ignore[arg-type]
            keys=Keys(),
            rooms=self.rooms,
            actors=self.cache,
            resolver=self.resolver,
            new_activity_id=lambda actor: f"{actor}#accepts/1",
        )
        self.worker = InboxWorker(self.inbox, ctx)

    async def deliver(self, doc: dict[str, Any]) -> None:
        headers, body = signed(doc, self.keys)
        await receive("POST", INBOX_URL, headers, body, self.resolver, self.inbox, now=NOW)
        assert await self.worker.run_once()

    def last_state(self) -> str:
        return self.inbox.rows[-1][2]


@pytest.fixture
def world(bob_keys: KeyPair) -> World:
    return World(bob_keys)


async def test_follow_is_auto_accepted(world: World) -> None:
    await world.deliver(FOLLOW)
    assert world.last_state() == "done"
    assert await world.follows.followers(ALICE) == [BOB]
    [(accept, inbox, signer)] = world.deliveries.queued
    assert inbox == BOB_URLS.inbox
    assert signer == ALICE
    assert accept == build_accept(f"{ALICE}#accepts/1", ALICE, FOLLOW)


async def test_duplicate_is_stored_once(world: World) -> None:
    await world.deliver(FOLLOW)
    headers, body = signed(FOLLOW, world.keys)
    await receive("POST", INBOX_URL, headers, body, world.resolver, world.inbox, now=NOW)
    assert len(world.inbox.rows) == 1
    assert not await world.worker.run_once()


async def test_follow_of_unknown_local_actor_ignored(world: World) -> None:
    await world.deliver(build_follow(f"{BOB}#follows/2", BOB, "https://parley.example/users/zed"))
    assert world.deliveries.queued == []
    assert world.last_state() == "done"


async def test_undo_follow(world: World) -> None:
    await world.deliver(FOLLOW)
    await world.deliver(build_undo(f"{BOB}#undo/1", BOB, FOLLOW))
    assert await world.follows.followers(ALICE) == []


async def test_accept_and_reject_of_our_follow(world: World) -> None:
    ours = build_follow(f"{ALICE}#follows/9", ALICE, BOB)
    await world.follows.add_following(ALICE, BOB, ours["id"], FollowState.PENDING)
    await world.deliver(build_accept(f"{BOB}#accepts/9", BOB, ours))
    assert world.follows.following_of[(ALICE, BOB)][1] is FollowState.ACCEPTED
    # A bare-id Accept/Reject is resolved through the stored Follow id.
    await world.deliver({"id": f"{BOB}#rejects/9", "type": "Reject", "actor": BOB,
                         "object": ours["id"]})  # fmt: skip
    assert await world.follows.following(ALICE) == []


def room_note(state: RoomState, updated: dt.datetime | None = None) -> dict[str, Any]:
    announcement = RoomAnnouncement(
        id="https://remote.example/rooms/7",
        url="https://remote.example/rooms/7",
        state=state,
        title="Night radio",
        description="",
        host=BOB,
        listen_url="https://remote.example/rooms/7/listen.ogg",
    )
    return build_room_note(announcement, note_id="https://remote.example/notes/7",
                           host_name="Bob", followers_url=BOB_URLS.followers, published=NOW,
                           base_url="https://remote.example", updated=updated)  # fmt: skip


async def test_room_create_update_end(world: World) -> None:
    await world.deliver(build_create("https://remote.example/notes/7/create", BOB,
                                     room_note(RoomState.LIVE)))  # fmt: skip
    [room] = await world.rooms.list_rooms()
    assert room.title == "Night radio"
    assert room.listen_url == "https://remote.example/rooms/7/listen.ogg"
    ended = room_note(RoomState.ENDED, updated=NOW + dt.timedelta(hours=1))
    await world.deliver(build_update("https://remote.example/notes/7/update", BOB, ended))
    assert await world.rooms.list_rooms() == []
    assert world.rooms.ended == ["https://remote.example/rooms/7"]


async def test_delete_note_ends_room(world: World) -> None:
    await world.deliver(build_create("https://remote.example/notes/7/create", BOB,
                                     room_note(RoomState.LIVE)))  # fmt: skip
    await world.deliver(build_delete(f"{BOB}#delete/1", BOB, "https://remote.example/notes/7"))
    assert await world.rooms.list_rooms() == []


async def test_delete_actor_removes_follows(world: World) -> None:
    await world.deliver(FOLLOW)
    await world.cache.put(world.resolver.cached)
    await world.deliver(build_delete(f"{BOB}#delete", BOB, BOB))
    assert await world.follows.followers(ALICE) == []
    assert await world.cache.get(BOB) is None


async def test_room_hosted_by_other_actor_fails(world: World) -> None:
    doc = room_note(RoomState.LIVE)
    doc["room"]["host"] = "https://remote.example/users/carol"
    await world.deliver(build_create("https://remote.example/notes/7/create", BOB, doc))
    assert world.last_state().startswith("failed: ")
    assert await world.rooms.list_rooms() == []


def test_handler_factory_ignores_unknown() -> None:
    from federation.activities import parse_activity

    like = parse_activity({"id": f"{BOB}#l", "type": "Like", "actor": BOB, "object": ALICE})
    assert handler_for(like) is None
    question = parse_activity({"id": f"{BOB}#c", "type": "Create", "actor": BOB,
                               "object": {"id": f"{BOB}/q", "type": "Question"}})  # fmt: skip
    assert handler_for(question) is None
