"""A throwaway test PKI: a root CA, an optional issuing CA and S/MIME end-entity certificates.

Built with :mod:`cryptography` only (no openssl subprocess), in memory, with fresh random keys
every time. It exists for tests, interop runs and ``mailseal demo``; it is **not** the
production CA (that one follows the CA/Browser Forum S/MIME Baseline Requirements profiles).

::

    pki = TestPKI.create("Example Test")
    alice = pki.user("alice@example.org")                       # RSA-2048, dual use
    carol = pki.user("carol@example.org", key_type="p256")      # ECDSA + ECDH
    erin = pki.user("erin@example.org", key_type="ed25519", usage="signing")

The certificates follow the shape of RFC 8550 / RFC 5280 S/MIME certificates: the mailbox in
``subjectAltName`` (rfc822Name, RFC 8550 §3), ``basicConstraints`` CA:false and a critical
``keyUsage`` chosen from the key type and the intended use (RFC 8550 §4.4.2), the
``emailProtection`` extended key usage (RFC 8550 §4.4.4), subject and authority key identifiers
(RFC 5280 §4.2.1.1-2).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

__all__ = ["KEY_TYPES", "USAGES", "Issued", "TestPKI", "Usage", "write_identity"]

Usage = Literal["dual", "signing", "encryption"]

#: Accepted ``usage`` values.
USAGES: Final[tuple[Usage, ...]] = ("dual", "signing", "encryption")

#: Key generators per key type name.
KEY_TYPES: Final[Mapping[str, Callable[[], PrivateKeyTypes]]] = MappingProxyType(
    {
        "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
        "rsa4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }
)

# keyUsage bits per (usage, key family), RFC 8550 §4.4.2: an RSA key encrypts by key transport
# (keyEncipherment), an EC key by key agreement (keyAgreement); EdDSA keys only sign.
# nonRepudiation (contentCommitment) marks a signing-only certificate.
_KU_SIGN: Final = frozenset({"digital_signature", "content_commitment"})
_KEY_USAGE: Final[Mapping[tuple[str, str], frozenset[str]]] = MappingProxyType(
    {
        ("signing", "rsa"): _KU_SIGN,
        ("signing", "ec"): _KU_SIGN,
        ("signing", "eddsa"): _KU_SIGN,
        ("encryption", "rsa"): frozenset({"key_encipherment"}),
        ("encryption", "ec"): frozenset({"key_agreement"}),
        ("dual", "rsa"): frozenset({"digital_signature", "key_encipherment"}),
        ("dual", "ec"): frozenset({"digital_signature", "key_agreement"}),
        # an Ed25519 key cannot encrypt: "dual" degrades to a signing certificate
        ("dual", "eddsa"): _KU_SIGN,
    }
)
_KU_FIELDS: Final = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)
_CA_KEY_USAGE: Final = frozenset({"key_cert_sign", "crl_sign"})

# Clock skew allowance: certificates are valid from a little before "now".
_BACKDATE: Final = timedelta(hours=1)


def _key_usage(bits: frozenset[str]) -> x509.KeyUsage:
    unknown = bits - set(_KU_FIELDS)
    if unknown:
        raise ValueError(f"unknown keyUsage bits: {sorted(unknown)}")
    return x509.KeyUsage(**{name: name in bits for name in _KU_FIELDS})


def _family(key: PrivateKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return "eddsa"
    raise ValueError(f"unsupported key type {type(key).__name__}")


def _signing_key(key: PrivateKeyTypes) -> CertificateIssuerPrivateKeyTypes:
    if isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        return key
    raise ValueError(f"a {type(key).__name__} cannot sign certificates")


def _signature_hash(
    key: PrivateKeyTypes,
) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The hash a CA with this key signs with: matched to the key strength, none for EdDSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = key.curve.key_size
        if size > 384:
            return hashes.SHA512()
        if size > 256:
            return hashes.SHA384()
        return hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None


def _new_key(key_type: str) -> CertificateIssuerPrivateKeyTypes:
    try:
        generate = KEY_TYPES[key_type]
    except KeyError:
        raise ValueError(
            f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}"
        ) from None
    return _signing_key(generate())


def _pkcs8_pem(key: PrivateKeyTypes, encryption: serialization.KeySerializationEncryption) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, with their unencrypted PEM forms."""

    cert: x509.Certificate
    key: PrivateKeyTypes
    cert_pem: bytes
    key_pem: bytes  # PKCS#8, unencrypted

    @classmethod
    def of(cls, cert: x509.Certificate, key: PrivateKeyTypes) -> Issued:
        return cls(
            cert=cert,
            key=key,
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=_pkcs8_pem(key, serialization.NoEncryption()),
        )

    @property
    def email(self) -> str | None:
        """The first rfc822Name of the subjectAltName, if any."""
        try:
            san = self.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return None
        names = san.value.get_values_for_type(x509.RFC822Name)
        return names[0] if names else None

    def key_pem_encrypted(self, password: bytes) -> bytes:
        """The private key as encrypted PKCS#8 PEM (PBES2, the best cryptography offers)."""
        return _pkcs8_pem(self.key, serialization.BestAvailableEncryption(password))

    def pkcs12(
        self,
        password: bytes | None,
        *,
        legacy: bool = False,
        chain: Sequence[x509.Certificate] = (),
    ) -> bytes:
        """A PKCS#12 file with the key, the certificate and ``chain``.

        Default protection is PBES2 (PBKDF2 + AES-256-CBC) with an HMAC-SHA256 MAC.
        ``legacy=True`` uses pbeWithSHAAnd3-KeyTripleDES-CBC and an HMAC-SHA1 MAC, which is
        what GnuPG's gpgsm 2.2 can read. ``password=None`` writes an unprotected file.
        """
        key = self.key
        if not isinstance(
            key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey,
        ):
            raise ValueError(f"a {type(key).__name__} cannot go into a PKCS#12 file")
        encryption: serialization.KeySerializationEncryption
        if password is None:
            encryption = serialization.NoEncryption()
        elif legacy:
            encryption = (
                serialization.PrivateFormat.PKCS12.encryption_builder()
                .kdf_rounds(2048)
                .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                # SHA-1 here is the MAC of a legacy container, by request, not a signature
                .hmac_hash(hashes.SHA1())  # noqa: S303
                .build(password)
            )
        else:
            encryption = (
                serialization.PrivateFormat.PKCS12.encryption_builder()
                .kdf_rounds(50000)
                .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                .hmac_hash(hashes.SHA256())
                .build(password)
            )
        friendly = (self.email or self.cert.subject.rfc4514_string()).encode()
        return pkcs12.serialize_key_and_certificates(
            friendly, key, self.cert, list(chain) or None, encryption
        )


