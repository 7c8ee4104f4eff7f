"""RecipientInfo (RFC 5652 §6.2): the content-encryption key, wrapped for each recipient.

Writing (:func:`encode_recipient`):

* RSA certificates get a KeyTransRecipientInfo. RSAES-OAEP with SHA-256 and MGF1-SHA-256 is the
  default (RFC 8551 §2.3, parameters per RFC 4055 §4.1); RSAES-PKCS1-v1_5 (RFC 3370 §4.2.1) is
  there for recipients that cannot do better.
* EC certificates (P-256, P-384, P-521) get a KeyAgreeRecipientInfo with ephemeral-static ECDH,
  the ANSI X9.63 KDF and AES key wrap (RFC 5753 §3.1.1, RFC 3394).
* X25519 and X448 certificates get the same with HKDF (RFC 8418).

Reading (:func:`parse_recipient_infos`, :func:`unwrap_key`): every RecipientInfo is parsed into a
:class:`ParsedRecipient`; entries mailseal cannot use (another key agreement scheme, a password
or pre-shared key recipient) are kept with a ``problem`` so the other entries still work. The
reader accepts DER and BER (indefinite lengths, constructed OCTET STRINGs), with a depth limit.

Algorithms are tables (DESIGN.md rule 5); every malformed input ends in a
:class:`~mailseal.errors.MailsealError`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x448, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from mailseal._memo import per_object
from mailseal._values import quick_init
from mailseal.asn1 import der
from mailseal.asn1 import oids as O
from mailseal.cms import fastder as F
from mailseal.cms.ids import CertId
from mailseal.errors import (
    AlgorithmError,
    DecryptionError,
    IdentityError,
    LimitExceeded,
    MalformedCMS,
    UsageError,
)
from mailseal.keys.base import Decrypter, HashName, KeyTransport, KeyType
from mailseal.keys.software import hash_algorithm

__all__ = [
    "KeyAgreement",
    "KeyTransportChoice",
    "ParsedRecipient",
    "RecipientKind",
    "encode_recipient",
    "parse_recipient_infos",
    "unwrap_key",
]

KeyTransportChoice = Literal["oaep", "pkcs1v15"]
RecipientKind = Literal["ktri", "kari", "kekri", "pwri", "ori"]

#: RSA keys below this size are refused for new messages (DESIGN.md rule 6; NIST SP 800-131A).
MIN_RSA_BITS: Final = 2048

_HASH_TEXT: Final[dict[str, str]] = {
    "sha1": "SHA-1",
    "sha224": "SHA-224",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
}
_HASH_BY_OID: Final[dict[str, HashName]] = {
    O.SHA1: "sha1",
    O.SHA224: "sha224",
    O.SHA256: "sha256",
    O.SHA384: "sha384",
    O.SHA512: "sha512",
}

# ---------------------------------------------------------------------------------------------
# Algorithm tables
# ---------------------------------------------------------------------------------------------

#: RSAES-OAEP hash -> Decrypter padding name (RFC 4055 §4.1; MGF1 must use the same hash)
_OAEP_PADDING: Final[dict[str, KeyTransport]] = {
    "sha1": "oaep-sha1",  # the RFC 4055 default when parameters are absent
    "sha256": "oaep-sha256",  # RFC 8551 §2.3: what mailseal writes
    "sha384": "oaep-sha384",
    "sha512": "oaep-sha512",
}


@dataclass(frozen=True, slots=True)
class _Scheme:
    """A key agreement scheme: the keyEncryptionAlgorithm of a KeyAgreeRecipientInfo."""

    oid: str
    kdf: Literal["x963", "hkdf"]
    hash: HashName


_SCHEMES: Final[dict[str, _Scheme]] = {
    s.oid: s
    for s in (
        # RFC 5753 §7.1.4, ANSI X9.63 KDF. SHA-1 is OpenSSL 3.0's default: readable, flagged.
        _Scheme(O.ECDH_STD_SHA1KDF, "x963", "sha1"),
        _Scheme(O.ECDH_STD_SHA224KDF, "x963", "sha224"),
        _Scheme(O.ECDH_STD_SHA256KDF, "x963", "sha256"),
        _Scheme(O.ECDH_STD_SHA384KDF, "x963", "sha384"),
        _Scheme(O.ECDH_STD_SHA512KDF, "x963", "sha512"),
        # cofactor ECDH equals standard ECDH on the NIST prime curves (cofactor 1), RFC 5753 §3
        _Scheme(O.ECDH_COFACTOR_SHA1KDF, "x963", "sha1"),
        _Scheme(O.ECDH_COFACTOR_SHA224KDF, "x963", "sha224"),
        _Scheme(O.ECDH_COFACTOR_SHA256KDF, "x963", "sha256"),
        _Scheme(O.ECDH_COFACTOR_SHA384KDF, "x963", "sha384"),
        _Scheme(O.ECDH_COFACTOR_SHA512KDF, "x963", "sha512"),
        # RFC 8418 §2.2: HKDF (RFC 5869)
        _Scheme(O.ECDH_STD_HKDF_SHA256, "hkdf", "sha256"),
        _Scheme(O.ECDH_STD_HKDF_SHA384, "hkdf", "sha384"),
        _Scheme(O.ECDH_STD_HKDF_SHA512, "hkdf", "sha512"),
    )
}


@dataclass(frozen=True, slots=True)
class _Wrap:
    oid: str
    kek_size: int
    padded: bool


#: AES key wrap (RFC 3394; parameters absent, RFC 3565) and with padding (RFC 5649, read only)
_WRAPS: Final[dict[str, _Wrap]] = {
    w.oid: w
    for w in (
        _Wrap(O.AES128_WRAP, 16, False),
        _Wrap(O.AES192_WRAP, 24, False),
        _Wrap(O.AES256_WRAP, 32, False),
        _Wrap(O.AES128_WRAP_PAD, 16, True),
        _Wrap(O.AES192_WRAP_PAD, 24, True),
        _Wrap(O.AES256_WRAP_PAD, 32, True),
    )
}
#: The KEK is as strong as the CEK it wraps (RFC 5753 §7.2, RFC 8551 §2.7): AES-256 wrap for a
#: 256-bit content key, AES-128 wrap for a 128-bit one.
_WRAP_FOR_CEK: Final[dict[int, str]] = {16: O.AES128_WRAP, 24: O.AES192_WRAP, 32: O.AES256_WRAP}


@dataclass(frozen=True, slots=True)
class _Curve:
    name: str  # as people say it
    oid: str
    cryptography_name: str
    coordinate_size: int
    #: the scheme written for this curve: the KDF hash matches the curve strength
    #: (RFC 5753 §8, RFC 6318)
    scheme: str


_CURVES: Final[tuple[_Curve, ...]] = (
    _Curve("P-256", O.SECP256R1, "secp256r1", 32, O.ECDH_STD_SHA256KDF),
    _Curve("P-384", O.SECP384R1, "secp384r1", 48, O.ECDH_STD_SHA384KDF),
    _Curve("P-521", O.SECP521R1, "secp521r1", 66, O.ECDH_STD_SHA512KDF),
)
_CURVE_BY_OID: Final = {c.oid: c for c in _CURVES}
_CURVE_BY_NAME: Final = {c.cryptography_name: c for c in _CURVES}


@dataclass(frozen=True, slots=True)
class _Montgomery:
    name: str
    oid: str
    key_type: KeyType
    key_size: int
    #: RFC 8418: HKDF-SHA-256 with X25519, HKDF-SHA-512 with X448
    scheme: str


_MONTGOMERY: Final[dict[str, _Montgomery]] = {
    m.oid: m
    for m in (
        _Montgomery("X25519", O.X25519, "x25519", 32, O.ECDH_STD_HKDF_SHA256),
        _Montgomery("X448", O.X448, "x448", 56, O.ECDH_STD_HKDF_SHA512),
    )
}

_OTHER_KINDS: Final[dict[int, tuple[RecipientKind, str]]] = {
    0xA2: ("kekri", "a pre-shared key-encryption key (KEKRecipientInfo)"),
    0xA3: ("pwri", "a password (PasswordRecipientInfo)"),
    0xA4: ("ori", "another recipient type (OtherRecipientInfo)"),
}

# ---------------------------------------------------------------------------------------------
# Parsed values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyAgreement:
    """What a KeyAgreeRecipientInfo needs to derive its key-encryption key."""

    #: the type of recipient key that can agree: "ec", "x25519" or "x448"
    key_type: KeyType
    #: the originator's ephemeral public key as SubjectPublicKeyInfo DER, or None when it is
    #: unreadable
    originator_spki: bytes | None
    kdf: Literal["x963", "hkdf"]
    hash: HashName
    wrap_oid: str
    kek_size: int
    padded_wrap: bool
    ukm: bytes | None


@quick_init
@dataclass(frozen=True, slots=True)
class ParsedRecipient:
    """One RecipientInfo of a message.

    ``rids`` names the certificates the entry is for (one for ktri, one per
    RecipientEncryptedKey for kari, none for the kinds mailseal cannot open). ``problem`` says
    why mailseal cannot use the entry (then :func:`unwrap_key` raises
    :class:`~mailseal.errors.AlgorithmError` with it). ``weak`` flags SHA-1 in the key
    transport or key derivation (DESIGN.md rule 6: readable, flagged).
    """

    index: int
    kind: RecipientKind
    rids: tuple[CertId, ...]
    algorithm: str
    #: the RecipientInfo version (None for ori, which has none)
    version: int | None = None
    weak: bool = False
    problem: str | None = None
    #: ktri: the one encrypted key; kari: one per rid
    encrypted_keys: tuple[bytes, ...] = ()
    #: ktri: the RSA padding to decrypt with
    key_transport: KeyTransport | None = None
    #: kari: how to derive the key-encryption key
    agreement: KeyAgreement | None = None


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def _oaep_sha256_der() -> bytes:
    # RFC 4055 §4.1 RSAES-OAEP-params: hashFunc [0], maskGenFunc [1]; pSourceFunc left at its
    # default (empty label). SHA-256 AlgorithmIdentifiers with absent parameters (RFC 5754 §2),
    # as OpenSSL writes them.
    sha256 = der.sequence(der.oid(O.SHA256))
    params = der.sequence(
        der.context(0, sha256),
        der.context(1, der.sequence(der.oid(O.MGF1), sha256)),
    )
    return der.sequence(der.oid(O.RSAES_OAEP), params)


_OAEP_SHA256_ALG: Final = _oaep_sha256_der()
_OAEP_SHA256: Final = padding.OAEP(
    mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
#: RFC 3370 §4.2.1: rsaEncryption with NULL parameters
_PKCS1_ALG: Final = der.sequence(der.oid(O.RSA_ENCRYPTION), der.null())


@per_object()
def _issuer_and_serial(cert: x509.Certificate) -> bytes:
    """IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }."""
    return der.sequence(cert.issuer.public_bytes(), der.integer(cert.serial_number))


def _ski(cert: x509.Certificate) -> bytes:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        raise IdentityError(
            f"the certificate of {_who(cert)} has no subjectKeyIdentifier, so it can only be "
            "named by issuer and serial number (use_ski=False)"
        ) from None
    except ValueError as exc:
        raise IdentityError(
            f"the certificate of {_who(cert)} has a broken extension ({exc})"
        ) from None
    return bytes(ext.value.digest)


def _who(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"
    except Exception:  # undecodable subject
        return "the recipient"


def _shared_info(wrap_oid: str, ukm: bytes | None, kek_size: int) -> bytes:
    """DER ECC-CMS-SharedInfo (RFC 5753 §7.2): keyInfo is the key wrap algorithm with absent
    parameters, entityUInfo [0] the ukm when there is one, suppPubInfo [2] the KEK length in
    bits as a 32-bit big-endian number."""
    parts = [der.sequence(der.oid(wrap_oid))]
    if ukm is not None:
        parts.append(der.context(0, der.octet_string(ukm)))
    parts.append(der.context(2, der.octet_string((kek_size * 8).to_bytes(4, "big"))))
    return der.sequence(*parts)


def _derive_kek(
    shared: bytes,
    kdf: Literal["x963", "hkdf"],
    hash_name: HashName,
    wrap_oid: str,
    kek_size: int,
    ukm: bytes | None,
) -> bytes:
    info = _shared_info(wrap_oid, ukm, kek_size)
    h = hash_algorithm(hash_name)
    if kdf == "x963":  # RFC 5753 §7.2 / SEC 1 §3.6.1
        return X963KDF(algorithm=h, length=kek_size, sharedinfo=info).derive(shared)
    # RFC 8418 §2.2: the ukm (if any) is the HKDF salt, the SharedInfo the info
    return HKDF(algorithm=h, length=kek_size, salt=ukm, info=info).derive(shared)


@per_object()
def _public_key(cert: x509.Certificate) -> object:
    try:
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise IdentityError(
            f"the public key in the certificate of {_who(cert)} cannot be read ({exc})"
        ) from None


def encode_recipient(
    cert: x509.Certificate,
    cek: bytes,
    *,
    key_transport: KeyTransportChoice = "oaep",
    use_ski: bool = False,
) -> tuple[bytes, int]:
    """Wrap ``cek`` for the holder of ``cert``.

    Returns the RecipientInfo CHOICE encoding, ready for the RecipientInfos SET, and its
    version (RFC 5652 §6.1 derives the EnvelopedData version from it). ``key_transport``
    applies to RSA certificates only; ``use_ski`` names the certificate by its
    subjectKeyIdentifier instead of issuer and serial number.
    """
    if len(cek) not in _WRAP_FOR_CEK:
        raise UsageError(f"a content-encryption key is 16, 24 or 32 bytes, not {len(cek)}")
    if key_transport not in ("oaep", "pkcs1v15"):
        raise UsageError(f"unknown key transport {key_transport!r}; use 'oaep' or 'pkcs1v15'")
    pub = _public_key(cert)
    if isinstance(pub, rsa.RSAPublicKey):
        return _encode_ktri(cert, pub, cek, key_transport, use_ski)
    if isinstance(pub, ec.EllipticCurvePublicKey):
        curve = _CURVE_BY_NAME.get(pub.curve.name)
        if curve is None:
            raise AlgorithmError(
                f"the certificate of {_who(cert)} has an EC key on {pub.curve.name}; mailseal "
                "encrypts to P-256, P-384 and P-521 keys only"
            )
        eph = ec.generate_private_key(pub.curve)
        shared = eph.exchange(ec.ECDH(), pub)
        point = eph.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        # RFC 5753 §3.1.1: originatorKey is id-ecPublicKey with the parameters omitted (as
        # OpenSSL writes it; the curve is the recipient's) and the uncompressed point
        origin = der.sequence(der.oid(O.EC_PUBLIC_KEY)) + der.tlv(0x03, b"\x00" + point)
        return _encode_kari(cert, cek, use_ski, shared, origin, _SCHEMES[curve.scheme])
    if isinstance(pub, x25519.X25519PublicKey | x448.X448PublicKey):
        mont = _MONTGOMERY[O.X25519 if isinstance(pub, x25519.X25519PublicKey) else O.X448]
        if isinstance(pub, x25519.X25519PublicKey):
            e25519 = x25519.X25519PrivateKey.generate()
            shared = e25519.exchange(pub)
            raw = e25519.public_key().public_bytes_raw()
        else:
            e448 = x448.X448PrivateKey.generate()
            shared = e448.exchange(pub)
            raw = e448.public_key().public_bytes_raw()
        # RFC 8418 §3: originatorKey is id-X25519/id-X448 with absent parameters
        origin = der.sequence(der.oid(mont.oid)) + der.tlv(0x03, b"\x00" + raw)
        return _encode_kari(cert, cek, use_ski, shared, origin, _SCHEMES[mont.scheme])
    name = type(pub).__name__.removesuffix("PublicKey").removeprefix("_")
    if name in ("Ed25519", "Ed448"):
        raise IdentityError(
            f"the certificate of {_who(cert)} has an {name} key, which can only sign; "
            "encrypt to the person's encryption certificate instead"
        )
    raise IdentityError(
        f"the certificate of {_who(cert)} has a {name} key, which mailseal cannot encrypt to "
        "(RSA, EC P-256/P-384/P-521, X25519 and X448 keys can receive mail)"
    )


def _encode_ktri(
    cert: x509.Certificate,
    pub: rsa.RSAPublicKey,
    cek: bytes,
    key_transport: KeyTransportChoice,
    use_ski: bool,
) -> tuple[bytes, int]:
    if pub.key_size < MIN_RSA_BITS:
        raise AlgorithmError(
            f"the certificate of {_who(cert)} has a {pub.key_size}-bit RSA key; keys under "
            f"{MIN_RSA_BITS} bits are refused for new messages"
        )
    # RFC 5652 §6.2.1: version 0 with issuerAndSerialNumber, 2 with subjectKeyIdentifier [0]
    if use_ski:
        rid, version = der.tlv(0x80, _ski(cert)), 2
    else:
        rid, version = _issuer_and_serial(cert), 0
    if key_transport == "oaep":
        ek = pub.encrypt(cek, _OAEP_SHA256)
        alg = _OAEP_SHA256_ALG
    else:
        ek = pub.encrypt(cek, padding.PKCS1v15())
        alg = _PKCS1_ALG
    return der.sequence(der.integer(version), rid, alg, der.octet_string(ek)), version


def _encode_kari(
    cert: x509.Certificate,
    cek: bytes,
    use_ski: bool,
    shared: bytes,
    originator_key: bytes,
    scheme: _Scheme,
) -> tuple[bytes, int]:
    wrap_oid = _WRAP_FOR_CEK[len(cek)]
    kek_size = _WRAPS[wrap_oid].kek_size
    kek = _derive_kek(shared, scheme.kdf, scheme.hash, wrap_oid, kek_size, None)
    wrapped = keywrap.aes_key_wrap(kek, cek)
    # KeyAgreeRecipientIdentifier: issuerAndSerialNumber, or rKeyId [0] IMPLICIT
    # RecipientKeyIdentifier { subjectKeyIdentifier }
    rid = der.context(0, der.octet_string(_ski(cert))) if use_ski else _issuer_and_serial(cert)
    body = b"".join(
        (
            der.integer(3),  # RFC 5652 §6.2.2: always 3
            # originator [0] EXPLICIT OriginatorIdentifierOrKey: originatorKey [1] IMPLICIT
            der.context(0, der.context(1, originator_key)),
            # no ukm: a fresh ephemeral key already makes the KEK unique (RFC 5753 §3.1.1)
            der.sequence(der.oid(scheme.oid), der.sequence(der.oid(wrap_oid))),
            der.sequence(der.sequence(rid, der.octet_string(wrapped))),
        )
    )
    return der.context(1, body), 3  # kari [1] IMPLICIT KeyAgreeRecipientInfo


# ---------------------------------------------------------------------------------------------
# A small BER reader: definite and indefinite lengths, constructed strings, bounded depth
# ---------------------------------------------------------------------------------------------

_MAX_DEPTH: Final = 32


class _Bad(Exception):
    """A structural problem, turned into MalformedCMS with the entry's position."""


