"""One DTLS certificate and one OpenSSL context for all of a node's peer connections.

aiortc gives every ``RTCPeerConnection`` a certificate of its own (an EC key generated at
construction) and every DTLS transport an OpenSSL ``SSL_CTX`` of its own built from it.
Both are the same for every listener of a node: an ``SSL_CTX`` is meant to be shared by
many connections, and browsers reuse their certificate across peer connections too.
:class:`NodeCertificate` builds each context once; :class:`CertificateKeeper` hands out
one certificate and replaces it before it expires (aiortc's are valid for 30 days).
Measured with bench/bench_fanout.py: RSS per WebRTC listener 178-180 KiB before, 150-156
KiB with the shared certificate and context.

aiortc internals used: ``RTCPeerConnection._RTCPeerConnection__certificates`` (read when
the DTLS transport is created, at ``addTransceiver`` or ``setRemoteDescription``) and
``RTCCertificate._create_ssl_context(srtp_profiles)``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from aiortc import RTCCertificate, RTCPeerConnection

__all__ = ["CertificateKeeper", "NodeCertificate"]

RENEW_BEFORE = datetime.timedelta(days=7)
"""A certificate this close to expiry is no longer given to new peer connections."""


class NodeCertificate(RTCCertificate):
    """An ``RTCCertificate`` whose OpenSSL context is built once per SRTP profile list.

    aiortc configures the context only from the certificate and the profiles (verify
    callback, cipher list, key, ``use_srtp``), never per connection, so sharing it is safe.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._contexts: dict[tuple[bytes, ...], Any] = {}

    def _create_ssl_context(self, srtp_profiles: list[Any]) -> Any:
        key = tuple(profile.openssl_profile for profile in srtp_profiles)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = super()._create_ssl_context(srtp_profiles)
        return context


class CertificateKeeper:
    """The certificate new peer connections get; renewed ``RENEW_BEFORE`` expiry."""

    def __init__(
        self,
        *,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._now = now
        self._certificate: NodeCertificate | None = None

    def current(self) -> NodeCertificate:
        certificate = self._certificate
        if certificate is None or certificate.expires - self._now() < RENEW_BEFORE:
            certificate = self._certificate = NodeCertificate.generateCertificate()
        return certificate

    def apply(self, pc: RTCPeerConnection) -> None:
        """Give a fresh peer connection the node's certificate (before any transceiver)."""
        if hasattr(pc, "_RTCPeerConnection__certificates"):
            pc._RTCPeerConnection__certificates = [self.current()]
