"""Issuing S/MIME certificates: the sans-IO core of mailseal's internal CA.

::

    ca = IssuingCA(certificate=issuing_cert, key=issuing_key, chain=(root_cert,),
                   crl_url="http://pki.example.org/issuing.crl",
                   ocsp_url="http://ocsp.example.org/",
                   ca_issuers_url="http://pki.example.org/issuing.cer",
                   permitted_domains=("example.org",))
    csr = load_csr(request_bytes)                      # checked, never trusted
    cert = build_certificate(ca, csr.public_key(), email="alice@example.org",
                             profile="mailbox-strict", usage="signing")

Every certificate is built from a profile of :mod:`mailseal.pki.profiles`, then checked by
:func:`lint_certificate` as it will be issued (signed by a throwaway key of the CA key's
algorithm, :func:`~mailseal.pki.signing.preview_certificate`), and only when it conforms does the
CA key sign exactly those bytes. A request's extensions are never copied into a certificate.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from asn1crypto.core import UTF8String
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtensionOID,
    ObjectIdentifier,
)

from mailseal.asn1.der import tlv
from mailseal.errors import (
    AlgorithmError,
    CsrError,
    IssuanceError,
    ProfileError,
    UsageError,
)
from mailseal.keys.base import PrivateKey
from mailseal.pki.profiles import (
    ATTRIBUTE_DEPENDENCIES,
    EKU_OIDS,
    SMIME_POLICY_ARC,
    SUBJECT_ATTRIBUTE_OIDS,
    KeyFamily,
    Profile,
    get_profile,
)
from mailseal.pki.signing import preview_certificate, resign_certificate

__all__ = [
    "KEY_TYPES",
    "MAX_CSR_SIZE",
    "SMTP_UTF8_MAILBOX",
    "IssuingCA",
    "Mailbox",
    "SubscriberPublicKey",
    "build_certificate",
    "check_public_key",
    "export_pkcs12",
    "generate_key",
    "generate_password",
    "lint_certificate",
    "load_csr",
    "new_serial",
    "normalise_domain",
    "parse_mailbox",
]

SubscriberPublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
SubscriberPrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

#: key generators for keys made on the server (EST server-side keygen, escrowed encryption keys)
KEY_TYPES: Final[Mapping[str, Callable[[], SubscriberPrivateKey]]] = MappingProxyType(
    {
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
        "rsa4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }
)

#: a CSR larger than this is refused unread (a 16384-bit RSA request is about 3 KiB)
MAX_CSR_SIZE: Final = 64 * 1024

# BR §6.1.5 and §7.1.3.1: subscriber public keys. RSA: at least 2048 bits, a modulus that is a
# multiple of 8 bits; ECDSA on P-256 and P-384; Ed25519 and Ed448. P-521 appeared in the first
# BR versions but is not among the §7.1.3.1.2 encodings the current BR (and pkilint, which
# tracks them) accept, so mailseal does not certify it.
_MIN_RSA_BITS: Final = 2048
_MAX_RSA_BITS: Final = 16384
_EC_CURVES: Final[Mapping[str, str]] = MappingProxyType(
    {"secp256r1": "P-256", "secp384r1": "P-384"}
)
# BR §6.1.6: the RSA public exponent is odd, at least 3, and should be in [2^16+1, 2^256-1];
# mailseal insists on that range.
_RSA_EXPONENT_RANGE: Final = (65537, 2**256 - 1)

# Signature algorithms accepted on a CSR's proof of possession (RFC 2986 §4.2). SHA-1, MD5 and
# friends are refused (house rule 6; BR §7.1.3.2 allows nothing weaker than SHA-256).
_CSR_SIGNATURE_OIDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10": "RSASSA-PSS",
        "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
        "1.3.101.112": "Ed25519",
        "1.3.101.113": "Ed448",
    }
)
_PSS_HASHES: Final = frozenset({"sha256", "sha384", "sha512"})

# BR §7.1.3.2: the signature AlgorithmIdentifiers a CA may put on a certificate
_CERT_SIGNATURE_OIDS: Final = frozenset(
    {
        "1.2.840.113549.1.1.11",
        "1.2.840.113549.1.1.12",
        "1.2.840.113549.1.1.13",
        "1.2.840.113549.1.1.10",
        "1.2.840.10045.4.3.2",
        "1.2.840.10045.4.3.3",
        "1.3.101.112",
        "1.3.101.113",
    }
)

# Requested extensions that only a CA certificate may carry: a CSR asking for one is refused
# outright, since it says the requester wants more than an S/MIME certificate.
_CA_ONLY_EXTENSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        ExtensionOID.NAME_CONSTRAINTS.dotted_string: "nameConstraints",
        ExtensionOID.POLICY_CONSTRAINTS.dotted_string: "policyConstraints",
        ExtensionOID.POLICY_MAPPINGS.dotted_string: "policyMappings",
        ExtensionOID.INHIBIT_ANY_POLICY.dotted_string: "inhibitAnyPolicy",
    }
)
_REQUESTABLE_EKUS: Final = frozenset({EKU_OIDS["emailProtection"], EKU_OIDS["anyExtendedKeyUsage"]})
_CA_KEY_USAGES: Final = ("key_cert_sign", "crl_sign")

# The extensions mailseal puts on a subscriber certificate (BR §7.1.2.3); anything else found by
# the pre-issuance check is a defect.
_SUBSCRIBER_EXTENSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        ExtensionOID.BASIC_CONSTRAINTS.dotted_string: "basicConstraints",
        ExtensionOID.KEY_USAGE.dotted_string: "keyUsage",
        ExtensionOID.EXTENDED_KEY_USAGE.dotted_string: "extKeyUsage",
        ExtensionOID.CERTIFICATE_POLICIES.dotted_string: "certificatePolicies",
        ExtensionOID.CRL_DISTRIBUTION_POINTS.dotted_string: "cRLDistributionPoints",
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS.dotted_string: "authorityInformationAccess",
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string: "authorityKeyIdentifier",
        ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string: "subjectKeyIdentifier",
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string: "subjectAltName",
    }
)
# criticality mailseal gives each extension (BR §7.1.2.3: keyUsage SHOULD, basicConstraints per
# RFC 5280 §4.2.1.9; the others SHALL NOT / SHOULD NOT be critical). subjectAltName is critical
# only when the subject is empty (RFC 5280 §4.2.1.6), checked on its own.
_CRITICAL: Final = frozenset(
    {ExtensionOID.BASIC_CONSTRAINTS.dotted_string, ExtensionOID.KEY_USAGE.dotted_string}
)

SMTP_UTF8_MAILBOX: Final = ObjectIdentifier("1.3.6.1.5.5.7.8.9")  # RFC 9598 (was RFC 8398)
_MIN_SERIAL_BITS: Final = 64  # BR §7.1
_SERIAL_BITS: Final = 159  # positive and below 2^159 (BR §7.1)
_MAX_VALIDITY_SLACK = dt.timedelta(seconds=1)  # RFC 5280 validity includes both ends

# RFC 5280 Appendix A upper bounds
_UPPER_BOUNDS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "commonName": 64,
        "organizationName": 64,
        "organizationalUnitName": 64,
        "givenName": 64,  # ub-name is 32768; 64 keeps names displayable
        "surname": 64,
        "pseudonym": 128,
        "title": 64,
        "localityName": 128,
        "stateOrProvinceName": 128,
        "serialNumber": 64,
        "emailAddress": 255,
        "organizationIdentifier": 64,
    }
)
# BR §7.1.4.2.2 (d): scheme, country ("XG" for global schemes), optional "+subdivision" for NTR and
# GOV, then "-" and the registration reference (none for GOV and INT).
_ORG_ID: Final = re.compile(
    r"^(?:(?:NTR|VAT|PSD|LEI)[A-Z]{2}(?:\+[A-Z0-9]{1,3})?-\S.*|GOV[A-Z]{2}(?:\+[A-Z0-9]{1,3})?"
    r"|INTXG)$"
)
# BR §7.1.4.2.2 (d): a German NTR reference SHOULD be the EUID: "DE", the register, ".", the entry
_EUID_DE: Final = re.compile(r"^NTRDE-DE[A-Z0-9]+\.\S+$")
_ATEXT: Final = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)
_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_META_ONLY: Final = re.compile(r"^[\s.\-_/\\]*$")


# --------------------------------------------------------------------------------------------
# keys and serials


def generate_key(key_type: str = "p256") -> SubscriberPrivateKey:
    """A fresh end-entity private key: ``p256`` (default), ``p384``, ``rsa2048``,
    ``rsa3072``, ``rsa4096`` or ``ed25519`` (signing only)."""
    maker = KEY_TYPES.get(key_type.strip().lower())
    if maker is None:
        raise UsageError(f"unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")
    return maker()


def new_serial() -> int:
    """A certificate serial number: positive, below 2^159, 158 bits from the CSPRNG (BR §7.1
    asks for at least 64), and always 20 bytes long in DER."""
    return secrets.randbits(_SERIAL_BITS - 1) | (1 << (_SERIAL_BITS - 1))


def check_public_key(public_key: object) -> KeyFamily:
    """The key family of an acceptable subscriber public key (BR §6.1.5, §6.1.6, §7.1.3.1), or
    :class:`~mailseal.errors.AlgorithmError` saying what is wrong with it."""
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        if bits < _MIN_RSA_BITS:
            raise AlgorithmError(
                f"an RSA key of {bits} bits is too weak: at least {_MIN_RSA_BITS} bits "
                "(S/MIME BR §6.1.5)"
            )
        if bits > _MAX_RSA_BITS:
            raise AlgorithmError(f"an RSA key of {bits} bits is larger than {_MAX_RSA_BITS}")
        if bits % 8:
            raise AlgorithmError(
                f"the RSA modulus is {bits} bits: it must be a multiple of 8 (S/MIME BR §6.1.5)"
            )
        e = public_key.public_numbers().e
        low, high = _RSA_EXPONENT_RANGE
        if e % 2 == 0 or not low <= e <= high:
            raise AlgorithmError(
                f"the RSA public exponent {e} is refused: use an odd exponent from 65537 to "
                "2^256-1 (S/MIME BR §6.1.6)"
            )
        return "rsa"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _EC_CURVES:
            raise AlgorithmError(
                f"the elliptic curve {public_key.curve.name} is refused: use "
                f"{', '.join(_EC_CURVES.values())} (S/MIME BR §6.1.5)"
            )
        return "ec"
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "eddsa"
    raise AlgorithmError(
        f"a {type(public_key).__name__} cannot be certified: use an RSA (2048 bits or more), "
        "ECDSA P-256/P-384, Ed25519 or Ed448 key"
    )


# --------------------------------------------------------------------------------------------
# certificate signing requests


def load_csr(data: bytes, *, max_size: int = MAX_CSR_SIZE) -> x509.CertificateSigningRequest:
    """A PKCS#10 request (PEM or DER) whose signature verifies, whose key the BR allow and which
    asks for nothing an end-entity certificate must not have.

    Only the public key is used afterwards: the subject and the requested extensions are never
    copied into a certificate. Every failure is a :class:`~mailseal.errors.CsrError`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CsrError("a certificate request must be given as bytes (PEM or DER)")
    data = bytes(data)
    if len(data) > max_size:
        raise CsrError(
            f"the certificate request is {len(data)} bytes: at most {max_size} are accepted"
        )
    if not data.strip():
        raise CsrError("the certificate request is empty")
    try:
        if b"-----BEGIN" in data:
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CsrError(
            "not a PKCS#10 certificate request in PEM or DER form (truncated or corrupt?)"
        ) from exc
    _check_csr_signature(csr)
    try:
        check_public_key(csr.public_key())
    except AlgorithmError as exc:
        raise CsrError(f"the request's key is refused: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrError(f"the request's public key cannot be read ({exc})") from None
    _check_requested_extensions(csr)
    return csr


def _check_csr_signature(csr: x509.CertificateSigningRequest) -> None:
    oid = csr.signature_algorithm_oid.dotted_string
    name = _CSR_SIGNATURE_OIDS.get(oid)
    if name is None:
        label = getattr(csr.signature_algorithm_oid, "_name", "") or oid
        raise CsrError(
            f"the request is signed with {label}, which is refused: sign it with SHA-256 or "
            "stronger (RSA, ECDSA) or with Ed25519/Ed448"
        )
    if name == "RSASSA-PSS":
        try:
            algorithm = csr.signature_hash_algorithm
        except UnsupportedAlgorithm:
            algorithm = None
        if algorithm is None or algorithm.name not in _PSS_HASHES:
            raise CsrError("the request's RSASSA-PSS signature must use SHA-256 or stronger")
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm, InvalidSignature) as exc:
        raise CsrError(f"the request's signature cannot be checked ({exc})") from None
    if not valid:
        raise CsrError(
            "the request's signature does not verify: it was altered after signing, or it was "
            "not signed by the key it contains"
        )


