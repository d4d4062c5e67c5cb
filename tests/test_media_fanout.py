"""The batched RTP fan-out: listeners hear the tone, RTP stays well-formed, and a
leaving or broken listener does not disturb the others. Every test with aiortc listeners
runs on both paths of the per-listener step: the native one (node/media/native.py) and
the pure-Python one.

Audio is checked as audio (decoded, dominant frequency); nothing here asserts timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtcpSrPacket, RtpPacket
from OpenSSL import SSL

from node.media.fanout import RtpFanout, RtpListener, plain_transmitter
from node.media.fanout_attach import _socket_sendto
from node.media.lean import SpentDtls
from node.media.packets import Contributors, OpusPacket, PacketStream, combine_opus
from node.media.peers import FanoutMode, PeerSessions
from node.media.rtpwire import RtpLayout
from tests.conftest import LOOPBACK
from tests.tonekit import (
    accept_answer,
    decode_opus_packets,
    dominant_frequency,
    header_extensions,
    make_offer,
    opus_tone_packets,
    record_track,
    wait_connected,
)

TONE = opus_tone_packets(440, 50)  # one second: a whole number of 440 Hz cycles

SPEAKERS = Contributors(9, ((7, 12), (0xDEADBEEF, 40)))
"""What the mixer says of the tone's packets: two speakers heard, CSRCs 7 and 0xDEADBEEF."""

PATHS: list[FanoutMode] = ["native", "batched"]


async def _play(stream: PacketStream) -> None:
    """Publish the tone in a loop, one packet per 20 ms, as the mixer does."""
    seq = 0
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        source = TONE[seq % len(TONE)]
        stream.publish(OpusPacket(seq, seq * 960, source.data, SPEAKERS))
        seq += 1
        due += 0.02
        await asyncio.sleep(max(due - loop.time(), 0))


@pytest.fixture
async def stream() -> AsyncIterator[PacketStream]:
    program = PacketStream()
    task = asyncio.create_task(_play(program))
    yield program
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    program.close()


@pytest.fixture(params=PATHS)
async def sessions(
    loopback_ice: None, request: pytest.FixtureRequest
) -> AsyncIterator[PeerSessions]:
    """The node's WebRTC sessions on one path of the fan-out (overrides conftest's)."""
    peers = PeerSessions(LOOPBACK, fanout=request.param)
    yield peers
    await peers.close_all()


def _on_its_path(sessions: PeerSessions) -> None:
    """Every fan-out listener is on the path the sessions were made for."""
    native = sessions.native_listeners()
    assert native == (sessions.fanout_listeners() if sessions.fanout_path == "native" else 0)


CSRC_LEVELS_EXTMAP = "a=extmap:9 urn:ietf:params:rtp-hdrext:csrc-audio-level"


@dataclass
class Client:
    pc: RTCPeerConnection
    session_id: str
    transceiver: Any
    answer: str
    packets: list[RtpPacket] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    """The RTP packets as they arrived, decrypted (header extensions aiortc drops)."""


@pytest.fixture
async def connect(
    sessions: PeerSessions, stream: PacketStream
) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    clients: list[Client] = []

    async def one(setup: str = "actpass", *, csrc_levels: bool = False) -> Client:
        pc, offer = await make_offer("recvonly")
        offer = offer.replace("a=setup:actpass", f"a=setup:{setup}")
        if csrc_levels:  # as Firefox offers RFC 6465 (aiortc does not)
            offer = offer.replace("a=mid:", CSRC_LEVELS_EXTMAP + "\r\na=mid:", 1)
        session_id, answer = await sessions.listen(offer, stream=stream)
        transceiver = await accept_answer(pc, answer)
        client = Client(pc, session_id, transceiver, answer)
        receiver = transceiver.receiver
        original = receiver._handle_rtp_packet

        async def record(packet: RtpPacket, arrival_time_ms: int) -> None:
            client.packets.append(packet)
            await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = record
        dtls = receiver.transport
        handle_rtp_data = dtls._handle_rtp_data

        async def keep_raw(data: bytes, arrival_time_ms: int) -> None:
            client.raw.append(data)
            await handle_rtp_data(data, arrival_time_ms=arrival_time_ms)

        dtls._handle_rtp_data = keep_raw
        clients.append(client)
        await wait_connected(pc)
        return client

    yield one
    for client in clients:
        await client.pc.close()


