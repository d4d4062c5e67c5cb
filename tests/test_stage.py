"""The stage in one process: what happens to a speaker while their peer connection is set up.

A browser shows "Unmute" as soon as its user is on stage, while its WHIP request may still
be waiting for ICE; these tests make the room change at exactly that moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from aiortc import RTCPeerConnection

from node.accounts import Account
from node.config import parse_config
from node.media.packets import OpusPacket
from node.media.peers import PeerSessions
from node.onair.on_air import OnAir
from node.onair.stage import Stage
from node.relaying.counters import RelayCounters
from node.relaying.mirror import Upstream
from node.relaying.names import Names
from node.rooms import Role, Room, RoomState, Visibility, replicate
from node.store.accounts import AccountDirectory
from node.store.database import open_database
from node.store.rooms import RoomStore
from node.succession import Carriage
from tests.conftest import LOOPBACK
from tests.tonekit import (
    ToneTrack,
    accept_answer,
    decode_opus_packets,
    dominant_frequency,
    make_offer,
    record_track,
    rms,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite_utils.Database]:
    db = open_database(tmp_path)
    yield db
    db.close()


@pytest.fixture
async def stage(
    tmp_path: Path, db: sqlite_utils.Database, loopback_ice: None
) -> AsyncIterator[Stage]:
    config = parse_config({"node": {"data_dir": str(tmp_path)}})
    stage = Stage(
        config,
        AccountDirectory(db),
        RoomStore(db),
        PeerSessions(LOOPBACK),
        room_url=lambda room: {},
    )
    yield stage
    await stage.close()


def account(stage: Stage, name: str) -> Account:
    return stage.accounts.create(name, "correct horse battery")


async def live_room(stage: Stage, host: Account) -> OnAir:
    room = stage.create_room(host, "Connecting", "", Visibility.PUBLIC)
    room.start(host.username)
    return stage.get(room.id)


async def hear(on_air: OnAir, clients: list[RTCPeerConnection], seconds: float) -> list[float]:
    listener, offer = await make_offer("recvonly")
    clients.append(listener)
    _, answer = await on_air.listen(offer)
    transceiver = await accept_answer(listener, answer)
    return list(await record_track(transceiver.receiver.track, seconds, skip=0.5))


async def test_an_unmute_made_while_the_speaker_connects_is_heard(
    stage: Stage, clients: list[RTCPeerConnection]
) -> None:
    alice = account(stage, "alice")
    on_air = await live_room(stage, alice)
    assert on_air.room.member("alice").muted  # everyone comes on stage muted
    speaker, offer = await make_offer("sendonly", ToneTrack(440))
    clients.append(speaker)

    publishing = asyncio.create_task(on_air.publish(alice, offer))
    await asyncio.sleep(0)  # the WHIP request now waits on the peer connection
    assert "alice" not in on_air.publishers
    on_air.room.set_muted("alice", "alice", False)
    _, answer = await publishing
    await accept_answer(speaker, answer)

    assert on_air.publishers["alice"].sink.muted is False
    heard = await hear(on_air, clients, 2.0)
    assert dominant_frequency(heard) == pytest.approx(440, abs=5)


async def test_a_mute_made_while_the_speaker_connects_keeps_them_silent(
    stage: Stage, clients: list[RTCPeerConnection]
) -> None:
    alice = account(stage, "alice")
    on_air = await live_room(stage, alice)
    on_air.room.set_muted("alice", "alice", False)
    speaker, offer = await make_offer("sendonly", ToneTrack(440))
    clients.append(speaker)

    publishing = asyncio.create_task(on_air.publish(alice, offer))
    await asyncio.sleep(0)
    on_air.room.set_muted("alice", "alice", True)
    _, answer = await publishing
    await accept_answer(speaker, answer)

    assert on_air.publishers["alice"].sink.muted is True
    heard = await hear(on_air, clients, 1.5)
    assert rms(heard) < 0.001


async def test_a_speaker_moved_to_the_audience_while_connecting_is_taken_off_the_air(
    stage: Stage, clients: list[RTCPeerConnection]
) -> None:
    alice, bob = account(stage, "alice"), account(stage, "bob")
    on_air = await live_room(stage, alice)
    on_air.room.connect("bob", "Bob")
    on_air.room.invite("alice", "bob")
    on_air.room.answer_invitation("bob", True)
    speaker, offer = await make_offer("sendonly", ToneTrack(440))
    clients.append(speaker)

    publishing = asyncio.create_task(on_air.publish(bob, offer))
    await asyncio.sleep(0)
    on_air.room.set_role("alice", "bob", Role.LISTENER)
    session_id, _ = await publishing

    async def gone() -> None:
        while "bob" in on_air.publishers or session_id in stage.sessions:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(gone(), 5)
    assert on_air.room.member("bob").publishing is False


class CapturedUplink(Upstream):
    """A carried room whose relay socket is this list: what would go up to the origin."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[bytes] = []

    def send_uplink(self, name: str, data: bytes) -> None:
        self.sent.append(data)


async def test_an_unmute_while_connecting_to_a_carried_room_goes_up_to_the_origin(
    stage: Stage, clients: list[RTCPeerConnection]
) -> None:
    # Bob's own node carries a room of 127.0.0.2:9 where he was just invited on stage.
    bob = account(stage, "bob")
    names = Names("127.0.0.1:9")
    origin = "http://127.0.0.2:9/rooms/far"
    doc = {
        "id": "far",
        "url": origin,
        "state": "live",
        "title": "Far away",
        "host": {"username": "carol"},
        "speakers": [
            {"username": "carol", "role": "host", "muted": True},
            {"username": "bob@127.0.0.1:9", "role": "speaker", "muted": True},
        ],
    }
    room = Room(id="copy", host="carol@127.0.0.2:9", host_display_name="", title="Far away")
    room.state = RoomState.LIVE
    replicate(room, doc, lambda n: names.from_peer(n, "127.0.0.2:9"))
    carriage = Carriage.relay_of(stage.own_entry("copy"), origin, "ws://127.0.0.2:9/relay")
    captured: list[CapturedUplink] = []

    def source(on_air: OnAir) -> CapturedUplink:
        upstream = CapturedUplink(
            on_air,
            names=names,
            counters=RelayCounters(),
            signer=None,  # type: ignore[arg-type]  # nothing is signed here
            relay_presence=set,
        )
        captured.append(upstream)
        return upstream

    on_air = stage.put_on_air(room, carriage, source)
    uplink = captured[0]
    assert on_air.carriage.remote
    speaker, offer = await make_offer("sendonly", ToneTrack(440))
    clients.append(speaker)

    publishing = asyncio.create_task(on_air.publish(bob, offer))
    await asyncio.sleep(0)
    assert "bob" not in on_air.publishers
    # He unmutes; the origin's word of it comes back before his WHIP answer.
    on_air.room.replicate_member({"username": "bob", "role": "speaker", "muted": False})
    _, answer = await publishing
    await accept_answer(speaker, answer)

    async def uplinked(seconds: float) -> None:
        while len(uplink.sent) < seconds * 50:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(uplinked(2.0), 10)
    packets = [OpusPacket(i, i * 960, data) for i, data in enumerate(uplink.sent)]
    heard = decode_opus_packets(packets)[24000:]
    assert dominant_frequency(heard) == pytest.approx(440, abs=5)
