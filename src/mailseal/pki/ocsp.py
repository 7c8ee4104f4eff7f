"""OCSP for mailseal's internal CA (RFC 6960, lightweight profile RFC 5019): request parsing,
signed and unsigned responses, and a responder core that serves pre-signed responses.

Sans-IO: :meth:`Responder.respond` takes the DER request body and returns the DER response
body; the HTTP layer only moves bytes (and turns an RFC 6960 §A.1 GET path into DER with
:func:`decode_get_path`). Certificate statuses and pre-signed responses come through two small
injected interfaces, :class:`ResponseSource` and :class:`StatusSource`.

Profile (S/MIME Baseline Requirements §4.9.9-4.9.10, RFC 6960, RFC 5019):

* responses are signed by the CA itself or by a delegated responder certificate that the CA
  issued with the id-kp-OCSPSigning extended key usage and the id-pkix-ocsp-nocheck extension
  (RFC 6960 §4.2.2.2, §4.2.2.2.1; :func:`make_responder_certificate`); the delegated
  certificate travels in the response;
* the ResponderID is ``byKey``, the SHA-1 hash of the responder's public key (RFC 5019 §2.2.3);
* thisUpdate/nextUpdate span 8 hours to 10 days (BR §4.9.10); :func:`presign` defaults to
  :data:`DEFAULT_VALIDITY` and says when to refresh;
* a serial number the CA never issued is answered ``unknown``, never ``good`` (BR §4.9.10);
  an issuer the responder does not serve gets the unsigned ``unauthorized`` status
  (RFC 6960 §2.3);
* a nonce (RFC 6960 §4.4.1, RFC 9654) is echoed when asked — which means signing a fresh
  response for that request, see :class:`Responder`.

Hostile input is bounded (DESIGN rule 7): at most :data:`MAX_REQUEST_BYTES` of DER, at most
:data:`MAX_CERT_IDS` certificates per request, a nonce of at most :data:`MAX_NONCE_BYTES`; the
parser walks the fixed RFC 6960 shape without recursion, so nesting depth cannot grow the work.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Final, Literal, Protocol
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailseal.asn1 import der
from mailseal.cms import fastder
from mailseal.errors import (
    IdentityError,
    MailsealError,
    OcspRequestError,
    StoreUnavailable,
    UsageError,
)
from mailseal.keys.base import HashName, PrivateKey
from mailseal.pki.crl import REASONS, _verify, parse_reason, signature_algorithm, subject_der
from mailseal.pki.issue import key_usage
from mailseal.pki.signing import scheme_for, sign_certificate

__all__ = [
    "DEFAULT_VALIDITY",
    "MAX_CERT_IDS",
    "MAX_NONCE_BYTES",
    "MAX_REQUEST_BYTES",
    "CertId",
    "CertStatus",
    "MemoryResponseCache",
    "OcspRequest",
    "OcspSigner",
    "Presigned",
    "Responder",
    "ResponseSource",
    "Status",
    "StatusSource",
    "decode_get_path",
    "internal_error",
    "make_responder_certificate",
    "malformed_request",
    "parse_request",
    "presign",
    "refresh_time",
    "try_later",
    "unauthorized",
]

Status = Literal["good", "revoked", "unknown"]

#: Largest request accepted. An RFC 5019 request for one certificate is under 100 octets and
#: RFC 6960 requests with a signature and its certificates stay within a few KiB; anything
#: bigger is refused before it is read.
MAX_REQUEST_BYTES: Final = 16 * 1024
#: Most certificates one request may ask about (RFC 5019 §2.1.1 clients ask about one).
MAX_CERT_IDS: Final = 8
#: Longest nonce accepted; RFC 9654 §2.1 allows 1 to 128 octets.
MAX_NONCE_BYTES: Final = 128
#: Longest RFC 6960 §A.1 GET path segment: a maximal request, base64, every character
#: percent-escaped.
MAX_GET_PATH: Final = 3 * 4 * ((MAX_REQUEST_BYTES + 2) // 3)

#: Default thisUpdate → nextUpdate of responses; BR §4.9.10 allows 8 hours to 10 days.
DEFAULT_VALIDITY: Final = _dt.timedelta(days=4)
_MIN_VALIDITY: Final = _dt.timedelta(hours=8)
_MAX_VALIDITY: Final = _dt.timedelta(days=10)

_HASH_OIDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "1.3.14.3.2.26": "sha1",
        "2.16.840.1.101.3.4.2.1": "sha256",
        "2.16.840.1.101.3.4.2.2": "sha384",
        "2.16.840.1.101.3.4.2.3": "sha512",
    }
)
_HASH_OID_BY_NAME: Final[Mapping[str, str]] = MappingProxyType(
    {v: k for k, v in _HASH_OIDS.items()}
)
_DIGEST_SIZE: Final[Mapping[str, int]] = MappingProxyType(
    {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
)

_NONCE_OID: Final = "1.3.6.1.5.5.7.48.1.2"
_BASIC_OID: Final = "1.3.6.1.5.5.7.48.1.1"


# -- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertId:
    """The RFC 6960 §4.1.1 CertID: which certificate a request or response is about.

    ``hash_algorithm`` is ``sha1``, ``sha256``, ``sha384``, ``sha512`` or, for an algorithm
    mailseal does not know, its dotted OID. ``der`` keeps the encoding a request used, so an
    answer repeats it exactly; it does not take part in comparisons.
    """

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes = field(default=b"", compare=False, repr=False)

    def to_der(self) -> bytes:
        """The DER CertID (the request's own encoding when it came from one)."""
        if self.der:
            return self.der
        oid = _HASH_OID_BY_NAME.get(self.hash_algorithm)
        if oid is None:
            raise UsageError(f"cannot encode a CertID with hash {self.hash_algorithm!r}")
        return der.sequence(
            der.sequence(der.oid(oid), der.null()),
            der.octet_string(self.issuer_name_hash),
            der.octet_string(self.issuer_key_hash),
            der.integer(self.serial),
        )


@dataclass(frozen=True, slots=True)
class OcspRequest:
    """What an OCSP request asks: the certificates, and the nonce to echo if any."""

    cert_ids: tuple[CertId, ...]
    nonce: bytes | None = None


def _bad(why: str) -> OcspRequestError:
    return OcspRequestError(f"malformed OCSP request: {why}")


def _tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER TLV at ``pos``: low tag numbers only,
    definite and minimal lengths, inside ``end``."""
    if pos + 2 > end:
        raise _bad("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise _bad("unexpected high tag number")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0:
            raise _bad("indefinite length (BER, not DER)")
        if k > 3 or pos + k > end:
            raise _bad("length out of range")
        n = int.from_bytes(buf[pos : pos + k], "big")
        if n < 0x80 or buf[pos] == 0:
            raise _bad("non-minimal length encoding (not DER)")
        pos += k
    if pos + n > end:
        raise _bad("truncated")
    return tag, pos, pos + n


def _items(
    buf: bytes, start: int, end: int, limit: int, what: str
) -> list[tuple[int, int, int, int]]:
    """(tag, header start, content start, content end) of the child TLVs of a constructed
    value, at most ``limit`` of them."""
    out: list[tuple[int, int, int, int]] = []
    pos = start
    while pos < end:
        if len(out) >= limit:
            raise _bad(f"too many {what} (at most {limit})")
        tag, cs, ce = _tlv(buf, pos, end)
        out.append((tag, pos, cs, ce))
        pos = ce
    return out


def _dotted(body: bytes) -> str:
    if not body or len(body) > 64:
        raise _bad("bad OBJECT IDENTIFIER")
    try:
        return fastder.dotted(body)
    except fastder.Unusual:
        raise _bad("bad OBJECT IDENTIFIER") from None


def _cert_id(buf: bytes, head: int, start: int, end: int) -> CertId:
    parts = _items(buf, start, end, 4, "CertID fields")
    if [p[0] for p in parts] != [0x30, 0x04, 0x04, 0x02]:
        raise _bad("CertID is not (AlgorithmIdentifier, OCTET STRING, OCTET STRING, INTEGER)")
    (_, _, as_, ae), (_, _, ns, ne), (_, _, ks, ke), (_, _, ss, se) = parts
    alg = _items(buf, as_, ae, 2, "AlgorithmIdentifier fields")
    if not alg or alg[0][0] != 0x06:
        raise _bad("hash AlgorithmIdentifier has no OID")
    if len(alg) == 2 and (alg[1][0] != 0x05 or alg[1][2] != alg[1][3]):
        raise _bad("hash AlgorithmIdentifier parameters must be NULL or absent")
    dotted = _dotted(buf[alg[0][2] : alg[0][3]])
    name = _HASH_OIDS.get(dotted, dotted)
    name_hash, key_hash = buf[ns:ne], buf[ks:ke]
    size = _DIGEST_SIZE.get(name)
    if size is not None and (len(name_hash) != size or len(key_hash) != size):
        raise _bad(f"{name} CertID hashes must be {size} octets")
    if not name_hash or len(name_hash) > 64 or not key_hash or len(key_hash) > 64:
        raise _bad("CertID hash of unusual length")
    if not 1 <= se - ss <= 32:
        raise _bad("serial number of unusual length")
    serial = int.from_bytes(buf[ss:se], "big", signed=True)
    return CertId(name, name_hash, key_hash, serial, der=buf[head:end])


def _extensions(buf: bytes, start: int, end: int) -> dict[str, bytes]:
    """The extnValue contents by OID; a critical extension other than the nonce is refused."""
    tag, cs, ce = _tlv(buf, start, end)
    if tag != 0x30 or ce != end:
        raise _bad("Extensions is not a SEQUENCE")
    out: dict[str, bytes] = {}
    for tag, _, xs, xe in _items(buf, cs, ce, 16, "extensions"):
        parts = _items(buf, xs, xe, 3, "Extension fields") if tag == 0x30 else []
        tags = [p[0] for p in parts]
        if tags not in ([0x06, 0x04], [0x06, 0x01, 0x04]):
            raise _bad("Extension is not (OID, [critical,] OCTET STRING)")
        oid = _dotted(buf[parts[0][2] : parts[0][3]])
        critical = False
        if len(parts) == 3:
            _, _, bs, be = parts[1]
            if be - bs != 1 or buf[bs] not in (0x00, 0xFF):
                raise _bad("bad BOOLEAN")
            critical = buf[bs] == 0xFF
        if oid in out:
            raise _bad(f"extension {oid} appears twice")
        if critical and oid != _NONCE_OID:
            raise _bad(f"unsupported critical extension {oid}")
        out[oid] = buf[parts[-1][2] : parts[-1][3]]
    return out


def _nonce(value: bytes) -> bytes:
    if not value:
        raise _bad("empty nonce extension")
    try:
        tag, cs, ce = _tlv(value, 0, len(value))
    except OcspRequestError:
        tag, cs, ce = 0, 0, -1
    if tag != 0x04 or ce != len(value):
        raise _bad("the nonce must be an OCTET STRING (RFC 6960 §4.4.1)")
    if not 1 <= ce - cs <= MAX_NONCE_BYTES:
        raise _bad(f"a nonce has 1 to {MAX_NONCE_BYTES} octets (RFC 9654 §2.1)")
    return value[cs:ce]


def parse_request(request: bytes) -> OcspRequest:
    """Read a DER OCSPRequest (RFC 6960 §4.1.1).

    Raises :class:`~mailseal.errors.OcspRequestError` for anything that is not a well-formed
    request within the limits (:data:`MAX_REQUEST_BYTES`, :data:`MAX_CERT_IDS`,
    :data:`MAX_NONCE_BYTES`), or that carries a critical extension other than the nonce. A
    request signature (optionalSignature) is accepted and not checked: statuses are public.
    """
    if not isinstance(request, bytes | bytearray | memoryview):
        raise _bad("expected bytes")
    buf = bytes(request)
    if len(buf) > MAX_REQUEST_BYTES:
        raise OcspRequestError(
            f"OCSP request of {len(buf)} octets is larger than the {MAX_REQUEST_BYTES} accepted"
        )
    tag, cs, ce = _tlv(buf, 0, len(buf))
    if tag != 0x30 or ce != len(buf):
        raise _bad("not a single DER SEQUENCE")
    top = _items(buf, cs, ce, 2, "OCSPRequest fields")
    if not top or top[0][0] != 0x30 or (len(top) == 2 and top[1][0] != 0xA0):
        raise _bad("OCSPRequest is not (TBSRequest, [0] signature)")
    _, _, ts, te = top[0]
    fields = _items(buf, ts, te, 4, "TBSRequest fields")
    i = 0
    if i < len(fields) and fields[i][0] == 0xA0:  # version [0] EXPLICIT, v1(0) only
        _, _, vs, ve = fields[i]
        if buf[vs:ve] != b"\x02\x01\x00":
            raise _bad("unsupported version")
        i += 1
    if i < len(fields) and fields[i][0] == 0xA1:  # requestorName: not used
        i += 1
    if i >= len(fields) or fields[i][0] != 0x30:
        raise _bad("no requestList")
    _, _, ls, le = fields[i]
    i += 1
    exts: dict[str, bytes] = {}
    if i < len(fields) and fields[i][0] == 0xA2:
        exts = _extensions(buf, fields[i][2], fields[i][3])
        i += 1
    if i != len(fields):
        raise _bad("unexpected fields in TBSRequest")
    cert_ids: list[CertId] = []
    for rtag, _, rs, re_ in _items(buf, ls, le, MAX_CERT_IDS, "certificates in one request"):
        if rtag != 0x30:
            raise _bad("Request is not a SEQUENCE")
        req = _items(buf, rs, re_, 2, "Request fields")
        if not req or req[0][0] != 0x30 or (len(req) == 2 and req[1][0] != 0xA0):
            raise _bad("Request is not (CertID, [0] extensions)")
        if len(req) == 2:
            _extensions(buf, req[1][2], req[1][3])  # refuses unknown critical ones
        cert_ids.append(_cert_id(buf, *req[0][1:]))
    if not cert_ids:
        raise _bad("requestList is empty")
    nonce = _nonce(exts[_NONCE_OID]) if _NONCE_OID in exts else None
    return OcspRequest(tuple(cert_ids), nonce)


def decode_get_path(path_segment: str) -> bytes:
    """The DER request carried in an RFC 6960 §A.1 GET URL: everything after the responder's
    base path, i.e. the URL-encoded base64 of the DER OCSPRequest.

    Percent escapes are undone (``%2B`` → ``+``, ``%2F`` → ``/``, ``%3D`` → ``=``); a space
    is read as ``+`` (what a form decoder makes of an unescaped plus); missing ``=`` padding
    is restored; the base64url alphabet (``-``, ``_``) is accepted too. The result is bounded
    by :data:`MAX_REQUEST_BYTES`; pass it to :func:`parse_request` or :meth:`Responder.respond`.
    """
    if not isinstance(path_segment, str):
        raise _bad("expected the path as text")
    if len(path_segment) > MAX_GET_PATH:
        raise OcspRequestError(f"OCSP GET path longer than {MAX_GET_PATH} characters")
    text = unquote(path_segment.lstrip("/"), errors="strict")
    text = text.replace(" ", "+").replace("-", "+").replace("_", "/").rstrip("=")
    if not text or not text.isascii():
        raise _bad("the GET path is not base64")
    if len(text) % 4 == 1:
        raise _bad("the GET path is not base64 (bad length)")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("the GET path is not base64") from None
    if len(raw) > MAX_REQUEST_BYTES:
        raise OcspRequestError(
            f"OCSP request of {len(raw)} octets is larger than the {MAX_REQUEST_BYTES} accepted"
        )
    return raw


# -- unsigned responses ------------------------------------------------------------------------


@cache
def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


def malformed_request() -> bytes:
    """The unsigned ``malformedRequest`` response (RFC 6960 §2.3)."""
    return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)


def internal_error() -> bytes:
    """The unsigned ``internalError`` response: the responder is in an inconsistent state."""
    return _unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)


def try_later() -> bytes:
    """The unsigned ``tryLater`` response: temporarily unable to answer."""
    return _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)


def unauthorized() -> bytes:
    """The unsigned ``unauthorized`` response: this responder does not answer for that CA."""
    return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)


# -- signing -----------------------------------------------------------------------------------


def _spki_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (without the unused-bits octet)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, cs, ce = fastder.tlv(spki, 0, len(spki))
    kids = fastder.children(spki, cs, ce)
    _, _, bs, be = kids[1]
    return spki[bs + 1 : be]


def _gt(when: _dt.datetime) -> bytes:
    if when.tzinfo is None:
        raise UsageError("OCSP times must be timezone-aware datetimes")
    return b"\x18\x0f" + when.astimezone(_dt.UTC).strftime("%Y%m%d%H%M%SZ").encode("ascii")


def _check_window(this_update: _dt.datetime, next_update: _dt.datetime) -> None:
    if this_update.tzinfo is None or next_update.tzinfo is None:
        raise UsageError("this_update and next_update must be timezone-aware datetimes")
    window = next_update - this_update
    if not _MIN_VALIDITY <= window <= _MAX_VALIDITY:
        raise UsageError(
            f"an OCSP response must be valid for 8 hours to 10 days (S/MIME BR §4.9.10), "
            f"not {window}"
        )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_delegate(ca_cert: x509.Certificate, responder: x509.Certificate) -> None:
    """RFC 6960 §4.2.2.2: issued directly by the CA, with id-kp-OCSPSigning; §4.2.2.2.1: this
    profile also requires id-pkix-ocsp-nocheck, as clients have no other way to check it."""
    who = responder.subject.rfc4514_string()
    try:
        responder.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise IdentityError(f"responder certificate {who!r} was not issued by the CA") from exc
    try:
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        raise IdentityError(f"responder certificate {who!r} lacks id-kp-OCSPSigning")
    try:
        responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    except x509.ExtensionNotFound:
        raise IdentityError(f"responder certificate {who!r} lacks id-pkix-ocsp-nocheck") from None


@dataclass(frozen=True, slots=True)
class CertStatus:
    """A certificate's status as the CA's records have it (what a :class:`StatusSource` says).

    ``reason`` is an RFC 5280 name accepted by :func:`~mailseal.pki.crl.parse_reason`, or None.
    """

    status: Status
    revoked_at: _dt.datetime | None = None
    reason: str | None = None


_GOOD: Final = b"\x80\x00"  # good [0] IMPLICIT NULL
_UNKNOWN: Final = b"\x82\x00"  # unknown [2] IMPLICIT UnknownInfo (NULL)


class OcspSigner:
    """Signs OCSP responses for one CA: with the CA key itself, or with a delegated responder
    certificate (``responder_cert``, see :func:`make_responder_certificate`) and its key.

    ``key`` is the key of whichever certificate signs. Construction checks the delegated
    certificate against RFC 6960 §4.2.2.2 and, with ``check_key`` (default), makes one test
    signature to prove that ``key`` belongs to the signing certificate.
    """

    def __init__(
        self,
        ca_cert: x509.Certificate,
        key: PrivateKey,
        *,
        responder_cert: x509.Certificate | None = None,
        hash_name: HashName | None = None,
        check_key: bool = True,
    ) -> None:
        if not _is_ca(ca_cert):
            raise IdentityError(f"{ca_cert.subject.rfc4514_string()!r} is not a CA certificate")
        if responder_cert is not None:
            _check_delegate(ca_cert, responder_cert)
        self._ca = ca_cert
        self._key = key
        self._responder = responder_cert
        signer = responder_cert or ca_cert
        self._scheme = scheme_for(key, hash_name)
        self._algorithm = signature_algorithm(self._scheme)
        # ResponderID byKey [2] EXPLICIT KeyHash (RFC 6960 §4.2.1, RFC 5019 §2.2.3)
        key_hash = hashlib.sha1(_spki_bits(signer), usedforsecurity=False).digest()
        self._responder_id = der.context(2, der.octet_string(key_hash))
        self._certs = (
            b""
            if responder_cert is None
            else der.context(
                0, der.sequence(responder_cert.public_bytes(serialization.Encoding.DER))
            )
        )
        name = subject_der(ca_cert)
        bits = _spki_bits(ca_cert)
        self._hashes: dict[str, tuple[bytes, bytes]] = {
            h: (hashlib.new(h, name).digest(), hashlib.new(h, bits).digest()) for h in _DIGEST_SIZE
        }
        if check_key:
            probe = b"mailseal OCSP signer key check"
            _verify(signer, key.sign(probe, self._scheme), probe, self._scheme)

    @property
    def ca_certificate(self) -> x509.Certificate:
        return self._ca

    @property
    def responder_certificate(self) -> x509.Certificate:
        """The certificate whose key signs: the delegated responder, or the CA."""
        return self._responder or self._ca

    @property
    def delegated(self) -> bool:
        return self._responder is not None

    @property
    def key_id(self) -> bytes:
        """The SHA-1 hash of the CA's public key: how :class:`StatusSource` names the CA."""
        return self._hashes["sha1"][1]

    def issuer_hashes(self, hash_name: str) -> tuple[bytes, bytes] | None:
        """(issuerNameHash, issuerKeyHash) of the CA for ``hash_name``, None if unsupported."""
        return self._hashes.get(hash_name)

    def serves(self, cert_id: CertId) -> bool:
        """Whether ``cert_id`` names this signer's CA as the issuer."""
        found = self._hashes.get(cert_id.hash_algorithm)
        return found == (cert_id.issuer_name_hash, cert_id.issuer_key_hash)

    def cert_id(self, serial: int, hash_name: str = "sha1") -> CertId:
        """The CertID of the CA's certificate ``serial`` (SHA-1 as RFC 5019 §2.1.1 clients
        use; ``sha256`` for newer ones)."""
        found = self._hashes.get(hash_name)
        if found is None:
            raise UsageError(f"unsupported CertID hash {hash_name!r}; use sha1 or sha256")
        return CertId(hash_name, found[0], found[1], serial)

    def _single(
        self,
        cert_id: CertId,
        status: Status,
        revoked_at: _dt.datetime | None,
        reason: str | None,
        this_update: _dt.datetime,
        next_update: _dt.datetime,
    ) -> bytes:
        if not self.serves(cert_id):
            raise UsageError("that CertID names another issuer than this signer's CA")
        _check_window(this_update, next_update)
        if status == "good":
            cert_status = _GOOD
        elif status == "unknown":
            cert_status = _UNKNOWN
        elif status == "revoked":
            if revoked_at is None:
                raise UsageError("a revoked status needs revoked_at")
            info = _gt(revoked_at)
            if reason is not None:
                code = REASONS[parse_reason(reason)].code
                info += der.context(0, der.tlv(0x0A, bytes((code,))))
            cert_status = der.context(1, info)  # revoked [1] IMPLICIT RevokedInfo
        else:
            raise UsageError(f"unknown certificate status {status!r}")
        if status != "revoked" and (revoked_at is not None or reason is not None):
            raise UsageError(f"a {status} status has no revocation time or reason")
        return der.sequence(
            cert_id.to_der(),
            cert_status,
            _gt(this_update),
            der.context(0, _gt(next_update)),
        )

    def _response(
        self, singles: Sequence[bytes], produced_at: _dt.datetime, nonce: bytes | None
    ) -> bytes:
        exts = b""
        if nonce is not None:
            if not 1 <= len(nonce) <= MAX_NONCE_BYTES:
                raise UsageError(f"a nonce has 1 to {MAX_NONCE_BYTES} octets")
            ext = der.sequence(der.oid(_NONCE_OID), der.octet_string(der.octet_string(nonce)))
            exts = der.context(1, der.sequence(ext))
        tbs = der.sequence(self._responder_id, _gt(produced_at), der.sequence(*singles), exts)
        signature = self._key.sign(tbs, self._scheme)
        basic = der.sequence(tbs, self._algorithm, der.tlv(0x03, b"\x00" + signature), self._certs)
        body = der.sequence(der.oid(_BASIC_OID), der.octet_string(basic))
        return der.sequence(b"\x0a\x01\x00", der.context(0, body))  # successful

    def sign_status(
        self,
        cert_id: CertId,
        status: Status,
        *,
        revoked_at: _dt.datetime | None = None,
        reason: str | None = None,
        this_update: _dt.datetime,
        next_update: _dt.datetime,
        nonce: bytes | None = None,
        produced_at: _dt.datetime | None = None,
    ) -> bytes:
        """A signed, successful DER OCSPResponse about one certificate.

        ``produced_at`` defaults to ``this_update``. ``reason`` is left out when None (the
        ``unspecified`` reason is never written, as on CRLs).
        """
        single = self._single(cert_id, status, revoked_at, reason, this_update, next_update)
        return self._response([single], produced_at or this_update, nonce)

    def sign_statuses(
        self,
        answers: Sequence[tuple[CertId, CertStatus]],
        *,
        this_update: _dt.datetime,
        next_update: _dt.datetime,
        nonce: bytes | None = None,
    ) -> bytes:
        """A signed response with one SingleResponse per (CertID, status), in order."""
        if not answers:
            raise UsageError("an OCSP response needs at least one status")
        singles = [
            self._single(cid, st.status, st.revoked_at, st.reason, this_update, next_update)
            for cid, st in answers
        ]
        return self._response(singles, this_update, nonce)


def make_responder_certificate(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    responder_public_key: CertificatePublicKeyTypes,
    *,
    validity_days: int = 30,
    subject: x509.Name | None = None,
    now: _dt.datetime | None = None,
    hash_name: HashName | None = None,
) -> x509.Certificate:
    """A delegated OCSP responder certificate issued by ``ca_cert`` (RFC 6960 §4.2.2.2).

    It carries id-kp-OCSPSigning as its only extended key usage, id-pkix-ocsp-nocheck (so
    clients do not look up its own revocation, §4.2.2.2.1), a critical keyUsage of
    digitalSignature, basicConstraints CA:FALSE and key identifiers. Because nocheck makes it
    irrevocable in practice, its life is short: ``validity_days`` (default 30) — renew it
    like the responses. The subject defaults to the CA's organisation with the common name
    "<CA common name> OCSP Responder".
    """
    if not _is_ca(ca_cert):
        raise IdentityError(f"{ca_cert.subject.rfc4514_string()!r} is not a CA certificate")
    if not 1 <= validity_days <= 398:
        raise UsageError("validity_days must be from 1 to 398")
    start = (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0)
    if start.tzinfo is None:
        raise UsageError("now must be a timezone-aware datetime")
    if subject is None:
        org = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        cns = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = f"{str(cns[0].value) if cns else 'CA'} OCSP Responder"[:64]
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(org[0].value))] if org else []
        subject = x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(responder_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage({"digital_signature"}), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(responder_public_key), critical=False
        )
        .add_extension(aki, critical=False)
    )
    return sign_certificate(builder, ca_key, hash_name=hash_name)