async def _until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), 20)  # guards a hung test only


def _assert_continuous(packets: list[RtpPacket]) -> None:
    assert len(packets) > 10
    assert len({p.ssrc for p in packets}) == 1
    assert len({p.payload_type for p in packets}) == 1
    for before, after in zip(packets, packets[1:], strict=False):
        assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + 960) & 0xFFFFFFFF


async def _keep_playing(clients: list[Client]) -> None:
    """Every client goes on hearing the tone, with more packets and no gap in them."""
    marks = [len(c.packets) for c in clients]
    heard = await asyncio.gather(
        *(record_track(c.transceiver.receiver.track, 1.0, skip=0.2) for c in clients)
    )
    for client, mark, samples in zip(clients, marks, heard, strict=True):
        assert dominant_frequency(samples) == pytest.approx(440, abs=5)
        # The audio may all have come from frames queued before the mark: new packets
        # are waited for, not assumed.
        await _until(lambda client=client, mark=mark: len(client.packets) > mark + 5)
        _assert_continuous(client.packets)


async def test_listeners_on_the_fast_path_hear_the_tone(
    sessions: PeerSessions, connect: Callable[[], Awaitable[Client]]
) -> None:
    clients = [await connect() for _ in range(3)]
    # The node moves a listener to the fast path once its own side of DTLS is done, which
    # may come a moment after the client sees the connection up.
    await _until(lambda: sessions.fanout_listeners() == 3)
    _on_its_path(sessions)
    heard = await asyncio.gather(
        *(record_track(c.transceiver.receiver.track, 1.5, skip=0.3) for c in clients)
    )
    for samples in heard:
        assert dominant_frequency(samples) == pytest.approx(440, abs=5)
    for client in clients:
        _assert_continuous(client.packets)
        assert client.packets[0].marker == 1
        assert not any(p.marker for p in client.packets[1:])
        # The MID header extension is there, as aiortc's own sender writes it.
        assert client.packets[0].extensions.mid == client.transceiver.mid
        # The speakers heard are the CSRCs, and the mix's level is RFC 6464's (aiortc
        # offers it, as Chromium does).
        assert all(p.csrc == [7, 0xDEADBEEF] for p in client.packets)
        assert client.packets[0].extensions.audio_level == (True, 9)
    # Every listener has its own SSRC and sequence space.
    assert len({c.packets[0].ssrc for c in clients}) == 3


async def test_listeners_offering_rfc_6465_get_each_speaker_s_level(
    sessions: PeerSessions, connect: Callable[..., Awaitable[Client]]
) -> None:
    client = await connect(csrc_levels=True)
    plain = await connect()
    # Answered as sent only (RFC 8285), with the offer's id; not to those who did not ask.
    assert "a=extmap:9/sendonly urn:ietf:params:rtp-hdrext:csrc-audio-level" in client.answer
    assert "csrc-audio-level" not in plain.answer
    await _until(lambda: len(client.raw) > 5 and len(plain.raw) > 5)
    _on_its_path(sessions)
    for data in client.raw:
        assert data[0] & 0x0F == 2  # CSRC count
        # One -dBov level per CSRC, in CSRC order.
        assert header_extensions(data)[9] == bytes([12, 40])
    assert all(9 not in header_extensions(data) for data in plain.raw)
    heard = await record_track(client.transceiver.receiver.track, 1.0, skip=0.2)
    assert dominant_frequency(heard) == pytest.approx(440, abs=5)


async def test_a_listener_leaving_does_not_disturb_the_others(
    sessions: PeerSessions, connect: Callable[[], Awaitable[Client]]
) -> None:
    clients = [await connect() for _ in range(3)]
    leaving = clients.pop(1)
    await _until(lambda: len(leaving.packets) > 10)
    await leaving.pc.close()
    await _until(lambda: sessions.count() == 2)
    assert sessions.fanout_listeners() == 2
    await _keep_playing(clients)


