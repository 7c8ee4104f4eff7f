"""Certificate revocation lists for mailseal's internal CA (RFC 5280 §5).

:func:`build_crl` writes a complete or delta v2 CRL as DER, signed with any
:class:`~mailseal.keys.base.PrivateKey` (a key in a file or in an HSM). It is sans-IO: the
revoked certificates come in as an iterable, so a caller can stream them from the database,
and the signed bytes go back to the caller to publish.

The profile (CA/Browser Forum S/MIME Baseline Requirements §4.9.7 and §7.2, RFC 5280 §5):

* version v2, signature algorithm from the key (BR §7.1.3.2), issuer copied byte for byte
  from the issuer certificate's subject;
* ``nextUpdate`` − ``thisUpdate`` at most 10 days for a CRL of end-entity certificates and at
  most 12 months (365 days) for a CRL of subordinate CA certificates (BR §4.9.7);
* CRL extensions: authorityKeyIdentifier (the issuer's subjectKeyIdentifier, RFC 5280
  §5.2.1), cRLNumber (§5.2.3), a critical issuingDistributionPoint naming the URL the CRL is
  published at and its scope — ``onlyContainsUserCerts`` or ``onlyContainsCACerts`` (§5.2.5) —,
  a critical deltaCRLIndicator on a delta CRL (§5.2.4) and, on a complete CRL, freshestCRL
  pointing to the delta CRL (§5.2.6; never on a delta CRL);
* entry extensions: reasonCode, omitted when there is no reason — ``unspecified`` is never
  written (RFC 5280 §5.3.1, BR §7.2.2) —, and invalidityDate when one is known (§5.3.2).

A CA may have a million revoked certificates. cryptography's CRL builder makes one Python
object per entry and is too slow and too large for that, so the to-be-signed list is written
here directly: each entry is a few bytes concatenated from precomputed pieces. The result is
checked before it is returned: the signature is verified with the issuer certificate's public
key, so a CRL signed by the wrong key is never handed out.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from mailseal.asn1 import der
from mailseal.cms import fastder
from mailseal.errors import AlgorithmError, IdentityError, UsageError
from mailseal.keys.base import HashName, PrivateKey, SignatureScheme
from mailseal.keys.software import hash_algorithm
from mailseal.pki.signing import scheme_for

__all__ = [
    "MAX_WINDOW",
    "REASONS",
    "Reason",
    "RevokedEntry",
    "Scope",
    "build_crl",
    "parse_reason",
    "signature_algorithm",
]

#: Which certificates a CRL covers: ``user`` (end-entity certificates, issuingDistributionPoint
#: onlyContainsUserCerts) or ``ca`` (subordinate CA certificates, onlyContainsCACerts).
Scope = Literal["user", "ca"]

#: The longest nextUpdate − thisUpdate per scope, S/MIME BR §4.9.7: ten days for the status of
#: subscriber certificates, twelve months for the status of subordinate CA certificates.
MAX_WINDOW: Final[Mapping[str, _dt.timedelta]] = MappingProxyType(
    {"user": _dt.timedelta(days=10), "ca": _dt.timedelta(days=365)}
)

#: RFC 5280 §4.1.2.2: serial numbers are positive and at most 20 octets long.
_MAX_SERIAL_OCTETS: Final = 20


class Reason(NamedTuple):
    """An RFC 5280 §5.3.1 CRLReason that mailseal writes, and the CRL scopes that may carry it."""

    flag: x509.ReasonFlags
    code: int
    scopes: frozenset[str]


_BOTH: Final = frozenset({"user", "ca"})

#: The revocation reasons mailseal writes (RFC 5280 §5.3.1 codes), S/MIME BR §7.2.2 and §4.9.1:
#: ``cACompromise`` only applies to subordinate CA certificates. ``unspecified`` is expressed by
#: leaving the reason out.
REASONS: Final[Mapping[str, Reason]] = MappingProxyType(
    {
        "keyCompromise": Reason(x509.ReasonFlags.key_compromise, 1, _BOTH),
        "cACompromise": Reason(x509.ReasonFlags.ca_compromise, 2, frozenset({"ca"})),
        "affiliationChanged": Reason(x509.ReasonFlags.affiliation_changed, 3, _BOTH),
        "superseded": Reason(x509.ReasonFlags.superseded, 4, _BOTH),
        "cessationOfOperation": Reason(x509.ReasonFlags.cessation_of_operation, 5, _BOTH),
        "privilegeWithdrawn": Reason(x509.ReasonFlags.privilege_withdrawn, 9, _BOTH),
    }
)

# RFC 5280 reasons that are refused, and why.
_REFUSED: Final[Mapping[str, str]] = MappingProxyType(
    {
        "unspecified": "leave the reason out instead: 'unspecified' is never written "
        "(RFC 5280 §5.3.1, S/MIME BR §7.2.2)",
        "certificateHold": "certificate suspension is not allowed by the S/MIME BR (§4.9.13)",
        "removeFromCRL": "only used to lift a certificate hold, which the S/MIME BR forbid",
        "aACompromise": "applies to attribute certificates, which this CA does not issue",
    }
)


def _fold(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_BY_FOLDED: Final[Mapping[str, str]] = MappingProxyType(
    {_fold(n): n for n in (*REASONS, *_REFUSED)}
)


def parse_reason(text: str) -> str:
    """The canonical RFC 5280 name of a revocation reason given as ``keyCompromise``,
    ``key-compromise``, ``KEY_COMPROMISE``... (case, hyphens and underscores do not matter).

    Raises :class:`~mailseal.errors.UsageError` for a reason that is unknown or refused
    (``unspecified``, ``certificateHold``...), naming the valid ones.
    """
    valid = ", ".join(REASONS)
    name = _BY_FOLDED.get(_fold(text))
    if name is None:
        raise UsageError(f"unknown revocation reason {text!r}; choose one of: {valid}")
    refused = _REFUSED.get(name)
    if refused is not None:
        raise UsageError(f"revocation reason {name!r} is refused: {refused}; valid: {valid}")
    return name


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    """One revoked certificate as a CRL lists it.

    ``reason`` is a name from :data:`REASONS` (other spellings go through
    :func:`parse_reason`) or None when there is no reason to give; ``invalidity_date`` is when
    the key is known or suspected to have been compromised, if earlier than ``revoked_at``.
    """

    serial: int
    revoked_at: _dt.datetime
    reason: str | None = None
    invalidity_date: _dt.datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.serial, int) or self.serial <= 0:
            raise UsageError(
                f"a certificate serial number must be a positive integer: {self.serial!r}"
            )
        if self.serial.bit_length() > 8 * _MAX_SERIAL_OCTETS - 1:
            raise UsageError(f"serial number {self.serial:#x} is longer than 20 octets")
        if self.revoked_at.tzinfo is None:
            raise UsageError("revoked_at must be a timezone-aware datetime")
        if self.invalidity_date is not None and self.invalidity_date.tzinfo is None:
            raise UsageError("invalidity_date must be a timezone-aware datetime")
        if self.reason is not None and self.reason not in REASONS:
            object.__setattr__(self, "reason", parse_reason(self.reason))


# -- signature algorithms ----------------------------------------------------------------------

_RSA = {"sha256": "1.2.840.113549.1.1.11", "sha384": "1.2.840.113549.1.1.12"}
_RSA["sha512"] = "1.2.840.113549.1.1.13"
_ECDSA = {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3"}
_ECDSA["sha512"] = "1.2.840.10045.4.3.4"

# AlgorithmIdentifier DER per (scheme kind, hash): RFC 4055 §5 (RSA: NULL parameters), RFC 5758
# §3.2 (ECDSA: parameters absent), RFC 8410 §3 (EdDSA: parameters absent, the hash is implied).
_SIGNATURE_ALGORITHMS: Final[Mapping[tuple[str, str | None], bytes]] = MappingProxyType(
    {
        **{("rsa-pkcs1", h): der.sequence(der.oid(o), der.null()) for h, o in _RSA.items()},
        **{("ecdsa", h): der.sequence(der.oid(o)) for h, o in _ECDSA.items()},
        ("ed25519", None): der.sequence(der.oid("1.3.101.112")),
        ("ed448", None): der.sequence(der.oid("1.3.101.113")),
    }
)


def signature_algorithm(scheme: SignatureScheme) -> bytes:
    """The DER AlgorithmIdentifier of signatures made with ``scheme``."""
    h = None if scheme.kind in ("ed25519", "ed448") else scheme.hash
    found = _SIGNATURE_ALGORITHMS.get((scheme.kind, h))
    if found is None:
        raise AlgorithmError(
            f"no CRL/OCSP signature algorithm for {scheme.kind} with {scheme.hash}"
        )
    return found


def _verify(cert: x509.Certificate, signature: bytes, data: bytes, scheme: SignatureScheme) -> None:
    """Check that the key signed ``data`` as the holder of ``cert``."""
    pub = cert.public_key()
    try:
        if isinstance(pub, rsa.RSAPublicKey) and scheme.kind == "rsa-pkcs1":
            pub.verify(signature, data, padding.PKCS1v15(), hash_algorithm(scheme.hash))
        elif isinstance(pub, ec.EllipticCurvePublicKey) and scheme.kind == "ecdsa":
            pub.verify(signature, data, ec.ECDSA(hash_algorithm(scheme.hash)))
        elif isinstance(pub, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            pub.verify(signature, data)
        else:
            raise InvalidSignature
    except InvalidSignature:
        raise IdentityError(
            f"the signing key does not belong to {cert.subject.rfc4514_string()!r}: "
            "refusing to publish what its certificate cannot verify"
        ) from None


# -- DER pieces ------------------------------------------------------------------------------


def subject_der(cert: x509.Certificate) -> bytes:
    """The subject Name of ``cert`` exactly as encoded in the certificate."""
    tbs = cert.tbs_certificate_bytes
    try:
        _, cs, ce = fastder.tlv(tbs, 0, len(tbs))
        kids = fastder.children(tbs, cs, ce)
        first = 1 if kids[0][0] == 0xA0 else 0  # [0] version
        # serialNumber, signature, issuer, validity, subject
        _, start, _, end = kids[first + 4]
    except (fastder.Unusual, IndexError):  # pragma: no cover - cryptography parsed it already
        raise IdentityError("cannot read the subject of the issuer certificate") from None
    return tbs[start:end]


def _time(when: _dt.datetime) -> bytes:
    """RFC 5280 §5.1.2.4 Time: UTCTime through 2049, GeneralizedTime from 2050."""
    if when.tzinfo is None:
        raise UsageError("CRL times must be timezone-aware datetimes")
    return der.signing_time(when)


def _generalized(when: _dt.datetime) -> bytes:
    if when.tzinfo is None:
        raise UsageError("CRL times must be timezone-aware datetimes")
    text = when.astimezone(_dt.UTC).strftime("%Y%m%d%H%M%SZ").encode("ascii")
    return der.tlv(0x18, text)


def _extension(oid: str, value: bytes, *, critical: bool = False) -> bytes:
    crit = b"\x01\x01\xff" if critical else b""
    return der.sequence(der.oid(oid), crit, der.octet_string(value))


_AKI = "2.5.29.35"
_CRL_NUMBER = "2.5.29.20"
_DELTA_CRL_INDICATOR = "2.5.29.27"
_ISSUING_DP = "2.5.29.28"
_FRESHEST_CRL = "2.5.29.46"
_REASON_CODE = "2.5.29.21"
_INVALIDITY_DATE = "2.5.29.24"


def _key_identifier(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _check_issuer(cert: x509.Certificate) -> None:
    name = cert.subject.rfc4514_string()
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise IdentityError(f"{name!r} is not a CA certificate: it cannot issue CRLs")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.crl_sign:
        raise IdentityError(f"{name!r} lacks the cRLSign key usage: it cannot sign CRLs")


def _check_url(what: str, url: str) -> None:
    """CRL locations are HTTP URLs (S/MIME BR §7.1.2.3 cRLDistributionPoints)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not url.isascii():
        raise UsageError(f"{what} must be an http:// URL with a host name, not {url!r}")


