"""mailseal.pki.ca: root and issuing CA certificates as the S/MIME BR §7.1.2.1-2 describe."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
)

from mailseal.errors import AlgorithmError, IssuanceError, UsageError
from mailseal.keys.base import KeyType, SignatureScheme
from mailseal.keys.software import SoftwareKey
from mailseal.pki.ca import create_issuing, create_root
from mailseal.pki.profiles import PROFILES

ROOT_CRL = "http://pki.example.org/root.crl"
ROOT_CER = "http://pki.example.org/root.cer"


class Remote:
    """A PrivateKey that is not a SoftwareKey (like an HSM key)."""

    def __init__(self, key: Any) -> None:
        self.inner = SoftwareKey(key)

    @property
    def key_type(self) -> KeyType:
        return self.inner.key_type

    @property
    def key_size(self) -> int:
        return self.inner.key_size

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        return self.inner.sign(data, scheme)


@pytest.fixture(scope="module")
def root_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def root(root_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return create_root(
        SoftwareKey(root_key),
        root_key.public_key(),
        organization="Example Trading GmbH",
        common_name="Example S/MIME Root",
        country="DE",
    )


def _issuing(root: x509.Certificate, root_key: Any, **kw: Any) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    args: dict[str, Any] = {
        "organization": "Example Trading GmbH",
        "common_name": "Example S/MIME Issuing CA",
        "crl_url": ROOT_CRL,
        "ca_issuers_url": ROOT_CER,
        **kw,
    }
    return create_issuing(root, SoftwareKey(root_key), key.public_key(), **args)


def test_root(root: x509.Certificate) -> None:
    root.verify_directly_issued_by(root)
    ext = root.extensions
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length is None
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(root.public_key())
    oids = {e.oid for e in ext}
    assert ExtensionOID.EXTENDED_KEY_USAGE not in oids  # BR §7.1.2.1 d
    assert ExtensionOID.CERTIFICATE_POLICIES not in oids  # BR §7.1.2.1 c
    assert root.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "DE"
    assert root.serial_number.bit_length() == 159
    assert root.version is x509.Version.v3


def test_issuing(root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey) -> None:
    cert = _issuing(
        root,
        root_key,
        permitted_domains=("Example.org", "bücher.ch", "example.org"),
        ocsp_url="http://ocsp.example.org/",
    )
    cert.verify_directly_issued_by(root)
    ext = cert.extensions
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert ku.value.digital_signature  # signs its own OCSP responses
    assert not ku.value.key_encipherment
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    nc = ext.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert nc.value.permitted_subtrees == [
        x509.RFC822Name("example.org"),
        x509.RFC822Name(".example.org"),
        x509.RFC822Name("xn--bcher-kva.ch"),
        x509.RFC822Name(".xn--bcher-kva.ch"),
    ]
    assert nc.value.excluded_subtrees is None
    cdp = ext.get_extension_for_class(x509.CRLDistributionPoints)
    assert not cdp.critical
    assert cdp.value[0].full_name == [x509.UniformResourceIdentifier(ROOT_CRL)]
    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert {(d.access_method, d.access_location.value) for d in aia} == {
        (AuthorityInformationAccessOID.CA_ISSUERS, ROOT_CER),
        (AuthorityInformationAccessOID.OCSP, "http://ocsp.example.org/"),
    }
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert aki.authority_cert_issuer is None and aki.authority_cert_serial_number is None
    policies = ext.get_extension_for_class(x509.CertificatePolicies).value
    assert {p.policy_identifier.dotted_string for p in policies} == {
        p.policy_oid for p in PROFILES.values()
    }
    assert cert.issuer.public_bytes() == root.subject.public_bytes()


def test_issuing_without_domains_has_no_name_constraints(
    root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = _issuing(root, root_key, policy_oids=["2.23.140.1.5.1.3"], ocsp_signing=False)
    oids = {e.oid for e in cert.extensions}
    assert ExtensionOID.NAME_CONSTRAINTS not in oids
    assert not cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.23.140.1.5.1.3"]


@pytest.mark.parametrize(
    "maker",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: rsa.generate_private_key(65537, 3072),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["p256", "rsa3072", "ed25519"],
)
def test_ca_key_types(maker: Any) -> None:
    key = maker()
    root = create_root(Remote(key), key.public_key(), organization="E", common_name="Root")
    root.verify_directly_issued_by(root)


def test_refused_ca_keys() -> None:
    p521 = ec.generate_private_key(ec.SECP521R1())
    with pytest.raises(AlgorithmError, match="P-256"):
        create_root(SoftwareKey(p521), p521.public_key(), organization="E", common_name="R")
    small = rsa.generate_private_key(65537, 2048)
    with pytest.raises(AlgorithmError, match="RSA-3072"):
        create_root(SoftwareKey(small), small.public_key(), organization="E", common_name="R")
    a, b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(UsageError, match="public half"):
        create_root(SoftwareKey(a), b.public_key(), organization="E", common_name="R")


def test_a_public_key_of_another_key_is_caught() -> None:
    a, b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(IssuanceError, match="do not belong together"):
        create_root(Remote(a), b.public_key(), organization="E", common_name="R")


def test_issuing_ca_refusals(root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(IssuanceError, match="outlive the root"):
        _issuing(root, root_key, validity_days=30 * 365)
    with pytest.raises(UsageError, match="http://"):
        _issuing(root, root_key, crl_url="ldap://pki.example.org/root.crl")
    with pytest.raises(UsageError, match="different from the root"):
        _issuing(root, root_key, common_name="Example S/MIME Root", country="DE")
    with pytest.raises(UsageError, match="domain"):
        _issuing(root, root_key, permitted_domains=("not a domain",))
    with pytest.raises(UsageError, match="policy"):
        _issuing(root, root_key, policy_oids=[])
    with pytest.raises(UsageError, match="organization"):
        _issuing(root, root_key, organization=" ")
    with pytest.raises(UsageError, match="country"):
        _issuing(root, root_key, country="Deutschland")
    late = dt.datetime.now(dt.UTC) - dt.timedelta(days=3650)
    with pytest.raises(IssuanceError, match="before the root"):
        _issuing(root, root_key, not_before=late)
    weak = rsa.generate_private_key(65537, 2048)
    with pytest.raises(AlgorithmError):
        create_issuing(
            root,
            SoftwareKey(root_key),
            weak.public_key(),
            organization="E",
            common_name="Weak",
            crl_url=ROOT_CRL,
        )