async def test_a_broken_listener_is_dropped_and_the_rest_keep_playing(
    sessions: PeerSessions, connect: Callable[[], Awaitable[Client]]
) -> None:
    closed: list[str] = []
    sessions.on_closed(closed.append)
    clients = [await connect() for _ in range(3)]
    broken = clients.pop(0)
    await _until(lambda: len(broken.packets) > 5)
    # Break the server side under the fan-out: close the UDP socket of the listener's
    # nominated ICE pair, as a dying transport would, without telling aiortc first.
    server_pc = sessions._sessions[broken.session_id].pc
    ice = server_pc.getTransceivers()[0].sender.transport.transport
    ice._connection._nominated[1].protocol.transport.close()
    await _until(lambda: broken.session_id in closed)
    assert sessions.fanout_listeners() == 2
    await _keep_playing(clients)


# -- the loop alone, without aiortc ------------------------------------------------------


def _capturing_listener(sent: list[bytes], ssrc: int, **kwargs: Any) -> RtpListener:
    transmit = plain_transmitter(ssrc, lambda data: data, sent.append)
    layout = RtpLayout(mid="a", mid_id=1)
    return RtpListener(ssrc=ssrc, payload_type=111, transmit=transmit, layout=layout, **kwargs)


async def test_rtp_headers_are_built_per_listener() -> None:
    stream = PacketStream()
    fanout = RtpFanout(stream)
    sent_a: list[bytes] = []
    sent_b: list[bytes] = []
    fanout.add(_capturing_listener(sent_a, 1, seq=0xFFFE, ts_origin=0xFFFFFC00))
    fanout.add(_capturing_listener(sent_b, 2, seq=7, ts_origin=5))
    for i, packet in enumerate(TONE[:4]):
        await fanout.send_packet(OpusPacket(i, i * 960, packet.data))
    a = [RtpPacket.parse(data) for data in sent_a]
    b = [RtpPacket.parse(data) for data in sent_b]
    assert [p.sequence_number for p in a] == [0xFFFE, 0xFFFF, 0, 1]
    assert [p.timestamp for p in a] == [0xFFFFFC00, 0xFFFFFFC0, 0x380, 0x740]
    assert [p.sequence_number for p in b] == [7, 8, 9, 10]
    assert [p.marker for p in b] == [1, 0, 0, 0]
    assert {p.ssrc for p in a} == {1} and {p.ssrc for p in b} == {2}
    assert [p.payload for p in b] == [p.data for p in TONE[:4]]
    await fanout.close()


async def test_failing_listeners_are_dropped_without_stalling_the_batch() -> None:
    stream = PacketStream()
    fanout = RtpFanout(stream)
    dropped: list[str] = []
    healthy: list[bytes] = []

    def closed_socket(data: bytes) -> None:
        raise OSError(9, "Bad file descriptor")

    def full_socket(data: bytes) -> None:
        raise BlockingIOError

    broken = RtpListener(
        ssrc=3,
        payload_type=111,
        transmit=plain_transmitter(3, bytes, closed_socket),
        on_drop=lambda _, reason: dropped.append(reason),
    )
    slow = RtpListener(
        ssrc=4,
        payload_type=111,
        transmit=plain_transmitter(4, bytes, full_socket),
        on_drop=lambda _, reason: dropped.append(reason),
    )
    fanout.add(broken)
    fanout.add(slow)
    fanout.add(_capturing_listener(healthy, 5))
    await fanout.send_packet(OpusPacket(0, 0, TONE[0].data))
    assert broken not in fanout.listeners and slow in fanout.listeners
    assert len(healthy) == 1
    for i in range(1, 60):
        await fanout.send_packet(OpusPacket(i, i * 960, TONE[i % len(TONE)].data))
    # A full buffer loses packets, then (still full after MAX_SEND_ERRORS) the listener.
    assert slow not in fanout.listeners
    assert len(dropped) == 2 and "socket buffer full" in dropped[1]
    assert len(healthy) == 60
    await fanout.close()


