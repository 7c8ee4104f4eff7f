"""What one certificate says by itself, without path validation: its names as text, the mail
addresses it holds, and whether its key usage and extended key usage fit S/MIME
(RFC 8550 §4.4).

Encrypting to a recipient needs these checks but not path validation, so they live apart from
:mod:`mailseal.validation.trust` and its dependencies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from mailseal._memo import per_object
from mailseal.asn1 import oids as O

__all__ = ["certificate_addresses", "issuer_of", "match_address", "name_of", "purpose_problems"]

_SMTP_UTF8 = ObjectIdentifier(O.SMTP_UTF8_MAILBOX)


def _safe(fn: Callable[[], str]) -> str:
    """A certificate field as text, or a placeholder when the field cannot be decoded."""
    try:
        return fn()
    except Exception:  # hostile certificates carried in a message
        return "(undecodable)"


def name_of(cert: x509.Certificate) -> str:
    return _safe(lambda: cert.subject.rfc4514_string())


def issuer_of(cert: x509.Certificate) -> str:
    return _safe(lambda: cert.issuer.rfc4514_string())


@per_object()
def certificate_addresses(cert: x509.Certificate) -> tuple[str, ...]:
    """rfc822Name and SmtpUTF8Mailbox SAN entries, then subject emailAddress values (cached
    per certificate: the same sender's certificate arrives with every message)."""
    out: list[str] = []
    with contextlib.suppress(Exception):  # undecodable extensions or names: what was found
        _collect_addresses(cert, out)
    seen: dict[str, None] = {}
    for a in out:
        seen.setdefault(a, None)
    return tuple(seen)


def _collect_addresses(cert: x509.Certificate, out: list[str]) -> None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out.extend(san.get_values_for_type(x509.RFC822Name))
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == _SMTP_UTF8:
                raw = other.value
                # UTF8String TLV: tag 0x0C, short or long length
                if raw[:1] == b"\x0c":
                    n = raw[1]
                    body = raw[2:] if n < 0x80 else raw[2 + (n & 0x7F) :]
                    out.append(body.decode("utf-8", "replace"))
    except (x509.ExtensionNotFound, ValueError):
        pass
    for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
        out.append(value)


def match_address(candidates: Iterable[str], wanted: Iterable[str]) -> bool:
    """True when an address matches: local part exactly, domain case-insensitively."""

    def norm(a: str) -> tuple[str, str]:
        local, _, domain = a.strip().rpartition("@")
        return local, domain.lower().rstrip(".")

    have = {norm(a) for a in candidates if "@" in a}
    return any(norm(w) in have for w in wanted if "@" in w)


def purpose_problems(cert: x509.Certificate, purpose: str, *, allow_any_eku: bool) -> list[str]:
    """Why the key usage or extended key usage keeps ``cert`` from ``purpose`` ("sign",
    "encrypt" or "timestamp"); each reason is a ``wrong-purpose`` problem to the caller."""
    problems: list[str] = []
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    except Exception as exc:  # ValueError, x509.DuplicateExtension, ...
        return [f"the key usage extension is malformed ({exc})"]
    if ku is not None:
        if purpose in ("sign", "timestamp") and not (ku.digital_signature or ku.content_commitment):
            problems.append(
                "the certificate's key usage allows neither digitalSignature nor nonRepudiation"
            )
        if purpose == "encrypt" and not (ku.key_encipherment or ku.key_agreement):
            problems.append(
                "the certificate's key usage allows neither keyEncipherment nor keyAgreement"
            )
    try:
        eku_ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        eku = eku_ext.value
    except x509.ExtensionNotFound:
        eku = None
    except Exception as exc:
        return [*problems, f"the EKU extension is malformed ({exc})"]
    if purpose == "timestamp":
        # RFC 3161 §2.3: exactly id-kp-timeStamping, in a critical extension
        if eku is None or ExtendedKeyUsageOID.TIME_STAMPING not in list(eku):
            problems.append("the certificate's extended key usage does not include timeStamping")
        elif list(eku) != [ExtendedKeyUsageOID.TIME_STAMPING] or not eku_ext.critical:
            problems.append(
                "a TSA certificate's extended key usage must be timeStamping alone, "
                "marked critical (RFC 3161 §2.3)"
            )
        return problems
    if eku is not None:
        usages = list(eku)
        ok = ExtendedKeyUsageOID.EMAIL_PROTECTION in usages or (
            allow_any_eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages
        )
        if not ok:
            problems.append("the certificate's extended key usage does not include emailProtection")
    return problems
