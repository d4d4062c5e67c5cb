"""The native send step of the RTP fan-out: one C call per packet for a batch of listeners.

``node/media/_rtpsend.c`` does the whole per-listener step in C: given the listeners of a
batch and the bytes they share (CSRC list, header extensions, payload: rtpwire.py), it
writes each fixed header, protects the packet with the listener's own libsrtp session and
sends it on a duplicate of the listener's ICE socket, with the GIL released. Python keeps
the loop's control: which listeners, when to yield, dropping the broken ones.

What it saves, measured (bench/RESULTS.md, bench_send_step, CPU time of the sending
thread): 4.3 us per packet per listener on the Python step, 3.2 us here. Most of what is
left is the kernel's UDP send and libsrtp, which neither step can avoid; in a node, the
listener's ICE consent checks and RTCP (aioice, aiortc) come on top of either.

**libsrtp.** The sessions are the ones aiortc keyed after the DTLS handshake, made by
pylibsrtp, whose wheel bundles its own libsrtp. The C step calls that same libsrtp through
the address of its ``srtp_protect`` (cffi gives it), so no second libsrtp is loaded, no
key is exported again, and the SRTCP that aiortc protects on the same session (sender
reports) stays consistent with it. Debian's libsrtp2-dev would have meant a system
package to install (an apt step for every operator), a second libsrtp in the process,
and either sessions of our own keyed again from the DTLS exporter or one library's
``srtp_t`` handed to another build of it. Instead the function's C type is checked here
(libsrtp 2's ``int srtp_protect(srtp_t, void *, int *)``) and anything else falls back to
the Python path.

**sendmmsg.** Every listener has its own ICE socket (its own local port, the one its
ICE candidate names), and ``sendmmsg`` sends several datagrams on *one* socket; across
sockets there is nothing to batch, so the step makes one ``sendto`` per listener. The
system call's entry is a small part of a datagram's cost in the kernel (UDP, IP, and on
loopback the receiver's side too), which one socket for all listeners (an ICE UDP mux,
as LiveKit has, so that sendmmsg could batch) would save little of.

**Safety.** The step owns a duplicate of the ICE socket's descriptor (never the
transport's own, which may be closed and reused for another socket), asks the ICE
transport whether it is closing before each packet (so a closed peer connection is
dropped as on the Python path), and holds a reference to the pylibsrtp session so its
``srtp_t`` lives as long as the listener does.

Internals used, beyond fanout.py's: ``pylibsrtp.Session._srtp`` (an ``srtp_t *``) and
``pylibsrtp._binding.ffi``/``lib.srtp_protect``.
"""

from __future__ import annotations

import logging
import os
import socket
from types import ModuleType
from typing import Any

__all__ = ["NativeListener", "available", "native_listener", "send_batch", "why_unavailable"]

logger = logging.getLogger(__name__)

_LIBSRTP2_PROTECT = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"

_rtpsend: ModuleType | None
try:
    from node.media import _rtpsend
except ImportError as exc:  # not built (no C compiler at install time)
    _rtpsend = None
    _import_error: str | None = f"node.media._rtpsend is not built ({exc})"
else:
    _import_error = None


def _protect_address() -> tuple[int, str | None]:
    try:
        from pylibsrtp._binding import ffi, lib
    except ImportError as exc:
        return 0, f"pylibsrtp has no cffi binding ({exc})"
    function = ffi.addressof(lib, "srtp_protect")
    kind = ffi.typeof(function).cname
    if kind != _LIBSRTP2_PROTECT:
        return 0, f"pylibsrtp's srtp_protect is {kind}, not libsrtp 2's"
    return int(ffi.cast("uintptr_t", function)), None


_PROTECT, _protect_error = _protect_address() if _rtpsend is not None else (0, None)


def why_unavailable() -> str | None:
    """None if the native step can be used here, else why not."""
    return _import_error or _protect_error


def available() -> bool:
    return why_unavailable() is None


NativeListener = Any
"""A ``node.media._rtpsend.Listener``: fd, address, SRTP session, SSRC, sequence number,
timestamp origin, payload type, layout index, and counters (packets, octets,
last_timestamp, send_errors), all in C."""


def send_batch(
    listeners: list[NativeListener],
    start: int,
    stop: int,
    layouts: tuple[tuple[int, bytes], ...],
    pts: int,
    payload_size: int,
    max_errors: int,
) -> tuple[int, list[tuple[NativeListener, str]] | None]:
    """Send one packet to ``listeners[start:stop]`` (see ``_rtpsend.send_batch``)."""
    assert _rtpsend is not None
    result: tuple[int, list[tuple[NativeListener, str]] | None] = _rtpsend.send_batch(
        listeners, start, stop, layouts, pts, payload_size, max_errors
    )
    return result


def native_listener(
    udp: Any,
    remote: tuple[Any, ...],
    session: Any,
    *,
    ssrc: int,
    payload_type: int,
    seq: int,
    ts_origin: int,
) -> NativeListener | None:
    """A native listener sending on ``udp`` (an asyncio or uvloop datagram transport) to
    ``remote`` with the pylibsrtp ``session``; None (and the caller uses the Python path)
    when that cannot be done here."""
    if not available():
        return None
    srtp_pointer = _srtp_pointer(session)
    if srtp_pointer is None:
        return None
    sock = udp.get_extra_info("socket")
    try:
        duplicate = os.dup(sock.fileno())
    except (AttributeError, OSError, ValueError) as exc:
        logger.debug("no socket to send on natively: %s", exc)
        return None
    try:
        family = socket.socket(fileno=os.dup(duplicate))
        family_value = int(family.family)
        family.close()
        host, port = str(remote[0]), int(remote[1])
        scope = int(remote[3]) if len(remote) > 3 else 0
        if "%" in host:  # an IPv6 scope written into the address
            host, _, name = host.partition("%")
            scope = socket.if_nametoindex(name) if not name.isdigit() else int(name)
        assert _rtpsend is not None
        return _rtpsend.Listener(
            duplicate,
            family_value,
            host,
            port,
            srtp_pointer,
            _PROTECT,
            session,
            udp.is_closing,
            ssrc,
            seq,
            ts_origin,
            payload_type,
            scope,
        )
    except (OSError, ValueError, TypeError) as exc:
        os.close(duplicate)
        logger.debug("cannot send natively to %s: %s", remote, exc)
        return None


def _srtp_pointer(session: Any) -> int | None:
    try:
        from pylibsrtp._binding import ffi

        pointer = session._srtp[0]
        return int(ffi.cast("uintptr_t", pointer)) or None
    except (AttributeError, ImportError, TypeError):
        return None