# -- several 20 ms frames per RTP packet ([media] webrtc_packet_ms) ----------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("frames", [2, 3])
async def test_listeners_hear_the_tone_in_multi_frame_packets(
    stream: PacketStream, frames: int, path: FanoutMode, loopback_ice: None
) -> None:
    peers = PeerSessions(LOOPBACK, frames_per_packet=frames, fanout=path)
    pc, offer = await make_offer("recvonly")
    packets: list[RtpPacket] = []
    try:
        _, answer = await peers.listen(offer, stream=stream)
        transceiver = await accept_answer(pc, answer)
        original = transceiver.receiver._handle_rtp_packet

        async def record(packet: RtpPacket, arrival_time_ms: int) -> None:
            packets.append(packet)
            await original(packet, arrival_time_ms=arrival_time_ms)

        transceiver.receiver._handle_rtp_packet = record
        heard = await record_track(transceiver.receiver.track, 1.5, skip=0.3)
        _on_its_path(peers)
    finally:
        await pc.close()
        await peers.close_all()
    assert dominant_frequency(heard) == pytest.approx(440, abs=5)
    assert len(packets) > 10

    def frames_in(packet: RtpPacket) -> int:
        # Code 0: one frame; code 3 (RFC 6716 3.2.5): VBR flag and count in byte two.
        if packet.payload[0] & 0x03 == 0:
            return 1
        assert packet.payload[0] & 0x03 == 3 and packet.payload[1] & 0x80
        return packet.payload[1] & 0x3F

    for before, after in zip(packets, packets[1:], strict=False):
        assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + 960 * frames_in(before)) & 0xFFFFFFFF
    # The tone's encoder changes mode now and then: those frames go alone, the rest
    # as asked.
    counts = [frames_in(p) for p in packets]
    assert set(counts) <= {1, frames}
    assert counts.count(frames) * frames > 0.8 * sum(counts)


def _decode(packets: list[OpusPacket]) -> list[int]:
    """Samples per decoded packet (libopus, as a client decodes)."""
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    return [sum(f.samples for f in decoder.decode(av.Packet(p.data))) for p in packets]


@pytest.mark.parametrize("bitrate", [32000, 160000])  # 160 kb/s: frames over 252 bytes
def test_combined_opus_packets_decode_to_the_same_audio(bitrate: int) -> None:
    # Six frames in one Opus mode (the tone's encoder settles into another later on).
    tone = opus_tone_packets(440, 6, bitrate=bitrate)
    assert len({p.data[0] for p in tone}) == 1
    assert (max(len(p.data) for p in tone) > 252) == (bitrate > 100000)
    pairs = [combine_opus(tone[i : i + 2]) for i in range(0, 6, 2)]
    triples = [combine_opus(tone[i : i + 3]) for i in range(0, 6, 3)]
    combined2 = [p for p in pairs if p is not None]
    combined3 = [p for p in triples if p is not None]
    assert len(combined2) == 3 and len(combined3) == 2
    assert _decode(combined2) == [1920] * 3
    assert _decode(combined3) == [2880] * 2
    assert [p.pts for p in combined2] == [0, 1920, 3840]
    assert decode_opus_packets(combined2) == pytest.approx(decode_opus_packets(tone))


def test_packets_that_cannot_combine_are_refused() -> None:
    tone = opus_tone_packets(440, 4)
    first, second = tone[0], tone[1]
    assert combine_opus([first]) is None  # nothing to combine
    assert combine_opus([first, tone[2]]) is None  # a gap in sequence
    other_mode = OpusPacket(
        second.seq, second.pts, bytes([second.data[0] ^ 0x08]) + second.data[1:]
    )
    assert combine_opus([first, other_mode]) is None  # another TOC configuration
    two_frames = OpusPacket(first.seq, first.pts, bytes([first.data[0] | 0x01]) + first.data[1:])
    assert combine_opus([two_frames, second]) is None  # not a single frame already
    assert combine_opus([OpusPacket(0, 0, b""), second]) is None
    assert combine_opus(tone * 2) is None  # more than 120 ms


