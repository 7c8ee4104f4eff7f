"""The everyday operation behind ``mailseal.verify``: verify a signed message and judge each
signer (intact, trusted, which address signed)."""

from __future__ import annotations

import datetime as _dt
import io
from collections.abc import Sequence
from typing import BinaryIO

from cryptography import x509

from mailseal.cms.algorithms import CAPABILITY_NAMES
from mailseal.cms.ids import SignerId
from mailseal.cms.inspect import (
    ParsedSignerInfo,
    check_signature,
    find_signer_certificate,
)
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime.verify import SignedMessage, read_signed
from mailseal.validation.algorithms import WEAK_DIGESTS
from mailseal.validation.certinfo import certificate_addresses, match_address, name_of
from mailseal.validation.timestamp import check_timestamp
from mailseal.validation.trust import Trust
from mailseal.validation.verdict import (
    Problem,
    SignerVerdict,
    Status,
    ValidationReport,
    VerifyResult,
    worst,
)

__all__ = ["verify", "verify_stream"]

_SIG_NAMES = {
    "rsa-pkcs1": "RSASSA-PKCS1-v1_5",
    "rsa-pss": "RSASSA-PSS",
    "ecdsa": "ECDSA",
    "ed25519": "Ed25519",
    "ed448": "Ed448",
}

#: Timestamp tokens on one SignerInfo that are checked; more make the signature unsupported.
MAX_TIMESTAMP_TOKENS = 4


def _trust_from(trust: Trust | Sequence[x509.Certificate] | None) -> Trust:
    if isinstance(trust, Trust):
        return trust
    return Trust(tuple(trust or ()))


def _describe_pref(pref: SignerId | None, pool: Sequence[x509.Certificate]) -> str | None:
    if pref is None:
        return None
    for cert in pool:
        if pref.matches(cert):
            addrs = certificate_addresses(cert)
            return f"{pref.describe()} ({addrs[0] if addrs else name_of(cert)})"
    return pref.describe()


def _judge(
    si: ParsedSignerInfo,
    msg: SignedMessage,
    trust: Trust,
    certificates: Sequence[x509.Certificate],
    from_addresses: Sequence[str],
) -> SignerVerdict:
    sd = msg.signed_data
    pool = (*sd.certificates, *certificates, *trust.intermediates)
    cert = find_signer_certificate(si, sd.certificates, list(certificates))
    digest_name = si.digest_name or si.digest_oid
    sig_name = _SIG_NAMES.get(si.signature_kind or "", si.signature_oid)
    problems: list[Problem] = []
    notes: list[str] = list(si.attribute_problems)
    intact = False
    trusted = False
    path: tuple[x509.Certificate, ...] = ()
    addresses: tuple[str, ...] = ()
    matches: bool | None = None
    validation: ValidationReport | None = None
    if cert is None:
        problems.append(
            Problem(
                Status.SIGNER_UNKNOWN,
                f"the signer's certificate ({si.sid.describe()}) is neither in the message "
                "nor among the certificates supplied",
            )
        )
    else:
        check = check_signature(
            si,
            cert,
            econtent_type=sd.content_type,
            digests=msg.digests,
            canonical_digests=msg.canonical_digests,
            content=msg.content,
        )
        intact = check.intact
        if check.via_canonical:
            notes.append("verified after restoring CRLF line ends (a stored LF-only copy)")
        if not intact:
            unsupported = check.problem and check.problem.startswith("unknown")
            problems.append(
                Problem(Status.UNSUPPORTED if unsupported else Status.TAMPERED, check.problem or "")
            )
        addresses = certificate_addresses(cert)
        proven: tuple[_dt.datetime, str] | None = None
        if len(si.timestamp_tokens) > MAX_TIMESTAMP_TOKENS:
            problems.append(
                Problem(
                    Status.UNSUPPORTED,
                    f"the signature carries {len(si.timestamp_tokens)} timestamp tokens "
                    f"(at most {MAX_TIMESTAMP_TOKENS} are checked)",
                )
            )
        elif si.timestamp_tokens:
            # every token must verify (an invalid one is never skipped); the earliest
            # genTime is the time proven
            for token in si.timestamp_tokens:
                ts = check_timestamp(token, si.signature, trust)
                problems.extend(ts.problems)
                if ts.valid and ts.time is not None and (proven is None or ts.time < proven[0]):
                    proven = (ts.time, ts.tsa or "an unnamed TSA")
        elif si.has_timestamp:
            problems.append(Problem(Status.TAMPERED, "the timestamp token attribute has no value"))
        outcome = trust.evaluate(
            cert,
            extra=[*sd.certificates, *certificates],
            crls=sd.crls,
            purpose="sign",
            signing_time=si.signing_time,
            timestamp=proven,
        )
        path = outcome.path
        problems.extend(outcome.problems)
        trusted = outcome.trusted
        validation = outcome.report
        notes.extend(outcome.notes)
        if not trust.allow_weak:
            for name in dict.fromkeys((si.digest_name, si.signature_hash)):
                if name is not None and name in WEAK_DIGESTS:
                    problems.append(
                        Problem(
                            Status.WEAK_ALGORITHM,
                            f"the signature uses the weak digest {name} ({WEAK_DIGESTS[name]})",
                        )
                    )
        if trust.check_address and from_addresses:
            matches = match_address(addresses, from_addresses)
            if not matches:
                problems.append(
                    Problem(
                        Status.ADDRESS_MISMATCH,
                        f"the From address {', '.join(from_addresses)} is not in the "
                        f"signer's certificate ({', '.join(addresses) or 'no address'})",
                    )
                )
    status = worst([p.code for p in problems]) if problems else Status.VALID
    return SignerVerdict(
        index=si.index,
        status=status,
        intact=intact,
        trusted=trusted,
        problems=tuple(problems),
        signer_id=si.sid.describe(),
        certificate=cert,
        path=path,
        addresses=addresses,
        address_matches_from=matches,
        signing_time=si.signing_time,
        digest_algorithm=digest_name,
        signature_algorithm=sig_name,
        capabilities=tuple(CAPABILITY_NAMES.get(c, c) for c in si.capabilities),
        encryption_key_preference=_describe_pref(si.encryption_key_preference, pool),
        notes=tuple(notes),
        validation=validation,
    )


