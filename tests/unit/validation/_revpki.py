"""A small test PKI with revocation: CAs whose certificates name CRL distribution points and an
OCSP responder, CRLs and OCSP responses made on demand (cryptography only, fresh keys)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

import mailseal
from mailseal.pki.issue import key_usage
from mailseal.pki.testpki import Issued

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, email: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Revocation Test"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ]
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attrs)


def _ku(**bits: bool) -> x509.KeyUsage:
    return key_usage({name for name, on in bits.items() if on})


@dataclass
class CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()  # intermediates above this CA (not the root)
    serial: int = field(default_factory=lambda: x509.random_serial_number() >> 100)

    @classmethod
    def root(cls, name: str = "Revocation Test Root") -> CA:
        key = _key()
        subject = _name(name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(NOW - 30 * DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ku(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def _next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def _builder(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        *,
        crl_url: str | None,
        ocsp_url: str | None,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
        ca_issuers_url: str | None = None,
    ) -> x509.CertificateBuilder:
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(self._next_serial())
            .not_valid_before(not_before or NOW - DAY)
            .not_valid_after(not_after or NOW + 20 * DAY)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if crl_url:
            b = b.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(crl_url)], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
        access = []
        if ocsp_url:
            access.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                )
            )
        if ca_issuers_url:
            access.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(ca_issuers_url),
                )
            )
        if access:
            b = b.add_extension(x509.AuthorityInformationAccess(access), critical=False)
        return b

    def sub_ca(self, name: str, *, crl_url: str | None = None, ocsp_url: str | None = None) -> CA:
        key = _key()
        cert = (
            self._builder(
                _name(name),
                key.public_key(),
                crl_url=crl_url,
                ocsp_url=ocsp_url,
                not_before=NOW - 30 * DAY,
                not_after=NOW + 25 * DAY,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ku(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(self.key, hashes.SHA256())
        )
        parent = () if self.cert.subject == self.cert.issuer else (self.cert,)
        return CA(cert, key, (*parent, *self.chain))

    def user(
        self,
        email: str,
        *,
        crl_url: str | None = None,
        ocsp_url: str | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        encrypt: bool = True,
        ca_issuers_url: str | None = None,
    ) -> Issued:
        key = _key()
        cert = (
            self._builder(
                _name(email.partition("@")[0], email),
                key.public_key(),
                crl_url=crl_url,
                ocsp_url=ocsp_url,
                not_before=not_before,
                not_after=not_after,
                ca_issuers_url=ca_issuers_url,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_ku(digital_signature=True, key_agreement=encrypt), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), False)
            .sign(self.key, hashes.SHA256())
        )
        return Issued.of(cert, key)

    def responder(self) -> Issued:
        """A delegated OCSP responder certificate (RFC 6960 §4.2.2.2)."""
        key = _key()
        cert = (
            self._builder(
                _name(f"OCSP {self.cert.subject.rfc4514_string()}"),
                key.public_key(),
                crl_url=None,
                ocsp_url=None,
                not_before=None,
                not_after=None,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_ku(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)
            .add_extension(x509.OCSPNoCheck(), False)
            .sign(self.key, hashes.SHA256())
        )
        return Issued.of(cert, key)

    def identity(self, user: Issued) -> mailseal.Identity:
        return mailseal.load_identity(user.cert_pem, user.key_pem, chain=[self.cert, *self.chain])

    def crl(
        self,
        revoked: tuple[tuple[x509.Certificate, x509.ReasonFlags | None], ...] = (),
        *,
        this_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        revoked_at: dt.datetime | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        number: int = 1,
    ) -> bytes:
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(this_update or NOW - HOUR)
            .next_update(next_update or NOW + DAY)
            .add_extension(x509.CRLNumber(number), False)
        )
        for cert, reason in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(revoked_at or NOW - 2 * HOUR)
            )
            if reason is not None:
                entry = entry.add_extension(x509.CRLReason(reason), False)
            b = b.add_revoked_certificate(entry.build())
        crl = b.sign(signing_key or self.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.DER)

    def ocsp(
        self,
        cert: x509.Certificate,
        status: str,
        *,
        responder: Issued | None = None,
        this_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        revoked_at: dt.datetime | None = None,
        reason: x509.ReasonFlags | None = None,
    ) -> bytes:
        cert_status = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }[status]
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=cert,
            issuer=self.cert,
            algorithm=hashes.SHA1(),
            cert_status=cert_status,
            this_update=this_update or NOW - HOUR,
            next_update=next_update or NOW + DAY,
            revocation_time=(revoked_at or NOW - 2 * HOUR) if status == "revoked" else None,
            revocation_reason=reason if status == "revoked" else None,
        )
        if responder is not None:
            b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.cert).certificates(
                [responder.cert]
            )
            key = responder.key
        else:
            b = b.responder_id(ocsp.OCSPResponderEncoding.NAME, self.cert)
            key = self.key
        resp = b.sign(key, hashes.SHA256())  # type: ignore[arg-type]
        return resp.public_bytes(serialization.Encoding.DER)