def _check_requested_extensions(csr: x509.CertificateSigningRequest) -> None:
    try:
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise CsrError(f"the request's extensions cannot be read ({exc})") from None
    refused: list[str] = []
    for ext in extensions:
        oid = ext.oid.dotted_string
        value = ext.value
        if oid in _CA_ONLY_EXTENSIONS:
            refused.append(f"{_CA_ONLY_EXTENSIONS[oid]} (a CA certificate extension)")
        elif isinstance(value, x509.BasicConstraints) and value.ca:
            refused.append("basicConstraints cA=TRUE (a CA certificate)")
        elif isinstance(value, x509.KeyUsage):
            bits = [b for b in _CA_KEY_USAGES if getattr(value, b)]
            if bits:
                refused.append(f"keyUsage {', '.join(bits)} (CA key usages)")
        elif isinstance(value, x509.ExtendedKeyUsage):
            other = sorted(
                getattr(u, "_name", u.dotted_string)
                for u in value
                if u.dotted_string not in _REQUESTABLE_EKUS
            )
            if other:
                refused.append(
                    f"extKeyUsage {', '.join(other)} (an S/MIME certificate is for "
                    "emailProtection only)"
                )
    if refused:
        raise CsrError(
            "the request asks for what an S/MIME certificate must not have: "
            + "; ".join(refused)
            + ". Send a request without these extensions."
        )


