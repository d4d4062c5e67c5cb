from __future__ import annotations

import datetime

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80

from node.media.certificate import RENEW_BEFORE, CertificateKeeper, NodeCertificate


def test_one_ssl_context_per_profile_list() -> None:
    certificate = NodeCertificate.generateCertificate()
    first = certificate._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    assert certificate._create_ssl_context([SRTP_AES128_CM_SHA1_80]) is first
    other = certificate._create_ssl_context([SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80])
    assert other is not first


def test_peer_connections_share_the_certificate_until_it_nears_expiry() -> None:
    now = datetime.datetime.now(datetime.UTC)
    keeper = CertificateKeeper(now=lambda: now)
    pcs = [RTCPeerConnection(), RTCPeerConnection()]
    for pc in pcs:
        keeper.apply(pc)
    first, second = (pc._RTCPeerConnection__certificates for pc in pcs)
    assert first == second and len(first) == 1
    certificate = keeper.current()
    now = certificate.expires - RENEW_BEFORE + datetime.timedelta(seconds=1)
    assert keeper.current() is not certificate
