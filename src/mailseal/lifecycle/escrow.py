"""Key escrow workflows: archiving (issued and imported keys), recovery requests, officers'
approvals, delivery as one PKCS#12 file, and re-sharing.

A recovery goes through these states::

    open ──(M approvals)──▶ ready ──deliver──▶ delivered
      │                       │
      └──(expiry)──▶ expired ◀┘        (a re-sharing cancels open requests of the old set)

- ``request``: the requester names a person and which of their archived keys (by serial, or
  all), gives a reason and a password. The password derives the request's delivery key
  (:class:`mailseal.escrow.protect.DeliveryKey`); only its public half is stored.
- ``approve``: an officer opens their share file (passphrase, or their own private key),
  computes a partial decryption of each requested record with a proof, and seals it to the
  delivery key. The share never leaves the process and is never stored.
- ``deliver``: with the requester's password, the partials are opened, checked, combined and
  the keys decrypted; one PKCS#12 (AES-256, PBKDF2) holds every requested key with its
  certificate. The request is closed in the same transaction, and the sealed partials are
  erased, so a request cannot be delivered twice and leaves nothing behind.

Every step, and every refusal, is in the audit log.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import secrets
from base64 import b64decode, b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailseal.errors import DuplicateError, EscrowError, MailsealError, UsageError
from mailseal.escrow import threshold as th
from mailseal.escrow.protect import KDF_MODERATE, DeliveryKey, KdfCost, open_partial, seal_partial
from mailseal.store import repo

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mailseal.lifecycle.authority import Authority

__all__ = [
    "DEFAULT_EXPIRY",
    "RequestView",
    "approve",
    "deliver",
    "import_pkcs12",
    "request_recovery",
    "reshare",
    "seal_for",
    "status",
]

DEFAULT_EXPIRY = _dt.timedelta(days=7)
MAX_EXPIRY = _dt.timedelta(days=90)
MAX_REASON = 2000
MAX_RECORDS = 1000


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


# -- the records ----------------------------------------------------------------------------------
def escrow_from_row(row: Any) -> th.EscrowSet:
    """The escrow set stored in the database row ``row``."""
    return th.EscrowSet(
        bytes.fromhex(row.set_id),
        int(row.threshold),
        bytes(row.public_key),
        tuple(bytes.fromhex(v) for v in row.verification),
    )


def record_id(ca_id: int, serial: int) -> bytes:
    """What the record of a key certified here is bound to: its CA and certificate serial."""
    return f"ca={ca_id};serial={serial:x}".encode()


def _record_id(certificate: Any, fingerprint: str | None) -> bytes:
    if certificate is not None:
        return record_id(certificate.ca_id, int(certificate.serial, 16))
    return f"imported;sha256={fingerprint}".encode()


def record_id_for(row: Any) -> bytes:
    """What an archived key's record is bound to: its CA and serial for a certificate issued
    here, the certificate's SHA-256 for an imported one."""
    return _record_id(row.certificate, row.fingerprint)


def _record_certificate(row: Any) -> x509.Certificate:
    der = row.certificate.der if row.certificate is not None else row.certificate_der
    return x509.load_der_x509_certificate(bytes(der))


def _sealed(row: Any) -> th.SealedRecord:
    if row.masked is None:
        raise EscrowError(
            f"escrow record {row.id} is in an old format that this version cannot open"
        )
    return th.SealedRecord(
        bytes(row.ephemeral), bytes(row.masked), bytes(row.nonce), bytes(row.ciphertext)
    )


def seal_for(escrow_row: Any, rid: bytes, secret: bytes) -> dict[str, Any]:
    """The columns of an escrow record holding ``secret`` sealed to ``escrow_row``'s key."""
    if escrow_row.mode == "hsm":
        from mailseal.escrow import hsm

        sealed_h = hsm.seal_hsm_record(bytes(escrow_row.public_key), rid, secret)
        return hsm_columns(sealed_h)
    sealed = th.seal_record(escrow_from_row(escrow_row), rid, secret)
    return {
        "ephemeral": sealed.ephemeral,
        "masked": sealed.masked,
        "nonce": sealed.nonce,
        "ciphertext": sealed.ciphertext,
    }


