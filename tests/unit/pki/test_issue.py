"""mailseal.pki.issue: every profile, key type and usage gives a certificate that pkilint's
S/MIME BR linter and OpenSSL accept; hostile requests are refused with a clear error; a key
that is not held in memory issues through preview-then-resign."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asn1crypto.core import UTF8String
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from mailseal.errors import (
    AlgorithmError,
    CsrError,
    IssuanceError,
    MailsealError,
    ProfileError,
    UsageError,
)
from mailseal.keys.software import SoftwareKey
from mailseal.pki.ca import create_issuing, create_root
from mailseal.pki.issue import (
    MAX_CSR_SIZE,
    SMTP_UTF8_MAILBOX,
    IssuingCA,
    build_certificate,
    export_pkcs12,
    generate_key,
    generate_password,
    lint_certificate,
    load_csr,
    new_serial,
)
from mailseal.pki.profiles import PROFILE_NAMES, get_profile

from ._remote import Remote

KEY_TYPES = ("p256", "p384", "rsa2048", "rsa3072", "ed25519")
USAGES = ("signing", "encryption", "dual")
DOMAIN = "example.org"

# subject details per validation type (BR §7.1.4.2.3-6)
SUBJECTS: dict[str, dict[str, str]] = {
    "mailbox": {},
    "organization": {
        "organization": "Example Trading GmbH",
        "organization_identifier": "NTRDE-DEK1101R.HRB12345",
        "country": "DE",
        "locality": "Berlin",
    },
    "sponsor": {
        "organization": "Example Trading GmbH",
        "organization_identifier": "NTRDE-DEK1101R.HRB12345",
        "given_name": "Alice",
        "surname": "Liddell",
        "title": "Engineer",
        "country": "DE",
    },
    "individual": {"given_name": "Alice", "surname": "Liddell"},
}


class PKI:
    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.issuing_key = ec.generate_private_key(ec.SECP256R1())
        root_signer = SoftwareKey(self.root_key)
        self.root = create_root(
            root_signer,
            self.root_key.public_key(),
            organization="Example Trading GmbH",
            common_name="Example S/MIME Root",
            country="DE",
        )
        self.issuing = create_issuing(
            self.root,
            root_signer,
            self.issuing_key.public_key(),
            organization="Example Trading GmbH",
            common_name="Example S/MIME Issuing CA",
            country="DE",
            permitted_domains=(DOMAIN,),
            crl_url="http://pki.example.org/root.crl",
            ca_issuers_url="http://pki.example.org/root.cer",
        )
        self.ca = IssuingCA(
            certificate=self.issuing,
            key=SoftwareKey(self.issuing_key),
            chain=(self.root,),
            crl_url="http://pki.example.org/issuing.crl",
            ocsp_url="http://ocsp.example.org/",
            ca_issuers_url="http://pki.example.org/issuing.cer",
            permitted_domains=(DOMAIN,),
        )


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {kt: generate_key(kt) for kt in KEY_TYPES}


def _combinations() -> Iterator[tuple[str, str, str]]:
    for profile in PROFILE_NAMES:
        for kt in KEY_TYPES:
            for usage in USAGES:
                if kt == "ed25519" and usage != "signing":
                    continue
                yield profile, kt, usage


@pytest.fixture(scope="module")
def matrix(pki: PKI, keys: dict[str, Any]) -> dict[tuple[str, str, str], x509.Certificate]:
    out = {}
    for profile, kt, usage in _combinations():
        out[profile, kt, usage] = build_certificate(
            pki.ca,
            keys[kt].public_key(),
            email=f"alice@{DOMAIN}",
            profile=profile,
            usage=usage,
            **SUBJECTS[profile.split("-")[0]],  # type: ignore[arg-type]
        )
    return out


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class PkiLint:
    """pkilint's S/MIME linter in this process (what ``lint_cabf_smime_cert lint -d -s WARNING``
    runs), with one validator per certificate type."""

    def __init__(self) -> None:
        self.loader = pytest.importorskip("pkilint.loader")
        self.smime = pytest.importorskip("pkilint.cabf.smime")
        self.certificate = pytest.importorskip("pkilint.pkix.certificate")
        self.validation = pytest.importorskip("pkilint.validation")
        self.validators: dict[Any, Any] = {}

    def findings(self, cert: x509.Certificate) -> list[str]:
        doc = self.loader.RFC5280CertificateDocumentLoader().load_der_document(_der(cert), "c")
        kind = self.smime.determine_validation_level_and_generation(doc)
        assert kind is not None, "pkilint cannot tell the certificate type from its policy OID"
        validator = self.validators.get(kind)
        if validator is None:
            validator = self.certificate.create_pkix_certificate_validator_container(
                self.smime.create_decoding_validators(),
                self.smime.create_subscriber_validators(*kind),
            )
            self.validators[kind] = validator
        threshold = self.validation.ValidationFindingSeverity.WARNING
        return [
            f"{f.finding.severity} {f.finding.code} {f.message or ''}"
            for result in validator.validate(doc.root)
            for f in result.finding_descriptions
            if f.finding.severity <= threshold
        ]


@pytest.fixture(scope="module")
def pkilint() -> PkiLint:
    return PkiLint()


# --------------------------------------------------------------------------------------------
# the conformance matrix


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_pkilint_finds_nothing_at_warning_or_above(
    profile: str,
    matrix: dict[tuple[str, str, str], x509.Certificate],
    pkilint: PkiLint,
) -> None:
    checked = 0
    for (name, kt, usage), cert in matrix.items():
        if name != profile:
            continue
        assert pkilint.findings(cert) == [], (name, kt, usage)
        checked += 1
    assert checked == 13  # 4 key types x 3 usages + Ed25519 signing


def test_pkilint_cli_agrees(
    matrix: dict[tuple[str, str, str], x509.Certificate], tmp_path: Path
) -> None:
    cli = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "lint_cabf_smime_cert"
    exe = shutil.which("lint_cabf_smime_cert") or (str(cli) if cli.exists() else None)
    if exe is None:
        pytest.skip("pkilint is not installed")
    f = tmp_path / "cert.pem"
    f.write_bytes(_pem(matrix["sponsor-strict", "p256", "dual"]))
    run = subprocess.run([exe, "lint", "-d", "-s", "WARNING", str(f)], capture_output=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == b""


def test_what_each_certificate_says(
    pki: PKI, matrix: dict[tuple[str, str, str], x509.Certificate]
) -> None:
    for (profile, kt, usage), cert in matrix.items():
        ext = cert.extensions
        assert ext.get_extension_for_class(x509.BasicConstraints).critical
        assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
        ku = ext.get_extension_for_class(x509.KeyUsage)
        assert ku.critical
        assert ku.value.digital_signature == (usage != "encryption")
        if kt.startswith("rsa"):
            assert ku.value.key_encipherment == (usage != "signing")
            assert not ku.value.key_agreement
        elif kt.startswith("p"):
            assert ku.value.key_agreement == (usage != "signing")
            assert not ku.value.key_encipherment
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
        policies = ext.get_extension_for_class(x509.CertificatePolicies).value
        assert [p.policy_identifier.dotted_string for p in policies] == [
            get_profile(profile).policy_oid
        ]
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.RFC822Name) == [f"alice@{DOMAIN}"]
        aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == pki.ca.key_identifier
        cdp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
        assert cdp[0].full_name == [x509.UniformResourceIdentifier(pki.ca.crl_url)]
        assert ext.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
        assert cert.issuer.public_bytes() == pki.issuing.subject.public_bytes()
        validity = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert validity == dt.timedelta(days=365, seconds=-1)
        assert cert.serial_number.bit_length() == 159
        cert.verify_directly_issued_by(pki.issuing)
        assert lint_certificate(cert, profile, usage, ca=pki.ca) == ()


def test_subject_per_validation_type(matrix: dict[tuple[str, str, str], x509.Certificate]) -> None:
    def cn(profile: str) -> str:
        cert = matrix[profile, "p256", "signing"]
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    assert cn("mailbox-strict") == f"alice@{DOMAIN}"
    assert cn("organization-strict") == "Example Trading GmbH"
    assert cn("sponsor-strict") == "Alice Liddell"
    assert cn("individual-multipurpose") == "Alice Liddell"
    mailbox = matrix["mailbox-strict", "p256", "signing"].subject
    assert [a.oid for a in mailbox] == [NameOID.COMMON_NAME]


@pytest.fixture(scope="module")
def openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("openssl is not installed")
    return exe


def _openssl_verify(
    exe: str, pki: PKI, certs: dict[str, x509.Certificate], tmp: Path, purpose: str | None
) -> dict[str, bool]:
    (tmp / "root.pem").write_bytes(_pem(pki.root))
    (tmp / "issuing.pem").write_bytes(_pem(pki.issuing))
    files = []
    for label, cert in certs.items():
        f = tmp / f"{label}.pem"
        f.write_bytes(_pem(cert))
        files.append(str(f))
    args = [exe, "verify", "-CAfile", str(tmp / "root.pem"), "-untrusted", str(tmp / "issuing.pem")]
    if purpose:
        args += ["-purpose", purpose]
    out = subprocess.run([*args, *files], capture_output=True, text=True).stdout
    ok = {line.split(":")[0] for line in out.splitlines() if line.endswith(": OK")}
    return {label: str(tmp / f"{label}.pem") in ok for label in certs}


def test_openssl_accepts_the_right_purposes(
    pki: PKI,
    matrix: dict[tuple[str, str, str], x509.Certificate],
    openssl: str,
    tmp_path: Path,
) -> None:
    certs = {"-".join(k): c for k, c in matrix.items()}
    sign = _openssl_verify(openssl, pki, certs, tmp_path, "smimesign")
    encrypt = _openssl_verify(openssl, pki, certs, tmp_path, "smimeencrypt")
    chain = _openssl_verify(openssl, pki, certs, tmp_path, None)
    for (profile, kt, usage), _ in matrix.items():
        label = f"{profile}-{kt}-{usage}"
        assert chain[label], label
        assert sign[label] == (usage != "encryption"), label
        # OpenSSL's smimeencrypt purpose wants keyEncipherment: RSA only (ECDH certificates
        # assert keyAgreement, as BR §7.1.2.3 e and RFC 8550 §4.4.2 say)
        assert encrypt[label] == (kt.startswith("rsa") and usage != "signing"), label


def test_name_constraints_hold_in_openssl(pki: PKI, openssl: str, tmp_path: Path) -> None:
    key = generate_key("p256")
    unconstrained = IssuingCA(
        certificate=pki.issuing,
        key=pki.ca.key,
        crl_url=pki.ca.crl_url,
        ca_issuers_url=pki.ca.ca_issuers_url,
        permitted_domains=(),  # the CA object forgets, the certificate's nameConstraints do not
    )
    certs = {
        "inside": build_certificate(
            unconstrained,
            key.public_key(),
            email="a@mail.example.org",
            profile="mailbox-strict",
            usage="signing",
        ),
        "outside": build_certificate(
            unconstrained,
            key.public_key(),
            email="a@example.net",
            profile="mailbox-strict",
            usage="signing",
        ),
    }
    result = _openssl_verify(openssl, pki, certs, tmp_path, "smimesign")
    assert result == {"inside": True, "outside": False}


# --------------------------------------------------------------------------------------------
# mailboxes and subjects


def test_a_mailbox_outside_the_permitted_domains_is_refused(pki: PKI) -> None:
    key = generate_key()
    for email in ("bob@example.net", "bob@notexample.org", "bob@example.org.evil.com"):
        with pytest.raises(IssuanceError, match="outside the domains"):
            build_certificate(
                pki.ca, key.public_key(), email=email, profile="mailbox-strict", usage="signing"
            )
    cert = build_certificate(
        pki.ca,
        key.public_key(),
        email="Bob@Sub.Example.ORG",
        profile="mailbox-strict",
        usage="signing",
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["Bob@sub.example.org"]


def test_non_ascii_local_part_gets_smtputf8mailbox(pki: PKI, pkilint: PkiLint) -> None:
    key = generate_key()
    for profile in ("mailbox-strict", "individual-multipurpose"):
        cert = build_certificate(
            pki.ca,
            key.public_key(),
            email=f"jösé@{DOMAIN}",
            profile=profile,
            usage="signing",
            **SUBJECTS[profile.split("-")[0]],  # type: ignore[arg-type]
        )
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.RFC822Name) == []
        (other,) = san.get_values_for_type(x509.OtherName)
        assert other.type_id == SMTP_UTF8_MAILBOX
        assert UTF8String.load(other.value).native == f"jösé@{DOMAIN}"
        assert pkilint.findings(cert) == []
    with pytest.raises(ProfileError, match="IA5String"):
        build_certificate(
            pki.ca,
            key.public_key(),
            email=f"jösé@{DOMAIN}",
            profile="mailbox-strict",
            usage="signing",
            email_in_subject=True,
        )


def test_idn_domains_go_in_as_a_labels(pki: PKI, pkilint: PkiLint) -> None:
    ca = IssuingCA(
        certificate=pki.issuing,
        key=pki.ca.key,
        crl_url=pki.ca.crl_url,
        ca_issuers_url=pki.ca.ca_issuers_url,
        permitted_domains=("bücher.ch",),
    )
    assert ca.permitted_domains == ("xn--bcher-kva.ch",)
    key = generate_key()
    cert = build_certificate(
        ca, key.public_key(), email="anna@BÜCHER.ch", profile="mailbox-strict", usage="dual"
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["anna@xn--bcher-kva.ch"]
    cert = build_certificate(
        ca, key.public_key(), email="änna@bücher.ch", profile="mailbox-strict", usage="dual"
    )
    (other,) = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert isinstance(other, x509.OtherName)
    assert UTF8String.load(other.value).native == "änna@xn--bcher-kva.ch"  # RFC 9598 §3
    assert pkilint.findings(cert) == []


@pytest.mark.parametrize(
    "email",
    [
        "",
        "alice",
        "@example.org",
        "alice@",
        "al ice@example.org",
        "a\nb@example.org",
        '"alice"@example.org',
        "alice@exa_mple.org",
        "a..b@example.org",
        "x" * 65 + "@example.org",
    ],
)
def test_bad_mailboxes(pki: PKI, email: str) -> None:
    with pytest.raises(UsageError):
        build_certificate(
            pki.ca,
            generate_key().public_key(),
            email=email,
            profile="mailbox-strict",
            usage="signing",
        )


def test_subject_rules_are_enforced(pki: PKI) -> None:
    pub = generate_key().public_key()
    email = f"alice@{DOMAIN}"

    def issue(profile: str, **kw: Any) -> x509.Certificate:
        return build_certificate(pki.ca, pub, email=email, profile=profile, usage="signing", **kw)

    with pytest.raises(ProfileError, match="does not allow organizationName"):
        issue("mailbox-strict", organization="Example")
    with pytest.raises(ProfileError, match="needs organizationIdentifier"):
        issue("organization-strict", organization="Example")
    with pytest.raises(ProfileError, match="given_name and/or surname, or a pseudonym"):
        issue("individual-strict")
    with pytest.raises(ProfileError, match="pseudonym cannot be combined"):
        issue("individual-strict", pseudonym="Cheshire", surname="Liddell")
    with pytest.raises(ProfileError, match="commonName"):
        issue("mailbox-strict", name="Alice Liddell")
    with pytest.raises(ProfileError, match="commonName"):
        issue("organization-strict", name="Someone Else", **SUBJECTS["organization"])
    with pytest.raises(ProfileError, match="the pseudonym"):
        issue("individual-strict", pseudonym="Cheshire", name="Alice")
    with pytest.raises(ProfileError, match="BR form"):
        issue("organization-strict", organization="Example", organization_identifier="12345")
    with pytest.raises(ProfileError, match="EUID"):
        issue("organization-strict", organization="E", organization_identifier="NTRDE-HRB1")
    with pytest.raises(ProfileError, match="countryName"):
        issue("individual-strict", surname="Liddell", locality="Oxford")
    with pytest.raises(ProfileError, match="two-letter"):
        issue("individual-strict", surname="Liddell", country="Germany")
    with pytest.raises(ProfileError, match="no information"):
        issue("individual-strict", surname="-")
    cert = issue("individual-strict", pseudonym="Cheshire")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Cheshire"
    cert = issue("mailbox-strict", email_in_subject=True)
    assert cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)[0].value == email


# --------------------------------------------------------------------------------------------
# profile options


def test_legacy_profile_refused(pki: PKI) -> None:
    with pytest.raises(ProfileError, match="Legacy"):
        build_certificate(
            pki.ca,
            generate_key().public_key(),
            email=f"a@{DOMAIN}",
            profile="mailbox-legacy",
            usage="signing",
        )


@pytest.mark.parametrize("usage", ["encryption", "dual"])
def test_ed25519_encryption_refused(pki: PKI, keys: dict[str, Any], usage: str) -> None:
    with pytest.raises(ProfileError, match="cannot be used for"):
        build_certificate(
            pki.ca,
            keys["ed25519"].public_key(),
            email=f"a@{DOMAIN}",
            profile="mailbox-strict",
            usage=usage,
        )


def test_validity(pki: PKI) -> None:
    pub = generate_key().public_key()
    for days in (826, 0, -1):
        with pytest.raises(ProfileError, match="825"):
            build_certificate(
                pki.ca,
                pub,
                email=f"a@{DOMAIN}",
                profile="mailbox-strict",
                usage="signing",
                validity_days=days,
            )
    cert = build_certificate(
        pki.ca,
        pub,
        email=f"a@{DOMAIN}",
        profile="mailbox-multipurpose",
        usage="signing",
        validity_days=825,
    )
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(
        days=825, seconds=-1
    )
    start = pki.issuing.not_valid_after_utc - dt.timedelta(days=100)
    with pytest.raises(IssuanceError, match="outlive"):
        build_certificate(
            pki.ca,
            pub,
            email=f"a@{DOMAIN}",
            profile="mailbox-strict",
            usage="signing",
            not_before=start,
        )


def test_multipurpose_extras(pki: PKI, pkilint: PkiLint) -> None:
    pub = generate_key("rsa2048").public_key()
    cert = build_certificate(
        pki.ca,
        pub,
        email=f"a@{DOMAIN}",
        profile="individual-multipurpose",
        usage="dual",
        surname="Liddell",
        extra_ekus=["clientAuth"],
        non_repudiation=True,
    )
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.content_commitment
    assert pkilint.findings(cert) == []
    with pytest.raises(ProfileError, match="clientAuth"):
        build_certificate(
            pki.ca,
            pub,
            email=f"a@{DOMAIN}",
            profile="individual-strict",
            usage="dual",
            surname="Liddell",
            extra_ekus=["clientAuth"],
        )
    with pytest.raises(ProfileError, match="serverAuth"):
        build_certificate(
            pki.ca,
            pub,
            email=f"a@{DOMAIN}",
            profile="individual-multipurpose",
            usage="dual",
            surname="Liddell",
            extra_ekus=["serverAuth"],
        )
    with pytest.raises(ProfileError, match="nonRepudiation"):
        build_certificate(
            pki.ca,
            pub,
            email=f"a@{DOMAIN}",
            profile="mailbox-strict",
            usage="encryption",
            non_repudiation=True,
        )


def test_weak_and_odd_public_keys_are_refused(pki: PKI) -> None:
    weak = rsa.generate_private_key(65537, 1024).public_key()
    with pytest.raises(AlgorithmError, match="at least 2048"):
        build_certificate(
            pki.ca, weak, email=f"a@{DOMAIN}", profile="mailbox-strict", usage="signing"
        )
    p521 = ec.generate_private_key(ec.SECP521R1()).public_key()
    with pytest.raises(AlgorithmError, match="P-256, P-384"):
        build_certificate(
            pki.ca, p521, email=f"a@{DOMAIN}", profile="mailbox-strict", usage="signing"
        )


def test_lint_catches_a_certificate_that_does_not_fit(
    pki: PKI, matrix: dict[tuple[str, str, str], x509.Certificate]
) -> None:
    cert = matrix["mailbox-strict", "rsa2048", "signing"]
    findings = lint_certificate(cert, "organization-strict", "encryption", ca=pki.ca)
    text = " | ".join(findings)
    assert "2.23.140.1.5.2.3" in text
    assert "organizationName is missing" in text
    assert "keyUsage lacks key_encipherment" in text
    other_ca = IssuingCA(
        certificate=pki.root,
        key=SoftwareKey(pki.root_key),
        crl_url="http://x.example/c.crl",
        ca_issuers_url="http://x.example/c.cer",
    )
    findings = lint_certificate(cert, "mailbox-strict", "signing", ca=other_ca)
    assert any("authorityKeyIdentifier" in f for f in findings)
    assert any("issuer name" in f for f in findings)


def test_a_nonconforming_preview_is_never_signed(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailseal.pki.issue as issue

    remote = Remote(pki.issuing_key)
    ca = IssuingCA(
        certificate=pki.issuing,
        key=remote,
        crl_url=pki.ca.crl_url,
        ca_issuers_url=pki.ca.ca_issuers_url,
    )
    monkeypatch.setattr(issue, "lint_certificate", lambda *a, **k: ("something is off",))
    with pytest.raises(IssuanceError, match="something is off") as info:
        build_certificate(
            ca,
            generate_key().public_key(),
            email=f"a@{DOMAIN}",
            profile="mailbox-strict",
            usage="signing",
        )
    assert info.value.findings == ("something is off",)
    assert remote.calls == 0


# --------------------------------------------------------------------------------------------
# keys that are not in memory


@pytest.mark.parametrize("ca_kind", ["p256", "rsa3072", "ed25519"])
def test_preview_then_resign_with_a_remote_key(ca_kind: str, pkilint: PkiLint) -> None:
    makers: dict[str, Any] = {
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "rsa3072": lambda: rsa.generate_private_key(65537, 3072),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }
    root_soft, issuing_soft = makers[ca_kind](), makers[ca_kind]()
    root_key, issuing_key = Remote(root_soft), Remote(issuing_soft)
    root = create_root(
        root_key, root_soft.public_key(), organization="Example", common_name="Remote Root"
    )
    issuing = create_issuing(
        root,
        root_key,
        issuing_soft.public_key(),
        organization="Example",
        common_name="Remote Issuing CA",
        crl_url="http://pki.example.org/root.crl",
        issuing_key=issuing_key,
    )
    assert root_key.calls == 2
    ca = IssuingCA(
        certificate=issuing,
        key=issuing_key,
        crl_url="http://pki.example.org/i.crl",
        ca_issuers_url="http://pki.example.org/i.cer",
    )
    cert = build_certificate(
        ca,
        generate_key("p256").public_key(),
        email=f"carol@{DOMAIN}",
        profile="mailbox-strict",
        usage="dual",
    )
    assert issuing_key.calls == 1
    cert.verify_directly_issued_by(issuing)  # signed by the real key, not the throwaway one
    issuing.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert pkilint.findings(cert) == []


def test_a_key_that_is_not_the_cas_is_caught(pki: PKI) -> None:
    wrong = Remote(ec.generate_private_key(ec.SECP256R1()))
    ca = IssuingCA(
        certificate=pki.issuing,
        key=wrong,
        crl_url=pki.ca.crl_url,
        ca_issuers_url=pki.ca.ca_issuers_url,
    )
    with pytest.raises(IssuanceError, match="do not belong together"):
        build_certificate(
            ca,
            generate_key().public_key(),
            email=f"a@{DOMAIN}",
            profile="mailbox-strict",
            usage="signing",
        )


# --------------------------------------------------------------------------------------------
# certificate signing requests


def _csr(
    key: Any,
    *extensions: x509.ExtensionType,
    algorithm: Any = None,
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "requester")])
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    if algorithm is None and not isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = hashes.SHA256()
    return builder.sign(key, algorithm)


def _csr_der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def test_a_good_csr_loads_and_its_extensions_are_not_copied(pki: PKI) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    asked = _csr(
        key,
        x509.SubjectAlternativeName([x509.RFC822Name("mallory@evil.example")]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
        x509.KeyUsage(True, True, False, False, False, False, False, False, False),
    )
    for data in (_csr_der(asked), asked.public_bytes(serialization.Encoding.PEM)):
        csr = load_csr(data)
        assert csr.public_key() == key.public_key()
    cert = build_certificate(
        pki.ca,
        csr.public_key(),
        email=f"alice@{DOMAIN}",
        profile="mailbox-strict",
        usage="encryption",
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [f"alice@{DOMAIN}"]
    assert not cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert cert.subject != csr.subject
    load_csr(_csr_der(_csr(ed25519.Ed25519PrivateKey.generate())))


def test_garbage_truncated_and_huge_csrs() -> None:
    good = _csr_der(_csr(ec.generate_private_key(ec.SECP256R1())))
    for data in (
        b"",
        b"   ",
        b"hello world",
        good[: len(good) // 2],
        good[:-1] + b"",
        b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----",
    ):
        with pytest.raises(CsrError):
            load_csr(data)
    with pytest.raises(CsrError, match="at most 65536"):
        load_csr(b"0" * (MAX_CSR_SIZE + 1))
    with pytest.raises(CsrError, match="bytes"):
        load_csr("not bytes")  # type: ignore[arg-type]


def test_a_csr_with_a_bad_signature() -> None:
    der = bytearray(_csr_der(_csr(ec.generate_private_key(ec.SECP256R1()))))
    der[-5] ^= 0x01  # inside the signature BIT STRING
    with pytest.raises(CsrError, match="does not verify"):
        load_csr(bytes(der))
    der = bytearray(_csr_der(_csr(rsa.generate_private_key(65537, 2048))))
    der[-1] ^= 0xFF
    with pytest.raises(CsrError, match="does not verify"):
        load_csr(bytes(der))


def test_a_csr_with_a_weak_key_or_signature() -> None:
    with pytest.raises(CsrError, match="at least 2048"):
        load_csr(_csr_der(_csr(rsa.generate_private_key(65537, 1024))))
    with pytest.raises(CsrError, match="secp256k1"):
        load_csr(_csr_der(_csr(ec.generate_private_key(ec.SECP256K1()))))
    with pytest.raises(CsrError, match="exponent"):
        load_csr(_csr_der(_csr(rsa.generate_private_key(3, 2048))))
    with pytest.raises(CsrError, match="ecdsa-with-SHA1, which is refused"):
        load_csr(_sha1_csr())


def _sha1_csr() -> bytes:
    """A correctly signed request whose proof of possession uses ECDSA with SHA-1 (which
    cryptography will not make any more: assembled by hand)."""
    from asn1crypto import csr as a_csr

    key = ec.generate_private_key(ec.SECP256R1())
    req = a_csr.CertificationRequest.load(_csr_der(_csr(key)))
    info = req["certification_request_info"].dump()
    req["signature_algorithm"] = {"algorithm": "sha1_ecdsa"}
    req["signature"] = key.sign(info, ec.ECDSA(hashes.SHA1()))
    return bytes(req.dump(force=True))


@pytest.mark.parametrize(
    ("extension", "words"),
    [
        (x509.BasicConstraints(ca=True, path_length=None), "cA=TRUE"),
        (x509.KeyUsage(True, False, False, False, False, True, True, False, False), "key_cert"),
        (
            x509.NameConstraints(
                permitted_subtrees=[x509.RFC822Name("example.org")], excluded_subtrees=None
            ),
            "nameConstraints",
        ),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), "serverAuth"),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), "codeSigning"),
        (
            x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None),
            "policyConstraints",
        ),
    ],
)
def test_a_csr_asking_for_ca_powers_is_refused(extension: x509.ExtensionType, words: str) -> None:
    data = _csr_der(_csr(ec.generate_private_key(ec.SECP256R1()), extension))
    with pytest.raises(CsrError, match=words):
        load_csr(data)


def test_every_refusal_is_a_mailseal_error() -> None:
    for data in (b"\x30\x82\xff\xff" + b"\x00" * 10, b"\x30\x03\x02\x01\x00", b"\x00" * 100):
        with pytest.raises(MailsealError):
            load_csr(data)


# --------------------------------------------------------------------------------------------
# delivery


def test_pkcs12_export(pki: PKI, matrix: dict[tuple[str, str, str], x509.Certificate]) -> None:
    key = generate_key("p256")
    cert = build_certificate(
        pki.ca,
        key.public_key(),
        email=f"alice@{DOMAIN}",
        profile="mailbox-strict",
        usage="encryption",
    )
    password = generate_password()
    assert len(password) >= 22 and password.isprintable()
    assert generate_password() != password
    blob = export_pkcs12(
        key, cert, [pki.issuing, pki.root], password.encode(), "Alice", kdf_rounds=2048
    )
    loaded = pkcs12.load_pkcs12(blob, password.encode())
    assert loaded.cert is not None and loaded.cert.certificate == cert
    assert loaded.cert.friendly_name == b"Alice"
    assert [c.certificate for c in loaded.additional_certs] == [pki.issuing, pki.root]
    assert loaded.key is not None
    assert loaded.key.public_key() == key.public_key()
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(blob, b"wrong")
    openssl = shutil.which("openssl")
    if openssl:  # the algorithms really are PBES2/AES-256-CBC and HMAC-SHA256
        info = subprocess.run(
            [openssl, "pkcs12", "-info", "-noout", "-passin", f"pass:{password}"],
            input=blob,
            capture_output=True,
        ).stderr.decode()
        assert "AES-256-CBC" in info and "sha256" in info.lower()
    with pytest.raises(UsageError):
        export_pkcs12(key, cert, [], b"")


def test_serials_and_keys() -> None:
    serials = {new_serial() for _ in range(200)}
    assert len(serials) == 200
    assert all(0 < s < 2**159 and s.bit_length() == 159 for s in serials)
    assert isinstance(generate_key(), ec.EllipticCurvePrivateKey)
    assert generate_key("rsa3072").key_size == 3072  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="p256"):
        generate_key("dsa1024")


def test_issuing_ca_checks_its_urls(pki: PKI) -> None:
    cer = "http://x.example/ca.cer"
    with pytest.raises(UsageError, match="http://"):
        IssuingCA(
            certificate=pki.issuing, key=pki.ca.key, crl_url="ldap://x/crl", ca_issuers_url=cer
        )
    with pytest.raises(UsageError, match="http://"):
        IssuingCA(
            certificate=pki.issuing,
            key=pki.ca.key,
            crl_url="http://x/c.crl",
            ocsp_url="https://ocsp.example.org",
            ca_issuers_url=cer,
        )
    with pytest.raises(UsageError, match="CRL"):
        IssuingCA(certificate=pki.issuing, key=pki.ca.key, crl_url="", ca_issuers_url=cer)
    with pytest.raises(UsageError, match="CA issuers"):
        IssuingCA(
            certificate=pki.issuing, key=pki.ca.key, crl_url="http://x/c.crl", ca_issuers_url=""
        )


def test_organization_identifiers(pki: PKI, pkilint: PkiLint) -> None:
    pub = generate_key().public_key()

    def issue(org_id: str, **kw: Any) -> x509.Certificate:
        return build_certificate(
            pki.ca,
            pub,
            email=f"info@{DOMAIN}",
            profile="organization-strict",
            usage="signing",
            organization="Example Trading GmbH",
            organization_identifier=org_id,
            **kw,
        )

    for org_id in ("LEIXG-5493001KJTIIGC8Y1R12", "VATDE-123456789", "GOVUS", "NTRGB-12345678"):
        assert pkilint.findings(issue(org_id)) == [], org_id
    with pytest.raises(ProfileError, match="not a valid LEI"):
        issue("LEIXG-5493001KJTIIGC8Y1R13")
    with pytest.raises(ProfileError, match="country is FR"):
        issue("VATDE-123456789", country="FR")
    with pytest.raises(ProfileError, match=r"organizationIdentifier \(organization_identifier=\)"):
        build_certificate(
            pki.ca,
            pub,
            email=f"info@{DOMAIN}",
            profile="organization-strict",
            usage="signing",
            organization="Example Trading GmbH",
        )


def test_a_mailbox_too_long_for_the_common_name(pki: PKI, pkilint: PkiLint) -> None:
    email = "a" * 60 + f"@{DOMAIN}"
    cert = build_certificate(
        pki.ca, generate_key().public_key(), email=email, profile="mailbox-strict", usage="dual"
    )
    assert len(cert.subject) == 0
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert pkilint.findings(cert) == []