# --------------------------------------------------------------------------------------------
# the issuing CA and mailboxes


def normalise_domain(domain: str) -> str:
    """``domain`` in lower-case A-label form (IDNA), or :class:`~mailseal.errors.UsageError`."""
    text = domain.strip().rstrip(".").lower()
    if not text:
        raise UsageError("an empty domain name")
    if not text.isascii():
        text = _to_a_labels(text)
    labels = text.split(".")
    if len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        raise UsageError(f"{domain!r} is not a valid domain name")
    return text


def _to_a_labels(text: str) -> str:
    try:
        idna = importlib.import_module("idna")  # IDNA 2008 with UTS #46 mapping when present
    except ImportError:  # pragma: no cover - idna comes with the core dependencies
        try:
            return text.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UsageError(f"{text!r} is not a valid internationalised domain name") from exc
    try:
        return str(idna.encode(text, uts46=True).decode("ascii"))
    except (idna.IDNAError, UnicodeError) as exc:
        raise UsageError(f"{text!r} is not a valid internationalised domain name") from exc


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A mailbox address split for a certificate (RFC 9598, which obsoletes RFC 8398)."""

    local: str
    domain: str  # lower-case A-labels

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def is_ascii(self) -> bool:
        return self.local.isascii()

    def general_name(self) -> x509.GeneralName:
        """rfc822Name for an ASCII local part, otherwise an id-on-SmtpUTF8Mailbox otherName
        (RFC 9598 §3: UTF-8 local part, domain in A-labels)."""
        if self.is_ascii:
            return x509.RFC822Name(self.address)
        return x509.OtherName(SMTP_UTF8_MAILBOX, tlv(0x0C, self.address.encode("utf-8")))


def parse_mailbox(email: str) -> Mailbox:
    """Check and normalise a mailbox address (dot-atom local part, RFC 5322 §3.4.1, UTF-8
    allowed per RFC 6532; domain converted to A-labels)."""
    if not isinstance(email, str) or "@" not in email:
        raise UsageError(f"{email!r} is not a mailbox address (local-part@domain)")
    local, _, domain = email.strip().rpartition("@")
    local = unicodedata.normalize("NFC", local)
    if not local or len(local.encode("utf-8")) > 64:
        raise UsageError(f"{email!r}: the local part must have 1 to 64 octets (RFC 5321 §4.5.3.1)")
    ascii_view = "".join(c if c.isascii() else "a" for c in local)
    if any(unicodedata.category(c)[0] in "CZ" for c in local) or not _ATEXT.match(ascii_view):
        raise UsageError(
            f"{email!r}: the local part may contain only letters, digits, dots and "
            "!#$%&'*+/=?^_`{|}~- (no quoting, spaces or control characters)"
        )
    return Mailbox(local, normalise_domain(domain))


def _in_domains(domain: str, permitted: Iterable[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in permitted)


def _check_http_url(what: str, url: str, *, required: bool) -> None:
    if not url:
        if required:
            raise UsageError(f"the issuing CA needs a {what}")
        return
    if not url.lower().startswith("http://") or len(url) <= len("http://"):
        raise UsageError(
            f"the {what} {url!r} must be a plain http:// URL (S/MIME BR §7.1.2.3: relying "
            "parties fetch it without TLS)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuingCA:
    """What issuance needs to know about the CA that signs subscriber certificates.

    ``chain`` holds the certificates above ``certificate`` up to and including the root, nearest
    first. ``crl_url`` (BR §7.1.2.3 b: SHALL) and ``ca_issuers_url`` (§7.1.2.3 c: SHOULD; mailseal
    insists) are plain http:// URLs; ``ocsp_url`` is optional. ``permitted_domains`` limits the
    mailboxes the CA issues for (a domain and its subdomains); empty means no
    limit. ``key`` may live anywhere (an HSM key never leaves it).
    """

    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()
    crl_url: str
    ocsp_url: str = ""
    ca_issuers_url: str
    permitted_domains: tuple[str, ...] = ()
    #: set once a certificate signed with ``key`` verified under ``certificate``
    _key_checked: list[bool] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_http_url("CRL distribution point URL", self.crl_url, required=True)
        _check_http_url("OCSP responder URL", self.ocsp_url, required=False)
        _check_http_url("CA issuers URL", self.ca_issuers_url, required=True)
        domains = tuple(normalise_domain(d) for d in self.permitted_domains)
        object.__setattr__(self, "permitted_domains", domains)
        object.__setattr__(self, "chain", tuple(self.chain))

    @property
    def key_identifier(self) -> bytes:
        """The CA certificate's subjectKeyIdentifier (what subscriber AKIs must repeat)."""
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            raise IssuanceError(
                "the issuing CA certificate has no subjectKeyIdentifier (S/MIME BR §7.1.2.2 i)"
            ) from None
        return ski.value.digest


