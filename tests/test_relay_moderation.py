"""A remote cohost moderates a room from their own node: their actions are signed
activities that the room's origin checks against the room's permissions."""

from __future__ import annotations

import json

from tests.conftest import Api
from tests.federation_helpers import db_rows
from tests.test_relay_nodes import (
    ApiFactory,
    NodeFactory,
    join_remote,
    member_on,
    post,
    until,
    watch,
)


async def test_a_remote_cohost_invites_mutes_and_moves_only_once_made_cohost(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b = node_factory(), node_factory()
    api_a: Api = api_factory(a)
    alice = api_a.signup("alice")
    dave = api_a.signup("dave")
    room = api_a.live_room(alice, "Moderated from afar")
    on_a = f"{a.base_url}/api/v1/rooms/{room['id']}"
    bob = api_factory(b).signup("bob")
    mirror = await join_remote(b, bob, room["url"])
    on_b = f"{b.base_url}/api/v1/rooms/{mirror['id']}"
    bob_on_a = f"bob@127.0.0.1:{b.port}"
    dave_on_b = f"dave@127.0.0.1:{a.port}"

    bob_socket = await watch(mirror["ws_url"], bob)
    dave_socket = await watch(room["ws_url"], dave)
    try:
        await until(lambda: member_on(a, room["id"], bob_on_a), what="bob present on A")
        assert (await post(f"{on_a}/hand", dave)).status_code == 200
        await until(lambda: member_on(b, mirror["id"], dave_on_b), what="dave seen from B")

        # Bob is a listener: A takes his signed Invite in, then refuses it.
        refused = await post(f"{on_b}/members/{dave_on_b}/invite", bob)
        assert refused.status_code == 202, refused.text

        async def invite_processed() -> bool:
            rows = db_rows(a, "select payload, state from fed_inbox")
            return any(
                json.loads(payload)["type"] == "parley:Invite" and state != "pending"
                for payload, state in rows
            )

        await until(invite_processed, what="A processed bob's Invite")
        assert (await member_on(a, room["id"], "dave") or {})["invited"] is False

        # The host makes him cohost; now the same action goes through.
        made = await post(f"{on_a}/members/{bob_on_a}/role", alice, {"role": "cohost"})
        assert made.status_code == 200, made.text

        async def cohost_on_b() -> bool:
            member = await member_on(b, mirror["id"], "bob")
            return bool(member and member["role"] == "cohost")

        await until(cohost_on_b, what="bob is cohost, seen from B")
        invited = await post(f"{on_b}/members/{dave_on_b}/invite", bob)
        assert invited.status_code == 202, invited.text

        async def dave_invited() -> bool:
            member = await member_on(a, room["id"], "dave")
            return bool(member and member["invited"])

        await until(dave_invited, what="dave invited by the remote cohost")
        accepted = await post(f"{on_a}/invitation", dave, {"accept": True})
        assert accepted.status_code == 200, accepted.text
        assert (await post(f"{on_a}/mute", dave, {"muted": False})).status_code == 200

        muted = await post(f"{on_b}/members/{dave_on_b}/mute", bob, {"muted": True})
        assert muted.status_code == 202, muted.text

        async def dave_muted() -> bool:
            member = await member_on(a, room["id"], "dave")
            return bool(member and member["muted"])

        await until(dave_muted, what="dave muted by the remote cohost")
        moved = await post(f"{on_b}/members/{dave_on_b}/role", bob, {"role": "listener"})
        assert moved.status_code == 202, moved.text

        async def dave_in_audience() -> bool:
            member = await member_on(a, room["id"], "dave")
            return bool(member and member["role"] == "listener")

        await until(dave_in_audience, what="dave moved back to the audience")
    finally:
        await bob_socket.close()
        await dave_socket.close()
