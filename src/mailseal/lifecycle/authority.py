"""The internal CA as use cases: initialise an organisation, issue, renew, revoke, publish.

:class:`Authority` ties together the sans-IO CA core (:mod:`mailseal.pki`), the database
(:mod:`mailseal.store`) and the CA keys (files or PKCS#11). The command line and the server
are thin layers over it.

Publication points (relative to the organisation's base URL; ``{ca}`` is the CA's name,
``root`` or ``issuing``)::

    /ca/{ca}.crt           the CA certificate (AIA caIssuers)
    /crl/{ca}.crl          the latest complete CRL (CRL distribution point)
    /crl/{ca}-delta.crl    the latest delta CRL (FreshestCRL)
    /ocsp                  the OCSP responder (AIA OCSP)

What happens when:

- issuance writes the certificate and a pre-signed OCSP "good" response in one transaction;
- revocation records it, re-signs the certificate's OCSP response and publishes a new complete
  and delta CRL before :meth:`Authority.revoke` returns;
- :meth:`Authority.refresh` (run by ``mailseal serve`` every minute) re-signs OCSP responses and
  CRLs that reached half their validity.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailseal.config import Settings, ensure_home
from mailseal.errors import IdentityError, UsageError
from mailseal.escrow.threshold import EscrowSet
from mailseal.keys.base import PrivateKey
from mailseal.keys.files import load_key_file, save_key_file
from mailseal.keys.software import SoftwareKey
from mailseal.lifecycle.audit import audit_key
from mailseal.lifecycle.escrow import record_id, seal_for
from mailseal.pki import ca as pki_ca
from mailseal.pki import crl as pki_crl
from mailseal.pki import issue as pki_issue
from mailseal.pki import ocsp as pki_ocsp
from mailseal.pki.profiles import get_profile
from mailseal.store import repo
from mailseal.store.db import Database

__all__ = ["Authority", "CertificateInfo", "IssuedCertificate", "init_organisation"]

ROOT, ISSUING = "root", "issuing"
#: Complete CRLs of the root (listing CA certificates) are valid for a year (BR §4.9.7 allows
#: up to 12 months for CA CRLs); subscriber CRLs for settings.crl_validity_hours (≤ 10 days).
ROOT_CRL_DAYS = 365
USAGE_CHOICES = ("pair", "signing", "encryption", "dual")
#: A delegated OCSP responder certificate lives 30 days and is replaced with 10 days left, so
#: that responses it signed (valid 4 days) never outlive it.
RESPONDER_DAYS = 30
RESPONDER_RENEW_BEFORE = _dt.timedelta(days=10)
#: CA key types (BR §6.1.5; RSA from 3072 bits, see mailseal.pki.ca)
CA_KEY_CHOICES = ("p256", "p384", "rsa3072", "rsa4096", "ed25519")


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate issued by :meth:`Authority.issue`; ``key`` is set when mailseal
    generated the key (handed over once, never kept)."""

    certificate: x509.Certificate
    usage: str
    profile: str
    key: Any = None

    @property
    def serial(self) -> str:
        return repo.serial_hex(self.certificate.serial_number)


@dataclass(frozen=True)
class CertificateInfo:
    """A row of ``mailseal certs``."""

    serial: str
    ca: str
    email: str | None
    subject: str
    usage: str
    profile: str
    key_type: str
    status: str
    not_before: _dt.datetime
    not_after: _dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "ca": self.ca,
            "email": self.email,
            "subject": self.subject,
            "usage": self.usage,
            "profile": self.profile,
            "key_type": self.key_type,
            "status": self.status,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }


# -- keys -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Secrets:
    """The CA passphrase (file keys) and the token PIN (PKCS#11 keys), as the caller read them."""

    passphrase: bytes | None = None
    pin: str | None = None


class _Keys:
    """Opens CA keys by their reference: a path under the data directory, or a pkcs11: URI."""

    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        self.settings = settings
        self.secrets = secrets
        self._token: Any = None

    def token(self) -> Any:
        if self._token is None:
            from mailseal.keys.pkcs11 import Pkcs11Token

            s = self.settings
            if not (s.pkcs11_module and s.pkcs11_token):
                raise UsageError("the CA keys are in an HSM but no PKCS#11 module/token is set")
            if self.secrets.pin is None:
                raise UsageError(
                    "the CA keys are in an HSM: give its PIN with --pin-env VAR or --pin-file FILE"
                )
            self._token = Pkcs11Token(s.pkcs11_module, s.pkcs11_token, self.secrets.pin)
        return self._token

    def generate(self, name: str, key_type: str) -> tuple[PrivateKey, Any, str]:
        """A new CA key: (key, public key, reference)."""
        if self.settings.key_backend == "pkcs11":
            from mailseal.keys.pkcs11 import find_key, generate_key, key_uri

            label = f"mailseal-{name}"
            public = generate_key(self.token(), label, key_type)
            return find_key(self.token(), label), public, key_uri(self.settings.pkcs11_token, label)
        if not self.secrets.passphrase:
            raise UsageError(
                "the CA keys are encrypted with a passphrase: give it with --passphrase-env VAR "
                "or --passphrase-file FILE"
            )
        soft = pki_issue.generate_key(key_type)
        rel = f"keys/{name}.key.pem"
        save_key_file(self.settings.home / rel, soft, self.secrets.passphrase)
        return SoftwareKey(soft), soft.public_key(), rel

    def adopt(self, name: str, key: Any) -> str:
        """Store an imported software key (encrypted like a generated one)."""
        if not self.secrets.passphrase:
            raise UsageError("give the CA passphrase to encrypt the imported key with")
        rel = f"keys/{name}.key.pem"
        save_key_file(self.settings.home / rel, key, self.secrets.passphrase)
        return rel

    def load(self, ref: str) -> PrivateKey:
        if not ref:
            raise IdentityError("this CA's key is not on this server (it was exported)")
        if ref.startswith("pkcs11:"):
            from mailseal.keys.pkcs11 import find_key

            return find_key(self.token(), ref)
        path = Path(ref) if os.path.isabs(ref) else self.settings.home / ref
        return load_key_file(path, self.secrets.passphrase)


