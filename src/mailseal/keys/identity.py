"""An identity: a certificate, the private key that matches it, and its chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from mailseal.errors import IdentityError, PasswordError
from mailseal.keys.base import PrivateKey
from mailseal.keys.software import SoftwareKey, load_private_key

__all__ = [
    "Identity",
    "load_certificates",
    "load_identity",
    "load_pkcs12",
    "load_pkcs12_identities",
]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signs (or decrypts): certificate, private key, and the chain to include.

    ``encryption_certificate`` is the person's separate encryption certificate, if any: a
    signature then announces it (SMIMEEncryptionKeyPreference) so replies are encrypted to it.
    """

    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = field(default=())
    encryption_certificate: x509.Certificate | None = None

    def with_encryption_certificate(self, cert: x509.Certificate | None) -> Identity:
        return Identity(self.certificate, self.key, self.chain, cert)


def load_certificates(data: bytes, *, what: str = "certificate file") -> list[x509.Certificate]:
    """Every certificate in a PEM bundle or a single DER certificate."""
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise IdentityError(f"{what}: not a certificate in PEM or DER form ({exc})") from None
    if not certs:
        raise IdentityError(f"{what}: no certificate found")
    return certs


def _public_der(obj: Any) -> bytes:
    pub = obj.public_key() if hasattr(obj, "public_key") else obj
    der: bytes = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _check_pair(cert: x509.Certificate, key: PrivateKey) -> None:
    if isinstance(key, SoftwareKey):
        try:
            cert_pub = cert.public_key()
        except ValueError as exc:
            raise IdentityError(f"the certificate's public key cannot be read: {exc}") from None
        if _public_der(cert_pub) != _public_der(key.key):
            raise IdentityError("the private key does not belong to the certificate")


def load_identity(
    cert_pem: bytes,
    key_pem: bytes,
    *,
    password: bytes | None = None,
    chain: Sequence[x509.Certificate] = (),
) -> Identity:
    """An identity from a certificate file (PEM/DER; extra certificates become the chain)
    and a private key file (PEM/DER, optionally encrypted)."""
    certs = load_certificates(cert_pem)
    key = load_private_key(key_pem, password)
    leaf = certs[0]
    _check_pair(leaf, key)
    return Identity(leaf, key, tuple(certs[1:]) + tuple(chain))


def load_pkcs12(data: bytes, *, password: bytes | None = None) -> Identity:
    """An identity from a PKCS#12 (.p12/.pfx) file."""
    from cryptography.hazmat.primitives.serialization import pkcs12  # only for PKCS#12

    try:
        p12 = pkcs12.load_pkcs12(data, password)
    except ValueError as exc:
        msg = str(exc).lower()
        if "password" in msg or "mac" in msg or "decrypt" in msg:
            if password is None:
                raise PasswordError(
                    "the PKCS#12 file needs a password (--password-env VAR or --password-file FILE)"
                ) from None
            raise PasswordError("wrong password for the PKCS#12 file") from None
        raise IdentityError(f"not a usable PKCS#12 file ({exc})") from None
    except Exception as exc:
        raise IdentityError(f"not a usable PKCS#12 file ({exc})") from None
    if p12.key is None or p12.cert is None:
        raise IdentityError("the PKCS#12 file holds no private key with its certificate")
    key = SoftwareKey(p12.key)  # type: ignore[arg-type]
    cert = p12.cert.certificate
    _check_pair(cert, key)
    chain = tuple(c.certificate for c in p12.additional_certs)
    return Identity(cert, key, chain)


def load_pkcs12_identities(data: bytes, *, password: bytes | None = None) -> list[Identity]:
    """One identity per private key of a PKCS#12 file, such as a key-escrow recovery file
    holding every historical encryption key of a person.

    Each key comes with the certificate it was paired with (localKeyId, else public key); the
    file's other certificates are every identity's chain. Raises
    :class:`~mailseal.errors.PasswordError` for a wrong or missing password and
    :class:`~mailseal.errors.IdentityError` for anything else that makes the file unusable,
    including a file with no private key.
    """
    from mailseal.keys.pkcs12 import read_pkcs12  # asn1crypto: only for PKCS#12

    contents = read_pkcs12(data, password)
    if not contents.entries:
        raise IdentityError("the PKCS#12 file holds no private key with its certificate")
    chain = tuple(contents.extra_certificates)
    identities: list[Identity] = []
    for entry in contents.entries:
        key = entry.key
        if not isinstance(
            key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey,
        ):
            raise IdentityError(f"unsupported private key type {type(key).__name__}")
        identities.append(Identity(entry.certificate, SoftwareKey(key), chain))
    return identities
