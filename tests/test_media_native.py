"""The native send step (node/media/native.py, _rtpsend.c) against the Python path.

Real UDP sockets and real libsrtp sessions, no aiortc: what each path sends is received,
unprotected and compared byte for byte. The aiortc listeners of test_media_fanout.py run
on both paths as well (and hear the tone on both).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from node.media import native
from node.media.fanout import RtpFanout, RtpListener
from node.media.fanout_attach import srtp_socket_transmitter
from node.media.packets import Contributors, OpusPacket, PacketStream
from node.media.rtpwire import RtpLayout
from tests.tonekit import header_extensions

KEY = bytes(range(30))  # 16-byte master key + 14-byte salt (AES_CM_128_HMAC_SHA1_80)
LAYOUT = RtpLayout(mid="0", mid_id=4, audio_level_id=1, csrc_levels_id=9)

PACKETS = [
    OpusPacket(0, 0, b"\xfc" + bytes(60), Contributors(5, ((7, 3), (9, 20)))),
    OpusPacket(1, 960, b"\xfc" + bytes(80), Contributors()),  # nobody heard: no CSRC
    OpusPacket(2, 1920, b"\xfc" + bytes(40), None),  # a relayed program: says nothing
    OpusPacket(3, 2880, b"\xfc" + bytes(1000), Contributors(0, ((1, 0),))),
]


def test_the_native_step_is_built() -> None:
    # `pip install -e .` builds it (pyproject.toml); a machine without a C compiler runs
    # the Python path, which this suite would then report here.
    assert native.why_unavailable() is None


def _tx() -> Session:
    return Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND))


def _rx() -> Session:
    return Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))


@asynccontextmanager
async def _endpoint() -> AsyncIterator[tuple[Any, socket.socket]]:
    """A sending datagram transport (as aioice's) and a receiving socket."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        yield udp, receiver
    finally:
        udp.close()
        receiver.close()


async def _receive(sock: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got = [await asyncio.wait_for(loop.sock_recv(sock, 2048), 5) for _ in range(count)]
    return got


def _native_listener(udp: Any, to: socket.socket, ssrc: int, **kwargs: Any) -> RtpListener:
    state = native.native_listener(
        udp, to.getsockname(), _tx(), ssrc=ssrc, payload_type=111, seq=0xFFFE, ts_origin=5
    )
    assert state is not None
    return RtpListener(
        ssrc=ssrc, payload_type=111, transmit=None, layout=LAYOUT, native=state, **kwargs
    )


def _python_listener(udp: Any, to: socket.socket, ssrc: int) -> RtpListener:
    sock = udp.get_extra_info("socket")
    raw = socket.socket(fileno=sock.fileno())  # the transport's own, not closed here

    def sendto(data: memoryview, addr: tuple[str, int]) -> object:
        return raw.sendto(data, addr)

    transmit = srtp_socket_transmitter(ssrc, _tx(), sendto, to.getsockname())
    listener = RtpListener(
        ssrc=ssrc, payload_type=111, transmit=transmit, layout=LAYOUT, seq=0xFFFE, ts_origin=5
    )
    listener.release = raw.detach
    return listener


async def _both_paths_send_the_same_bytes() -> None:
    async with _endpoint() as (udp, to_native), _endpoint() as (udp2, to_python):
        fanout = RtpFanout(PacketStream())
        fast = _native_listener(udp, to_native, 0x1234)
        slow = _python_listener(udp2, to_python, 0x1234)
        fanout.add(fast)
        fanout.add(slow)
        assert fanout.native_count() == 1
        for packet in PACKETS:
            await fanout.send_packet(packet)
        rx_native, rx_python = _rx(), _rx()
        native_packets = [rx_native.unprotect(d) for d in await _receive(to_native, 4)]
        python_packets = [rx_python.unprotect(d) for d in await _receive(to_python, 4)]
        assert native_packets == python_packets
        parsed = [RtpPacket.parse(data) for data in native_packets]
        assert [p.sequence_number for p in parsed] == [0xFFFE, 0xFFFF, 0, 1]
        assert [p.timestamp for p in parsed] == [5, 965, 1925, 2885]
        assert [p.marker for p in parsed] == [1, 0, 0, 0]
        assert [p.csrc for p in parsed] == [[7, 9], [], [], [1]]
        assert [p.payload for p in parsed] == [p.data for p in PACKETS]
        elements = [header_extensions(data) for data in native_packets]
        assert [e[4] for e in elements] == [b"0"] * 4  # MID
        assert [e.get(1) for e in elements] == [b"\x85", b"\x7f", None, b"\x80"]  # V + level
        assert [e.get(9) for e in elements] == [b"\x03\x14", None, None, b"\x00"]
        counters = (fast.native.packets, fast.native.octets, fast.native.last_timestamp)
        assert counters == (slow.packets, slow.octets, slow.last_timestamp)
        assert counters == (4, sum(len(p.data) for p in PACKETS), 2885)
        assert fanout.sent == 8
        await fanout.close()
        assert fast.native.closed


async def test_native_and_python_paths_send_the_same_packets() -> None:
    await _both_paths_send_the_same_bytes()


def test_native_and_python_paths_send_the_same_packets_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_both_paths_send_the_same_bytes())


async def test_a_native_listener_whose_transport_closed_is_dropped() -> None:
    async with _endpoint() as (udp, to), _endpoint() as (udp2, to2):
        fanout = RtpFanout(PacketStream())
        dropped: list[str] = []

        def on_drop(_: RtpListener, reason: str) -> None:
            dropped.append(reason)

        closing = _native_listener(udp, to, 1, on_drop=on_drop)
        staying = _native_listener(udp2, to2, 2, on_drop=on_drop)
        fanout.add(closing)
        fanout.add(staying)
        await fanout.send_packet(PACKETS[0])
        udp.close()  # the duplicate descriptor stays open: the transport says it closed
        await fanout.send_packet(PACKETS[1])
        assert dropped == ["ConnectionError: ICE socket closed"]
        assert fanout.listeners == (staying,)
        assert closing.native.closed and not staying.native.closed
        assert len(await _receive(to2, 2)) == 2
        assert len(await _receive(to, 1)) == 1  # the packet before the close only
        with pytest.raises(TimeoutError):
            await _receive(to, 1)
        await fanout.close()


async def test_send_errors_are_reported_without_stopping_the_batch() -> None:
    async with _endpoint() as (udp, to), _endpoint() as (udp2, to2):
        good = _native_listener(udp2, to2, 2)
        bad_fd = _native_listener(udp, to, 1)
        states = [bad_fd.native, good.native]
        layouts = ((0x80, b"\xfc" + bytes(10)),)
        # A closed listener (it left while the batch was prepared): reported, the next sent.
        bad_fd.native.close()
        sent, failures = native.send_batch(states, 0, 2, layouts, 0, 11, 50)
        assert sent == 1 and failures == [(bad_fd.native, "ConnectionError: ICE socket closed")]
        # A layout index out of range.
        good.native.layout = 3
        sent, failures = native.send_batch(states[1:], 0, 1, layouts, 0, 11, 50)
        assert sent == 0 and failures == [(good.native, "ValueError: no such header layout")]
        # Too large for one datagram: refused, not cut.
        good.native.layout = 0
        big = ((0x80, bytes(1600)),)
        sent, failures = native.send_batch(states[1:], 0, 1, big, 0, 1600, 50)
        assert failures == [(good.native, "ValueError: packet too large for SRTP")]
        with pytest.raises(TypeError):
            native.send_batch([object()], 0, 1, layouts, 0, 11, 50)  # type: ignore[list-item]
        assert len(await _receive(to2, 1)) == 1


def test_a_native_listener_refuses_what_it_cannot_send_to() -> None:
    make: Callable[..., Any] = native._rtpsend.Listener  # type: ignore[union-attr]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for host, family, port in (
            ("not an address", socket.AF_INET, 5000),
            ("127.0.0.1", socket.AF_UNIX, 5000),
            ("127.0.0.1", socket.AF_INET, 0),
        ):
            with pytest.raises(ValueError):
                make(sock.fileno(), family, host, port, 1, 1, None, None, 1, 0, 0, 111)
    finally:
        sock.close()