# -- initialisation -------------------------------------------------------------------------------
def _urls(settings: Settings, name: str) -> dict[str, str]:
    base = settings.base_url.rstrip("/")
    return {
        "crl": f"{base}/crl/{name}.crl",
        "delta": f"{base}/crl/{name}-delta.crl",
        "cert": f"{base}/ca/{name}.crt",
        "ocsp": f"{base}/ocsp",
    }


def init_organisation(
    settings: Settings,
    secrets: Secrets,
    *,
    key_type: str = "p384",
    root_validity_days: int = 7305,
    issuing_validity_days: int = 1826,
    import_certificate: bytes | None = None,
    import_key: bytes | None = None,
    import_key_password: bytes | None = None,
    export_root_key: Path | None = None,
    name_constraints_critical: bool = True,
) -> Authority:
    """Create the data directory, the database and the CA hierarchy (or import a CA)."""
    if not settings.organization.strip():
        raise UsageError("an organisation name is needed (--org)")
    if not settings.domains and import_certificate is None:
        raise UsageError("give at least one permitted mail domain (--domain)")
    domains = tuple(pki_issue.normalise_domain(d) for d in settings.domains)
    settings = settings.with_changes(domains=domains)
    if settings.initialized:
        raise UsageError(f"{settings.home} is initialised already ({settings.config_path})")
    if settings.ocsp_responder not in ("ca", "delegated"):
        raise UsageError("the OCSP responder is either 'ca' or 'delegated'")
    if settings.ocsp_responder == "delegated" and settings.key_backend != "file":
        raise UsageError("a delegated OCSP responder needs file keys, not an HSM (for now)")
    if key_type not in CA_KEY_CHOICES:
        raise UsageError(
            f"unknown CA key type {key_type!r}; choose one of {', '.join(CA_KEY_CHOICES)}"
        )
    ensure_home(settings.home)
    db = Database(settings.database, audit_key=audit_key(settings))
    db.upgrade()
    local_db = settings.home / "mailseal.db"
    if not settings.database_url and local_db.exists():
        os.chmod(local_db, 0o600)  # SQLite creates its -wal and -shm files with the same mode
    keys = _Keys(settings, secrets)
    org = settings.organization
    now = _now()
    with db.session() as s:
        if repo.get_cas(s):
            raise UsageError(f"the database {db.url} holds a CA already")
    if import_certificate is not None:
        _import_ca(settings, keys, db, import_certificate, import_key, import_key_password)
    else:
        root_key, root_pub, root_ref = keys.generate(ROOT, key_type)
        root = pki_ca.create_root(
            root_key,
            root_pub,
            organization=org,
            common_name=f"{org} S/MIME Root CA",
            validity_days=root_validity_days,
        )
        issuing_key, issuing_pub, issuing_ref = keys.generate(ISSUING, key_type)
        root_urls = _urls(settings, ROOT)
        issuing = pki_ca.create_issuing(
            root,
            root_key,
            issuing_pub,
            organization=org,
            common_name=f"{org} S/MIME Issuing CA",
            crl_url=root_urls["crl"],
            ca_issuers_url=root_urls["cert"],
            permitted_domains=domains,
            validity_days=issuing_validity_days,
            issuing_key=issuing_key,
            name_constraints_critical=name_constraints_critical,
        )
        _write_cert(settings, ROOT, root)
        _write_cert(settings, ISSUING, issuing)
        with db.session() as s:
            for name, cert, ref, role in (
                (ROOT, root, root_ref, "root"),
                (ISSUING, issuing, issuing_ref, "issuing"),
            ):
                repo.add_ca(
                    s,
                    name=name,
                    role=role,
                    certificate_der=_der(cert),
                    subject=cert.subject.rfc4514_string(),
                    key_ref=ref,
                    not_before=cert.not_valid_before_utc,
                    not_after=cert.not_valid_after_utc,
                )
            repo.append_audit(
                s,
                actor="init",
                action="ca.init",
                subject=org,
                details={"domains": list(domains), "key_type": key_type},
            )
    settings.save()
    authority = Authority(settings, db, keys)
    authority.publish_crls(now=now)
    if export_root_key is not None and import_certificate is None:
        authority.export_root_key(export_root_key)
    return authority