def hsm_columns(sealed: Any) -> dict[str, Any]:
    return {
        "ephemeral": bytes(getattr(sealed, "ephemeral", b"") or b""),
        "wrapped_key": bytes(sealed.wrapped_key),
        "nonce": bytes(sealed.nonce),
        "ciphertext": bytes(sealed.ciphertext),
    }


def _pkcs8(key: Any) -> bytes:
    der: bytes = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return der


# -- auditing -------------------------------------------------------------------------------------
def _refused(
    authority: Authority, actor: str, action: str, subject: str, exc: BaseException
) -> None:
    """Record a refused attempt in its own transaction (the attempt's own was rolled back)."""
    try:
        with authority.db.session() as s:
            repo.append_audit(
                s,
                actor=actor,
                action=action,
                subject=subject,
                outcome="refused",
                details={"error": str(exc)[:500]},
            )
    except MailsealError:
        pass  # the refusal itself is what the caller reports


# -- requests -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestView:
    """What officers and auditors see of a request (nothing secret)."""

    request_id: str
    email: str
    requester: str
    reason: str
    state: str
    escrow_set: str
    mode: str
    threshold: int
    approvals: tuple[str, ...]
    serials: tuple[str, ...]
    created_at: _dt.datetime
    expires_at: _dt.datetime
    closed_at: _dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": self.request_id,
            "email": self.email,
            "requester": self.requester,
            "reason": self.reason,
            "state": self.state,
            "escrow_set": self.escrow_set,
            "mode": self.mode,
            "threshold": self.threshold,
            "approvals": list(self.approvals),
            "keys": list(self.serials),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "closed_at": None if self.closed_at is None else self.closed_at.isoformat(),
        }


def _serial_of(row: Any) -> str:
    if row.certificate is not None:
        return str(row.certificate.serial)
    return format(_record_certificate(row).serial_number, "x")


def _view(s: Session, req: Any) -> RequestView:
    rows = repo.escrow_records(s, list(req.records))
    return RequestView(
        request_id=req.request_id,
        email=req.email,
        requester=req.requester,
        reason=req.reason,
        state=req.state,
        escrow_set=req.escrow_set.set_id,
        mode=req.escrow_set.mode,
        threshold=req.escrow_set.threshold,
        approvals=tuple(a.officer for a in req.approvals),
        serials=tuple(_serial_of(r) for r in rows),
        created_at=req.created_at,
        expires_at=req.expires_at,
        closed_at=req.closed_at,
    )


def _expire(req: Any, now: _dt.datetime) -> bool:
    """Mark ``req`` expired when its time is up (its sealed partials are erased)."""
    if req.state in ("open", "ready") and now >= req.expires_at:
        req.state = "expired"
        req.closed_at = now
        for a in req.approvals:
            a.payload = b""
        return True
    return False


def request_recovery(
    authority: Authority,
    *,
    email: str,
    serials: Sequence[str] | None,
    reason: str,
    password: bytes,
    requester: str,
    expires_in: _dt.timedelta = DEFAULT_EXPIRY,
    cost: KdfCost = KDF_MODERATE,
) -> RequestView:
    """Open a recovery request for ``email``'s archived keys (``serials``, or all of them when
    None)."""
    reason = reason.strip()
    try:
        if not reason:
            raise UsageError("say why the keys are needed (--reason)")
        if len(reason) > MAX_REASON:
            raise UsageError(f"the reason is longer than {MAX_REASON} characters")
        if not _dt.timedelta(minutes=1) <= expires_in <= MAX_EXPIRY:
            raise UsageError("a request expires after between a minute and 90 days")
        with authority.db.session(readonly=True) as s:
            history = repo.escrow_history(s, email)
            if not history:
                raise UsageError(f"no archived key for {email}")
            if serials is not None:
                wanted = {_normal_serial(x) for x in serials}
                rows = [r for r in history if _serial_of(r) in wanted]
                missing = wanted - {_serial_of(r) for r in rows}
                if missing:
                    raise UsageError(
                        f"no archived key of {email} with serial {', '.join(sorted(missing))}"
                        f" (see: mailseal escrow history --email {email})"
                    )
            else:
                rows = history
            rows = [r for r in rows if r.escrow_set.retired_at is None]
            sets = {r.escrow_set_id for r in rows}
            if len(sets) != 1:
                raise UsageError(
                    "the keys asked for are archived to different escrow sets; make one request"
                    " per set (--serial)"
                )
            if len(rows) > MAX_RECORDS:
                raise UsageError(f"at most {MAX_RECORDS} keys per request")
            record_ids = [r.id for r in rows]
            set_row_id = rows[0].escrow_set_id
        delivery = DeliveryKey.create(password, cost=cost)
        now = _now()
        with authority.db.session() as s:
            req = repo.add_recovery_request(
                s,
                request_id=secrets.token_hex(8),
                escrow_set_id=set_row_id,
                email=email.lower(),
                requester=requester,
                reason=reason,
                records=record_ids,
                state="open",
                delivery={
                    "public_key": delivery.public_key.hex(),
                    "salt": delivery.salt.hex(),
                    "opslimit": delivery.cost.opslimit,
                    "memlimit": delivery.cost.memlimit,
                },
                created_at=now,
                expires_at=now + expires_in,
                closed_at=None,
            )
            repo.append_audit(
                s,
                actor=requester,
                action="escrow.request",
                subject=req.request_id,
                details={"email": email.lower(), "records": record_ids, "reason": reason},
            )
            s.flush()
            s.refresh(req)
            return _view(s, req)
    except MailsealError as exc:
        _refused(authority, requester, "escrow.request", email, exc)
        raise