def test_on_uvloop_packets_go_out_on_a_duplicate_that_stops_with_the_transport() -> None:
    uvloop = pytest.importorskip("uvloop")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)

    async def body() -> None:
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        fds = len(os.listdir("/proc/self/fd"))
        sendto, release = _socket_sendto(udp)
        assert sendto is not None and release is not None
        assert len(os.listdir("/proc/self/fd")) == fds + 1
        sendto(memoryview(b"rtp"), receiver.getsockname())
        data, source = receiver.recvfrom(100)
        assert data == b"rtp" and source == udp.get_extra_info("sockname")
        udp.close()
        with pytest.raises(ConnectionError):
            sendto(memoryview(b"late"), receiver.getsockname())
        release()
        # The duplicate is closed (the transport's own descriptor may close a turn later).
        assert len(os.listdir("/proc/self/fd")) <= fds

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(body())
    finally:
        receiver.close()


async def test_fanout_listeners_get_sender_reports_that_match_their_stream(
    connect: Callable[[], Awaitable[Client]],
) -> None:
    client = await connect()
    receiver = client.transceiver.receiver
    reports: list[RtcpSrPacket] = []
    original = receiver._handle_rtcp_packet

    async def record(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            reports.append(packet)
        await original(packet)

    receiver._handle_rtcp_packet = record
    await _until(lambda: bool(reports))
    report = reports[0]
    rtp = client.packets
    assert report.ssrc == rtp[0].ssrc
    info = report.sender_info
    # The counters are the fan-out's (synchronised every few packets), not aiortc's zeros.
    assert 0 < info.packet_count <= len(rtp) + 8
    assert info.octet_count >= info.packet_count * 10
    sent_ts = {p.timestamp for p in rtp}
    assert info.rtp_timestamp in sent_ts
    assert info.ntp_timestamp > 0


def _node_dtls(sessions: PeerSessions, client: Client) -> Any:
    return sessions._sessions[client.session_id].pc.getTransceivers()[0].sender.transport


@pytest.mark.parametrize("setup", ["actpass", "active"])
async def test_a_listener_s_openssl_connection_is_freed_and_dtls_still_closes_both_ways(
    sessions: PeerSessions, connect: Callable[..., Awaitable[Client]], setup: str
) -> None:
    # actpass (what browsers offer): the node is the DTLS client and frees the connection
    # once the handshake is over. active: the node is the DTLS server and waits for the
    # client's first SRTCP packet (aiortc's receiver reports), proof it has the keys.
    staying, leaving, closed_by_node = [await connect(setup) for _ in range(3)]
    for client in (staying, leaving, closed_by_node):
        dtls = _node_dtls(sessions, client)
        assert dtls._role == ("client" if setup == "actpass" else "server")
        await _until(lambda dtls=dtls: isinstance(dtls._ssl, SpentDtls))
    assert not sessions._sessions[staying.session_id].pc.remoteDescription
    await _keep_playing([staying, leaving, closed_by_node])

    # The client closes: its close_notify ends the node's session at once (not after ICE
    # consent gives up, which takes longer than the guard of _until).
    await leaving.pc.close()
    await _until(lambda: sessions.count() == 2)
    # The node closes: the close_notify kept from the handshake reaches the client.
    client_dtls = closed_by_node.transceiver.receiver.transport
    await sessions.close(closed_by_node.session_id)
    await _until(lambda: client_dtls.state == "closed")
    assert sessions.count() == 1
    await _keep_playing([staying])


def test_a_spent_dtls_connection_reports_alerts_and_sends_its_close_notify_once() -> None:
    spent = SpentDtls(b"close-notify-record")
    assert spent.DTLSv1_get_timeout() is None
    with pytest.raises(SSL.WantReadError):
        spent.bio_read(1500)
    spent.bio_write(bytes([22, 0xFE, 0xFD]) + bytes(20))  # a handshake record: ignored
    with pytest.raises(SSL.Error) as ignored:
        spent.recv(1500)
    assert not isinstance(ignored.value, SSL.ZeroReturnError)
    spent.bio_write(bytes([21, 0xFE, 0xFD]) + bytes(20))  # an alert: the peer is gone
    with pytest.raises(SSL.ZeroReturnError):
        spent.recv(1500)
    spent.shutdown()
    assert spent.bio_read(1500) == b"close-notify-record"
    spent.shutdown()
    with pytest.raises(SSL.WantReadError):
        spent.bio_read(1500)
