"""Room-level moderation carries across nodes (real processes): a user of another node
removed or blocked in a room stays out on every node carrying it, for the room's life:
after reloading, after a remote cohost's block, and after another node took the room
over."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import Api
from tests.test_relay_nodes import (
    ApiFactory,
    NodeFactory,
    get_json,
    join_remote,
    member_on,
    post,
    until,
    watch,
)


async def refused(ws_url: str, token: str) -> dict[str, Any]:
    """Open the room's WebSocket as ``token``: the node answers one error and closes."""
    async with websockets.connect(
        ws_url, additional_headers={"Authorization": f"Bearer {token}"}
    ) as socket:
        message = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert message["type"] == "error", message
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        return dict(message)


async def kicked(socket: Any, username: str) -> dict[str, Any]:
    """The ``kicked`` event naming ``username`` (every watcher hears of every kick)."""
    async with asyncio.timeout(20):
        while True:
            event = json.loads(await socket.recv())
            if event.get("type") == "kicked" and event.get("username") == username:
                return dict(event)


async def test_removed_and_blocked_remote_users_stay_out_everywhere_for_the_rooms_life(
    node_factory: NodeFactory, api_factory: ApiFactory
) -> None:
    a, b, c = node_factory(), node_factory(), node_factory()
    api_a: Api = api_factory(a)
    alice = api_a.signup("alice")
    room = api_a.live_room(alice, "Moderated everywhere")
    on_a = f"{a.base_url}/api/v1/rooms/{room['id']}"
    api_b, api_c = api_factory(b), api_factory(c)
    bob, erin = api_b.signup("bob"), api_b.signup("erin")
    dave = api_c.signup("dave")
    mirror_b = await join_remote(b, bob, room["url"])
    mirror_c = await join_remote(c, dave, room["url"])
    bob_on_a, erin_on_a = f"bob@127.0.0.1:{b.port}", f"erin@127.0.0.1:{b.port}"
    dave_on_a = f"dave@127.0.0.1:{c.port}"
    sockets = {
        "bob": await watch(mirror_b["ws_url"], bob),
        "erin": await watch(mirror_b["ws_url"], erin),
        "dave": await watch(mirror_c["ws_url"], dave),
    }
    try:
        for handle in (bob_on_a, erin_on_a, dave_on_a):
            await until(lambda h=handle: member_on(a, room["id"], h), what=f"{handle} on A")

        # The host removes bob (a user of B): B drops his socket; reloading does not bring
        # him back, on B, for the room's life; nor does listening as himself.
        removed = await post(f"{on_a}/members/{bob_on_a}/remove", alice)
        assert removed.status_code == 200, removed.text
        assert (await kicked(sockets["bob"], "bob"))["blocked"] is False
        for _ in range(2):
            await refused(mirror_b["ws_url"], bob)
        async with httpx.AsyncClient(timeout=10) as http:
            listen = await http.get(
                mirror_b["listen_url"], headers={"Authorization": f"Bearer {bob}"}
            )
        assert listen.status_code == 403

        # dave (of C) is made cohost and blocks erin (of B) from C: a signed parley:Block
        # that A applies; erin is out on B too.
        made = await post(f"{on_a}/members/{dave_on_a}/role", alice, {"role": "cohost"})
        assert made.status_code == 200, made.text

        async def dave_cohost_on_c() -> bool:
            member = await member_on(c, mirror_c["id"], "dave")
            return bool(member and member["role"] == "cohost")

        await until(dave_cohost_on_c, what="dave cohost, seen from C")
        erin_on_c = f"erin@127.0.0.1:{b.port}"
        blocked = await post(
            f"{c.base_url}/api/v1/rooms/{mirror_c['id']}/members/{erin_on_c}/block", dave
        )
        assert blocked.status_code == 202, blocked.text
        event = await kicked(sockets["erin"], "erin")
        assert event == {"type": "kicked", "username": "erin", "blocked": True}
        await refused(mirror_b["ws_url"], erin)

        # A node that opens the room only now learns who is out from its first snapshot:
        # frank (of D) was removed before D carried the room.
        d = node_factory()
        frank = api_factory(d).signup("frank")
        gone = await post(f"{on_a}/members/frank@127.0.0.1:{d.port}/remove", alice)
        assert gone.status_code == 200, gone.text
        mirror_d = await join_remote(d, frank, room["url"])
        await refused(mirror_d["ws_url"], frank)

        # A is gone: B carries the room on, and still keeps bob and erin out.
        a.stop(kill=True)

        async def b_acting() -> bool:
            doc = await get_json(f"{b.base_url}/api/v1/rooms/{mirror_b['id']}")
            return bool(doc["promoted"])

        await until(b_acting, what="B takes the room over")
        await refused(mirror_b["ws_url"], bob)
        await refused(mirror_b["ws_url"], erin)
        # And the cohost on C keeps moderating there.
        assert (await member_on(c, mirror_c["id"], "dave") or {}).get("role") == "cohost"
    finally:
        for socket in sockets.values():
            await socket.close()