def _normal_serial(serial: str) -> str:
    try:
        return format(int(serial.replace(":", "").strip(), 16), "x")
    except ValueError:
        raise UsageError(f"{serial!r} is not a hexadecimal serial number") from None


def status(authority: Authority, request_id: str | None = None) -> list[RequestView]:
    """One request, or the most recent ones (expired ones are marked so on the way)."""
    now = _now()
    with authority.db.session() as s:
        if request_id is not None:
            req = repo.get_recovery_request(s, request_id)
            if req is None:
                raise UsageError(f"no recovery request {request_id}")
            reqs = [req]
        else:
            reqs = repo.recovery_requests(s)
        for req in reqs:
            if _expire(req, now):
                repo.append_audit(s, actor="system", action="escrow.expire", subject=req.request_id)
        return [_view(s, r) for r in reqs]


# -- approving ------------------------------------------------------------------------------------
def approve(
    authority: Authority,
    request_id: str,
    share_file: bytes,
    *,
    passphrase: bytes | None = None,
    officer_key: Any = None,
    officer_certificate: x509.Certificate | None = None,
    actor: str = "officer",
) -> RequestView:
    """Officer approval of ``request_id`` with their share file, opened with their passphrase
    or their private key (with its certificate). ``actor`` is who ran it (recorded on a
    refusal; an approval is recorded under the officer the share belongs to)."""
    officer = actor
    try:
        # the slow part (opening the share: Argon2id or the officer's key; one partial per
        # record) runs outside the write transaction, which then re-checks the request
        with authority.db.session(readonly=True) as s:
            req = _approvable(s, request_id)
            set_row = req.escrow_set
            if set_row.mode == "hsm":
                from mailseal.lifecycle import escrow_hsm

                index, officer, payload = escrow_hsm.approval(
                    set_row, req, share_file, passphrase=passphrase
                )
            else:
                index, officer, payload = _threshold_approval(
                    s, set_row, req, share_file, passphrase, officer_key, officer_certificate
                )
            threshold = int(set_row.threshold)
        actor = officer
        with authority.db.session() as s:
            req = _approvable(s, request_id, lock=True)
            if any(a.officer_index == index for a in req.approvals):
                raise EscrowError(f"officer {actor} has approved request {request_id} already")
            try:
                repo.add_recovery_approval(
                    s, request=req, officer_index=index, officer=actor, payload=payload
                )
            except DuplicateError:
                raise EscrowError(
                    f"officer {actor} has approved request {request_id} already"
                ) from None
            s.flush()
            s.refresh(req)
            if req.state == "open" and len(req.approvals) >= threshold:
                req.state = "ready"
            repo.append_audit(
                s,
                actor=actor,
                action="escrow.approve",
                subject=request_id,
                details={"officer": actor, "approvals": len(req.approvals), "threshold": threshold},
            )
            return _view(s, req)
    except MailsealError as exc:
        _refused(authority, actor, "escrow.approve", request_id, exc)
        raise


