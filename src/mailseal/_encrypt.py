"""The everyday operations behind ``mailseal.encrypt`` and ``mailseal.encrypt_stream``: check
each recipient's certificate, choose the algorithms, and write the enveloped message.

Kept apart from decryption and verification (:mod:`mailseal._open`) so that a program that
only encrypts never loads them.
"""

from __future__ import annotations

import datetime as _dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x448, x25519

from mailseal._memo import per_object
from mailseal.asn1 import oids as O
from mailseal.cms.content import CIPHERS, ContentCipher
from mailseal.cms.enveloped import EnvelopeRecipient
from mailseal.cms.recipients import KeyTransportChoice
from mailseal.errors import IdentityError, UsageError
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime import envelope as E
from mailseal.validation.certinfo import certificate_addresses, name_of, purpose_problems
from mailseal.validation.encryption import EncryptionReport

if TYPE_CHECKING:
    from mailseal.validation.trust import Trust
    from mailseal.validation.verdict import CertificateVerdict

__all__ = [
    "Recipient",
    "check_recipient",
    "choose_algorithms",
    "encrypt",
    "encrypt_stream",
    "validate_recipients",
]

#: Content ciphers in order of preference (RFC 8551 §2.7: AES-256-GCM preferred, AES-128-CBC
#: the baseline everyone reads).
_PREFERENCE = ("aes-256-gcm", "aes-128-gcm", "aes-256-cbc", "aes-192-cbc", "aes-128-cbc")


@dataclass(frozen=True, slots=True)
class Recipient:
    """A recipient certificate and, when known, the SMIMECapabilities it announced."""

    certificate: x509.Certificate
    capabilities: tuple[str, ...] | None = None


@per_object()
def _who(cert: x509.Certificate) -> str:
    addrs = certificate_addresses(cert)
    return addrs[0] if addrs else name_of(cert)


def check_recipient(cert: x509.Certificate, *, at: _dt.datetime | None = None) -> None:
    """Refuse a certificate that cannot be used to encrypt to (dates, key usage, purpose)."""
    now = at or _dt.datetime.now(_dt.UTC)
    try:
        not_before, not_after = _validity(cert)
    except Exception as exc:
        raise IdentityError(
            f"cannot encrypt to {_who(cert)}: the certificate is unusable ({exc})"
        ) from None
    if now < not_before:
        raise IdentityError(f"cannot encrypt to {_who(cert)}: the certificate is not valid yet")
    if now > not_after:
        raise IdentityError(
            f"cannot encrypt to {_who(cert)}: the certificate expired on "
            f"{not_after.date().isoformat()}"
        )
    problems = _usage_problems(cert)
    if problems:
        raise IdentityError(f"cannot encrypt to {_who(cert)}: " + "; ".join(problems))


@per_object()
def _validity(cert: x509.Certificate) -> tuple[_dt.datetime, _dt.datetime]:
    return cert.not_valid_before_utc, cert.not_valid_after_utc


@per_object()
def _public_key_of(cert: x509.Certificate) -> object:
    return cert.public_key()


@per_object()
def _usage_problems(cert: x509.Certificate) -> tuple[str, ...]:
    """What keeps a certificate from receiving encrypted mail, whatever the date (cached)."""
    try:
        pub = cert.public_key()
    except Exception as exc:
        return (f"the certificate's public key is unusable ({exc})",)
    problems = purpose_problems(cert, "encrypt", allow_any_eku=False)
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except Exception:  # absent, or malformed (reported by purpose_problems)
        ku = None
    if ku is not None:
        if isinstance(pub, rsa.RSAPublicKey) and not ku.key_encipherment:
            problems.append("an RSA key needs keyEncipherment in its key usage")
        if (
            isinstance(pub, ec.EllipticCurvePublicKey | x25519.X25519PublicKey | x448.X448PublicKey)
            and not ku.key_agreement
        ):
            problems.append("an EC key needs keyAgreement in its key usage")
    if not isinstance(
        pub,
        rsa.RSAPublicKey | ec.EllipticCurvePublicKey | x25519.X25519PublicKey | x448.X448PublicKey,
    ):
        problems.append(f"its {type(pub).__name__} key cannot receive encrypted mail")
    return tuple(dict.fromkeys(problems))


def validate_recipients(
    trust: Trust, certificates: Sequence[x509.Certificate]
) -> list[CertificateVerdict]:
    """Refuse to encrypt to a certificate that ``trust`` does not find valid for encryption
    (untrusted, revoked, expired, wrong purpose, weak, or revocation unknown in hard mode).
    Returns the verdicts, which say whether revocation was checked."""
    verdicts = []
    for cert in certificates:
        verdict = trust.validate(cert, purpose="encrypt")
        if not verdict.valid:
            reasons = "; ".join(p.message for p in verdict.problems) or verdict.status.value
            raise IdentityError(
                f"cannot encrypt to {_who(cert)}: {verdict.status.value}: {reasons}"
            )
        verdicts.append(verdict)
    return verdicts


