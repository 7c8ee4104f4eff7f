"""mailseal.pki.signing: certificates, CRLs and OCSP responses signed by a key that is not held
in memory (as an HSM key) are byte-for-byte what the builders describe, with a signature that
verifies under the key's public key."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from mailseal.errors import AlgorithmError
from mailseal.keys.software import SoftwareKey
from mailseal.pki.signing import (
    preview_certificate,
    scheme_for,
    sign_certificate,
    sign_crl,
    sign_ocsp_response,
)

from ._remote import Remote

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


KEYS = {
    "rsa": lambda: rsa.generate_private_key(65537, 2048),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(pub: object) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name("Signing Test CA"))
        .issuer_name(_name("Signing Test CA"))
        .public_key(pub)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )


@pytest.mark.parametrize("kind", list(KEYS))
def test_certificate_crl_and_ocsp_by_a_remote_key(kind: str) -> None:
    soft = KEYS[kind]()
    key = Remote(soft)
    cert = sign_certificate(_builder(soft.public_key()), key)
    assert key.calls == 1
    cert.verify_directly_issued_by(cert)  # the signature verifies under the real key
    preview = preview_certificate(_builder(soft.public_key()), key)
    assert preview.signature_algorithm_oid == cert.signature_algorithm_oid

    crl = sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(7).revocation_date(NOW).build()
        ),
        key,
    )
    assert crl.is_signature_valid(soft.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(7) is not None

    resp = sign_ocsp_response(
        ocsp.OCSPResponseBuilder().add_response(
            cert=cert,
            issuer=cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + dt.timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        ),
        key,
        cert,
        include_responder=True,
    )
    pub = soft.public_key()
    tbs, sig = resp.tbs_response_bytes, resp.signature
    if isinstance(pub, rsa.RSAPublicKey):
        from cryptography.hazmat.primitives.asymmetric import padding

        pub.verify(sig, tbs, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        h = hashes.SHA256() if pub.key_size == 256 else hashes.SHA384()
        pub.verify(sig, tbs, ec.ECDSA(h))
    else:
        pub.verify(sig, tbs)  # type: ignore[call-arg]
    assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(pub).digest
    assert resp.certificates == [cert]


def test_software_keys_sign_directly() -> None:
    soft = KEYS["p256"]()
    cert = sign_certificate(_builder(soft.public_key()), SoftwareKey(soft))
    cert.verify_directly_issued_by(cert)
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"


def test_br_hashes() -> None:
    assert scheme_for(SoftwareKey(KEYS["p384"]())).hash == "sha384"
    assert scheme_for(SoftwareKey(KEYS["rsa"]())).kind == "rsa-pkcs1"
    p = SoftwareKey(KEYS["p384"]())
    cert = sign_certificate(_builder(p.key.public_key()), p)
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha384"


def test_a_key_agreement_key_cannot_sign() -> None:
    from cryptography.hazmat.primitives.asymmetric import x25519

    with pytest.raises(AlgorithmError):
        scheme_for(SoftwareKey(x25519.X25519PrivateKey.generate()))
    assert serialization  # keep the import used for readers comparing DER
