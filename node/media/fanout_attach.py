"""An aiortc WHEP session on the batched fan-out (node/media/fanout.py).

aiortc still does everything but the RTP for a listener: ICE (including consent
freshness), the DTLS handshake and SRTP keying, RTCP in both directions (sender reports
from the listener's own ``RTCRtpSender`` RTCP task, every 5 s as libwebrtc does for audio
rather than aiortc's 1 s (:func:`report_slowly`), with the counters the fan-out keeps;
receiver reports, NACK and PLI are routed to that sender as usual; NACK finds no history
and is ignored, PLI means nothing for audio), and the close of the peer connection.

How a listener joins: its ``RTCRtpSender`` gets a :class:`FanoutTrack` whose ``recv()``
is first called by the sender's RTP task right after DTLS completed and the sender was
started (so SSRC, MID, payload type and keys are all final). That first call attaches
the listener (:func:`listener_for`) to the stream's fan-out; then ``recv()`` just waits
until the track is stopped, which aiortc does when the sender stops (peer connection
closed).

aiortc / aioice / asyncio internals this module relies on (check them on every upgrade of
aiortc, currently 1.16, and aioice):

- ``RTCRtpSender._ssrc`` (public in practice: RTCP routing uses it); for
  :func:`report_slowly` ``_run_rtcp`` (started by ``send()``), ``_send_rtcp``, and the
  private ``__rtcp_started``, ``__rtcp_exited``, ``__lsr``, ``__lsr_time``, ``__cname``
  and the counters the fan-out updates (``__packet_count``, ``__octet_count``,
  ``__ntp_timestamp``, ``__rtp_timestamp``).
- ``RTCRtpSender._run_rtp`` calls ``track.recv()`` only after ``send()`` (post DTLS), and
  stops the track when it ends.
- ``RTCRtpTransceiver._codecs[0]`` is the negotiated send codec (its ``payloadType``);
  ``RTCRtpTransceiver.mid`` and ``_headerExtensions`` give the listener's ``RtpLayout``.
- ``RTCDtlsTransport._tx_srtp`` (a ``pylibsrtp.Session``: ``_srtp``, ``_cdata``,
  ``_buffer``) and ``RTCDtlsTransport.state``.
- ``RTCIceTransport._connection`` (an ``aioice.Connection``) and its ``_nominated[1]``
  candidate pair: ``.protocol.transport`` (the asyncio datagram transport) and
  ``.remote_addr``.
- asyncio's selector datagram transport keeps its socket as ``_sock``; uvloop's gives a
  pseudo-socket through ``get_extra_info("socket")`` whose descriptor is duplicated (see
  ``_socket_sendto``; the native step duplicates it on both loops); failing both, the
  transport's public ``sendto`` is used, on a copy of the packet, after checking
  ``is_closing()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc import MediaStreamTrack, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.rtp import (
    RtcpByePacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)
from aiortc.utils import random32
from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from node.media import native
from node.media.fanout import RTP_HEADER, RtpListener, Transmit, plain_transmitter
from node.media.rtpwire import RtpLayout

__all__ = [
    "FanoutTrack",
    "SENDER_REPORT_INTERVAL",
    "listener_for",
    "report_slowly",
    "srtp_socket_transmitter",
]

logger = logging.getLogger(__name__)


SENDER_REPORT_INTERVAL = 5.0
"""Seconds between a fan-out listener's RTCP sender reports (randomised 0.5-1.5x, as RFC
3550 section 6.2 asks). aiortc sends one every 0.5-1.5 s; 5 s is RFC 3550's minimum and
libwebrtc's interval for audio. At 40 ms packets a listener's sender reports were about a
twentieth of its cost (bench/RESULTS.md)."""


def report_slowly(sender: RTCRtpSender) -> None:
    """Make ``sender``'s RTCP task send its reports every ``SENDER_REPORT_INTERVAL``.

    Call before the sender starts (it starts its RTCP task in ``send()``). The task keeps
    aiortc's protocol: started and exited events, a sender report plus SDES CNAME per
    interval from the counters :func:`_sync_sender_stats` keeps, BYE when cancelled.
    """

    async def run_rtcp() -> None:
        mangled = "_RTCRtpSender__"
        getattr(sender, mangled + "rtcp_started").set()
        delay = 0.5 + random.random()  # the first report as soon as aiortc's
        try:
            while True:
                await asyncio.sleep(delay)
                delay = SENDER_REPORT_INTERVAL * (0.5 + random.random())
                ntp = getattr(sender, mangled + "ntp_timestamp")
                packets: list[Any] = [
                    RtcpSrPacket(
                        ssrc=sender._ssrc,
                        sender_info=RtcpSenderInfo(
                            ntp_timestamp=ntp,
                            rtp_timestamp=getattr(sender, mangled + "rtp_timestamp"),
                            packet_count=getattr(sender, mangled + "packet_count") & 0xFFFFFFFF,
                            octet_count=getattr(sender, mangled + "octet_count") & 0xFFFFFFFF,
                        ),
                    )
                ]
                # Round-trip time estimates from receiver reports match against these.
                setattr(sender, mangled + "lsr", (ntp >> 16) & 0xFFFFFFFF)
                setattr(sender, mangled + "lsr_time", time.time())
                cname = getattr(sender, mangled + "cname")
                if cname is not None:
                    packets.append(
                        RtcpSdesPacket(
                            chunks=[RtcpSourceInfo(ssrc=sender._ssrc, items=[(1, cname.encode())])]
                        )
                    )
                await sender._send_rtcp(packets)
        except asyncio.CancelledError:
            pass
        await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
        getattr(sender, mangled + "rtcp_exited").set()

    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]


class FanoutTrack(MediaStreamTrack):
    """The track an aiortc sender on the fast path pulls from: it never yields media.

    The sender's first ``recv()`` (after DTLS) calls ``on_start``; afterwards ``recv()``
    waits until the track is stopped. ``on_stop`` runs once when it is stopped.
    """

    kind = "audio"

    def __init__(self, on_start: Callable[[], None], on_stop: Callable[[], None]) -> None:
        super().__init__()
        self._on_start: Callable[[], None] | None = on_start
        self._on_stop: Callable[[], None] | None = on_stop
        self._stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:  # never returns a frame
        if self.readyState != "live":
            raise MediaStreamError
        on_start, self._on_start = self._on_start, None
        if on_start is not None:
            try:
                on_start()
            except Exception:
                logger.exception("could not attach a listener to the RTP fan-out")
                self.stop()
                raise MediaStreamError from None
        await asyncio.shield(self._stopped)
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if not self._stopped.done():
            self._stopped.set_result(None)
        on_stop, self._on_stop = self._on_stop, None
        if on_stop is not None:
            on_stop()


def listener_for(transceiver: RTCRtpTransceiver, *, use_native: bool = False) -> RtpListener:
    """An :class:`RtpListener` sending on an aiortc transceiver's established transport.

    Call it only once the sender has started (from :class:`FanoutTrack`'s ``on_start``):
    the DTLS handshake is done and the ICE pair nominated. With ``use_native`` the
    listener goes on the native step when it can (node/media/native.py), else on Python.
    """
    sender: RTCRtpSender = transceiver.sender
    dtls = sender.transport
    if dtls.state != "connected" or dtls._tx_srtp is None:
        raise ConnectionError("DTLS transport is not connected")
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        raise ConnectionError("no nominated ICE candidate pair")
    payload_type = transceiver._codecs[0].payloadType
    if payload_type is None:
        raise ConnectionError("no negotiated payload type")
    layout = RtpLayout.negotiated(
        transceiver.mid, ((ext.id, ext.uri) for ext in transceiver._headerExtensions)
    )
    udp = pair.protocol.transport
    remote = pair.remote_addr
    seq, ts_origin = random_sequence_number(), random32()
    listener = RtpListener(
        ssrc=sender._ssrc,
        payload_type=payload_type,
        transmit=None,
        layout=layout,
        seq=seq,
        ts_origin=ts_origin,
        sender=sender,
    )
    if use_native and not udp.get_extra_info("peername"):
        listener.native = native.native_listener(
            udp,
            remote,
            dtls._tx_srtp,
            ssrc=sender._ssrc,
            payload_type=payload_type,
            seq=seq,
            ts_origin=ts_origin,
        )
        if listener.native is not None:
            return listener
        logger.warning("listener ssrc=%08x on the Python step: no native send", sender._ssrc)

    def send(data: bytes | memoryview) -> None:
        if udp.is_closing():
            raise ConnectionError("ICE socket closed")
        # A transport may queue what it cannot send at once: never hand it a view of a
        # buffer that the next packet overwrites.
        udp.sendto(bytes(data), remote)

    if not udp.get_extra_info("peername") and _has_srtp_internals(dtls._tx_srtp):
        sendto, listener.release = _socket_sendto(udp)
        listener.transmit = srtp_socket_transmitter(
            sender._ssrc, dtls._tx_srtp, sendto, remote, send=send
        )
    else:
        listener.transmit = plain_transmitter(sender._ssrc, dtls._tx_srtp.protect, send)
    return listener


def _socket_sendto(
    udp: Any,
) -> tuple[Callable[[memoryview, tuple[str, int]], object] | None, Callable[[], None] | None]:
    """``socket.sendto`` of an ICE transport's socket, and what to call when done.

    asyncio's selector transport keeps its socket (``_sock``): its ``sendto`` is used as
    is, and a closed transport closes it (EBADF drops the listener). uvloop gives a
    pseudo-socket whose file descriptor is duplicated into a real socket object, ~2 us per
    packet cheaper than the transport's ``sendto`` (bench/RESULTS.md); the duplicate is
    closed when the listener leaves, and a closing transport is checked before each send.
    Neither: (None, None) and the caller goes through the transport.
    """
    sock = getattr(udp, "_sock", None)
    if sock is not None:
        return sock.sendto, None
    pseudo = udp.get_extra_info("socket")
    try:
        duplicate = socket.socket(fileno=os.dup(pseudo.fileno()))
    except (AttributeError, OSError, ValueError):
        return None, None
    raw_sendto = duplicate.sendto
    is_closing = udp.is_closing

    def sendto(data: memoryview, addr: tuple[str, int]) -> object:
        if is_closing():
            raise ConnectionError("ICE socket closed")
        return raw_sendto(data, addr)

    return sendto, duplicate.close


def _has_srtp_internals(session: Any) -> bool:
    return all(hasattr(session, name) for name in ("_srtp", "_cdata", "_buffer"))


def srtp_socket_transmitter(
    ssrc: int,
    session: Any,
    sendto: Callable[[memoryview, tuple[str, int]], object] | None,
    addr: tuple[str, int],
    *,
    send: Callable[[memoryview], object] | None = None,
) -> Transmit:
    """The Python path's fast transmitter: the packet is written straight into the SRTP
    session's own C buffer, protected there by libsrtp and sent from it, with no
    intermediate objects.

    ``sendto`` is the ICE socket's own ``socket.sendto`` (asyncio's selector loop); where
    the loop gives no socket (uvloop) it is None and ``send`` takes the protected packet.

    Profiling put ``pylibsrtp.Session.protect``'s Python wrapper (a fresh ``int *``, a
    checked copy, an assert helper, a bytes copy out) at about 40 % of its cost. The
    session's buffer is shared with aiortc's own ``protect_rtcp`` calls; that is safe
    because protect and send here are one synchronous step.
    """
    srtp = session._srtp[0]
    cdata = session._cdata
    view = memoryview(session._buffer)
    length = _srtp_ffi.new("int *")
    protect = _srtp_lib.srtp_protect
    capacity = len(view) - SRTP_MAX_TRAILER_LEN
    pack_into = RTP_HEADER.pack_into
    if sendto is None:
        if send is None:
            raise ValueError("srtp_socket_transmitter needs sendto or send")
        to_transport = send

        def sendto(data: memoryview, _addr: tuple[str, int]) -> object:
            return to_transport(data)

    def transmit(byte0: int, second_byte: int, seq: int, timestamp: int, tail: bytes) -> object:
        end = 12 + len(tail)
        if end > capacity:
            raise ValueError("packet too large for SRTP")
        # aiortc's protect_rtcp may have overwritten the buffer since the last packet.
        pack_into(view, 0, byte0, second_byte, seq, timestamp, ssrc)
        view[12:end] = tail
        length[0] = end
        code = protect(srtp, cdata, length)
        if code:
            # Naming ``session`` here also keeps it (and the srtp_t it frees) alive.
            raise pylibsrtp.Error(f"srtp_protect failed ({code}) in {session!r}")
        # A closed socket raises OSError (EBADF) here, which drops the listener.
        return sendto(view[: length[0]], addr)

    return transmit
