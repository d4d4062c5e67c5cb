"""The per-listener send step alone: the Python step against the native one, in CPU time.

    .venv/bin/python -m bench.bench_send_step --listeners 200 --packets 500 --rounds 6

One process, no aiortc, no load generator: N listeners, each with its own libsrtp session
(AEAD_AES_128_GCM, what Chromium and aiortc negotiate, or AES_CM_128_HMAC_SHA1_80) and its
own UDP socket on an event loop (uvloop, the node's default), sending to N receiving
sockets on loopback that nobody reads (the kernel drops what overflows; the receive path
up to there is still charged to the sender, as on loopback in the fan-out benchmarks).
The same packets (one CSRC, MID and audio level extensions, a 40 ms Opus payload) go
through :class:`~node.media.fanout.RtpFanout` on the Python step and on the native step
in alternating rounds, timed by the thread's CPU clock (``time.thread_time``), which a
busy shared machine disturbs far less than wall time: the ratio is the figure to quote.

This is the cost of sending audio to a listener, nothing else: ICE consent, RTCP and the
event loop's own work per listener come on top (bench_fanout_fast measures the whole).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time
from typing import Any

import uvloop
from pylibsrtp import Policy, Session

from bench.harness import append_results, markdown_table
from node.media import native
from node.media.fanout import RtpFanout, RtpListener
from node.media.fanout_attach import _socket_sendto, srtp_socket_transmitter
from node.media.packets import Contributors, OpusPacket, PacketStream
from node.media.rtpwire import RtpLayout

KEY = bytes(range(28))  # AEAD_AES_128_GCM: 16-byte key + 12-byte salt
KEY_CM = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80: 16 + 14
LAYOUT = RtpLayout(mid="0", mid_id=4, audio_level_id=1)  # Chromium's offer
PAYLOAD = b"\xfc\xff" + bytes(160)  # a 40 ms code-3 Opus packet at 32 kb/s


def _session(profile: str) -> Session:
    if profile == "gcm":
        policy = Policy(
            key=KEY,
            ssrc_type=Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        )
    else:
        policy = Policy(key=KEY_CM, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    return Session(policy)


async def _listeners(
    count: int, profile: str, use_native: bool, keep: list[Any]
) -> list[RtpListener]:
    loop = asyncio.get_running_loop()
    made = []
    for i in range(count):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        udp, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        keep += [receiver, udp]
        session = _session(profile)
        ssrc = 0x10000 + i
        if use_native:
            state = native.native_listener(
                udp,
                receiver.getsockname(),
                session,
                ssrc=ssrc,
                payload_type=111,
                seq=0,
                ts_origin=0,
            )
            assert state is not None
            made.append(
                RtpListener(
                    ssrc=ssrc, payload_type=111, transmit=None, layout=LAYOUT, native=state
                )
            )
        else:
            sendto, release = _socket_sendto(udp)
            transmit = srtp_socket_transmitter(ssrc, session, sendto, receiver.getsockname())
            made.append(
                RtpListener(
                    ssrc=ssrc, payload_type=111, transmit=transmit, layout=LAYOUT, release=release
                )
            )
    return made


async def _round(fanout: RtpFanout, packets: int, first_seq: int) -> float:
    """CPU seconds of this thread to send ``packets`` packets to every listener."""
    contributors = Contributors(13, ((1, 13),))
    started = time.thread_time()
    for seq in range(first_seq, first_seq + packets):
        await fanout.send_packet(OpusPacket(seq, seq * 1920, PAYLOAD, contributors))
    return time.thread_time() - started


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    keep: list[Any] = []
    fanouts = {}
    for step in ("python", "native"):
        fanout = RtpFanout(PacketStream())
        for listener in await _listeners(args.listeners, args.srtp, step == "native", keep):
            fanout.add(listener)
        # add() starts the loop reading the (idle) stream; the rounds call send_packet.
        fanouts[step] = fanout
    per_packet: dict[str, list[float]] = {"python": [], "native": []}
    seq = 0
    for _ in range(args.rounds):
        for step, fanout in fanouts.items():
            seconds = await _round(fanout, args.packets, seq)
            seq += args.packets
            per_packet[step].append(1e6 * seconds / (args.packets * args.listeners))
    for fanout in fanouts.values():
        sent = fanout.sent
        await fanout.close()
        assert sent == args.rounds * args.packets * args.listeners, sent
    for thing in keep:
        thing.close()
    return per_packet


def report(per_packet: dict[str, list[float]], args: argparse.Namespace) -> str:
    rows = []
    medians = {step: statistics.median(values) for step, values in per_packet.items()}
    for step, values in per_packet.items():
        us = medians[step]
        rows.append(
            [
                step,
                f"{us:.2f}",
                f"{min(values):.2f} / {max(values):.2f}",
                f"{100 / (us * 50 / 1e4):.0f}",
                f"{100 / (us * 25 / 1e4):.0f}",
            ]
        )
    return "\n".join(
        [
            f"{args.listeners} listeners, {args.packets} packets per round, {args.rounds} rounds "
            f"per step alternating; SRTP {args.srtp.upper()}; uvloop; CPU time of the "
            "sending thread.",
            "",
            markdown_table(
                [
                    "step",
                    "µs per packet per listener (median)",
                    "min / max of rounds",
                    "listeners / core, sending alone, 20 ms packets",
                    "same, 40 ms packets",
                ],
                rows,
            ),
            "",
            f"The native step costs **{medians['python'] / medians['native']:.2f}×** less per "
            "packet per listener than the Python step (same process, alternating rounds).",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listeners", type=int, default=200)
    parser.add_argument("--packets", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--srtp", choices=("gcm", "cm"), default="gcm")
    parser.add_argument("--no-results", dest="write", action="store_false")
    args = parser.parse_args(argv)
    if not native.available():
        parser.error(f"the native step is not available: {native.why_unavailable()}")
    per_packet = uvloop.run(run(args))
    body = report(per_packet, args)
    print(body)
    if args.write:
        append_results("WebRTC send step: Python against native, CPU time", body)
    return per_packet


if __name__ == "__main__":
    main()