def _tlv(buf: bytes, pos: int, end: int, depth: int = 0) -> tuple[int, int, int, int]:
    """(tag, content start, content end, next position) of the value at ``pos``."""
    if pos + 2 > end:
        raise _Bad("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise _Bad("unexpected high-numbered tag")
    n = buf[pos + 1]
    pos += 2
    if n == 0x80:
        if not tag & 0x20:
            raise _Bad("indefinite length on a primitive value")
        if depth >= _MAX_DEPTH:
            raise LimitExceeded("RecipientInfo nested too deeply")
        p = pos
        while True:
            if p + 2 > end:
                raise _Bad("truncated (no end-of-contents)")
            if buf[p] == 0 and buf[p + 1] == 0:
                return tag, pos, p, p + 2
            p = _tlv(buf, p, end, depth + 1)[3]
    if n > 0x80:
        k = n & 0x7F
        if k > 4 or pos + k > end:
            raise _Bad("bad length")
        n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    if pos + n > end:
        raise _Bad("truncated")
    return tag, pos, pos + n, pos + n


def _children(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(tag, header start, content start, content end) of each child."""
    pos = start
    while pos < end:
        tag, cs, ce, nxt = _tlv(buf, pos, end)
        if tag == 0:
            raise _Bad("unexpected end-of-contents")
        yield tag, pos, cs, ce
        pos = nxt


def _kids(buf: bytes, start: int, end: int, lo: int, hi: int, what: str) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for kid in _children(buf, start, end):
        out.append(kid)
        if len(out) > hi:
            break
    if not lo <= len(out) <= hi:
        raise _Bad(f"{what} has the wrong number of fields")
    return out


def _raw(buf: bytes, kid: tuple[int, ...]) -> bytes:
    """The whole encoding of a child (header, content and any end-of-contents)."""
    return buf[kid[1] : _tlv(buf, kid[1], len(buf))[3]]


def _octets(buf: bytes, tag: int, cs: int, ce: int, primitive: int, depth: int = 0) -> bytes:
    """An OCTET STRING's value (``primitive`` is its tag: 0x04, or 0x80 for [0] IMPLICIT),
    primitive or constructed (BER)."""
    if tag == primitive:
        return buf[cs:ce]
    if tag != primitive | 0x20:
        raise _Bad("expected an OCTET STRING")
    if depth >= _MAX_DEPTH:
        raise LimitExceeded("constructed OCTET STRING nested too deeply")
    return b"".join(_octets(buf, t, a, b, 0x04, depth + 1) for t, _, a, b in _children(buf, cs, ce))


def _oid(buf: bytes, kid: tuple[int, ...]) -> str:
    if kid[0] != 0x06:
        raise _Bad("expected an OBJECT IDENTIFIER")
    try:
        return F.dotted(buf[kid[2] : kid[3]])
    except F.Unusual:
        raise _Bad("malformed OBJECT IDENTIFIER") from None


def _int(buf: bytes, kid: tuple[int, ...]) -> int:
    if kid[0] != 0x02 or kid[3] == kid[2]:
        raise _Bad("expected an INTEGER")
    return int.from_bytes(buf[kid[2] : kid[3]], "big", signed=True)


def _alg(buf: bytes, kid: tuple[int, ...]) -> tuple[str, tuple[int, ...] | None]:
    """(OID, parameters child or None) of an AlgorithmIdentifier."""
    if kid[0] != 0x30:
        raise _Bad("expected an AlgorithmIdentifier")
    kids = _kids(buf, kid[2], kid[3], 1, 2, "an AlgorithmIdentifier")
    return _oid(buf, kids[0]), (kids[1] if len(kids) == 2 else None)


def _absent_or_null(params: tuple[int, ...] | None) -> bool:
    return params is None or (params[0] == 0x05 and params[3] == params[2])


def _ias(buf: bytes, kid: tuple[int, ...]) -> CertId:
    kids = _kids(buf, kid[2], kid[3], 2, 2, "an IssuerAndSerialNumber")
    if kids[0][0] != 0x30:
        raise _Bad("the issuer is not a Name")
    return CertId(issuer_der=_raw(buf, kids[0]), serial=_int(buf, kids[1]))


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse_recipient_infos(
    set_der: bytes,
    *,
    max_recipients: int = 1024,
    start: int = 0,
    end: int | None = None,
) -> tuple[ParsedRecipient, ...]:
    """Parse a RecipientInfos SET (tag 0x31 and its content, DER or BER), which is
    ``set_der[start:end]`` (all of it by default; the usual form is read in place).

    Raises :class:`~mailseal.errors.MalformedCMS` when the structure is broken and
    :class:`~mailseal.errors.LimitExceeded` when it names more than ``max_recipients``
    recipients (RecipientEncryptedKeys counted one by one).
    """
    buf = bytes(set_der)
    fast = _ktri_only(buf, max_recipients, start, end)
    if fast is not None:
        return fast
    if start or end is not None:
        buf = buf[start:end]
    return _parse_any(buf, max_recipients)


def _parse_any(buf: bytes, max_recipients: int) -> tuple[ParsedRecipient, ...]:
    """The general reader behind :func:`parse_recipient_infos`: every kind, DER or BER."""
    try:
        tag, cs, ce, nxt = _tlv(buf, 0, len(buf))
    except _Bad as exc:
        raise MalformedCMS(f"the RecipientInfos are malformed ({exc})") from None
    if tag != 0x31:
        raise MalformedCMS("the RecipientInfos are not a SET")
    if nxt != len(buf):
        raise MalformedCMS("unexpected data after the RecipientInfos")
    out: list[ParsedRecipient] = []
    count = 0
    index = 0
    try:
        for kid in _children(buf, cs, ce):
            try:
                parsed = _parse_one(buf, index, kid, max_recipients - count)
            except _Bad as exc:
                raise MalformedCMS(f"RecipientInfo {index + 1} is malformed ({exc})") from None
            count += max(1, len(parsed.rids))
            if count > max_recipients:
                raise LimitExceeded(f"more than {max_recipients} recipients in one message")
            out.append(parsed)
            index += 1
    except _Bad as exc:
        raise MalformedCMS(f"RecipientInfo {index + 1} is malformed ({exc})") from None
    except (IndexError, ValueError, OverflowError) as exc:  # defence in depth
        raise MalformedCMS(f"RecipientInfo {index + 1} is malformed ({exc})") from None
    return tuple(out)


def _ktri_only(
    buf: bytes, max_recipients: int, start: int = 0, end: int | None = None
) -> tuple[ParsedRecipient, ...] | None:
    """The common case read in one pass: a DER SET of KeyTransRecipientInfos with primitive
    values, in ``buf[start:end]`` (all of ``buf`` by default). None for anything else, which
    the general reader parses (and explains)."""
    if end is None:
        end = len(buf)
    try:
        tag, cs, ce = F.tlv(buf, start, end)
        if tag != 0x31 or ce != end:
            return None
        entries = F.children(buf, cs, ce)
        if not entries or len(entries) > max_recipients:
            return None
        children = F.children
        out = []
        for index, (etag, _hs, es, ee) in enumerate(entries):
            if etag != 0x30:
                return None
            # version INTEGER, rid, keyEncryptionAlgorithm, encryptedKey OCTET STRING
            kids = children(buf, es, ee)
            if len(kids) != 4:
                return None
            (vtag, _vh, vs, ve), (rtag, _rh, rs, re_), (atag, ah, _as, ae), (ktag, _kh, ks, ke) = (
                kids
            )
            if vtag != 0x02 or atag != 0x30 or ktag != 0x04 or ve == vs:
                return None
            if rtag == 0x30:  # issuerAndSerialNumber
                ias = children(buf, rs, re_)
                if len(ias) != 2:
                    return None
                (itag, _ih, _is, ie), (stag, _sh, ss, se) = ias
                if itag != 0x30 or stag != 0x02 or se == ss:
                    return None
                serial = int.from_bytes(buf[ss:se], "big", signed=True)
                rid = CertId(issuer_der=buf[rs:ie], serial=serial)
            elif rtag == 0x80:  # subjectKeyIdentifier [0] IMPLICIT
                rid = CertId(ski=buf[rs:re_])
            else:
                return None
            transport, algorithm, weak, problem = _key_transport(buf[ah:ae])
            out.append(
                ParsedRecipient(
                    index=index,
                    kind="ktri",
                    rids=(rid,),
                    algorithm=algorithm,
                    version=int.from_bytes(buf[vs:ve], "big", signed=True),
                    weak=weak,
                    problem=problem,
                    encrypted_keys=(buf[ks:ke],),
                    key_transport=transport,
                )
            )
    except (F.Unusual, _Bad):
        return None
    return tuple(out)


def _parse_one(buf: bytes, index: int, kid: tuple[int, ...], room: int) -> ParsedRecipient:
    tag = kid[0]
    if tag == 0x30:
        return _parse_ktri(buf, index, kid)
    if tag == 0xA1:
        return _parse_kari(buf, index, kid, room)
    other = _OTHER_KINDS.get(tag)
    if other is None:
        raise _Bad(f"unknown RecipientInfo type (tag 0x{tag:02x})")
    kind, text = other
    version: int | None = None
    algorithm = text
    kids = list(_children(buf, kid[2], kid[3]))
    if kind == "ori":
        if kids and kids[0][0] == 0x06:
            algorithm = f"{text}: {_oid(buf, kids[0])}"
    elif kids and kids[0][0] == 0x02:
        version = _int(buf, kids[0])
    return ParsedRecipient(
        index=index,
        kind=kind,
        rids=(),
        algorithm=algorithm,
        version=version,
        problem=f"mailseal cannot open recipients that use {text}",
    )


def _parse_ktri(buf: bytes, index: int, kid: tuple[int, ...]) -> ParsedRecipient:
    version_k, rid_k, alg_k, ek_k = _kids(buf, kid[2], kid[3], 4, 4, "a KeyTransRecipientInfo")
    version = _int(buf, version_k)
    if rid_k[0] == 0x30:
        rid = _ias(buf, rid_k)
    elif rid_k[0] in (0x80, 0xA0):  # subjectKeyIdentifier [0] IMPLICIT
        rid = CertId(ski=_octets(buf, rid_k[0], rid_k[2], rid_k[3], 0x80))
    else:
        raise _Bad("unknown RecipientIdentifier")
    ek = _octets(buf, ek_k[0], ek_k[2], ek_k[3], 0x04)
    transport, algorithm, weak, problem = _key_transport(_raw(buf, alg_k))
    return ParsedRecipient(
        index=index,
        kind="ktri",
        rids=(rid,),
        algorithm=algorithm,
        version=version,
        weak=weak,
        problem=problem,
        encrypted_keys=(ek,),
        key_transport=transport,
    )


def _key_transport(alg_der: bytes) -> tuple[KeyTransport | None, str, bool, str | None]:
    """(padding, description, weak, problem) of a key transport AlgorithmIdentifier (its whole
    encoding). Remembered by the encoding when it is of the usual size: every message to a
    recipient repeats the same few bytes (a hostile one could send large ones)."""
    if len(alg_der) <= 128:
        return _key_transport_remembered(alg_der)
    return _read_key_transport(alg_der)


@functools.lru_cache(maxsize=256)
def _key_transport_remembered(
    alg_der: bytes,
) -> tuple[KeyTransport | None, str, bool, str | None]:
    return _read_key_transport(alg_der)


def _read_key_transport(alg_der: bytes) -> tuple[KeyTransport | None, str, bool, str | None]:
    oid, params = _alg(alg_der, _tlv_kid(alg_der))
    if oid == O.RSA_ENCRYPTION:
        return "pkcs1v15", "RSAES-PKCS1-v1_5", False, None
    if oid == O.RSAES_OAEP:
        hash_name, problem = _oaep_params(alg_der, params)
        text = f"RSAES-OAEP ({_HASH_TEXT.get(hash_name or '', 'unsupported parameters')})"
        if hash_name is None:
            return None, text, False, problem
        return _OAEP_PADDING[hash_name], text, hash_name == "sha1", problem
    return None, f"unknown key transport {oid}", False, f"unsupported key transport algorithm {oid}"


def _tlv_kid(buf: bytes) -> tuple[int, int, int, int]:
    """The child tuple of a value that is the whole of ``buf``."""
    tag, cs, ce, nxt = _tlv(buf, 0, len(buf))
    if nxt != len(buf):
        raise _Bad("unexpected data after an AlgorithmIdentifier")
    return tag, 0, cs, ce


def _hash_of(buf: bytes, kid: tuple[int, ...]) -> str:
    oid, params = _alg(buf, kid)
    if not _absent_or_null(params):
        raise _Bad("a hash AlgorithmIdentifier has parameters")
    return oid


def _oaep_params(buf: bytes, params: tuple[int, ...] | None) -> tuple[HashName | None, str | None]:
    """(hash, None) for usable RSAES-OAEP-params, else (None, why not). RFC 4055 §4.1."""
    hash_oid = mgf_hash_oid = O.SHA1  # the defaults
    if params is not None and not _absent_or_null(params):
        if params[0] != 0x30:
            raise _Bad("the RSAES-OAEP parameters are not a SEQUENCE")
        last = -1
        for tag, _, cs, ce in _children(buf, params[2], params[3]):
            field = tag - 0xA0
            if not 0 <= field <= 2 or field <= last:
                raise _Bad("unexpected field in the RSAES-OAEP parameters")
            last = field
            inner = _kids(buf, cs, ce, 1, 1, "an RSAES-OAEP parameter")[0]
            if field == 0:
                hash_oid = _hash_of(buf, inner)
            elif field == 1:
                mgf_oid, mgf_params = _alg(buf, inner)
                if mgf_oid != O.MGF1:
                    return None, f"RSAES-OAEP with mask generation {mgf_oid} is not supported"
                if mgf_params is None:
                    raise _Bad("MGF1 without its hash")
                mgf_hash_oid = _hash_of(buf, mgf_params)
            else:
                src_oid, src_params = _alg(buf, inner)
                if src_oid != O.PSPECIFIED or src_params is None:
                    return None, "RSAES-OAEP with an unknown pSourceFunc is not supported"
                label = _octets(buf, src_params[0], src_params[2], src_params[3], 0x04)
                if label:
                    return None, "RSAES-OAEP with a non-empty label is not supported"
    hash_name = _HASH_BY_OID.get(hash_oid)
    if hash_name is None or hash_name not in _OAEP_PADDING:
        return None, f"RSAES-OAEP with hash {hash_oid} is not supported"
    if mgf_hash_oid != hash_oid:
        return None, "RSAES-OAEP with different OAEP and MGF1 hashes is not supported"
    return hash_name, None


def _curve_for_point(point: bytes) -> _Curve | None:
    for curve in _CURVES:
        n = curve.coordinate_size
        if (point[:1] == b"\x04" and len(point) == 1 + 2 * n) or (
            point[:1] in (b"\x02", b"\x03") and len(point) == 1 + n
        ):
            return curve
    return None


def _parse_kari(buf: bytes, index: int, kid: tuple[int, ...], room: int) -> ParsedRecipient:
    kids = _kids(buf, kid[2], kid[3], 4, 5, "a KeyAgreeRecipientInfo")
    version = _int(buf, kids[0])
    if kids[1][0] != 0xA0:
        raise _Bad("the originator is missing")
    ukm: bytes | None = None
    if len(kids) == 5:
        if kids[2][0] != 0xA1:
            raise _Bad("unexpected field before the keyEncryptionAlgorithm")
        ukm_k = _kids(buf, kids[2][2], kids[2][3], 1, 1, "the ukm")[0]
        ukm = _octets(buf, ukm_k[0], ukm_k[2], ukm_k[3], 0x04)
    alg_k, reks_k = kids[-2], kids[-1]

    # RecipientEncryptedKeys ::= SEQUENCE OF { rid KeyAgreeRecipientIdentifier, encryptedKey }
    if reks_k[0] != 0x30:
        raise _Bad("the RecipientEncryptedKeys are not a SEQUENCE")
    rids: list[CertId] = []
    keys: list[bytes] = []
    for rek in _children(buf, reks_k[2], reks_k[3]):
        if len(rids) >= room:  # stop before doing unbounded work for one entry
            raise LimitExceeded("too many recipients in one KeyAgreeRecipientInfo")
        if rek[0] != 0x30:
            raise _Bad("a RecipientEncryptedKey is not a SEQUENCE")
        rid_k, ek_k = _kids(buf, rek[2], rek[3], 2, 2, "a RecipientEncryptedKey")
        if rid_k[0] == 0x30:
            rids.append(_ias(buf, rid_k))
        elif rid_k[0] == 0xA0:  # rKeyId [0] IMPLICIT RecipientKeyIdentifier
            ski_k = _kids(buf, rid_k[2], rid_k[3], 1, 3, "a RecipientKeyIdentifier")[0]
            rids.append(CertId(ski=_octets(buf, ski_k[0], ski_k[2], ski_k[3], 0x04)))
        else:
            raise _Bad("unknown KeyAgreeRecipientIdentifier")
        keys.append(_octets(buf, ek_k[0], ek_k[2], ek_k[3], 0x04))

    scheme_oid, wrap_params = _alg(buf, alg_k)
    scheme = _SCHEMES.get(scheme_oid)
    wrap: _Wrap | None = None
    if wrap_params is not None and wrap_params[0] == 0x30:
        wrap = _WRAPS.get(_alg(buf, wrap_params)[0])

    origin = _kids(buf, kids[1][2], kids[1][3], 1, 1, "the originator")[0]
    agreement: KeyAgreement | None = None
    problem: str | None = None
    party = "ECDH"
    if origin[0] != 0xA1:
        problem = (
            "the sender is named by certificate (static-static key agreement), which "
            "mailseal does not support"
        )
    else:
        # OriginatorPublicKey ::= SEQUENCE { algorithm AlgorithmIdentifier, publicKey BIT STRING }
        key_alg_k, bits_k = _kids(buf, origin[2], origin[3], 2, 2, "the originator key")
        key_oid, key_params = _alg(buf, key_alg_k)
        if bits_k[0] != 0x03 or bits_k[3] == bits_k[2] or buf[bits_k[2]] != 0:
            raise _Bad("the originator public key is not a whole-byte BIT STRING")
        public = buf[bits_k[2] + 1 : bits_k[3]]
        key_type: KeyType | None = None
        spki: bytes | None = None
        bits = der.tlv(0x03, b"\x00" + public)
        if key_oid == O.EC_PUBLIC_KEY:
            key_type = "ec"
            curve: _Curve | None = None
            if key_params is not None and key_params[0] == 0x06:  # namedCurve
                curve = _CURVE_BY_OID.get(_oid(buf, key_params))
                if curve is None:
                    problem = (
                        f"the originator's key is on an unsupported curve {_oid(buf, key_params)}"
                    )
            elif _absent_or_null(key_params):  # RFC 5753 §3.1.1: the recipient's curve
                curve = _curve_for_point(public)
            else:
                problem = "the originator's EC key has unsupported parameters"
            if curve is not None:
                party = f"ECDH {curve.name}"
                spki = der.sequence(
                    der.sequence(der.oid(O.EC_PUBLIC_KEY), der.oid(curve.oid)), bits
                )
        elif key_oid in _MONTGOMERY:
            mont = _MONTGOMERY[key_oid]
            key_type, party = mont.key_type, mont.name
            if len(public) == mont.key_size:
                spki = der.sequence(der.sequence(der.oid(key_oid)), bits)
        else:
            problem = f"unsupported originator key algorithm {key_oid}"
        if key_type is not None and scheme is not None and wrap is not None:
            agreement = KeyAgreement(
                key_type=key_type,
                originator_spki=spki,
                kdf=scheme.kdf,
                hash=scheme.hash,
                wrap_oid=wrap.oid,
                kek_size=wrap.kek_size,
                padded_wrap=wrap.padded,
                ukm=ukm,
            )
    if scheme is None:
        problem = problem or f"unsupported key agreement algorithm {scheme_oid}"
        algorithm = f"{party} (unknown scheme {scheme_oid})"
    else:
        kdf = "X9.63 " + _HASH_TEXT[scheme.hash] if scheme.kdf == "x963" else "HKDF-"
        if scheme.kdf == "hkdf":
            kdf += _HASH_TEXT[scheme.hash]
        if wrap is None:
            problem = problem or "unsupported or missing key wrap algorithm"
            wrap_text = "unknown key wrap"
        else:
            wrap_text = f"AES-{wrap.kek_size * 8} key wrap" + (" with padding" * wrap.padded)
        algorithm = f"{party} ({kdf}, {wrap_text})"
    return ParsedRecipient(
        index=index,
        kind="kari",
        rids=tuple(rids),
        algorithm=algorithm,
        version=version,
        weak=scheme is not None and scheme.hash == "sha1",
        problem=problem,
        encrypted_keys=tuple(keys),
        agreement=agreement,
    )


# ---------------------------------------------------------------------------------------------
# Unwrapping
# ---------------------------------------------------------------------------------------------

_NOT_OPENED = "wrong private key or corrupted message"


def unwrap_key(
    recipient: ParsedRecipient,
    rid_index: int,
    key: Decrypter,
    *,
    cek_size: int | None = None,
) -> bytes:
    """The content-encryption key of ``recipient`` for its ``rid_index``-th identifier.

    ``cek_size`` (the key size of the content cipher) enables the RFC 3218 §2.3
    countermeasure for RSAES-PKCS1-v1_5: when the RSA decryption fails, a random key of that
    size is returned, so a padding failure looks exactly like a wrong content key (the content
    layer then fails with its generic :class:`~mailseal.errors.DecryptionError`). Without it,
    such a failure raises at once.

    Raises :class:`~mailseal.errors.DecryptionError` when the key does not open the entry and
    :class:`~mailseal.errors.AlgorithmError` when the entry uses something mailseal cannot do.
    """
    if recipient.problem is not None:
        raise AlgorithmError(f"recipient entry {recipient.index + 1}: {recipient.problem}")
    if not 0 <= rid_index < len(recipient.encrypted_keys):
        raise UsageError(f"recipient entry {recipient.index + 1} has no identifier {rid_index}")
    encrypted = recipient.encrypted_keys[rid_index]
    where = f"recipient entry {recipient.index + 1}"
    if recipient.kind == "ktri" and recipient.key_transport is not None:
        if key.key_type != "rsa":
            raise DecryptionError(f"{where} needs an RSA key, not a {key.key_type} key")
        return _unwrap_ktri(encrypted, recipient.key_transport, key, cek_size, where)
    if recipient.kind == "kari" and recipient.agreement is not None:
        return _unwrap_kari(encrypted, recipient.agreement, key, cek_size, where)
    raise AlgorithmError(f"{where}: mailseal cannot open {recipient.kind} recipients")


def _unwrap_ktri(
    encrypted: bytes,
    transport: KeyTransport,
    key: Decrypter,
    cek_size: int | None,
    where: str,
) -> bytes:
    if transport == "pkcs1v15":
        # RFC 3218 §2.3: draw the stand-in key first, so both outcomes take the same path
        stand_in = os.urandom(cek_size) if cek_size is not None else None
        try:
            cek: bytes | None = key.decrypt(encrypted, transport)
        except (ValueError, DecryptionError):
            cek = None
        if stand_in is not None:
            return cek if cek is not None and len(cek) == len(stand_in) else stand_in
        if cek is None:
            raise DecryptionError(f"{where} did not open: {_NOT_OPENED}")
        return cek
    try:
        cek = key.decrypt(encrypted, transport)
    except (ValueError, DecryptionError):
        raise DecryptionError(f"{where} did not open: {_NOT_OPENED}") from None
    if cek_size is not None and len(cek) != cek_size:
        raise DecryptionError(f"{where} holds a key of the wrong size: {_NOT_OPENED}")
    return cek


def _unwrap_kari(
    encrypted: bytes,
    agreement: KeyAgreement,
    key: Decrypter,
    cek_size: int | None,
    where: str,
) -> bytes:
    if key.key_type != agreement.key_type:
        raise DecryptionError(
            f"{where} needs an {agreement.key_type} key, not a {key.key_type} key"
        )
    if agreement.originator_spki is None:
        raise DecryptionError(f"{where}: the sender's ephemeral public key cannot be read")
    try:
        shared = key.exchange(agreement.originator_spki)
    except (ValueError, AlgorithmError) as exc:
        raise DecryptionError(f"{where}: the key agreement failed ({exc})") from None
    kek = _derive_kek(
        shared, agreement.kdf, agreement.hash, agreement.wrap_oid, agreement.kek_size, agreement.ukm
    )
    try:
        if agreement.padded_wrap:
            cek = keywrap.aes_key_unwrap_with_padding(kek, encrypted)
        else:
            cek = keywrap.aes_key_unwrap(kek, encrypted)
    except (keywrap.InvalidUnwrap, ValueError):
        raise DecryptionError(f"{where} did not unwrap: {_NOT_OPENED}") from None
    if cek_size is not None and len(cek) != cek_size:
        raise DecryptionError(f"{where} holds a key of the wrong size: {_NOT_OPENED}")
    return cek
