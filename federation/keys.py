"""RSA keys for actors: Mastodon and every peer we care about expect RSA 2048 / SHA-256."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from federation.errors import SignatureError

KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: str
    public_pem: str


def generate_keypair(key_size: int = KEY_SIZE) -> KeyPair:
    private_key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=key_size)
    return KeyPair(
        private_pem=private_key_to_pem(private_key), public_pem=public_pem_of(private_key)
    )


def private_key_to_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode("ascii")


def public_key_to_pem(key: rsa.RSAPublicKey) -> str:
    # SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") is what Mastodon publishes as publicKeyPem.
    return key.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")


def public_pem_of(private_key: rsa.RSAPrivateKey) -> str:
    return public_key_to_pem(private_key.public_key())


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    return _load_private_key(data)


# Loading a PEM private key validates the RSA key (tens of milliseconds with cryptography
# >= 39); every signed request would pay it. Key objects are immutable, so cache them.
@functools.lru_cache(maxsize=256)
def _load_private_key(data: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError("unreadable private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SignatureError("private key is not RSA")
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """Accepts SPKI ("BEGIN PUBLIC KEY") and PKCS#1 ("BEGIN RSA PUBLIC KEY") PEM.

    Some older fediverse software publishes PKCS#1; cryptography reads both forms.
    """
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError("unreadable public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("public key is not RSA")
    return key