def _write_cert(settings: Settings, name: str, cert: x509.Certificate) -> None:
    (settings.home / "ca" / f"{name}.crt").write_bytes(_pem(cert))


def _import_ca(
    settings: Settings,
    keys: _Keys,
    db: Database,
    cert_data: bytes,
    key_data: bytes | None,
    password: bytes | None,
) -> None:
    from mailseal.keys.identity import _check_pair, load_certificates
    from mailseal.keys.software import load_private_key

    if key_data is None:
        raise UsageError("importing a CA needs its key (--import-key)")
    certs = load_certificates(cert_data, what="CA certificate file")
    cert = certs[0]
    soft = load_private_key(key_data, password, thorough=True)  # once, for a key kept for years
    try:
        _check_pair(cert, soft)
    except IdentityError:
        raise IdentityError(
            "the imported key does not belong to the imported CA certificate"
        ) from None
    key = soft.key
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise IdentityError("the imported certificate is not a CA certificate")
    ref = keys.adopt(ISSUING, key)
    _write_cert(settings, ISSUING, cert)
    with db.session() as s:
        repo.add_ca(
            s,
            name=ISSUING,
            role="issuing",
            certificate_der=_der(cert),
            subject=cert.subject.rfc4514_string(),
            key_ref=ref,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )
        for n, extra in enumerate(certs[1:], 1):
            role = "root" if extra.issuer == extra.subject else "issuing"
            repo.add_ca(
                s,
                name=ROOT if role == "root" else f"chain{n}",
                role=role,
                certificate_der=_der(extra),
                subject=extra.subject.rfc4514_string(),
                key_ref="",
                not_before=extra.not_valid_before_utc,
                not_after=extra.not_valid_after_utc,
            )
            _write_cert(settings, ROOT if role == "root" else f"chain{n}", extra)
        repo.append_audit(
            s, actor="init", action="ca.import", subject=cert.subject.rfc4514_string(), details={}
        )


# -- the authority --------------------------------------------------------------------------------
@dataclass
class _CA:
    id: int
    name: str
    role: str
    certificate: x509.Certificate
    key_ref: str
    status: str


