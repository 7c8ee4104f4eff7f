"""What the message engine needs from a private key: the :class:`PrivateKey` protocol.

Software keys (:mod:`mailseal.keys.software`) implement it; an HSM backend does the same
over PKCS#11, so the engine never touches key material directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = ["HashName", "KeyType", "PrivateKey", "SignatureScheme"]

HashName = Literal["sha1", "sha224", "sha256", "sha384", "sha512"]
KeyType = Literal["rsa", "ec", "ed25519", "ed448"]


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """How to sign: the padding family and the hash.

    ``kind`` is ``rsa-pkcs1`` (RSASSA-PKCS1-v1_5), ``rsa-pss`` (RSASSA-PSS, MGF1 with the same
    hash, salt length = hash length, RFC 4056), ``ecdsa``, ``ed25519`` or ``ed448``
    (the pure EdDSA variants of RFC 8419: the hash is not used by the key).
    """

    kind: Literal["rsa-pkcs1", "rsa-pss", "ecdsa", "ed25519", "ed448"]
    hash: HashName


@runtime_checkable
class PrivateKey(Protocol):
    """A signing key whose secret stays wherever it lives."""

    @property
    def key_type(self) -> KeyType: ...

    @property
    def key_size(self) -> int:
        """Modulus size for RSA, curve size for EC, 255/448 for EdDSA."""
        ...

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        """Sign ``data`` (the whole to-be-signed bytes, not a digest)."""
        ...