def _unexpired(s: Session, request_id: str, *, lock: bool) -> Any:
    """The request, refused when there is none or it has expired."""
    req = repo.get_recovery_request(s, request_id, for_update=lock)
    if req is None:
        raise UsageError(f"no recovery request {request_id}")
    if req.state == "expired" or (req.state in ("open", "ready") and _now() >= req.expires_at):
        raise EscrowError(f"request {request_id} has expired")
    return req


def _approvable(s: Session, request_id: str, *, lock: bool = False) -> Any:
    """The request, refused unless it may still collect approvals."""
    req = _unexpired(s, request_id, lock=lock)
    if req.state in ("delivered", "cancelled"):
        raise EscrowError(f"request {request_id} is {req.state}: it cannot be approved")
    return req


def _threshold_approval(
    s: Session,
    set_row: Any,
    req: Any,
    share_file: bytes,
    passphrase: bytes | None,
    officer_key: Any,
    officer_certificate: x509.Certificate | None,
) -> tuple[int, str, bytes]:
    from mailseal.escrow.officer import open_share_file

    escrow = escrow_from_row(set_row)
    share = open_share_file(
        share_file,
        passphrase=passphrase,
        key=officer_key,
        certificate=officer_certificate,
        escrow=escrow,
    )
    officer = set_row.officers[share.index - 1]
    public = bytes.fromhex(req.delivery["public_key"])
    sealed: dict[str, str] = {}
    for row in repo.escrow_records(s, list(req.records)):
        if row.escrow_set_id != set_row.id:
            raise EscrowError(f"record {row.id} is not archived to this request's escrow set")
        partial = th.partial_decrypt(escrow, share, _sealed(row))
        sealed[str(row.id)] = b64encode(seal_partial(partial, public)).decode()
    return share.index, officer, json.dumps(sealed, sort_keys=True).encode()


# -- delivering -----------------------------------------------------------------------------------
def deliver(
    authority: Authority,
    request_id: str,
    password: bytes,
    write: Callable[[bytes], None],
    *,
    iterations: int = 600_000,
    token: Any = None,
    actor: str = "requester",
) -> RequestView:
    """Once the quorum is in: every requested key in one PKCS#12 under ``password`` (the
    requester's), handed to ``write`` before the request is closed. ``token`` is the HSM
    holding the escrow key (HSM mode)."""
    try:
        # opening everything (Argon2id, the partials, PBKDF2 for the file) happens outside the
        # write transaction; the write transaction then closes the request if it still may
        with authority.db.session(readonly=True) as s:
            req = _deliverable(s, request_id)
            set_row = req.escrow_set
            rows = repo.escrow_records(s, list(req.records))
            if set_row.mode == "hsm":
                from mailseal.lifecycle import escrow_hsm

                keys = escrow_hsm.recover(set_row, req, rows, token=token, password=password)
            else:
                keys = _threshold_recover(set_row, req, rows, password)
            from mailseal.keys.pkcs12 import Pkcs12Entry, write_pkcs12

            entries = []
            for row, der in zip(rows, keys, strict=True):
                key = serialization.load_der_private_key(der, None)
                cert = _record_certificate(row)
                entries.append(Pkcs12Entry(key, cert, f"{req.email} {_serial_of(row)}"))
            keys.clear()
            p12 = write_pkcs12(
                entries, password, ca_certificates=authority.chain(), iterations=iterations
            )
            entries.clear()
            serials = [_serial_of(r) for r in rows]
        with authority.db.session() as s:
            req = _deliverable(s, request_id, lock=True)
            req.state = "delivered"
            req.closed_at = _now()
            for a in req.approvals:
                a.payload = b""  # nothing of the recovery stays behind
            repo.append_audit(
                s,
                actor=actor,
                action="escrow.deliver",
                subject=request_id,
                details={"email": req.email, "keys": serials},
            )
            s.flush()
            write(p12)
            return _view(s, req)
    except MailsealError as exc:
        _refused(authority, actor, "escrow.deliver", request_id, exc)
        raise


def _deliverable(s: Session, request_id: str, *, lock: bool = False) -> Any:
    """The request, refused unless its quorum is in and it is still open."""
    req = _unexpired(s, request_id, lock=lock)
    if req.state == "delivered":
        raise EscrowError(f"request {request_id} was delivered already: it is closed")
    if req.state == "cancelled":
        raise EscrowError(f"request {request_id} was cancelled")
    if len(req.approvals) < req.escrow_set.threshold:
        raise EscrowError(
            f"request {request_id} has {len(req.approvals)} of the"
            f" {req.escrow_set.threshold} approvals it needs"
        )
    return req


