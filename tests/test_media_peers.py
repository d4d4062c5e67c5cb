from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from aiortc.rtp import RtpPacket

from node.media.errors import InvalidOffer, SessionNotFound
from node.media.ice import IceSettings, install_ice_policy, parse_ice_server
from node.media.mixer import RoomMixer
from node.media.peers import ArrivalOrderBuffer, PeerSessions
from tests.conftest import LOOPBACK
from tests.tonekit import (
    ToneTrack,
    accept_answer,
    decode_opus_packets,
    dominant_frequency,
    frequency_power,
    make_offer,
    record_track,
    wait_connected,
)


@pytest.fixture
async def mixer() -> AsyncIterator[RoomMixer]:
    room = RoomMixer()
    task = asyncio.create_task(room.run())
    yield room
    room.stop()
    await task
    room.close()


async def test_listener_hears_a_speaker(
    sessions: PeerSessions, mixer: RoomMixer, clients: list[RTCPeerConnection]
) -> None:
    speaker, offer = await make_offer("sendonly", ToneTrack(440))
    clients.append(speaker)
    _, answer = await sessions.publish(offer, sink=mixer.add_speaker("s1"), returns=None)
    await accept_answer(speaker, answer)

    listener, offer = await make_offer("recvonly")
    clients.append(listener)
    _, answer = await sessions.listen(offer, stream=mixer.program)
    transceiver = await accept_answer(listener, answer)

    heard = await record_track(transceiver.receiver.track, 2.0, skip=0.5)
    assert dominant_frequency(heard) == pytest.approx(440, abs=5)
    assert sessions.count() == 2


async def test_two_speakers_hear_each_other_but_not_themselves(
    sessions: PeerSessions, mixer: RoomMixer, clients: list[RTCPeerConnection]
) -> None:
    returns = {}
    for sid, hz in (("low", 440), ("high", 660)):
        pc, offer = await make_offer("sendrecv", ToneTrack(hz))
        clients.append(pc)
        _, answer = await sessions.publish(
            offer, sink=mixer.add_speaker(sid), returns=mixer.return_stream(sid)
        )
        returns[sid] = (await accept_answer(pc, answer)).receiver.track

    listener, offer = await make_offer("recvonly")
    clients.append(listener)
    _, answer = await sessions.listen(offer, stream=mixer.program)
    program_track = (await accept_answer(listener, answer)).receiver.track

    program, heard_by_low, heard_by_high = await asyncio.gather(
        record_track(program_track, 2.0, skip=0.5),
        record_track(returns["low"], 2.0, skip=0.5),
        record_track(returns["high"], 2.0, skip=0.5),
    )
    assert frequency_power(program, 48000, 440) > 0.2
    assert frequency_power(program, 48000, 660) > 0.2
    assert dominant_frequency(heard_by_low) == pytest.approx(660, abs=5)
    assert frequency_power(heard_by_low, 48000, 440) < 0.02
    assert dominant_frequency(heard_by_high) == pytest.approx(440, abs=5)
    assert frequency_power(heard_by_high, 48000, 660) < 0.02


async def test_remote_close_ends_the_session(sessions: PeerSessions, mixer: RoomMixer) -> None:
    closed: list[str] = []
    sessions.on_closed(closed.append)
    listener, offer = await make_offer("recvonly")
    session_id, answer = await sessions.listen(offer, stream=mixer.program)
    await accept_answer(listener, answer)
    await wait_connected(listener)
    assert sessions.count() == 1
    await listener.close()
    # aiortc notices the DTLS close_notify and moves the connection to "closed".
    while sessions.count():
        await asyncio.sleep(0.05)
    assert closed == [session_id]
    with pytest.raises(SessionNotFound):
        await sessions.close(session_id)


async def test_close_by_id_notifies_once(sessions: PeerSessions, mixer: RoomMixer) -> None:
    closed: list[str] = []
    sessions.on_closed(closed.append)
    listener, offer = await make_offer("recvonly")
    session_id, answer = await sessions.listen(offer, stream=mixer.program)
    await accept_answer(listener, answer)
    await wait_connected(listener)
    await sessions.close(session_id)
    await listener.close()
    await asyncio.sleep(0)
    assert closed == [session_id]
    assert sessions.count() == 0


