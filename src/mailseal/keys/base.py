"""What the message engine needs from a private key: the :class:`PrivateKey` protocol.

Software keys (:mod:`mailseal.keys.software`) implement it; an HSM backend does the same
over PKCS#11, so the engine never touches key material directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = ["Decrypter", "HashName", "KeyTransport", "KeyType", "PrivateKey", "SignatureScheme"]

HashName = Literal["sha1", "sha224", "sha256", "sha384", "sha512"]
KeyType = Literal["rsa", "ec", "ed25519", "ed448", "x25519", "x448"]
#: RSA key transport paddings: RSAES-OAEP with SHA-256 or SHA-1 (MGF1 with the same hash), or
#: RSAES-PKCS1-v1_5
KeyTransport = Literal["oaep-sha256", "oaep-sha384", "oaep-sha512", "oaep-sha1", "pkcs1v15"]


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


@runtime_checkable
class Decrypter(Protocol):
    """A private key that can open content-encryption keys, wherever the key lives.

    RSA keys implement :meth:`decrypt` (key transport); EC, X25519 and X448 keys implement
    :meth:`exchange` (key agreement). The other method raises
    :class:`~mailseal.errors.AlgorithmError`.
    """

    @property
    def key_type(self) -> KeyType: ...

    def decrypt(self, ciphertext: bytes, padding_name: KeyTransport) -> bytes:
        """RSA-decrypt an encrypted content-encryption key; ValueError when it does not open."""
        ...

    def exchange(self, peer_public_key: bytes) -> bytes:
        """The raw (EC)DH shared secret with a peer public key given as SubjectPublicKeyInfo
        DER."""
        ...