# --------------------------------------------------------------------------------------------
# building


def _attribute(name: str, value: str) -> x509.NameAttribute[str]:
    # cryptography's default string types: PrintableString for countryName and serialNumber,
    # IA5String for emailAddress, UTF8String otherwise (RFC 5280 §4.1.2.6, BR §7.1.4.2.2 d)
    try:
        return x509.NameAttribute(ObjectIdentifier(SUBJECT_ATTRIBUTE_OIDS[name]), value)
    except ValueError as exc:
        raise ProfileError(f"{name} {value!r} cannot be encoded ({exc})") from None


# subject RDN order (most general first, as X.501 DNs are usually written from the root)
_SUBJECT_ORDER: Final = (
    "countryName",
    "stateOrProvinceName",
    "localityName",
    "organizationName",
    "organizationalUnitName",
    "organizationIdentifier",
    "title",
    "surname",
    "givenName",
    "pseudonym",
    "serialNumber",
    "commonName",
    "emailAddress",
)


def _subject_values(
    profile: Profile,
    mailbox: Mailbox,
    *,
    name: str | None,
    values: Mapping[str, str | None],
    email_in_subject: bool,
) -> dict[str, str]:
    """The subject attributes for ``profile``, checked against its tables."""
    given = {k: v.strip() for k, v in values.items() if v is not None}
    for attr, value in given.items():
        if not value:
            raise ProfileError(f"{attr} is empty: leave it out instead")
    if email_in_subject:
        if not mailbox.is_ascii:
            raise ProfileError(
                "a mailbox with a non-ASCII local part cannot go in subject:emailAddress "
                "(an IA5String); leave email_in_subject off"
            )
        given["emailAddress"] = mailbox.address
    refused = sorted(_describe(a) for a in given if a not in profile.allowed_attributes)
    if refused:
        allowed = sorted(_describe(a) for a in profile.allowed_attributes)
        raise ProfileError(
            f"the {profile.name} profile does not allow {', '.join(refused)} in the subject "
            f"(S/MIME BR §7.1.4.2); allowed: {', '.join(allowed)}"
        )
    missing = sorted(_describe(a) for a in profile.required_attributes - given.keys())
    if missing:
        raise ProfileError(f"the {profile.name} profile needs {', '.join(missing)}")
    if profile.one_of and not profile.one_of & given.keys():
        raise ProfileError(
            f"the {profile.name} profile needs given_name and/or surname, or a pseudonym "
            "(S/MIME BR §7.1.4.2.5-6)"
        )
    if "pseudonym" in given and ({"givenName", "surname"} & given.keys()):
        raise ProfileError("a pseudonym cannot be combined with given_name or surname")
    # commonName (BR §7.1.4.2.2 a)
    if name is not None:
        cn = name.strip()
        if not cn:
            raise ProfileError("the name (commonName) is empty: leave it out instead")
    elif profile.validation == "organization":
        cn = given.get("organizationName", "")
    elif profile.validation in ("sponsor", "individual"):
        personal = " ".join(given[a] for a in ("givenName", "surname") if a in given)
        cn = personal or given.get("pseudonym", "")
    else:
        cn = mailbox.address
    if cn and len(cn) <= _UPPER_BOUNDS["commonName"]:
        given["commonName"] = cn
    elif cn and name is not None:
        raise ProfileError(f"the name (commonName) is longer than {_UPPER_BOUNDS['commonName']}")
    if "commonName" in given:
        problem = _common_name_problem(profile, given, mailbox)
        if problem:
            raise ProfileError(problem)
    for attr, value in given.items():
        bound = _UPPER_BOUNDS.get(attr)
        if bound is not None and len(value) > bound:
            raise ProfileError(f"{attr} is longer than {bound} characters (RFC 5280)")
    return given


# the build_certificate keyword that sets each subject attribute, for error messages
_KEYWORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "commonName": "name",
        "organizationName": "organization",
        "organizationIdentifier": "organization_identifier",
        "organizationalUnitName": "organizational_unit",
        "givenName": "given_name",
        "surname": "surname",
        "pseudonym": "pseudonym",
        "title": "title",
        "countryName": "country",
        "stateOrProvinceName": "state",
        "localityName": "locality",
        "serialNumber": "subject_serial_number",
        "emailAddress": "email_in_subject",
    }
)