def choose_algorithms(
    recipients: Sequence[Recipient],
    *,
    cipher: str | None = None,
    key_transport: KeyTransportChoice | None = None,
    compatible: bool = False,
    use_ski: bool = False,
) -> tuple[ContentCipher, list[EnvelopeRecipient], EncryptionReport]:
    """Pick the content cipher and each recipient's key transport (RFC 8551 §2.7.1).

    An explicit choice wins; ``compatible`` gives AES-256-CBC with RSA PKCS#1 v1.5 for old
    clients; otherwise the strongest cipher every recipient announced (recipients whose
    capabilities are unknown take the default, AES-256-GCM with RSAES-OAEP).
    """
    if cipher is not None:
        if cipher not in CIPHERS:
            raise UsageError(f"unknown cipher {cipher!r}; choose one of {', '.join(_PREFERENCE)}")
        chosen = CIPHERS[cipher]
        reason = "chosen by the caller"
    elif compatible:
        chosen = CIPHERS["aes-256-cbc"]
        reason = "compatible mode for older clients"
    else:
        known = [set(r.capabilities) for r in recipients if r.capabilities is not None]
        chosen = CIPHERS[_PREFERENCE[0]]
        reason = "the default (no recipient announced its capabilities)"
        if known:
            for name in _PREFERENCE:
                if all(CIPHERS[name].oid in caps for caps in known):
                    chosen = CIPHERS[name]
                    reason = "the strongest cipher every recipient announced"
                    break
            else:
                chosen = CIPHERS["aes-128-cbc"]
                reason = "no cipher in common: AES-128-CBC, which every S/MIME client reads"
    env: list[EnvelopeRecipient] = []
    report: list[tuple[str, str]] = []
    for r in recipients:
        pub = _public_key_of(r.certificate)
        if isinstance(pub, rsa.RSAPublicKey):
            if key_transport is not None:
                kt: KeyTransportChoice = key_transport
            elif compatible or (r.capabilities is not None and O.RSAES_OAEP not in r.capabilities):
                kt = "pkcs1v15"
            else:
                kt = "oaep"
            how = "RSAES-OAEP (SHA-256)" if kt == "oaep" else "RSAES-PKCS1-v1_5"
        else:
            kt = "oaep"
            how = (
                "ECDH key agreement"
                if isinstance(pub, ec.EllipticCurvePublicKey)
                else "X25519/X448 key agreement"
            )
        env.append(EnvelopeRecipient(r.certificate, kt, use_ski))
        report.append((_who(r.certificate), how))
    smime_type = "authEnveloped-data" if chosen.aead else "enveloped-data"
    return chosen, env, EncryptionReport(chosen.name, smime_type, tuple(report), reason)


def _recipients(
    recipients: Sequence[x509.Certificate | Recipient],
    sender: x509.Certificate | None,
) -> list[Recipient]:
    out: list[Recipient] = []
    given = [*recipients, *([sender] if sender is not None else [])]
    seen: set[x509.Certificate] = set()
    for r in given:
        rec = r if isinstance(r, Recipient) else Recipient(r)
        if len(given) > 1:  # equal certificates given twice count once (hashing one costs µs)
            if rec.certificate in seen:
                continue
            seen.add(rec.certificate)
        out.append(rec)
    if not out:
        raise UsageError("at least one recipient is needed")
    return out


def encrypt_stream(
    source: BinaryIO,
    sink: BinaryIO,
    recipients: Sequence[x509.Certificate | Recipient],
    *,
    sender: x509.Certificate | None = None,
    cipher: str | None = None,
    key_transport: KeyTransportChoice | None = None,
    compatible: bool = False,
    ski: bool = False,
    at: _dt.datetime | None = None,
    trust: Trust | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> EncryptionReport:
    """Encrypt the message in ``source`` to ``recipients`` (and ``sender``, so the sender can
    read the sent copy). Every certificate is checked first — with ``trust``, fully validated
    for encryption (path, revocation) — and the report says what was chosen."""
    recs = _recipients(recipients, sender)
    for r in recs:
        check_recipient(r.certificate, at=at)
    if trust is not None:
        validate_recipients(trust, [r.certificate for r in recs])
    chosen, env, report = choose_algorithms(
        recs, cipher=cipher, key_transport=key_transport, compatible=compatible, use_ski=ski
    )
    E.encrypt_stream(source, sink, env, chosen, limits=limits)
    return report


def encrypt(
    message: bytes,
    recipients: Sequence[x509.Certificate | Recipient],
    **options: object,
) -> bytes:
    """Encrypt a message held in memory. Options as for :func:`encrypt_stream`."""
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(message), out, recipients, **options)  # type: ignore[arg-type]
    return out.getvalue()