class Authority:
    """An organisation's CA, opened from its settings."""

    def __init__(self, settings: Settings, db: Database, keys: _Keys) -> None:
        self.settings = settings
        self.db = db
        self._keys = keys
        self._lock = threading.RLock()
        self._loaded_keys: dict[str, PrivateKey] = {}
        self._signers: dict[str, pki_ocsp.OcspSigner] = {}
        self._responder: pki_ocsp.Responder | None = None
        self._issuing: pki_issue.IssuingCA | None = None
        self.cas = self._load_cas()

    @classmethod
    def open(cls, settings: Settings, secrets: Secrets | None = None) -> Authority:
        db = Database(settings.database, audit_key=audit_key(settings))
        db.upgrade()
        return cls(settings, db, _Keys(settings, secrets or Secrets()))

    def close(self) -> None:
        self.db.dispose()

    def _load_cas(self) -> dict[str, _CA]:
        with self.db.session(readonly=True) as s:
            rows = repo.get_cas(s)
            return {
                r.name: _CA(
                    r.id,
                    r.name,
                    r.role,
                    x509.load_der_x509_certificate(r.certificate_der),
                    r.key_ref,
                    r.status,
                )
                for r in rows
            }

    # -- keys -----------------------------------------------------------------------------------
    def key(self, name: str) -> PrivateKey:
        with self._lock:
            found = self._loaded_keys.get(name)
            if found is None:
                ca = self._ca(name)
                found = self._keys.load(ca.key_ref)
                self._loaded_keys[name] = found
            return found

    def has_key(self, name: str) -> bool:
        return bool(self._ca(name).key_ref)

    def check_keys(self) -> None:
        """Open every CA key that is on this server (a wrong passphrase fails here)."""
        for name in self.cas:
            if self.has_key(name):
                self.key(name)

    def _ca(self, name: str) -> _CA:
        try:
            return self.cas[name]
        except KeyError:
            raise UsageError(
                f"no CA named {name!r}; this organisation has {', '.join(self.cas) or 'none'}"
            ) from None

    def issuing_ca(self) -> pki_issue.IssuingCA:
        with self._lock:
            if self._issuing is None:
                self._issuing = self._make_issuing_ca()
            return self._issuing

    def _make_issuing_ca(self) -> pki_issue.IssuingCA:
        ca = self._ca(ISSUING)
        urls = _urls(self.settings, ISSUING)
        chain = tuple(c.certificate for c in self.cas.values() if c.name != ISSUING)
        return pki_issue.IssuingCA(
            certificate=ca.certificate,
            key=self.key(ISSUING),
            chain=chain,
            crl_url=urls["crl"],
            ocsp_url=urls["ocsp"],
            ca_issuers_url=urls["cert"],
            permitted_domains=self.settings.domains,
        )

    def chain(self) -> list[x509.Certificate]:
        """The issuing CA and the certificates above it, nearest first."""
        order = [ISSUING, *(n for n in self.cas if n != ISSUING)]
        return [self.cas[n].certificate for n in order if n in self.cas]

    def export_root_key(self, target: Path) -> None:
        """Move the root key file out of the data directory (an offline root)."""
        ca = self._ca(ROOT)
        if ca.key_ref.startswith("pkcs11:") or not ca.key_ref:
            raise UsageError("only a root key kept in a file can be exported")
        source = self.settings.home / ca.key_ref
        if target.exists():
            raise UsageError(f"{target} exists already")
        data = source.read_bytes()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        source.unlink()
        with self.db.session() as s:
            row = repo.get_ca(s, ROOT)
            assert row is not None
            row.key_ref = ""  # the CA stays active; no key here means it signs elsewhere
            repo.append_audit(s, actor="cli", action="ca.export-root-key", subject=ROOT, details={})
        ca.key_ref = ""
        self._loaded_keys.pop(ROOT, None)

    # -- issuance -------------------------------------------------------------------------------
    def issue(
        self,
        *,
        email: str,
        name: str | None = None,
        profile: str = "mailbox-strict",
        usage: str = "pair",
        csr: bytes | None = None,
        key_type: str = "p256",
        validity_days: int | None = None,
        actor: str = "cli",
        renewal: bool = False,
    ) -> list[IssuedCertificate]:
        """Issue certificates for ``email``: by default a pair (signing + encryption)."""
        if usage not in USAGE_CHOICES:
            raise UsageError(f"unknown usage {usage!r}; choose one of {', '.join(USAGE_CHOICES)}")
        prof = get_profile(profile)
        csr_obj = pki_issue.load_csr(csr) if csr is not None else None
        uses = ["signing", "encryption"] if usage == "pair" else [usage]
        ca = self.issuing_ca()
        out: list[IssuedCertificate] = []
        planned: list[tuple[str, Any, Any]] = []
        for use in uses:
            # a CSR's key is the signing key of a pair (the encryption key is generated here,
            # so that it can be archived), or the key of the one certificate asked for
            if csr_obj is not None and (usage != "pair" or use == "signing"):
                public = csr_obj.public_key()
                key = None
            else:
                kt = key_type
                if use in ("encryption", "dual") and kt in ("ed25519", "ed448"):
                    raise UsageError(
                        f"a {kt} key can only sign; choose p256, p384 or rsa for {use}"
                    )
                key = pki_issue.generate_key(kt)
                public = key.public_key()
            planned.append((use, public, key))
        extra = self._subject_fields(prof)
        for use, public, key in planned:
            cert = pki_issue.build_certificate(
                ca,
                public,
                email=email,
                profile=prof,
                usage=use,
                # a mailbox-validated certificate names the mailbox only (BR §7.1.4.2.2)
                name=None if prof.validation == "mailbox" else name,
                validity_days=validity_days,
                **extra,
            )
            out.append(IssuedCertificate(cert, use, prof.name, key))
        signer = self._signer(ISSUING)
        now = _now()
        with self.db.session() as s:
            mailbox = repo.mailbox_id(s, email, name or email)
            ca_id = self._ca(ISSUING).id
            # looked up in every issuance transaction: an escrow set created by another
            # process since is never missed
            escrow_row = repo.active_escrow_set(s)
            for issued in out:
                c = issued.certificate
                der = _der(c)
                archived = False
                row_id = repo.insert_certificate(
                    s,
                    ca_id=ca_id,
                    serial=c.serial_number,
                    subject=c.subject.rfc4514_string(),
                    sans=[email],
                    profile=prof.name,
                    usage=issued.usage,
                    key_type=_key_type_name(c.public_key()),
                    not_before=c.not_valid_before_utc,
                    not_after=c.not_valid_after_utc,
                    der=der,
                    mailbox_id=mailbox,
                )
                if escrow_row is not None and issued.usage == "encryption" and issued.key:
                    # archived in the same transaction: a key that cannot be archived is not
                    # issued; signing (and dual-use) keys are never archived
                    columns = seal_for(
                        escrow_row,
                        record_id(ca_id, c.serial_number),
                        issued.key.private_bytes(
                            serialization.Encoding.DER,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption(),
                        ),
                    )
                    repo.insert_escrow_record(
                        s,
                        escrow_set_id=escrow_row.id,
                        certificate_id=row_id,
                        mailbox_id=mailbox,
                        fingerprint=hashlib.sha256(der).hexdigest(),
                        **columns,
                    )
                    archived = True
                self._store_ocsp(s, ca_id, signer, c.serial_number, "good", now=now, new=True)
                repo.append_audit(
                    s,
                    actor=actor,
                    action="certificate.renew" if renewal else "certificate.issue",
                    subject=email,
                    details={
                        "serial": issued.serial,
                        "usage": issued.usage,
                        "profile": prof.name,
                        "archived": archived,
                    },
                    flush=False,
                )
        return out

    def _subject_fields(self, prof: Any) -> dict[str, Any]:
        if prof.validation in ("organization", "sponsor"):
            return {"organization": self.settings.organization}
        return {}

    def renew(
        self,
        *,
        email: str,
        revoke_old: str | None = None,
        key_type: str | None = None,
        actor: str = "cli",
    ) -> list[IssuedCertificate]:
        """New keys and certificates for ``email`` with the profile and usages of the current
        valid ones; with ``revoke_old`` (a reason, normally ``superseded``) the old ones are
        revoked afterwards."""
        with self.db.session(readonly=True) as s:
            current = repo.certificates_for_mailbox(s, email, status="valid")
            old = [(c.serial, c.usage, c.profile, c.key_type) for c in current]
        if not old:
            raise UsageError(f"{email} has no valid certificate to renew; use 'mailseal issue'")
        usages = {u for _, u, _, _ in old}
        profile = old[0][2]
        usage = "pair" if usages >= {"signing", "encryption"} else old[0][1]
        kt = key_type or _generator_name(old[0][3])
        issued = self.issue(
            email=email, profile=profile, usage=usage, key_type=kt, actor=actor, renewal=True
        )
        if revoke_old:
            for serial, *_ in old:
                self.revoke(serial=serial, reason=revoke_old, actor=actor)
        return issued

    # -- revocation -----------------------------------------------------------------------------
    def revoke(
        self,
        *,
        serial: str | None = None,
        email: str | None = None,
        reason: str,
        actor: str = "cli",
    ) -> list[str]:
        """Revoke one certificate by serial or every valid certificate of a mailbox; the new
        status is in the OCSP responses and CRLs when this returns."""
        if (serial is None) == (email is None):
            raise UsageError("give either a serial or an email address")
        reason_name = pki_crl.parse_reason(reason)
        if reason_name == "unspecified":
            raise UsageError(
                "the reason 'unspecified' is not allowed (S/MIME BR §7.2.2); name the reason"
            )
        now = _now()
        revoked: list[str] = []
        touched: set[str] = set()
        with self.db.session() as s:
            if serial is not None:
                try:
                    number = int(serial.replace(":", ""), 16)
                except ValueError:
                    raise UsageError(f"{serial!r} is not a hexadecimal serial number") from None
                targets = repo.find_certificates_by_serial(s, number)
                if not targets:
                    raise UsageError(f"no certificate with serial {serial}")
            else:
                assert email is not None
                targets = repo.certificates_for_mailbox(s, email, status="valid")
                if not targets:
                    raise UsageError(f"{email} has no valid certificate")
            for cert in targets:
                ca_name = next(c.name for c in self.cas.values() if c.id == cert.ca_id)
                repo.revoke(s, cert, reason=reason_name, at=now)
                self._store_ocsp(
                    s,
                    cert.ca_id,
                    self._signer(ca_name),
                    int(cert.serial, 16),
                    "revoked",
                    now=now,
                    revoked_at=now,
                    reason=reason_name,
                )
                repo.append_audit(
                    s,
                    actor=actor,
                    action="certificate.revoke",
                    subject=cert.serial,
                    details={"reason": reason_name},
                )
                revoked.append(cert.serial)
                touched.add(ca_name)
        for name in touched:
            self.publish_crls(names=[name], now=now)
        return revoked

    # -- CRLs -----------------------------------------------------------------------------------
    def publish_crls(
        self, *, names: Sequence[str] | None = None, now: _dt.datetime | None = None
    ) -> list[tuple[str, int]]:
        """Issue a new complete CRL (and a delta CRL on the previous complete one) for each CA
        whose key is here; returns (CA name, CRL number) for each complete CRL."""
        now = now or _now()
        out = []
        for name in names or list(self.cas):
            ca = self._ca(name)
            if not ca.key_ref:
                continue
            key = self.key(name)
            scope: Literal["ca", "user"] = "ca" if ca.role == "root" else "user"
            window = (
                _dt.timedelta(days=ROOT_CRL_DAYS)
                if scope == "ca"
                else _dt.timedelta(hours=self.settings.crl_validity_hours)
            )
            urls = _urls(self.settings, name)
            with self.db.session() as s:
                previous = repo.latest_crl(s, ca.id)
                number = repo.next_crl_number(s, ca.id)
                der = pki_crl.build_crl(
                    ca.certificate,
                    key,
                    _entries(repo.revoked_entries(s, ca.id)),
                    number=number,
                    this_update=now,
                    next_update=now + window,
                    idp_url=urls["crl"],
                    scope=scope,
                    freshest_url=urls["delta"] if scope == "user" else None,
                )
                repo.store_crl(
                    s, ca.id, number=number, this_update=now, next_update=now + window, der=der
                )
                if scope == "user":
                    base = previous.number if previous is not None else number
                    since = previous.this_update if previous is not None else now
                    delta_number = repo.next_crl_number(s, ca.id)
                    delta = pki_crl.build_crl(
                        ca.certificate,
                        key,
                        (
                            e
                            for e in _entries(repo.revoked_entries(s, ca.id))
                            if e.revoked_at >= since
                        ),
                        number=delta_number,
                        this_update=now,
                        next_update=now + window,
                        idp_url=urls["delta"],
                        delta_base=base,
                        scope=scope,
                    )
                    repo.store_crl(
                        s,
                        ca.id,
                        number=delta_number,
                        this_update=now,
                        next_update=now + window,
                        der=delta,
                        delta_base=base,
                    )
            out.append((name, number))
        return out

    def crl(self, name: str, *, delta: bool = False) -> tuple[bytes, int] | None:
        """The latest complete (or delta) CRL of CA ``name`` and the seconds to its nextUpdate."""
        ca = self.cas.get(name)
        if ca is None:
            return None
        with self.db.session(readonly=True) as s:
            row = repo.latest_crl(s, ca.id, delta=delta)
            if row is None:
                return None
            left = int((row.next_update - _dt.datetime.now(_dt.UTC)).total_seconds())
            return bytes(row.der), max(left, 0)

    def ca_certificate(self, name: str) -> bytes | None:
        ca = self.cas.get(name)
        return _der(ca.certificate) if ca is not None else None

    # -- OCSP -----------------------------------------------------------------------------------
    def _signer(self, name: str) -> pki_ocsp.OcspSigner:
        with self._lock:
            found = self._signers.get(name)
            if found is not None and found.delegated:
                left = found.responder_certificate.not_valid_after_utc - _dt.datetime.now(_dt.UTC)
                if left < RESPONDER_RENEW_BEFORE:
                    found = None
            if found is None:
                ca = self._ca(name)
                if self.settings.ocsp_responder == "delegated" and ca.role != "root":
                    cert, key = self._responder_identity(name)
                    found = pki_ocsp.OcspSigner(ca.certificate, key, responder_cert=cert)
                else:
                    found = pki_ocsp.OcspSigner(ca.certificate, self.key(name))
                self._signers[name] = found
                self._responder = None
            return found

    def _responder_identity(self, name: str) -> tuple[x509.Certificate, PrivateKey]:
        """The delegated OCSP responder of CA ``name``: its certificate and key, made (or
        renewed, when less than RESPONDER_RENEW_BEFORE is left) with the CA key."""
        if self.settings.key_backend != "file":
            raise UsageError("a delegated OCSP responder needs file keys (key_backend = file)")
        cert_path = self.settings.home / "ca" / f"ocsp-{name}.crt"
        key_path = self.settings.home / "keys" / f"ocsp-{name}.key.pem"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            left = cert.not_valid_after_utc - _dt.datetime.now(_dt.UTC)
            if left >= RESPONDER_RENEW_BEFORE:
                return cert, load_key_file(key_path, self._keys.secrets.passphrase)
        if not self._keys.secrets.passphrase:
            raise UsageError("the CA passphrase is needed to create the OCSP responder key")
        key = pki_issue.generate_key("p256")
        cert = pki_ocsp.make_responder_certificate(
            self._ca(name).certificate,
            self.key(name),
            key.public_key(),
            validity_days=RESPONDER_DAYS,
        )
        for old in (key_path, cert_path):
            old.unlink(missing_ok=True)
        save_key_file(key_path, key, self._keys.secrets.passphrase)
        cert_path.write_bytes(_pem(cert))
        with self.db.session() as s:
            repo.append_audit(
                s,
                actor="ocsp",
                action="ocsp.responder-certificate",
                subject=name,
                details={"serial": repo.serial_hex(cert.serial_number)},
            )
        return cert, SoftwareKey(key)

    def _store_ocsp(
        self,
        session: Any,
        ca_id: int,
        signer: pki_ocsp.OcspSigner,
        serial: int,
        status: str,
        *,
        now: _dt.datetime,
        revoked_at: _dt.datetime | None = None,
        reason: str | None = None,
        new: bool = False,
    ) -> None:
        validity = _dt.timedelta(hours=self.settings.ocsp_validity_hours)
        (first,) = pki_ocsp.presign(
            signer,
            serial,
            status,  # type: ignore[arg-type]
            revoked_at=revoked_at,
            reason=reason,
            now=now,
            validity=validity,
            hash_names=("sha1",),
        )
        store = repo.add_ocsp_response if new else repo.put_ocsp_response
        store(
            session,
            ca_id,
            serial,
            produced_at=first.this_update,
            next_update=first.next_update,
            der=first.der,
        )

    def responder(self) -> pki_ocsp.Responder:
        """The OCSP responder over the pre-signed responses in the database."""
        with self._lock:
            if self._responder is None:
                signers = [self._signer(n) for n, ca in self.cas.items() if ca.key_ref]
                source = _DbResponses(self)
                self._responder = pki_ocsp.Responder(
                    signers,
                    responses=source,
                    statuses=source,
                    validity=_dt.timedelta(hours=self.settings.ocsp_validity_hours),
                )
            return self._responder

    def ocsp(self, request: bytes) -> tuple[bytes, int]:
        return self.responder().respond(request), 0

    def refresh(self, *, now: _dt.datetime | None = None) -> dict[str, int]:
        """Re-sign OCSP responses and CRLs that reached half their validity."""
        now = now or _now()
        for name, ca in self.cas.items():
            if ca.key_ref:
                self._signer(name)  # renews a delegated responder certificate when due
        half_ocsp = _dt.timedelta(hours=self.settings.ocsp_validity_hours) / 2
        done = {"ocsp": 0, "crl": 0}
        by_id = {c.id: c for c in self.cas.values()}
        while True:
            with self.db.session() as s:
                if not repo.try_leader(s, "mailseal.refresh.ocsp"):
                    break  # another node is refreshing
                due = repo.ocsp_responses_due(s, before=now + half_ocsp, limit=500)
                due = [(i, serial) for i, serial in due if by_id.get(i) and by_id[i].key_ref]
                if not due:
                    break
                for ca_id, serial in due:
                    ca = by_id[ca_id]
                    cert = repo.get_certificate(s, ca_id, serial)
                    if cert is None:
                        continue
                    rev = cert.revocation if cert.status == "revoked" else None
                    self._store_ocsp(
                        s,
                        ca_id,
                        self._signer(ca.name),
                        int(serial, 16),
                        "revoked" if rev is not None else "good",
                        now=now,
                        revoked_at=rev.revoked_at if rev is not None else None,
                        reason=rev.reason if rev is not None else None,
                    )
                    done["ocsp"] += 1
            if len(due) < 500:
                break
        stale = []
        with self.db.session() as s:
            leader = repo.try_leader(s, "mailseal.refresh.crl")
            for name, ca in self.cas.items() if leader else ():
                if not ca.key_ref:
                    continue
                row = repo.latest_crl(s, ca.id)
                if row is None or now >= row.this_update + (row.next_update - row.this_update) / 2:
                    stale.append(name)
        if stale:
            done["crl"] = len(self.publish_crls(names=stale, now=now))
        if leader:
            done["audit"] = self.seal_audit()
        return done

    def seal_audit(self) -> int:
        """A signed checkpoint of the audit log when there are new entries (1 if made)."""
        from mailseal.lifecycle.audit import checkpoint

        if not self.has_key(ISSUING):
            return 0
        return 0 if checkpoint(self) is None else 1

    # -- escrow ---------------------------------------------------------------------------------
    def init_escrow(
        self,
        threshold: int,
        officers: Sequence[tuple[str, bytes | x509.Certificate]],
        *,
        cost: Any = None,
        actor: str = "cli",
    ) -> list[tuple[str, bytes]]:
        """A new escrow key for ``officers`` (name, and a passphrase or the officer's
        certificate), any ``threshold`` of whom can recover. Returns each officer's share file
        (to hand over once; never stored here). From now on every encryption key issued here
        is archived to it."""
        from mailseal.escrow.threshold import create_escrow

        names = [n for n, _ in officers]
        if len(set(names)) != len(names):
            raise UsageError("officer names must be distinct")
        if threshold > len(names):
            raise UsageError(f"a threshold of {threshold} needs at least {threshold} officers")
        escrow, shares = create_escrow(threshold, len(officers))
        files, protection = [], []
        for (name, secret), share in zip(officers, shares, strict=True):
            data, how = seal_share_for(escrow, share, secret, cost=cost)
            files.append((name, data))
            protection.append(how)
        shares.clear()
        with self.db.session() as s:
            repo.add_escrow_set(
                s,
                set_id=escrow.set_id,
                threshold=threshold,
                officers=names,
                public_key=escrow.public_key,
                verification=escrow.verification,
                protection=protection,
            )
            repo.append_audit(
                s,
                actor=actor,
                action="escrow.init",
                subject=escrow.set_id.hex(),
                details={"threshold": threshold, "officers": names, "protection": protection},
            )
        return files

    def active_escrow_set(self) -> Any:
        """The active escrow set's row (detached), or a UsageError before ``escrow init``."""
        with self.db.session(readonly=True) as s:
            row = repo.active_escrow_set(s)
            if row is None:
                raise UsageError("no escrow set yet: run 'mailseal escrow init' first")
            s.expunge(row)
            return row

    def hsm_token(self) -> Any:
        """The CA's PKCS#11 token (HSM-mode escrow keeps its key there)."""
        return self._keys.token()

    def escrow_history(self, email: str) -> list[dict[str, Any]]:
        """Every archived key of ``email``: certificate serial, dates, status, escrow set."""
        from mailseal.lifecycle.escrow import _record_certificate

        now = _dt.datetime.now(_dt.UTC)
        with self.db.session(readonly=True) as s:
            out = []
            for r in repo.escrow_history(s, email):
                cert = _record_certificate(r)
                if r.certificate is not None:
                    state = r.certificate.status
                else:
                    state = "expired" if cert.not_valid_after_utc < now else "imported"
                out.append(
                    {
                        "serial": format(cert.serial_number, "x"),
                        "subject": cert.subject.rfc4514_string(),
                        "not_before": cert.not_valid_before_utc.isoformat(),
                        "not_after": cert.not_valid_after_utc.isoformat(),
                        "status": state,
                        "source": r.source,
                        "escrow_set": r.escrow_set.set_id,
                        "archived_at": r.created_at.isoformat(),
                    }
                )
            return out

    # -- queries --------------------------------------------------------------------------------
    def certificates(
        self,
        *,
        email: str | None = None,
        expiring_days: int | None = None,
        status: str | None = None,
    ) -> list[CertificateInfo]:
        names = {c.id: c.name for c in self.cas.values()}
        now = _dt.datetime.now(_dt.UTC)
        with self.db.session(readonly=True) as s:
            if email is not None:
                rows = repo.certificates_for_mailbox(s, email)
            elif expiring_days is not None:
                rows = repo.expiring_certificates(s, within=expiring_days)
            elif status in ("valid", "revoked"):
                rows = repo.certificates_by_status(s, status)
            else:
                rows = repo.certificates_by_status(s, "valid") + repo.certificates_by_status(
                    s, "revoked"
                )
            out = []
            for r in rows:
                effective = r.status
                if effective == "valid" and r.not_after <= now:
                    effective = "expired"
                out.append(
                    CertificateInfo(
                        serial=r.serial,
                        ca=names.get(r.ca_id, str(r.ca_id)),
                        email=r.mailbox.address if r.mailbox is not None else None,
                        subject=r.subject,
                        usage=r.usage,
                        profile=r.profile,
                        key_type=r.key_type,
                        status=effective,
                        not_before=r.not_before,
                        not_after=r.not_after,
                    )
                )
        if expiring_days is not None and email is not None:
            limit = now + _dt.timedelta(days=expiring_days)
            out = [c for c in out if c.status == "valid" and c.not_after <= limit]
        if status is not None:
            out = [c for c in out if c.status == status]
        return sorted(out, key=lambda c: (c.not_after, c.serial))

    def health(self) -> dict[str, Any]:
        self.db.ping()
        return {"status": "ok", "cas": sorted(self.cas), "database": self.db.url}