def _describe(attr: str) -> str:
    keyword = _KEYWORDS.get(attr)
    return f"{attr} ({keyword}=)" if keyword else attr


def _common_name_problem(profile: Profile, attrs: Mapping[str, str], mailbox: Mailbox) -> str:
    cn = attrs["commonName"]
    sources = profile.common_name_sources
    if "mailbox" in sources and cn == mailbox.address:
        return ""
    if "organizationName" in sources and cn == attrs.get("organizationName"):
        return ""
    if "pseudonym" in sources and "pseudonym" in attrs:
        if cn == attrs["pseudonym"]:
            return ""
        return "with a pseudonym, the name (commonName) must be the pseudonym (BR §7.1.4.2.2 a)"
    if "personalName" in sources and ({"givenName", "surname"} & attrs.keys()):
        return ""
    allowed = {
        "mailbox": "the mailbox address",
        "organizationName": "the organization name",
        "personalName": "the person's name (with given_name and/or surname)",
        "pseudonym": "the pseudonym",
    }
    return (
        f"in the {profile.name} profile the name (commonName) must be "
        + " or ".join(allowed[s] for s in sources)
        + " (S/MIME BR §7.1.4.2.2 a)"
    )


def _check_subject_values(attrs: Mapping[str, str]) -> None:
    for attr, value in attrs.items():
        if _META_ONLY.match(value):
            raise ProfileError(f"{attr} {value!r} holds no information (S/MIME BR §7.1.4.2)")
    for attr, needs in ATTRIBUTE_DEPENDENCIES:
        if attr in attrs and not needs & attrs.keys():
            raise ProfileError(f"{attr} needs {' or '.join(sorted(needs))} as well")
    country = attrs.get("countryName")
    if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
        raise ProfileError(f"country {country!r} must be a two-letter ISO 3166-1 code, e.g. DE")
    org_id = attrs.get("organizationIdentifier")
    if org_id is not None and org_id.startswith("NTRDE") and not _EUID_DE.match(org_id):
        raise ProfileError(
            f"organization_identifier {org_id!r}: a German register entry is given as its EUID "
            "(BR §7.1.4.2.2 d), e.g. NTRDE-DEK1101R.HRB12345"
        )
    if org_id is not None and not _ORG_ID.match(org_id):
        raise ProfileError(
            f"organization_identifier {org_id!r} is not in the BR form (§7.1.4.2.2 d): scheme, "
            "country and registration reference, e.g. NTRGB-12345678, VATDE-123456789, "
            "LEIXG-<LEI>, GOVUS"
        )
    if org_id is not None:
        org_country = org_id[3:5]
        if country is not None and org_country != "XG" and org_country != country:
            raise ProfileError(
                f"organization_identifier {org_id!r} names country {org_country} but the "
                f"subject's country is {country}"
            )
        if org_id.startswith("LEIXG-") and not _valid_lei(org_id[6:]):
            raise ProfileError(
                f"{org_id[6:]!r} is not a valid LEI (20 characters, ISO 17442 check digits)"
            )


def _valid_lei(lei: str) -> bool:
    """ISO 17442: 18 alphanumerics and two check digits, ISO 7064 MOD 97-10."""
    if not re.fullmatch(r"[0-9A-Z]{18}[0-9]{2}", lei):
        return False
    return int("".join(str(int(c, 36)) for c in lei)) % 97 == 1


def crl_distribution_points(url: str) -> x509.CRLDistributionPoints:
    """One distribution point with one HTTP URL (BR §7.1.2.3 b, §7.1.2.2 b)."""
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def authority_key_identifier(key_identifier: bytes) -> x509.AuthorityKeyIdentifier:
    """The keyIdentifier form alone (RFC 5280 §4.2.1.1)."""
    return x509.AuthorityKeyIdentifier(
        key_identifier=key_identifier,
        authority_cert_issuer=None,
        authority_cert_serial_number=None,
    )


def authority_information_access(
    ocsp_url: str | None, ca_issuers_url: str | None
) -> x509.AuthorityInformationAccess | None:
    """OCSP and caIssuers access descriptions for the URLs given (None when neither is)."""
    access = [
        x509.AccessDescription(method, x509.UniformResourceIdentifier(url))
        for method, url in (
            (AuthorityInformationAccessOID.OCSP, ocsp_url),
            (AuthorityInformationAccessOID.CA_ISSUERS, ca_issuers_url),
        )
        if url
    ]
    return x509.AuthorityInformationAccess(access) if access else None


