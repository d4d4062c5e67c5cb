"""A domain block of severity ``silence``, between real nodes: the silenced server stays
federated (follows hold, its users may listen and raise a hand) but its rooms are not
listed here and its users cannot come on stage in rooms this node acts as origin for;
lifting the block undoes it at once, without a restart."""

from __future__ import annotations

from pathlib import Path

from tests.moderation_helpers import admin_post, make_admin, node_on
from tests.test_relay_nodes import (
    ApiFactory,
    NodeFactory,
    join_remote,
    member_on,
    post,
    until,
    watch,
)


async def test_a_silenced_server_is_unlisted_and_kept_off_stage_but_still_federated(
    node_factory: NodeFactory, api_factory: ApiFactory, tmp_path: Path
) -> None:
    a = node_factory()
    api_a = api_factory(a)
    b = node_on(tmp_path / "b", "127.0.0.2")
    try:
        api_b = api_factory(b)
        root = make_admin(a, api_a)
        alice, dave = api_a.signup("alice"), api_a.signup("dave")
        bob = api_b.signup("bob")
        bob_on_a = f"bob@127.0.0.2:{b.port}"
        followed = api_a.request("POST", "/api/v1/follows", dave, json={"handle": bob_on_a})
        assert followed.status_code == 201, followed.text

        def follow_state() -> str:
            following = api_a.request("GET", "/api/v1/follows", dave).json()["following"]
            return str(following[0]["state"]) if following else ""

        async def accepted() -> bool:
            return follow_state() == "accepted"

        await until(accepted, what="dave's follow of bob accepted")
        api_b.live_room(bob, "Night owls")

        def listed() -> list[str]:
            return [r["title"] for r in api_a.http.get("/api/v1/rooms").json()["rooms"]]

        async def bobs_room_listed() -> bool:
            return "Night owls" in listed()

        await until(bobs_room_listed, what="bob's room listed on A")
        room = api_a.live_room(alice, "Town hall")
        on_a = f"{a.base_url}/api/v1/rooms/{room['id']}"
        mirror = await join_remote(b, bob, room["url"])
        socket = await watch(mirror["ws_url"], bob)
        try:
            await until(lambda: member_on(a, room["id"], bob_on_a), what="bob in the room on A")

            block = {"domain": "127.0.0.2", "severity": "silence", "public_comment": "noisy"}
            assert admin_post(api_a, root, "domain-blocks", block)["severity"] == "silence"
            # At once: B's rooms are not listed here; the follow holds.
            assert "Night owls" not in listed()
            assert follow_state() == "accepted"
            # bob still listens and raises his hand, but cannot be brought on stage.
            raised = await post(f"{b.base_url}/api/v1/rooms/{mirror['id']}/hand", bob)
            assert raised.status_code in (200, 202), raised.text

            async def hand_up() -> bool:
                member = await member_on(a, room["id"], bob_on_a)
                return bool(member and member["hand_raised"])

            await until(hand_up, what="bob's hand raised on A")
            invited = await post(f"{on_a}/members/{bob_on_a}/invite", alice)
            assert invited.status_code == 403, invited.text
            promoted = await post(f"{on_a}/members/{bob_on_a}/role", alice, {"role": "speaker"})
            assert promoted.status_code == 403, promoted.text

            # Lifted: listed again and invited, without a restart.
            lifted = api_a.request("DELETE", "/api/v1/admin/domain-blocks/127.0.0.2", root)
            assert lifted.status_code == 204, lifted.text
            assert "Night owls" in listed()
            invited = await post(f"{on_a}/members/{bob_on_a}/invite", alice)
            assert invited.status_code == 200, invited.text
        finally:
            await socket.close()
    finally:
        b.stop()