def _entries(rows: Iterator[Any]) -> Iterator[pki_crl.RevokedEntry]:
    for r in rows:
        yield pki_crl.RevokedEntry(
            serial=r.serial,
            revoked_at=r.revoked_at,
            reason=r.reason,
            invalidity_date=r.invalidity_date,
        )


class _DbResponses:
    """Pre-signed responses and certificate status from the database (the responder's
    :class:`~mailseal.pki.ocsp.ResponseSource` and :class:`~mailseal.pki.ocsp.StatusSource`)."""

    def __init__(self, authority: Authority) -> None:
        self.a = authority
        self._by_sha1: dict[bytes, int] = {}
        self._by_sha256: dict[bytes, int] = {}
        for name, ca in authority.cas.items():
            if ca.key_ref:
                signer = authority._signer(name)
                for table, h in ((self._by_sha1, "sha1"), (self._by_sha256, "sha256")):
                    hashes = signer.issuer_hashes(h)
                    if hashes is not None:
                        table[hashes[1]] = ca.id

    def _ca_id(self, key_hash: bytes) -> int | None:
        return self._by_sha1.get(key_hash) or self._by_sha256.get(key_hash)

    def get(self, issuer_key_hash: bytes, serial: int) -> bytes | None:
        ca_id = self._by_sha1.get(issuer_key_hash)
        if ca_id is None:
            return None  # SHA-256 CertIDs are answered from the status (signed on demand)
        with self.a.db.reader() as conn:
            found = repo.ocsp_response_der(conn, ca_id, serial)
        if found is None or found[1] <= _dt.datetime.now(_dt.UTC):
            return None
        return found[0]

    def status(self, ca_key_id: bytes, serial: int) -> pki_ocsp.CertStatus | None:
        ca_id = self._ca_id(ca_key_id)
        if ca_id is None:
            return None
        with self.a.db.session(readonly=True) as s:
            cert = repo.get_certificate(s, ca_id, serial)
            if cert is None:
                return None
            if cert.status == "revoked" and cert.revocation is not None:
                return pki_ocsp.CertStatus(
                    "revoked", cert.revocation.revoked_at, cert.revocation.reason
                )
            return pki_ocsp.CertStatus("good")


def seal_share_for(
    escrow: EscrowSet, share: Any, secret: bytes | x509.Certificate, *, cost: Any = None
) -> tuple[bytes, str]:
    """An officer's share file: under their passphrase, or encrypted to their certificate.
    Returns the file and how it is protected (for the record)."""
    from mailseal.escrow.officer import seal_share_to_certificate
    from mailseal.escrow.protect import KDF_MODERATE, seal_share

    if isinstance(secret, x509.Certificate):
        fingerprint = hashlib.sha256(_der(secret)).hexdigest()
        return seal_share_to_certificate(escrow, share, secret), f"certificate {fingerprint}"
    return seal_share(escrow, share, secret, cost=cost or KDF_MODERATE), "passphrase"


def _key_type_name(pub: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(pub, rsa.RSAPublicKey):
        return f"rsa{pub.key_size}"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return {256: "p256", 384: "p384", 521: "p521"}.get(pub.key_size, "ec")
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "ed25519"
    return "other"


def _generator_name(key_type: str) -> str:
    return key_type if key_type in pki_issue.KEY_TYPES else "p256"