@dataclass(frozen=True)
class TestPKI:
    """A root CA, the CA that issues end-entity certificates, and the chain between them.

    ``issuer`` is the intermediate CA when ``with_intermediate`` was true, else the root.
    ``chain`` holds the intermediates (not the root), to be sent along with a signature.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    name: str
    root: Issued
    issuer: Issued
    chain: tuple[x509.Certificate, ...]
    now: datetime
    days: int

    @classmethod
    def create(
        cls,
        name: str = "mailseal Test",
        *,
        key_type: str = "rsa2048",
        with_intermediate: bool = True,
        days: int = 30,
        now: datetime | None = None,
    ) -> TestPKI:
        """Build the CAs. ``key_type`` is used for both CA keys; ``now`` must be timezone-aware."""
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None:
            raise ValueError("now must be a timezone-aware datetime")
        if days < 1:
            raise ValueError("days must be at least 1")
        not_before = now - _BACKDATE
        not_after = now + timedelta(days=days)

        root_key = _new_key(key_type)
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Root CA"),
            ]
        )
        root_cert = (
            _ca_builder(root_name, root_key, path_length=None)
            .issuer_name(root_name)
            .not_valid_before(not_before)
            .not_valid_after(not_after + timedelta(days=1))
            .sign(_signing_key(root_key), _signature_hash(root_key))
        )
        root = Issued.of(root_cert, root_key)
        if not with_intermediate:
            return cls(name=name, root=root, issuer=root, chain=(), now=now, days=days)

        int_key = _new_key(key_type)
        int_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Issuing CA"),
            ]
        )
        int_cert = (
            _ca_builder(int_name, int_key, path_length=0)
            .issuer_name(root_name)
            .add_extension(_aki(root_key), critical=False)
            .not_valid_before(not_before)
            .not_valid_after(not_after + timedelta(hours=12))
            .sign(_signing_key(root_key), _signature_hash(root_key))
        )
        issuer = Issued.of(int_cert, int_key)
        return cls(name=name, root=root, issuer=issuer, chain=(int_cert,), now=now, days=days)

    def user(
        self,
        email: str,
        *,
        key_type: str = "rsa2048",
        usage: Usage = "dual",
        eku: Sequence[ObjectIdentifier] | None = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
        key_usage: x509.KeyUsage | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        name: str | None = None,
        ski: bool = True,
        eku_critical: bool = False,
    ) -> Issued:
        """An end-entity S/MIME certificate for ``email`` with a fresh key.

        ``usage`` picks the keyUsage bits from the key type (``key_usage`` overrides them).
        ``eku=None`` (or empty) leaves out extendedKeyUsage (``eku_critical`` marks it
        critical, as a TSA certificate needs). ``ski=False`` leaves out the
        subjectKeyIdentifier (such a certificate can only be named by issuer and serial).
        """
        if usage not in USAGES:
            raise ValueError(f"unknown usage {usage!r}; expected one of {', '.join(USAGES)}")
        key = _new_key(key_type)
        pub = key.public_key()
        if key_usage is None:
            bits = _KEY_USAGE.get((usage, _family(key)))
            if bits is None:
                raise ValueError(f"a {key_type} key cannot be used for {usage}")
            key_usage = _key_usage(bits)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.name),
                x509.NameAttribute(NameOID.COMMON_NAME, name or email.partition("@")[0]),
                x509.NameAttribute(NameOID.EMAIL_ADDRESS, email),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.issuer.cert.subject)
            .public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self.now - _BACKDATE)
            .not_valid_after(not_after or self.now + timedelta(days=self.days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]),
                critical=False,
            )
            .add_extension(_aki(self.issuer.key), critical=False)
        )
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=eku_critical)
        if ski:
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(pub), critical=False
            )
        cert = builder.sign(_signing_key(self.issuer.key), _signature_hash(self.issuer.key))
        return Issued.of(cert, key)

    def trust_pem(self) -> bytes:
        """The root certificate in PEM: what a verifier trusts."""
        return self.root.cert_pem

    def chain_pem(self) -> bytes:
        """The intermediates in PEM (empty when there are none)."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


def _aki(issuer_key: PrivateKeyTypes) -> x509.AuthorityKeyIdentifier:
    """keyIdentifier only, the same SHA-1 method as the issuer's subjectKeyIdentifier."""
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(_signing_key(issuer_key).public_key())


def _ca_builder(
    subject: x509.Name, key: CertificateIssuerPrivateKeyTypes, *, path_length: int | None
) -> x509.CertificateBuilder:
    pub = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(_CA_KEY_USAGE), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )


def write_identity(dirpath: Path, stem: str, issued: Issued) -> tuple[Path, Path]:
    """Write ``stem.crt`` (PEM certificate) and ``stem.key`` (PEM PKCS#8, mode 0600)."""
    dirpath = Path(dirpath)
    cert_path = dirpath / f"{stem}.crt"
    key_path = dirpath / f"{stem}.key"
    cert_path.write_bytes(issued.cert_pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the file may have existed with a wider mode
    with os.fdopen(fd, "wb") as fh:
        fh.write(issued.key_pem)
    return cert_path, key_path