# -- pre-signing -----------------------------------------------------------------------------


def refresh_time(this_update: _dt.datetime, next_update: _dt.datetime) -> _dt.datetime:
    """When a response must be replaced at the latest (S/MIME BR §4.9.10): half-way through a
    validity under 16 hours; otherwise 8 hours before nextUpdate and no later than 4 days
    after thisUpdate."""
    window = next_update - this_update
    if window < _dt.timedelta(hours=16):
        return this_update + window / 2
    return min(this_update + _dt.timedelta(days=4), next_update - _dt.timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class Presigned:
    """A signed response ready to serve, and when to replace it."""

    issuer_key_hash: bytes  # as in the response's CertID (its length tells the hash)
    serial: int
    der: bytes
    this_update: _dt.datetime
    next_update: _dt.datetime
    refresh_at: _dt.datetime


def presign(
    signer: OcspSigner,
    serial: int,
    status: Status,
    *,
    revoked_at: _dt.datetime | None = None,
    reason: str | None = None,
    now: _dt.datetime,
    validity: _dt.timedelta = DEFAULT_VALIDITY,
    hash_names: Iterable[str] = ("sha1", "sha256"),
) -> tuple[Presigned, ...]:
    """Responses about certificate ``serial``, one per CertID hash clients use (SHA-1 for RFC
    5019 clients, SHA-256 for newer ones), valid from ``now`` for ``validity``.

    A scheduler stores them in the :class:`ResponseSource` and signs anew at
    :attr:`Presigned.refresh_at` (see :func:`refresh_time`), or at once when the status
    changes.
    """
    this_update = now.replace(microsecond=0)
    next_update = this_update + validity
    _check_window(this_update, next_update)
    refresh = refresh_time(this_update, next_update)
    out = []
    for h in hash_names:
        cid = signer.cert_id(serial, h)
        body = signer.sign_status(
            cid,
            status,
            revoked_at=revoked_at,
            reason=reason,
            this_update=this_update,
            next_update=next_update,
        )
        out.append(Presigned(cid.issuer_key_hash, serial, body, this_update, next_update, refresh))
    return tuple(out)


# -- the responder -----------------------------------------------------------------------------


class ResponseSource(Protocol):
    """Pre-signed responses, looked up by the CertID's issuerKeyHash (SHA-1 or SHA-256, as the
    request has it) and serial number. None when there is none: the CA never issued that serial
    or, when a :class:`StatusSource` is also given, none has been signed yet."""

    def get(self, issuer_key_hash: bytes, serial: int) -> bytes | None: ...


class StatusSource(Protocol):
    """The CA's records: the status of certificate ``serial`` of the CA whose public key has
    the SHA-1 hash ``ca_key_id`` (:attr:`OcspSigner.key_id`), None if it never issued it."""

    def status(self, ca_key_id: bytes, serial: int) -> CertStatus | None: ...


class MemoryResponseCache:
    """A :class:`ResponseSource` in memory, for tests and single-node use. Expired responses
    are not served."""

    def __init__(self, *, clock: Callable[[], _dt.datetime] | None = None) -> None:
        self._items: dict[tuple[bytes, int], Presigned] = {}
        self._clock = clock or (lambda: _dt.datetime.now(_dt.UTC))

    def put(self, *responses: Presigned) -> None:
        for p in responses:
            self._items[(p.issuer_key_hash, p.serial)] = p

    def get(self, issuer_key_hash: bytes, serial: int) -> bytes | None:
        found = self._items.get((issuer_key_hash, serial))
        if found is None or found.next_update <= self._clock():
            return None
        return found.der

    def due(self, now: _dt.datetime) -> list[Presigned]:
        """The responses whose refresh time has come."""
        return [p for p in self._items.values() if p.refresh_at <= now]

    def __len__(self) -> int:
        return len(self._items)


class Responder:
    """Answers OCSP requests for one or more CAs (one :class:`OcspSigner` each).

    The hot path does not sign: a request about one certificate without a nonce gets the
    pre-signed response from ``responses`` as is. A fresh response is signed when

    * the request carries a nonce and ``echo_nonce`` is on (the default) and a ``statuses``
      source is given: a nonce binds the response to this request, so it cannot come from a
      cache. Each such request costs one signature (about a millisecond in software, more in
      an HSM), which lets any client make the responder sign at will; RFC 5019 §4 lets a
      responder ignore nonces, and ``echo_nonce=False`` (or no ``statuses`` source) does so —
      the pre-signed response goes out without the nonce;
    * the request asks about several certificates (with a ``statuses`` source; without one
      only the first is answered, and a client finds no answer for the others: it fails
      closed);
    * no pre-signed response exists: the status comes from ``statuses``, and a serial the CA
      never issued is answered ``unknown``. Recent ``unknown`` answers are kept (at most
      ``unknown_cache`` of them) so that repeating the question does not cost a signature.

    :meth:`respond` never raises for a bad request: malformed input gets ``malformedRequest``,
    an issuer not served gets ``unauthorized``, a :class:`~mailseal.errors.StoreUnavailable`
    from a source gets ``tryLater`` and any other mailseal error ``internalError``.
    """

    def __init__(
        self,
        signers: Iterable[OcspSigner],
        *,
        responses: ResponseSource | None = None,
        statuses: StatusSource | None = None,
        validity: _dt.timedelta = DEFAULT_VALIDITY,
        echo_nonce: bool = True,
        clock: Callable[[], _dt.datetime] | None = None,
        unknown_cache: int = 4096,
    ) -> None:
        self._index: dict[tuple[str, bytes, bytes], OcspSigner] = {}
        for s in signers:
            for h in _DIGEST_SIZE:
                hashes = s.issuer_hashes(h)
                if hashes is not None:
                    self._index[(h, *hashes)] = s
        if not self._index:
            raise UsageError("a responder needs at least one signer")
        if not _MIN_VALIDITY <= validity <= _MAX_VALIDITY:
            raise UsageError("validity must be from 8 hours to 10 days (S/MIME BR §4.9.10)")
        self._responses = responses
        self._statuses = statuses
        self._validity = validity
        self._echo_nonce = echo_nonce
        self._clock = clock or (lambda: _dt.datetime.now(_dt.UTC))
        self._unknown: dict[tuple[bytes, int, bytes], tuple[bytes, _dt.datetime]] = {}
        self._unknown_max = max(0, unknown_cache)

    def respond(self, request_der: bytes) -> bytes:
        """The DER OCSPResponse to a DER OCSPRequest."""
        try:
            request = parse_request(request_der)
        except OcspRequestError:
            return malformed_request()
        signers = [
            self._index.get((c.hash_algorithm, c.issuer_name_hash, c.issuer_key_hash))
            for c in request.cert_ids
        ]
        signer = signers[0]
        if signer is None or any(s is not signer for s in signers):
            return unauthorized()
        try:
            return self._answer(signer, request)
        except StoreUnavailable:
            return try_later()
        except MailsealError:
            return internal_error()

    def _answer(self, signer: OcspSigner, request: OcspRequest) -> bytes:
        cert_ids = request.cert_ids
        nonce = request.nonce if self._echo_nonce and self._statuses is not None else None
        first = cert_ids[0]
        if (
            self._responses is not None
            and nonce is None
            and (len(cert_ids) == 1 or self._statuses is None)
        ):
            hit = self._responses.get(first.issuer_key_hash, first.serial)
            if hit is not None:
                return hit
        if self._statuses is None:
            cert_ids = (first,)
        answers = []
        for cid in cert_ids:
            found = None
            if self._statuses is not None:
                found = self._statuses.status(signer.key_id, cid.serial)
            answers.append((cid, found or CertStatus("unknown")))
        cacheable = len(answers) == 1 and answers[0][1].status == "unknown" and nonce is None
        now = self._clock().replace(microsecond=0)
        if cacheable:
            key = (first.issuer_key_hash, first.serial, first.to_der())
            cached = self._unknown.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
        body = signer.sign_statuses(
            answers, this_update=now, next_update=now + self._validity, nonce=nonce
        )
        if cacheable and self._unknown_max:
            if len(self._unknown) >= self._unknown_max:
                self._unknown.clear()
            self._unknown[key] = (body, refresh_time(now, now + self._validity))
        return body