def _threshold_recover(set_row: Any, req: Any, rows: Sequence[Any], password: bytes) -> list[bytes]:
    d = req.delivery
    key = DeliveryKey(
        bytes.fromhex(d["salt"]),
        KdfCost(int(d["opslimit"]), int(d["memlimit"])),
        bytes.fromhex(d["public_key"]),
    ).check(password)
    escrow = escrow_from_row(set_row)
    payloads = []
    for a in req.approvals:
        try:
            payload = json.loads(bytes(a.payload))
        except ValueError:
            raise EscrowError(f"officer {a.officer}'s approval is damaged") from None
        if not isinstance(payload, dict):
            raise EscrowError(f"officer {a.officer}'s approval is damaged")
        payloads.append((a, payload))
    out = []
    for row in rows:
        partials = []
        for a, payload in payloads:
            sealed = payload.get(str(row.id))
            if not isinstance(sealed, str):
                raise EscrowError(f"officer {a.officer}'s approval does not cover record {row.id}")
            partial = open_partial(b64decode(sealed), key)
            if partial.index != a.officer_index:
                raise EscrowError(f"officer {a.officer}'s approval carries another officer's part")
            partials.append(partial)
        out.append(th.open_record(escrow, record_id_for(row), _sealed(row), partials))
    return out