def build_certificate(
    ca: IssuingCA,
    public_key: CertificatePublicKeyTypes,
    *,
    email: str,
    profile: str | Profile,
    usage: str,
    name: str | None = None,
    organization: str | None = None,
    organization_identifier: str | None = None,
    organizational_unit: str | None = None,
    given_name: str | None = None,
    surname: str | None = None,
    pseudonym: str | None = None,
    title: str | None = None,
    country: str | None = None,
    state: str | None = None,
    locality: str | None = None,
    subject_serial_number: str | None = None,
    email_in_subject: bool = False,
    non_repudiation: bool = False,
    extra_ekus: Iterable[str] = (),
    not_before: dt.datetime | None = None,
    validity_days: int | None = None,
    serial: int | None = None,
) -> x509.Certificate:
    """Issue an S/MIME certificate for ``public_key`` and the mailbox ``email``.

    ``profile`` is a name of :data:`~mailseal.pki.profiles.PROFILE_NAMES` (or a
    :class:`~mailseal.pki.profiles.Profile`); ``usage`` is ``signing``, ``encryption`` or ``dual``.
    ``name`` is the commonName (by default the mailbox, the organization or the person's name,
    as the profile allows). ``extra_ekus`` may add ``clientAuth`` / ``documentSigning`` in a
    Multipurpose profile. The certificate is checked by :func:`lint_certificate` before the CA
    key signs it; a certificate that would not conform raises
    :class:`~mailseal.errors.IssuanceError` with the findings, and nothing is signed.
    """
    prof = get_profile(profile)
    family = check_public_key(public_key)
    rule = prof.key_usage_for(family, usage)
    mailbox = parse_mailbox(email)
    if ca.permitted_domains and not _in_domains(mailbox.domain, ca.permitted_domains):
        raise IssuanceError(
            f"{mailbox.address} is outside the domains this CA issues for "
            f"({', '.join(ca.permitted_domains)})"
        )
    attrs = _subject_values(
        prof,
        mailbox,
        name=name,
        values={
            "organizationName": organization,
            "organizationIdentifier": organization_identifier,
            "organizationalUnitName": organizational_unit,
            "givenName": given_name,
            "surname": surname,
            "pseudonym": pseudonym,
            "title": title,
            "countryName": country,
            "stateOrProvinceName": state,
            "localityName": locality,
            "serialNumber": subject_serial_number,
        },
        email_in_subject=email_in_subject,
    )
    _check_subject_values(attrs)
    subject = x509.Name([_attribute(a, attrs[a]) for a in _SUBJECT_ORDER if a in attrs])

    ekus = ["emailProtection"]
    for extra in extra_ekus:
        if extra not in prof.ekus_optional:
            optional = ", ".join(sorted(prof.ekus_optional)) or "none"
            raise ProfileError(
                f"the {prof.name} profile does not allow the {extra} extended key usage "
                f"(S/MIME BR §7.1.2.3 f); optional ones: {optional}"
            )
        if extra not in ekus:
            ekus.append(extra)
    bits = set(rule.required)
    if non_repudiation:
        if "content_commitment" not in rule.optional:
            raise ProfileError(f"nonRepudiation is not allowed for {usage} certificates")
        bits.add("content_commitment")

    days = prof.default_validity_days if validity_days is None else validity_days
    if not 1 <= days <= prof.max_validity_days:
        raise ProfileError(
            f"a validity of {days} days is refused: the {prof.name} profile allows 1 to "
            f"{prof.max_validity_days} days (S/MIME BR §6.3.2)"
        )
    start = (not_before or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    end = start + dt.timedelta(days=days) - _MAX_VALIDITY_SLACK
    if end > ca.certificate.not_valid_after_utc:
        raise IssuanceError(
            f"the certificate would outlive the issuing CA certificate (which expires "
            f"{ca.certificate.not_valid_after_utc:%Y-%m-%d}): ask for fewer days"
        )
    if start < ca.certificate.not_valid_before_utc:
        raise IssuanceError("the certificate would start before the issuing CA certificate")

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(new_serial() if serial is None else serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(bits), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ObjectIdentifier(EKU_OIDS[e]) for e in ekus]), critical=False
        )
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(ObjectIdentifier(prof.policy_oid), None)]
            ),
            critical=False,
        )
        .add_extension(crl_distribution_points(ca.crl_url), critical=False)
        .add_extension(authority_key_identifier(ca.key_identifier), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([mailbox.general_name()]),
            critical=len(subject) == 0,
        )
    )
    aia = authority_information_access(ca.ocsp_url, ca.ca_issuers_url)
    if aia is not None:
        builder = builder.add_extension(aia, critical=False)

    preview = preview_certificate(builder, ca.key)
    findings = lint_certificate(preview, prof, usage, ca=ca, email=mailbox.address)
    if findings:
        raise IssuanceError(
            "the certificate would not conform to the "
            f"{prof.name} profile, so it was not signed: " + "; ".join(findings),
            findings,
        )
    cert = resign_certificate(preview, ca.key)
    if not ca._key_checked:  # the first certificate of this IssuingCA proves the key pair
        try:
            cert.verify_directly_issued_by(ca.certificate)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise IssuanceError(
                "the CA key's signature does not verify under the issuing CA certificate: the "
                "key and the certificate of this CA do not belong together"
            ) from exc
        ca._key_checked.append(True)
    return cert


#: the KeyUsage bits by their cryptography names; the last two mean something only with
#: keyAgreement (RFC 5280 §4.2.1.3)
_KEY_USAGE_BITS: Final = (
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


def key_usage(bits: set[str]) -> x509.KeyUsage:
    """A KeyUsage extension asserting the bits named (cryptography's names); encipherOnly and
    decipherOnly only together with keyAgreement."""
    flags = {n: n in bits for n in _KEY_USAGE_BITS}
    if not flags["key_agreement"]:
        flags["encipher_only"] = flags["decipher_only"] = False
    return x509.KeyUsage(**flags)


# --------------------------------------------------------------------------------------------
# the pre-issuance check


def _asserted_key_usages(ku: x509.KeyUsage) -> set[str]:
    # encipher_only and decipher_only cannot even be read without keyAgreement
    names = _KEY_USAGE_BITS if ku.key_agreement else _KEY_USAGE_BITS[:-2]
    return {n for n in names if getattr(ku, n)}


def _uris(names: Iterable[x509.GeneralName]) -> list[str]:
    return [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier)]


def _san_mailboxes(san: x509.SubjectAlternativeName) -> list[str]:
    found: list[str] = []
    for gn in san:
        if isinstance(gn, x509.RFC822Name):
            found.append(gn.value)
        elif isinstance(gn, x509.OtherName) and gn.type_id == SMTP_UTF8_MAILBOX:
            try:
                found.append(str(UTF8String.load(gn.value).native))
            except (ValueError, TypeError):
                continue
    return found


