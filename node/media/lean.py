"""Free what an established WebRTC listener no longer needs.

A listener's peer connection is set up once (offer/answer, ICE, DTLS) and then only sends
SRTP and exchanges RTCP until it closes. aiortc keeps everything the set-up used for the
whole session; on a node with thousands of listeners that is most of their memory.
Measured (bench/RESULTS.md, RSS slope of bench_fanout_fast): ~165 KiB per listener
before, ~91 after. Two things are freed once the listener is on the fan-out:

**The OpenSSL connection** (:func:`release_after_handshake`). DTLS is only used to agree
SRTP keys: audio goes out as SRTP (libsrtp, keyed from the handshake) and no data channel
runs over DTLS. With OpenSSL 3/4 a pyOpenSSL ``Connection`` is ~92-96 KiB after the
handshake (32 KiB for a fresh ``SSL`` object, the rest handshake and record-layer state),
more than half of a listener. :class:`SpentDtls` takes its place and keeps the two things
DTLS still does for a listener:

- **Our close_notify.** Before the connection is freed, ``SSL_shutdown`` writes the
  close_notify alert (encrypted, next record number) into the memory BIO; it is kept (a
  few dozen bytes) and sent when aiortc stops the transport, exactly as the connection
  would have sent it then, so a browser sees the session end at once.
- **The peer's alerts.** A DTLS 1.2 record's content type is in clear: an alert record
  (type 21) after the handshake is close_notify or a fatal alert, both the end of the
  session, and is reported to aiortc as the connection's own ``ZeroReturnError`` would be.
  What is given up: the alert is not authenticated any more, so someone able to forge UDP
  from the listener's address and port can end that listener's session (the client then
  reconnects); any other DTLS record (a renegotiation attempt, which WebRTC forbids) is
  ignored, as aiortc ignores the ``SSL.Error`` it would raise.

When it is safe (all checked, else nothing changes): DTLS 1.2 only (DTLS 1.3 may need the
last flight again after the handshake); no data channel; and the peer must be done with
the handshake too. As the DTLS client (aiortc's answer to an ``actpass`` offer, which is
what browsers and WHEP clients send) our handshake ends when the server's last flight
arrived, so the server is done as well: freed at once. As the DTLS server the client may
still retransmit its last flight until it has ours, so the connection is freed when the
first SRTCP packet arrives from the peer: it can only protect one once it holds the keys.

**The parsed offer and answer** (:func:`shed_setup_state`): aiortc keeps both as SDP
object trees (~150 objects) for renegotiation and trickle ICE, neither of which a node
offers (WHIP/WHEP PATCH answers 405); and the unused decoder queue of a send-only
transceiver's receiver (a ``queue.Queue``: three conditions and a lock).

aiortc internals used (aiortc 1.16): ``RTCDtlsTransport._ssl``, ``_role``, ``state``,
``_data_receiver``, ``_handle_rtcp_data``, and how ``_recv_next``, ``_write_ssl`` and
``stop`` call ``DTLSv1_get_timeout``, ``DTLSv1_handle_timeout``, ``bio_write``,
``recv``, ``bio_read`` and ``shutdown`` on it; the peer connection's
``_RTCPeerConnection__currentLocalDescription`` and its three siblings (read only by
negotiation, ``addIceCandidate`` and the ``localDescription``/``remoteDescription``
properties); a receiver's ``_RTCRtpReceiver__decoder_queue`` (used only once
``receive()`` started a decoder thread, ``_RTCRtpReceiver__decoder_thread``).
"""

from __future__ import annotations

import logging
from typing import Any

from OpenSSL import SSL

__all__ = ["SpentDtls", "release_after_handshake", "shed_setup_state"]

logger = logging.getLogger(__name__)

_ALERT = 21
"""DTLS record content type of an alert (RFC 6347 section 4.1; RFC 5246 section 6.2.1)."""


class SpentDtls:
    """What aiortc's DTLS transport talks to once the OpenSSL connection is freed."""

    __slots__ = ("_close_notify", "_outgoing", "_peer_alert")

    def __init__(self, close_notify: bytes) -> None:
        self._close_notify = close_notify
        self._outgoing = b""
        self._peer_alert = False

    def DTLSv1_get_timeout(self) -> None:  # noqa: N802 - pyOpenSSL's name
        return None  # the handshake is over: no retransmission timer

    def DTLSv1_handle_timeout(self) -> bool:  # noqa: N802 - pyOpenSSL's name
        # A timer armed before the release (a DTLS server keeps one for its last flight)
        # may still fire once: the peer has the keys, there is nothing to send again.
        return False

    def bio_write(self, data: bytes) -> int:
        self._peer_alert = self._peer_alert or (bool(data) and data[0] == _ALERT)
        return len(data)

    def recv(self, bufsiz: int) -> bytes:
        if self._peer_alert:
            raise SSL.ZeroReturnError  # aiortc: "DTLS shutdown by remote party"
        raise SSL.Error("DTLS record ignored after the handshake")

    def bio_read(self, bufsiz: int) -> bytes:
        data, self._outgoing = self._outgoing, b""
        if not data:
            raise SSL.WantReadError
        return data

    def shutdown(self) -> bool:
        self._outgoing, self._close_notify = self._close_notify, b""
        return True

    def send(self, data: bytes) -> int:
        raise SSL.Error("no DTLS application data after the handshake")


def release_after_handshake(dtls: Any) -> None:
    """Free ``dtls``'s OpenSSL connection now, or on the peer's first SRTCP packet.

    ``dtls`` is an aiortc ``RTCDtlsTransport`` whose handshake completed (its sender has
    started). Does nothing where that would not be safe (see the module docstring).
    """
    ssl = getattr(dtls, "_ssl", None)
    if not isinstance(ssl, SSL.Connection) or dtls.state != "connected":
        return
    if getattr(dtls, "_data_receiver", None) is not None:
        return
    version = ssl.get_protocol_version_name()
    logger.debug("DTLS %s as %s: freeing the connection after the handshake", version, dtls._role)
    if version != "DTLSv1.2":
        return
    if dtls._role == "client":
        _release(dtls)
        return

    handle_rtcp_data = dtls._handle_rtcp_data

    async def first_srtcp(data: bytes) -> None:
        del dtls._handle_rtcp_data  # back to the class's method
        _release(dtls)
        await handle_rtcp_data(data)

    dtls._handle_rtcp_data = first_srtcp


def _release(dtls: Any) -> None:
    ssl = dtls._ssl
    if not isinstance(ssl, SSL.Connection) or dtls.state != "connected":
        return
    try:
        ssl.shutdown()  # writes close_notify into the memory BIO, sends nothing
        close_notify = ssl.bio_read(1500)
    except SSL.Error as exc:
        logger.info("keeping a DTLS connection: no close_notify (%s)", exc)
        return
    dtls._ssl = SpentDtls(close_notify)


_DESCRIPTIONS = tuple(
    f"_RTCPeerConnection__{state}{side}Description"
    for state in ("current", "pending")
    for side in ("Local", "Remote")
)


def shed_setup_state(pc: Any) -> None:
    """Drop ``pc``'s parsed descriptions and idle decoder queues (see the module docstring).

    Call once the peer connection is established and will not be negotiated again.
    """
    for name in _DESCRIPTIONS:
        if hasattr(pc, name):
            setattr(pc, name, None)
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if getattr(receiver, "_RTCRtpReceiver__decoder_thread", True) is None:
            receiver._RTCRtpReceiver__decoder_queue = None
