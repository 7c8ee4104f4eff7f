"""RFC 3161 timestamp tokens carried in a SignerInfo (unsigned attribute id-aa-timeStampToken).

A token proves that the SignerInfo's signature value existed at the token's genTime. It is
accepted only when all of these hold:

- it is a CMS SignedData whose content is a TSTInfo (id-ct-TSTInfo);
- its messageImprint is the hash (with the imprint's own algorithm) of the signature value;
- the token's SignerInfo signature over the TSTInfo is intact;
- its signed ESS signingCertificate or signingCertificateV2 attribute (RFC 3161 §2.4.1,
  RFC 5816) names the TSA certificate the signature was checked with, so a token cannot be
  passed off as another TSA certificate's;
- the TSA's certificate has the timeStamping extended key usage and chains to the
  :class:`~mailseal.validation.trust.Trust`'s anchors at genTime.

:func:`check_timestamp` says which check failed; it never silently ignores a token.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mailseal.cms.inspect import check_signature, find_signer_certificate, parse_signed_data
from mailseal.errors import MailsealError
from mailseal.validation.certinfo import name_of
from mailseal.validation.trust import Trust
from mailseal.validation.verdict import Problem, Status

__all__ = ["ID_CT_TSTINFO", "TimestampCheck", "check_timestamp"]

ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"


@dataclass(frozen=True, slots=True)
class TimestampCheck:
    """The outcome: ``time`` and ``tsa`` when the token is valid, else ``problems``."""

    time: _dt.datetime | None
    tsa: str | None
    problems: tuple[Problem, ...] = ()

    @property
    def valid(self) -> bool:
        return self.time is not None and not self.problems


def _bad(status: Status, message: str) -> TimestampCheck:
    return TimestampCheck(None, None, (Problem(status, f"the timestamp token {message}"),))


def _ess_problem(signed_attrs: bytes | None, cert: x509.Certificate) -> str | None:
    """Why the token's ESS signingCertificate(V2) attribute does not bind ``cert``, or None."""
    from asn1crypto import cms as a_cms

    if signed_attrs is None:
        return "has no signed attributes (RFC 3161 §2.4.1 requires signingCertificate)"
    try:
        attrs = a_cms.CMSAttributes.load(signed_attrs)
        found = [
            (a["type"].native, a["values"][0])
            for a in attrs
            if a["type"].native in ("signing_certificate", "signing_certificate_v2")
            and len(a["values"]) > 0
        ]
        if not found:
            return (
                "does not name its TSA certificate (no ESS signingCertificate attribute, "
                "RFC 3161 §2.4.1)"
            )
        kind, value = found[0]
        first = value["certs"][0]
        if kind == "signing_certificate_v2":
            hash_name = str(first["hash_algorithm"]["algorithm"].native)
        else:
            hash_name = "sha1"
        claimed = bytes(first["cert_hash"].native)
        issuer_serial = first["issuer_serial"].native if first["issuer_serial"] else None
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError, IndexError
        return f"has a malformed ESS signingCertificate attribute ({exc})"
    try:
        actual = hashlib.new(hash_name, cert.public_bytes(Encoding.DER)).digest()
    except (ValueError, TypeError):
        return f"names its TSA certificate with an unknown hash {hash_name}"
    if not hmac.compare_digest(actual, claimed):
        return (
            "names another TSA certificate in its ESS signingCertificate attribute "
            f"(the {hash_name} certificate hash differs from {name_of(cert)}'s)"
        )
    if issuer_serial is not None and issuer_serial.get("serial_number") != cert.serial_number:
        return "names another serial number in its ESS signingCertificate attribute"
    return None


def check_timestamp(token: bytes, signature: bytes, trust: Trust) -> TimestampCheck:
    """Verify the timestamp token ``token`` (DER ContentInfo) over the SignerInfo signature
    value ``signature``, with the TSA certificate validated by ``trust`` at genTime."""
    from asn1crypto import tsp

    try:
        sd = parse_signed_data(token)
    except MailsealError as exc:
        return _bad(Status.TAMPERED, f"cannot be read ({exc})")
    if sd.content_type != ID_CT_TSTINFO:
        return _bad(Status.TAMPERED, f"does not hold a TSTInfo (content type {sd.content_type})")
    if sd.content is None:
        return _bad(Status.TAMPERED, "has no TSTInfo content")
    try:
        tst = tsp.TSTInfo.load(sd.content, strict=True)
        imprint = tst["message_imprint"]
        hash_name = imprint["hash_algorithm"]["algorithm"].native
        hashed = bytes(imprint["hashed_message"].native)
        gen_time = tst["gen_time"].native
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError, ...
        return _bad(Status.TAMPERED, f"holds a malformed TSTInfo ({exc})")
    if not isinstance(gen_time, _dt.datetime) or gen_time.utcoffset() is None:
        return _bad(Status.TAMPERED, "has no usable genTime")
    try:
        expected = hashlib.new(str(hash_name), signature).digest()
    except (ValueError, TypeError):
        return _bad(Status.UNSUPPORTED, f"uses an unknown imprint hash {hash_name}")
    if not hmac.compare_digest(expected, hashed):
        return _bad(
            Status.TAMPERED,
            "does not match this signature (its messageImprint is not the "
            f"{hash_name} hash of the signature value)",
        )
    if len(sd.signer_infos) != 1:
        return _bad(Status.TAMPERED, f"has {len(sd.signer_infos)} signers, not one")
    si = sd.signer_infos[0]
    cert = find_signer_certificate(si, sd.certificates, trust.intermediates)
    if cert is None:
        return _bad(
            Status.SIGNER_UNKNOWN,
            f"does not carry its TSA's certificate ({si.sid.describe()})",
        )
    tsa = name_of(cert)
    if si.digest_name is None:
        return _bad(Status.UNSUPPORTED, f"uses an unknown digest algorithm {si.digest_oid}")
    try:
        digest = hashlib.new(si.digest_name, sd.content).digest()
    except ValueError:
        return _bad(Status.UNSUPPORTED, f"uses an unsupported digest {si.digest_name}")
    check = check_signature(
        si,
        cert,
        econtent_type=ID_CT_TSTINFO,
        digests={si.digest_name: digest},
        content=sd.content,
    )
    if not check.intact:
        return _bad(Status.TAMPERED, f"signature by {tsa} is not intact ({check.problem})")
    ess = _ess_problem(si.signed_attrs, cert)
    if ess is not None:
        return _bad(Status.TAMPERED, ess)
    outcome = trust.evaluate(
        cert, extra=sd.certificates, crls=sd.crls, purpose="timestamp", at=gen_time
    )
    if outcome.problems:
        return TimestampCheck(
            None,
            tsa,
            tuple(
                Problem(p.code, f"the timestamp token's TSA {tsa} is not trusted: {p.message}")
                for p in outcome.problems
            ),
        )
    return TimestampCheck(gen_time, tsa)