VIDEO_ONLY = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
t=0 0
m=video 9 UDP/TLS/RTP/SAVPF 96
c=IN IP4 0.0.0.0
a=rtpmap:96 VP8/90000
a=sendonly
"""


async def _data_channel_offer() -> str:
    pc, offer = await make_offer("sendonly", ToneTrack(440))
    await pc.close()
    return offer + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"


async def test_bad_offers_are_refused_without_leaking(
    sessions: PeerSessions, mixer: RoomMixer
) -> None:
    pc, good = await make_offer("sendonly", ToneTrack(440))
    await pc.close()
    sink = mixer.add_speaker("s")
    bad = {
        "garbage": "hello, I am not SDP",
        "video only": VIDEO_ONLY,
        "data channel": await _data_channel_offer(),
        "too large": good + "a=x-padding:" + "x" * 20000 + "\r\n",
        "no opus": re.sub(r"(?im)^a=rtpmap:(\d+) opus/48000/2", r"a=rtpmap:\1 foo/8000", good),
        # Passes the cheap checks but aiortc cannot use it (no ICE credentials).
        "broken": re.sub(r"(?m)^a=ice-(ufrag|pwd):.*\r?\n", "", good),
    }
    reasons = {}
    for name, offer in bad.items():
        with pytest.raises(InvalidOffer) as refused:
            await sessions.publish(offer, sink=sink, returns=None)
        reasons[name] = refused.value.reason
        assert sessions.count() == 0
    assert reasons["too large"] == "offer too large"
    assert reasons["video only"] == "only audio is accepted"
    assert reasons["data channel"] == "only audio is accepted"

    listener, offer = await make_offer("recvonly")
    await listener.close()
    with pytest.raises(InvalidOffer):
        await sessions.publish(offer, sink=sink, returns=None)  # a recvonly offer cannot publish
    with pytest.raises(InvalidOffer):
        await sessions.listen(good, stream=mixer.program)  # a sendonly offer cannot listen
    assert sessions.count() == 0


async def test_udp_port_range_is_respected(mixer: RoomMixer) -> None:
    settings = IceSettings(host_addresses=("127.0.0.1",), udp_port_min=47100, udp_port_max=47140)
    loop = asyncio.get_running_loop()
    install_ice_policy(settings, loop)
    install_ice_policy(settings, loop)  # idempotent
    peers = PeerSessions(settings)
    try:
        listener, offer = await make_offer("recvonly")
        _, answer = await peers.listen(offer, stream=mixer.program)
        await listener.close()
        ports = [
            int(m.group(1))
            for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host", answer)
        ]
        assert ports
        assert all(47100 <= port <= 47140 for port in ports)
    finally:
        await peers.close_all()
        install_ice_policy(IceSettings(), loop)


def test_ice_server_strings() -> None:
    turn = parse_ice_server("turn:al%40ice:p%3Ass@turn.example:3478?transport=tcp")
    assert turn.urls == "turn:turn.example:3478?transport=tcp"
    assert (turn.username, turn.credential) == ("al@ice", "p:ss")
    stun = parse_ice_server("stun:stun.example:3478")
    assert stun.urls == "stun:stun.example:3478" and stun.username is None
    for bad in ("http://x", "turn:host:3478", "stun"):
        with pytest.raises(ValueError):
            parse_ice_server(bad)


async def test_a_client_that_never_connects_is_dropped(
    mixer: RoomMixer, loopback_ice: None
) -> None:
    peers = PeerSessions(LOOPBACK, connect_timeout=0.5)
    closed: list[str] = []
    peers.on_closed(closed.append)
    try:
        client, offer = await make_offer("recvonly")
        await client.close()  # goes away without ever applying the answer
        session_id, _ = await peers.listen(offer, stream=mixer.program)

        async def gone() -> None:
            # The session leaves the count first, and is reported once its peer
            # connection has closed.
            while peers.count() or not closed:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(gone(), 20)
        assert closed == [session_id]
    finally:
        await peers.close_all()


async def test_an_obs_style_offer_with_video_is_heard_and_its_video_declined(
    sessions: PeerSessions, mixer: RoomMixer
) -> None:
    # OBS's WHIP output always offers video too: the audio goes on air, the video is
    # answered inactive so nothing is received or decoded for it.
    program = mixer.program.reader()
    sink = mixer.add_speaker("obs")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(ToneTrack(440), direction="sendonly")
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    try:
        _, answer = await sessions.publish(pc.localDescription.sdp, sink=sink, returns=None)
        video = answer[answer.index("m=video") :]
        assert "a=inactive" in video
        await accept_answer(pc, answer)
        await wait_connected(pc)
        mixing = asyncio.create_task(mixer.run())
        try:
            packets = [await program.next() for _ in range(75)]
        finally:
            mixer.stop()
            await mixing
        heard = decode_opus_packets(packets[25:])
        assert abs(dominant_frequency(heard) - 440) < 15
    finally:
        await pc.close()


def _on_uvloop(test: Callable[..., Awaitable[None]]) -> None:
    """Run a test body of this module on a uvloop event loop (``[node] event_loop``)."""
    uvloop = pytest.importorskip("uvloop")

    async def body() -> None:
        room = RoomMixer()
        ticking = asyncio.create_task(room.run())
        install_ice_policy(LOOPBACK, asyncio.get_running_loop())
        peers = PeerSessions(LOOPBACK)
        pcs: list[RTCPeerConnection] = []
        try:
            await test(peers, room, pcs)
        finally:
            for pc in pcs:
                await pc.close()
            await peers.close_all()
            install_ice_policy(IceSettings(), asyncio.get_running_loop())
            room.stop()
            await ticking
            room.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(body())


def test_listener_hears_a_speaker_on_uvloop() -> None:
    # uvloop's UDP transport has no socket object: the fan-out sends on a duplicate of it.
    _on_uvloop(test_listener_hears_a_speaker)


def test_udp_port_range_is_respected_on_uvloop() -> None:
    _on_uvloop(lambda _peers, room, _pcs: test_udp_port_range_is_respected(room))


def test_speaker_packets_reach_the_decoder_on_arrival() -> None:
    buffer = ArrivalOrderBuffer()

    def add(seq: int) -> bytes | None:
        packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960)
        packet._data = bytes([seq & 0xFF])  # type: ignore[attr-defined]  # as depayloaded
        _, frame = buffer.add(packet)
        return None if frame is None else frame.data

    assert add(65534) == b"\xfe"  # the first packet goes on at once: no wait for the next
    assert add(65535) == b"\xff"
    assert add(65535) is None  # a duplicate
    assert add(1) == b"\x01"  # across the wrap, with 0 lost
    assert add(0) is None  # 0 arrives late: the mixer has played past it
    assert add(2) == b"\x02"
    assert add(40000) == b"\x40"  # a sender that restarted far away goes on
    assert add(40001) == b"\x41"