def lint_certificate(
    cert: x509.Certificate,
    profile: str | Profile,
    usage: str,
    *,
    ca: IssuingCA | None = None,
    email: str | None = None,
) -> tuple[str, ...]:
    """What is wrong with ``cert`` as a certificate of ``profile`` for ``usage`` (empty: it
    conforms). Checks the BR §7.1 rules mailseal relies on: serial, validity, key, signature
    algorithm, every extension and its criticality, the policy OID, EKU, key usage, the
    mailbox in subjectAltName, the subject attributes and, given ``ca``, the issuer name and
    the authority key identifier."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    out: list[str] = []
    add = out.append

    if cert.version is not x509.Version.v3:
        add("not an X.509 v3 certificate (BR §7.1.1)")
    serial = cert.serial_number
    if serial <= 0 or serial >= 2**_SERIAL_BITS:
        add("the serial number must be positive and below 2^159 (BR §7.1)")
    elif serial.bit_length() <= _MIN_SERIAL_BITS:
        add("the serial number is too short to hold 64 random bits (BR §7.1)")

    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    period = end - start + _MAX_VALIDITY_SLACK
    if end <= start:
        add("notAfter is not after notBefore")
    elif period > dt.timedelta(days=prof.max_validity_days):
        add(f"the validity period exceeds {prof.max_validity_days} days (BR §6.3.2)")

    # key and signature algorithm
    family: KeyFamily | None
    try:
        public_key = cert.public_key()
        family = check_public_key(public_key)
    except (AlgorithmError, ValueError, UnsupportedAlgorithm) as exc:
        add(f"subject public key refused: {exc}")
        family = None
    if cert.signature_algorithm_oid.dotted_string not in _CERT_SIGNATURE_OIDS:
        add("the signature algorithm is not one of BR §7.1.3.2")

    # extensions
    try:
        extensions = {e.oid.dotted_string: e for e in cert.extensions}
    except (ValueError, x509.DuplicateExtension) as exc:
        add(f"the extensions cannot be read ({exc})")
        return tuple(out)
    for oid, ext in extensions.items():
        label = _SUBSCRIBER_EXTENSIONS.get(oid)
        if label is None:
            add(f"unexpected extension {oid} (BR §7.1.2.4)")
        elif oid != ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string and ext.critical != (
            oid in _CRITICAL
        ):
            add(f"{label} must {'' if oid in _CRITICAL else 'not '}be critical (BR §7.1.2.3)")
    for oid, label in _SUBSCRIBER_EXTENSIONS.items():
        if oid not in extensions:
            add(f"{label} is missing (BR §7.1.2.3)")

    def value(oid: ObjectIdentifier) -> object:
        ext = extensions.get(oid.dotted_string)
        return None if ext is None else ext.value

    bc = value(ExtensionOID.BASIC_CONSTRAINTS)
    if isinstance(bc, x509.BasicConstraints) and (bc.ca or bc.path_length is not None):
        add("basicConstraints must say cA=FALSE without pathLenConstraint (BR §7.1.2.3 d)")

    ku = value(ExtensionOID.KEY_USAGE)
    if isinstance(ku, x509.KeyUsage) and family is not None:
        try:
            rule = prof.key_usage_for(family, usage)
        except ProfileError as exc:
            add(str(exc))
        else:
            asserted = _asserted_key_usages(ku)
            if not rule.required <= asserted:
                missing = ", ".join(sorted(rule.required - asserted))
                add(f"keyUsage lacks {missing} for {usage} (BR §7.1.2.3 e)")
            if asserted - rule.allowed:
                extra = ", ".join(sorted(asserted - rule.allowed))
                add(f"keyUsage must not assert {extra} for {usage} (BR §7.1.2.3 e)")

    eku = value(ExtensionOID.EXTENDED_KEY_USAGE)
    if isinstance(eku, x509.ExtendedKeyUsage):
        names = {_EKU_NAMES.get(u.dotted_string, u.dotted_string) for u in eku}
        for required in prof.ekus_required - names:
            add(f"extKeyUsage lacks {required} (BR §7.1.2.3 f)")
        bad = names - prof.ekus_required - prof.ekus_optional
        if bad:
            add(f"extKeyUsage must not contain {', '.join(sorted(bad))} (BR §7.1.2.3 f)")

    cp = value(ExtensionOID.CERTIFICATE_POLICIES)
    if isinstance(cp, x509.CertificatePolicies):
        oids = [p.policy_identifier.dotted_string for p in cp]
        reserved = [o for o in oids if o.startswith(SMIME_POLICY_ARC + ".")]
        if reserved != [prof.policy_oid]:
            add(
                f"certificatePolicies must hold exactly one reserved S/MIME policy, "
                f"{prof.policy_oid} (BR §7.1.2.3 a, §7.1.6.1)"
            )
        if "2.5.29.32.0" in oids:
            add("certificatePolicies must not hold anyPolicy")
        for info in cp:
            for q in info.policy_qualifiers or ():
                if isinstance(q, x509.UserNotice) and q.notice_reference is not None:
                    add("a userNotice must not hold a noticeRef (BR §7.1.2.3 a)")
                elif isinstance(q, str) and not q.lower().startswith(("http://", "https://")):
                    add("a CPS qualifier must be an HTTP or HTTPS URL (BR §7.1.2.3 a)")

    cdp = value(ExtensionOID.CRL_DISTRIBUTION_POINTS)
    if isinstance(cdp, x509.CRLDistributionPoints):
        uris = [u for dp in cdp for u in _uris(dp.full_name or ())]
        if not any(u.lower().startswith("http://") for u in uris):
            add("cRLDistributionPoints needs an http:// URL (BR §7.1.2.3 b)")
        for u in uris:
            if u.split(":", 1)[0].lower() not in prof.uri_schemes:
                add(f"cRLDistributionPoints URL {u!r} has a scheme BR §7.1.2.3 b refuses")

    aia = value(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    if isinstance(aia, x509.AuthorityInformationAccess):
        methods = {d.access_method for d in aia}
        if AuthorityInformationAccessOID.CA_ISSUERS not in methods:
            add("authorityInformationAccess lacks caIssuers (BR §7.1.2.3 c)")
        for desc in aia:
            loc = desc.access_location
            if not isinstance(loc, x509.UniformResourceIdentifier):
                add("authorityInformationAccess may hold only URLs (BR §7.1.2.3 c)")
            elif loc.value.split(":", 1)[0].lower() not in prof.uri_schemes:
                add(f"authorityInformationAccess URL {loc.value!r} has a refused scheme")

    aki = value(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    if isinstance(aki, x509.AuthorityKeyIdentifier):
        if aki.key_identifier is None:
            add("authorityKeyIdentifier lacks keyIdentifier (BR §7.1.2.3 g)")
        if aki.authority_cert_issuer is not None or aki.authority_cert_serial_number is not None:
            add("authorityKeyIdentifier must hold only keyIdentifier (BR §7.1.2.3 g)")
        if ca is not None and aki.key_identifier != ca.key_identifier:
            add("authorityKeyIdentifier does not match the issuing CA's subjectKeyIdentifier")

    ski = value(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if (
        isinstance(ski, x509.SubjectKeyIdentifier)
        and family is not None
        and ski.digest != x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    ):
        add("subjectKeyIdentifier is not derived from the subject public key (BR §7.1.2.3 n)")

    san_ext = extensions.get(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string)
    mailboxes: list[str] = []
    if san_ext is not None:
        san = san_ext.value
        assert isinstance(san, x509.SubjectAlternativeName)
        mailboxes = _san_mailboxes(san)
        if not mailboxes:
            add("subjectAltName holds no mailbox (BR §7.1.4.2.1)")
        for gn in san:
            allowed = isinstance(gn, x509.RFC822Name | x509.DirectoryName) or (
                isinstance(gn, x509.OtherName)
                and (gn.type_id == SMTP_UTF8_MAILBOX or prof.generation != "strict")
            )
            if not allowed:
                add(f"subjectAltName must not hold {type(gn).__name__} (BR §7.1.4.2.1)")
        if email is not None and email not in mailboxes:
            add(f"subjectAltName does not hold {email}")
        if san_ext.critical != (len(cert.subject) == 0):
            add("subjectAltName must be critical exactly when the subject is empty (RFC 5280)")

    out.extend(_lint_subject(cert.subject, prof, mailboxes))
    if ca is not None and cert.issuer.public_bytes() != ca.certificate.subject.public_bytes():
        add("the issuer name is not byte-for-byte the CA's subject name (BR §7.1.4.1)")
    return tuple(out)


_EKU_NAMES: Final[Mapping[str, str]] = MappingProxyType({v: k for k, v in EKU_OIDS.items()})
_ATTRIBUTE_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {v: k for k, v in SUBJECT_ATTRIBUTE_OIDS.items()}
)


def _lint_subject(subject: x509.Name, prof: Profile, mailboxes: list[str]) -> list[str]:
    out: list[str] = []
    attrs: dict[str, str] = {}
    for rdn in subject.rdns:
        if len(rdn) != 1:
            out.append("each subject RDN must hold a single attribute")
        for atv in rdn:
            oid = atv.oid.dotted_string
            label = _ATTRIBUTE_NAMES.get(oid, oid)
            if label in attrs:
                out.append(f"subject repeats {label}")
            text = atv.value if isinstance(atv.value, str) else atv.value.decode("latin-1")
            attrs[label] = text
            if label not in prof.allowed_attributes:
                out.append(f"subject:{label} is not allowed in {prof.name} (BR §7.1.4.2)")
            elif _META_ONLY.match(text):
                out.append(f"subject:{label} holds no information (BR §7.1.4.2)")
    for missing in sorted(prof.required_attributes - attrs.keys()):
        out.append(f"subject:{missing} is missing (BR §7.1.4.2)")
    if prof.one_of and not prof.one_of & attrs.keys():
        out.append("the subject must name the person: givenName/surname or pseudonym")
    if "pseudonym" in attrs and {"givenName", "surname"} & attrs.keys():
        out.append("subject:pseudonym cannot be combined with givenName/surname")
    for attr, needs in ATTRIBUTE_DEPENDENCIES:
        if attr in attrs and not needs & attrs.keys():
            out.append(f"subject:{attr} needs {' or '.join(sorted(needs))} (BR §7.1.4.2.2)")
    email = attrs.get("emailAddress")
    if email is not None and email not in mailboxes:
        out.append("subject:emailAddress is not repeated in subjectAltName (BR §7.1.4.2.1)")
    if "commonName" in attrs:
        fake = Mailbox("", "")
        if mailboxes:
            local, _, domain = mailboxes[0].rpartition("@")
            fake = Mailbox(local, domain)
        problem = _common_name_problem(prof, attrs, fake)
        if problem and attrs["commonName"] not in mailboxes:
            out.append(problem)
    return out


# --------------------------------------------------------------------------------------------
# delivery


def export_pkcs12(
    key: PrivateKeyTypes,
    cert: x509.Certificate,
    chain: Iterable[x509.Certificate],
    password: bytes,
    friendly_name: str | bytes | None = None,
    *,
    kdf_rounds: int = 600_000,
) -> bytes:
    """A PKCS#12 file for a key made on the server: key and certificates encrypted with
    PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), MAC with HMAC-SHA256: well above the 112 bits of
    security the BR ask for key transport (§6.1.2). ``chain`` is the CA certificates to include,
    nearest first."""
    if not isinstance(password, bytes) or not password:
        raise UsageError("a PKCS#12 file needs a non-empty password (bytes)")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) and not isinstance(
        key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
    ):
        raise UsageError(f"cannot put a {type(key).__name__} in a PKCS#12 file")
    name = friendly_name.encode("utf-8") if isinstance(friendly_name, str) else friendly_name
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(kdf_rounds)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(name, key, cert, list(chain) or None, encryption)


def generate_password() -> str:
    """A random password for a PKCS#12 file: 32 URL-safe characters, 192 bits."""
    return secrets.token_urlsafe(24)