# -- importing ------------------------------------------------------------------------------------
def _usage_of(cert: x509.Certificate) -> str:
    """encryption, dual or signing, from the key usage (no extension: dual)."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "dual"
    encrypts = ku.key_encipherment or ku.key_agreement
    signs = ku.digital_signature or ku.content_commitment
    if encrypts and signs:
        return "dual"
    return "encryption" if encrypts else "signing"


def _addresses(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = [a.lower() for a in san.get_values_for_type(x509.RFC822Name)]
    except x509.ExtensionNotFound:
        found = []
    if not found:
        found = [
            str(a.value).lower()
            for a in cert.subject.get_attributes_for_oid(x509.NameOID.EMAIL_ADDRESS)
        ]
    return found


def import_pkcs12(
    authority: Authority,
    data: bytes,
    password: bytes | None,
    *,
    allow_dual_use: bool = False,
    actor: str = "cli",
) -> list[dict[str, Any]]:
    """Archive the keys of an existing PKCS#12 file, each checked against its certificate.
    A signing-only certificate's key is refused; a dual-use one only with
    ``allow_dual_use``."""
    from mailseal.keys.pkcs12 import read_pkcs12

    subject = "pkcs12"
    try:
        contents = read_pkcs12(data, password)
        if not contents.entries:
            raise UsageError("the PKCS#12 file holds no private key with its certificate")
        out = []
        with authority.db.session() as s:
            set_row = repo.active_escrow_set(s)
            if set_row is None:
                raise UsageError("no escrow set yet: run 'mailseal escrow init' first")
            for entry in contents.entries:
                cert = entry.certificate
                fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER))
                subject = fingerprint.hexdigest()
                usage = _usage_of(cert)
                if usage == "signing":
                    raise EscrowError(
                        f"certificate {cert.subject.rfc4514_string()} is for signing only:"
                        " signing keys are never archived"
                    )
                if usage == "dual" and not allow_dual_use:
                    raise EscrowError(
                        f"certificate {cert.subject.rfc4514_string()} is for signing and"
                        " encryption: archiving its key would escrow a signing key"
                        " (--allow-dual-use to archive it anyway)"
                    )
                addresses = _addresses(cert)
                if not addresses:
                    raise EscrowError(
                        f"certificate {cert.subject.rfc4514_string()} names no e-mail address"
                    )
                if repo.escrow_record_by_fingerprint(s, subject) is not None:
                    raise EscrowError(
                        f"the key of certificate {format(cert.serial_number, 'x')} is archived"
                        " already"
                    )
                ours = _our_certificate(s, cert)
                if ours is not None and ours.usage == "signing":
                    raise EscrowError("this is a signing certificate: its key is never archived")
                mailbox = repo.get_or_create_person_mailbox(s, addresses[0], addresses[0])
                columns = seal_for(set_row, _record_id(ours, subject), _pkcs8(entry.key))
                repo.add_escrow_record(
                    s,
                    escrow_set=set_row,
                    certificate=ours,
                    fingerprint=subject,
                    source="imported",
                    mailbox=mailbox,
                    certificate_der=None
                    if ours is not None
                    else cert.public_bytes(serialization.Encoding.DER),
                    **columns,
                )
                item = {
                    "email": addresses[0],
                    "serial": format(cert.serial_number, "x"),
                    "subject": cert.subject.rfc4514_string(),
                    "not_after": cert.not_valid_after_utc.isoformat(),
                    "usage": usage,
                }
                repo.append_audit(
                    s, actor=actor, action="escrow.import", subject=addresses[0], details=item
                )
                out.append(item)
        return out
    except MailsealError as exc:
        _refused(authority, actor, "escrow.import", subject, exc)
        raise


def _our_certificate(s: Session, cert: x509.Certificate) -> Any:
    """Our certificate row when ``cert`` was issued by one of our CAs."""
    der = cert.public_bytes(serialization.Encoding.DER)
    for row in repo.find_certificates_by_serial(s, cert.serial_number):
        if bytes(row.der) == der:
            return row
    return None


# -- re-sharing -----------------------------------------------------------------------------------
def reshare(
    authority: Authority,
    shares: Sequence[th.Share],
    *,
    threshold: int,
    officers: Sequence[tuple[str, Callable[[th.EscrowSet, th.Share], tuple[bytes, str]]]],
    actor: str = "cli",
) -> list[tuple[str, bytes]]:
    """Replace the active escrow set with a new one (new officers, threshold and key) from a
    quorum of the current set's ``shares``. Every record moves to the new key without being
    decrypted; the old shares then open nothing in the database. ``officers`` pairs each new
    officer's name with a function that seals their share (returns the file and how it is
    protected). Open requests of the old set are cancelled."""
    names = [n for n, _ in officers]
    try:
        if len(set(names)) != len(names):
            raise UsageError("officer names must be distinct")
        with authority.db.session(readonly=True) as s:
            old_row = repo.active_escrow_set(s)
            if old_row is None:
                raise UsageError("no escrow set yet: run 'mailseal escrow init' first")
            if old_row.mode != "threshold":
                raise UsageError("re-sharing is for threshold escrow sets")
            old = escrow_from_row(old_row)
        new, new_shares, rekey = th.reshare(old, shares, threshold, len(names))
        files = []
        protection = []
        for (name, seal), share in zip(officers, new_shares, strict=True):
            data, how = seal(new, share)
            files.append((name, data))
            protection.append(how)
        new_shares.clear()
        now = _now()
        with authority.db.session() as s:
            old_row = repo.escrow_set_by_set_id(s, old.set_id.hex())
            assert old_row is not None
            if not old_row.active or old_row.retired_at is not None:
                raise EscrowError("the escrow set changed while re-sharing; start again")
            new_row = repo.add_escrow_set(
                s,
                set_id=new.set_id,
                threshold=threshold,
                officers=names,
                public_key=new.public_key,
                verification=new.verification,
                protection=protection,
            )
            moved = 0
            for row in repo.records_of_set(s, old_row.id):
                record = th.reshare_record(_sealed(row), rekey)
                row.masked = record.masked
                row.escrow_set = new_row
                moved += 1
            old_row.active = False
            old_row.retired_at = now
            old_row.replaced_by = new.set_id.hex()
            cancelled = []
            for req in repo.recovery_requests(s, limit=100_000):
                if req.escrow_set_id == old_row.id and req.state in ("open", "ready"):
                    req.state = "cancelled"
                    req.closed_at = now
                    for a in req.approvals:
                        a.payload = b""
                    cancelled.append(req.request_id)
            repo.append_audit(
                s,
                actor=actor,
                action="escrow.reshare",
                subject=new.set_id.hex(),
                details={
                    "replaces": old.set_id.hex(),
                    "threshold": threshold,
                    "officers": names,
                    "records": moved,
                    "cancelled_requests": cancelled,
                },
            )
        del rekey
        return files
    except MailsealError as exc:
        _refused(authority, actor, "escrow.reshare", "escrow", exc)
        raise