def verify_stream(
    source: BinaryIO,
    content_sink: BinaryIO | None = None,
    *,
    trust: Trust | Sequence[x509.Certificate] | None = None,
    certificates: Sequence[x509.Certificate] = (),
    limits: Limits = DEFAULT_LIMITS,
    from_addresses: Sequence[str] | None = None,
) -> VerifyResult:
    """Verify the signed message read from ``source``.

    The signed content is written, byte-exact, to ``content_sink``. Returns a
    :class:`~mailseal.validation.verdict.VerifyResult`; raises a
    :class:`~mailseal.errors.MailsealError` only when the input cannot be evaluated.
    """
    t = _trust_from(trust)
    msg = read_signed(source, content_sink, limits=limits)
    sender = tuple(from_addresses) if from_addresses is not None else msg.from_addresses
    verdicts = tuple(
        _judge(si, msg, t, certificates, sender) for si in msg.signed_data.signer_infos
    )
    notes = list(msg.notes)
    if not verdicts:
        notes.append("the signature holds no SignerInfo")
        status = Status.UNSIGNED
    else:
        status = worst([v.status for v in verdicts])
    return VerifyResult(
        status=status,
        form=msg.form,
        signers=verdicts,
        content=msg.content,
        certificates=msg.signed_data.certificates,
        from_addresses=sender,
        notes=tuple(notes),
    )


def verify(
    message: bytes,
    *,
    trust: Trust | Sequence[x509.Certificate] | None = None,
    certificates: Sequence[x509.Certificate] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> VerifyResult:
    """Verify a signed message held in memory; ``result.content`` is the signed content."""
    sink = io.BytesIO()
    result = verify_stream(
        io.BytesIO(message), sink, trust=trust, certificates=certificates, limits=limits
    )
    return VerifyResult(
        status=result.status,
        form=result.form,
        signers=result.signers,
        content=sink.getvalue(),
        certificates=result.certificates,
        from_addresses=result.from_addresses,
        notes=result.notes,
    )