def _number(value: int, what: str) -> int:
    if not isinstance(value, int) or value < 0 or value.bit_length() > 8 * _MAX_SERIAL_OCTETS - 1:
        raise UsageError(f"{what} must be an integer from 0 to 2^159 - 1 (RFC 5280 §5.2.3)")
    return value


def _crl_extensions(
    issuer_cert: x509.Certificate,
    *,
    number: int,
    scope: Scope,
    idp_url: str | None,
    delta_base: int | None,
    freshest_url: str | None,
) -> bytes:
    aki = x509.AuthorityKeyIdentifier(_key_identifier(issuer_cert), None, None)
    exts = [
        _extension(_AKI, aki.public_bytes()),
        _extension(_CRL_NUMBER, x509.CRLNumber(number).public_bytes()),
    ]
    if delta_base is not None:
        indicator = x509.DeltaCRLIndicator(delta_base).public_bytes()
        exts.append(_extension(_DELTA_CRL_INDICATOR, indicator, critical=True))
    idp = x509.IssuingDistributionPoint(
        full_name=None if idp_url is None else [x509.UniformResourceIdentifier(idp_url)],
        relative_name=None,
        only_contains_user_certs=scope == "user",
        only_contains_ca_certs=scope == "ca",
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    exts.append(_extension(_ISSUING_DP, idp.public_bytes(), critical=True))
    if freshest_url is not None:
        point = x509.DistributionPoint(
            [x509.UniformResourceIdentifier(freshest_url)], None, None, None
        )
        exts.append(_extension(_FRESHEST_CRL, x509.FreshestCRL([point]).public_bytes()))
    return der.context(0, der.sequence(*exts))


def _reason_extensions(scope: Scope) -> dict[str | None, bytes]:
    out: dict[str | None, bytes] = {None: b""}
    for name, r in REASONS.items():
        if scope in r.scopes:
            out[name] = _extension(_REASON_CODE, der.tlv(0x0A, bytes((r.code,))))
    return out


# Two-octet DER headers by content length (every entry piece is shorter than 128 octets).
_SEQ_HEADERS: Final = tuple(bytes((0x30, n)) for n in range(128))
_INT_HEADERS: Final = tuple(bytes((0x02, n)) for n in range(128))
_TWO_DIGITS: Final = tuple(f"{n:02d}".encode("ascii") for n in range(100))


def _day_prefix(t: _dt.datetime) -> bytes:
    """Tag, length and date digits of the RFC 5280 §5.1.2.4 Time for the day of ``t`` (UTC)."""
    if 1950 <= t.year < 2050:
        return b"\x17\x0d" + t.strftime("%y%m%d").encode("ascii")
    return b"\x18\x0f" + t.strftime("%Y%m%d").encode("ascii")


def _entries(entries: Iterable[RevokedEntry], scope: Scope) -> tuple[bytearray, int]:
    """The DER of every revokedCertificates entry, concatenated, and how many there were.

    Every entry is shorter than 128 octets (INTEGER ≤ 23, Time ≤ 17, extensions ≤ 40), so
    each header is two octets from a table; the reason extensions are precomputed and a time
    is the day's prefix (cached) plus three two-digit pieces.
    """
    reasons = _reason_extensions(scope)
    seq_h, int_h, two = _SEQ_HEADERS, _INT_HEADERS, _TWO_DIGITS
    max_bits = 8 * _MAX_SERIAL_OCTETS - 1
    out = bytearray()
    n = 0
    utc = _dt.UTC
    inv_prefix = b"\x30\x18" + der.oid(_INVALIDITY_DATE) + b"\x04\x11"
    days: dict[int, bytes] = {}
    last_when: _dt.datetime | None = None
    last_time = b""
    for e in entries:
        serial = e.serial
        bits = serial.bit_length()
        if serial <= 0 or bits > max_bits:
            raise UsageError(f"serial number {serial!r} is not a positive number of ≤ 20 octets")
        sb = serial.to_bytes((bits + 8) >> 3, "big")
        when = e.revoked_at
        if when is not last_when:
            tz = when.tzinfo
            if tz is not utc:
                if tz is None:
                    raise UsageError(f"revocation time of serial {serial:#x} has no time zone")
                t = when.astimezone(utc)
            else:
                t = when
            day = t.toordinal()
            prefix = days.get(day)
            if prefix is None:
                if len(days) > 4096:
                    days.clear()
                prefix = days[day] = _day_prefix(t)
            last_time = b"".join((prefix, two[t.hour], two[t.minute], two[t.second], b"Z"))
            last_when = when
        try:
            ext = reasons[e.reason]
        except KeyError:
            raise UsageError(
                f"serial {serial:#x}: reason {e.reason!r} cannot appear on a {scope} CRL"
            ) from None
        inv = e.invalidity_date
        if inv is not None:
            if inv.tzinfo is None:
                raise UsageError(f"invalidity date of serial {serial:#x} has no time zone")
            gt = inv.astimezone(utc).strftime("%Y%m%d%H%M%SZ").encode("ascii")
            ext = ext + inv_prefix + b"\x18\x0f" + gt
        if ext:
            body = b"".join((int_h[len(sb)], sb, last_time, seq_h[len(ext)], ext))
        else:
            body = b"".join((int_h[len(sb)], sb, last_time))
        out += seq_h[len(body)]
        out += body
        n += 1
    return out, n


def build_crl(
    issuer_cert: x509.Certificate,
    key: PrivateKey,
    entries: Iterable[RevokedEntry],
    *,
    number: int,
    this_update: _dt.datetime,
    next_update: _dt.datetime,
    idp_url: str | None,
    delta_base: int | None = None,
    scope: Scope = "user",
    freshest_url: str | None = None,
    hash_name: HashName | None = None,
) -> bytes:
    """A DER v2 CRL issued by ``issuer_cert`` and signed with its ``key``.

    ``entries`` may be any iterable (a generator over database rows is fine); it is consumed
    once. ``number`` is the cRLNumber. ``idp_url`` is where this CRL is published (the
    issuingDistributionPoint fullName); ``scope`` says whether it lists end-entity (``user``)
    or subordinate CA (``ca``) certificates. With ``delta_base`` the CRL is a delta CRL on the
    complete CRL of that number, and ``entries`` must be those revoked since that CRL was
    issued. ``freshest_url`` (complete CRLs only) tells relying parties where the delta CRL is.

    Raises :class:`~mailseal.errors.UsageError` for a window longer than the BR allow
    (:data:`MAX_WINDOW`), a bad number or entry; :class:`~mailseal.errors.IdentityError` when
    ``issuer_cert`` is not a CRL-signing CA or ``key`` is not its key.
    """
    if scope not in MAX_WINDOW:
        raise UsageError(f"unknown CRL scope {scope!r}; choose 'user' or 'ca'")
    if this_update.tzinfo is None or next_update.tzinfo is None:
        raise UsageError("this_update and next_update must be timezone-aware datetimes")
    window = next_update - this_update
    if window <= _dt.timedelta(0):
        raise UsageError("next_update must be later than this_update")
    if window > MAX_WINDOW[scope]:
        raise UsageError(
            f"next_update is {window} after this_update; a CRL of "
            f"{'subscriber' if scope == 'user' else 'subordinate CA'} certificates may cover at "
            f"most {MAX_WINDOW[scope].days} days (S/MIME BR §4.9.7)"
        )
    _number(number, "the CRL number")
    for what, url in (("idp_url", idp_url), ("freshest_url", freshest_url)):
        if url is not None:
            _check_url(what, url)
    if delta_base is not None:
        _number(delta_base, "the base CRL number")
        if delta_base >= number:
            raise UsageError("a delta CRL's number must be greater than its base CRL's number")
        if freshest_url is not None:
            raise UsageError("a delta CRL carries no freshestCRL extension (RFC 5280 §5.2.6)")
    _check_issuer(issuer_cert)
    scheme = scheme_for(key, hash_name)
    algorithm = signature_algorithm(scheme)

    body, count = _entries(entries, scope)
    revoked = b"\x30" + der.encode_length(len(body)) if count else b""
    head = b"".join(
        (
            b"\x02\x01\x01",  # version v2
            algorithm,
            subject_der(issuer_cert),
            _time(this_update),
            _time(next_update),
            revoked,
        )
    )
    tail = _crl_extensions(
        issuer_cert,
        number=number,
        scope=scope,
        idp_url=idp_url,
        delta_base=delta_base,
        freshest_url=freshest_url,
    )
    size = len(head) + len(body) + len(tail)
    tbs = b"".join((b"\x30", der.encode_length(size), head, body, tail))
    del body
    signature = key.sign(tbs, scheme)
    _verify(issuer_cert, signature, tbs, scheme)
    bits = b"\x03" + der.encode_length(len(signature) + 1) + b"\x00" + signature
    total = len(tbs) + len(algorithm) + len(bits)
    return b"".join((b"\x30", der.encode_length(total), tbs, algorithm, bits))
