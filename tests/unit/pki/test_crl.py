"""mailseal.pki.crl: complete and delta CRLs written directly as DER — they parse, verify,
carry the BR profile's extensions, match cryptography's own encoding byte for byte, and pass
pkilint."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import CRLEntryExtensionOID, NameOID, SignatureAlgorithmOID

from mailseal.errors import IdentityError, UsageError
from mailseal.keys.base import SignatureScheme
from mailseal.keys.software import SoftwareKey
from mailseal.pki.crl import (
    MAX_WINDOW,
    REASONS,
    RevokedEntry,
    build_crl,
    parse_reason,
    signature_algorithm,
)
from mailseal.pki.testpki import TestPKI

from ._remote import Remote

NOW = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC)
URL = "http://crl.example.org/issuing.crl"
DELTA_URL = "http://crl.example.org/issuing-delta.crl"
LINT_CRL = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "lint_crl"


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create("CRL Test", now=NOW)


def _entries() -> list[RevokedEntry]:
    return [
        RevokedEntry(
            0x1001, NOW - dt.timedelta(days=2), "keyCompromise", NOW - dt.timedelta(days=3)
        ),
        RevokedEntry(0x1002, NOW - dt.timedelta(days=1)),
        RevokedEntry(0x7F, NOW - dt.timedelta(hours=5), "superseded"),
        RevokedEntry(0x80, NOW - dt.timedelta(hours=4), "cessationOfOperation"),
        RevokedEntry(2**159 - 1, NOW - dt.timedelta(hours=3), "affiliationChanged"),
        RevokedEntry(1, NOW - dt.timedelta(hours=2), "privilegeWithdrawn"),
    ]


def _full(pki: TestPKI, entries: list[RevokedEntry] | None = None, **kw: object) -> bytes:
    args: dict[str, object] = {
        "number": 7,
        "this_update": NOW,
        "next_update": NOW + dt.timedelta(days=7),
        "idp_url": URL,
        "freshest_url": DELTA_URL,
    }
    args.update(kw)
    return build_crl(
        pki.issuer.cert,
        SoftwareKey(pki.issuer.key),  # type: ignore[arg-type]
        _entries() if entries is None else entries,
        **args,  # type: ignore[arg-type]
    )


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


# -- structure ---------------------------------------------------------------------------------


def test_full_crl_parses_verifies_and_lists_every_entry(pki: TestPKI) -> None:
    crl = x509.load_der_x509_crl(_full(pki))
    assert crl.is_signature_valid(pki.issuer.cert.public_key())  # type: ignore[arg-type]
    assert crl.issuer == pki.issuer.cert.subject
    assert crl.last_update_utc == NOW
    assert crl.next_update_utc == NOW + dt.timedelta(days=7)
    assert crl.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert (
        asn1_crl.CertificateList.load(crl.public_bytes(serialization.Encoding.DER))[
            "tbs_cert_list"
        ]["version"].native
        == "v2"
    )
    got = {r.serial_number: r for r in crl}
    assert len(got) == len(_entries())
    for e in _entries():
        r = got[e.serial]
        assert r.revocation_date_utc == e.revoked_at
        if e.reason is None:
            with pytest.raises(x509.ExtensionNotFound):
                r.extensions.get_extension_for_class(x509.CRLReason)
        else:
            ext = r.extensions.get_extension_for_class(x509.CRLReason)
            assert not ext.critical
            assert ext.value.reason == REASONS[e.reason].flag
        if e.invalidity_date is not None:
            inv = r.extensions.get_extension_for_class(x509.InvalidityDate).value
            assert inv.invalidity_date_utc == e.invalidity_date


def test_full_crl_extensions(pki: TestPKI) -> None:
    crl = x509.load_der_x509_crl(_full(pki))
    exts = crl.extensions
    aki = exts.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == _ski(pki.issuer.cert)
    assert aki.value.authority_cert_issuer is None
    number = exts.get_extension_for_class(x509.CRLNumber)
    assert not number.critical and number.value.crl_number == 7
    idp = exts.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical
    assert idp.value.full_name == [x509.UniformResourceIdentifier(URL)]
    assert idp.value.only_contains_user_certs and not idp.value.only_contains_ca_certs
    fresh = exts.get_extension_for_class(x509.FreshestCRL)
    assert not fresh.critical
    assert fresh.value[0].full_name == [x509.UniformResourceIdentifier(DELTA_URL)]
    with pytest.raises(x509.ExtensionNotFound):
        exts.get_extension_for_class(x509.DeltaCRLIndicator)


def test_delta_crl(pki: TestPKI) -> None:
    der = _full(pki, _entries()[:2], number=8, delta_base=7, freshest_url=None)
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(pki.issuer.cert.public_key())  # type: ignore[arg-type]
    delta = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert delta.critical and delta.value.crl_number == 7
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 8
    with pytest.raises(x509.ExtensionNotFound):
        crl.extensions.get_extension_for_class(x509.FreshestCRL)
    # same scope as the complete CRL it extends (RFC 5280 §5.2.4)
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert idp.only_contains_user_certs
    assert len(crl) == 2


def test_delta_crl_refusals(pki: TestPKI) -> None:
    with pytest.raises(UsageError, match="freshestCRL"):
        _full(pki, number=8, delta_base=7)
    with pytest.raises(UsageError, match="greater than its base"):
        _full(pki, number=7, delta_base=7, freshest_url=None)


def test_ca_scope_crl_of_a_root(pki: TestPKI) -> None:
    der = build_crl(
        pki.root.cert,
        SoftwareKey(pki.root.key),  # type: ignore[arg-type]
        [RevokedEntry(42, NOW - dt.timedelta(days=1), "cACompromise")],
        number=1,
        this_update=NOW,
        next_update=NOW + MAX_WINDOW["ca"],
        idp_url="http://crl.example.org/root.crl",
        scope="ca",
    )
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(pki.root.cert.public_key())  # type: ignore[arg-type]
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert idp.only_contains_ca_certs and not idp.only_contains_user_certs
    assert crl[0].extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.ca_compromise
    )


def test_ca_compromise_is_not_an_end_entity_reason(pki: TestPKI) -> None:
    with pytest.raises(UsageError, match="cannot appear on a user CRL"):
        _full(pki, [RevokedEntry(5, NOW, "cACompromise")])


def test_empty_crl_has_no_revoked_certificates_field(pki: TestPKI) -> None:
    crl = x509.load_der_x509_crl(_full(pki, []))
    assert len(crl) == 0
    assert crl.is_signature_valid(pki.issuer.cert.public_key())  # type: ignore[arg-type]


def test_streams_a_generator(pki: TestPKI) -> None:
    def rows() -> Iterator[RevokedEntry]:
        for i in range(1, 5001):
            yield RevokedEntry(i * 1_000_003, NOW - dt.timedelta(seconds=i), "superseded")

    crl = x509.load_der_x509_crl(_full(pki, rows()))  # type: ignore[arg-type]
    assert len(crl) == 5000
    assert crl.is_signature_valid(pki.issuer.cert.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(4999 * 1_000_003) is not None


def test_same_bytes_as_cryptography_builder(pki: TestPKI) -> None:
    """RSA PKCS#1 v1.5 signatures are deterministic: the whole CRL must equal what
    cryptography's builder makes from the same content."""
    ours = _full(pki)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.issuer.cert.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=7))
    )
    for e in _entries():
        rb = x509.RevokedCertificateBuilder().serial_number(e.serial).revocation_date(e.revoked_at)
        if e.reason is not None:
            rb = rb.add_extension(x509.CRLReason(REASONS[e.reason].flag), critical=False)
        if e.invalidity_date is not None:
            rb = rb.add_extension(x509.InvalidityDate(e.invalidity_date), critical=False)
        b = b.add_revoked_certificate(rb.build())
    b = (
        b.add_extension(
            x509.AuthorityKeyIdentifier(_ski(pki.issuer.cert), None, None), critical=False
        )
        .add_extension(x509.CRLNumber(7), critical=False)
        .add_extension(
            x509.IssuingDistributionPoint(
                [x509.UniformResourceIdentifier(URL)], None, True, False, None, False, False
            ),
            critical=True,
        )
        .add_extension(
            x509.FreshestCRL(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(DELTA_URL)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
    )
    theirs = b.sign(pki.issuer.key, hashes.SHA256())  # type: ignore[arg-type]
    assert ours == theirs.public_bytes(serialization.Encoding.DER)


def test_times_from_2050_are_generalized_time(pki: TestPKI) -> None:
    late = dt.datetime(2051, 1, 1, tzinfo=dt.UTC)
    der = _full(
        pki,
        [RevokedEntry(9, late)],
        this_update=late,
        next_update=late + dt.timedelta(days=1),
    )
    crl = x509.load_der_x509_crl(der)
    assert crl.last_update_utc == late and crl[0].revocation_date_utc == late
    assert b"\x18\x0f20510101000000Z" in der


@pytest.mark.parametrize(
    ("make", "oid"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), SignatureAlgorithmOID.ECDSA_WITH_SHA256),
        (lambda: ec.generate_private_key(ec.SECP384R1()), SignatureAlgorithmOID.ECDSA_WITH_SHA384),
        (ed25519.Ed25519PrivateKey.generate, SignatureAlgorithmOID.ED25519),
        (lambda: rsa.generate_private_key(65537, 2048), SignatureAlgorithmOID.RSA_WITH_SHA256),
    ],
)
def test_key_types_through_an_hsm_like_key(make: object, oid: x509.ObjectIdentifier) -> None:
    key = make()  # type: ignore[operator]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Algo CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    remote = Remote(key)
    der = build_crl(
        ca,
        remote,
        [RevokedEntry(3, NOW, "keyCompromise")],
        number=1,
        this_update=NOW,
        next_update=NOW + dt.timedelta(days=1),
        idp_url=URL,
    )
    crl = x509.load_der_x509_crl(der)
    assert remote.calls == 1
    assert crl.signature_algorithm_oid == oid
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    # no SKI in that CA: the AKI is computed from its key
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest  # type: ignore[arg-type]


def test_signature_algorithm_encodings() -> None:
    rsa_alg = signature_algorithm(SignatureScheme("rsa-pkcs1", "sha256"))
    assert rsa_alg.endswith(b"\x05\x00")  # RSA: NULL parameters
    assert not signature_algorithm(SignatureScheme("ecdsa", "sha384")).endswith(b"\x05\x00")
    assert signature_algorithm(SignatureScheme("ed25519", "sha512")) == bytes.fromhex(
        "300506032b6570"
    )


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [10.0001, 11])
def test_window_over_ten_days_refused(pki: TestPKI, days: float) -> None:
    with pytest.raises(UsageError, match="10 days"):
        _full(pki, next_update=NOW + dt.timedelta(days=days))


def test_ten_day_window_accepted(pki: TestPKI) -> None:
    crl = x509.load_der_x509_crl(_full(pki, next_update=NOW + dt.timedelta(days=10)))
    assert crl.next_update_utc == NOW + dt.timedelta(days=10)


def test_ca_scope_window_is_twelve_months(pki: TestPKI) -> None:
    with pytest.raises(UsageError, match="365 days"):
        _full(pki, [], scope="ca", next_update=NOW + dt.timedelta(days=366))


@pytest.mark.parametrize(
    "kw",
    [
        {"next_update": NOW},
        {"next_update": NOW - dt.timedelta(hours=1)},
        {"this_update": NOW.replace(tzinfo=None)},
        {"number": -1},
        {"number": 2**160},
        {"scope": "everything"},
        {"idp_url": "ldap://crl.example.org/cn=x"},
        {"idp_url": "crl.example.org/issuing.crl"},
    ],
)
def test_bad_arguments_refused(pki: TestPKI, kw: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        _full(pki, **kw)


def test_wrong_key_refused(pki: TestPKI) -> None:
    with pytest.raises(IdentityError, match="does not belong"):
        build_crl(
            pki.issuer.cert,
            SoftwareKey(pki.root.key),  # type: ignore[arg-type]
            [],
            number=1,
            this_update=NOW,
            next_update=NOW + dt.timedelta(days=1),
            idp_url=URL,
        )


def test_end_entity_cannot_issue_crls(pki: TestPKI) -> None:
    user = pki.user("crl-user@example.org")
    with pytest.raises(IdentityError, match="not a CA"):
        build_crl(
            user.cert,
            SoftwareKey(user.key),  # type: ignore[arg-type]
            [],
            number=1,
            this_update=NOW,
            next_update=NOW + dt.timedelta(days=1),
            idp_url=URL,
        )


def test_ca_without_crl_sign_refused(pki: TestPKI) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "No CRL CA")])
    ku = x509.KeyUsage(False, False, False, False, False, True, False, False, False)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ku, critical=True)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(IdentityError, match="cRLSign"):
        build_crl(
            ca,
            SoftwareKey(key),
            [],
            number=1,
            this_update=NOW,
            next_update=NOW + dt.timedelta(days=1),
            idp_url=URL,
        )


# -- entries and reasons -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("keyCompromise", "keyCompromise"),
        ("key-compromise", "keyCompromise"),
        ("KEY_COMPROMISE", "keyCompromise"),
        ("superseded", "superseded"),
        ("Cessation of operation", "cessationOfOperation"),
        ("privilege-withdrawn", "privilegeWithdrawn"),
        ("affiliationchanged", "affiliationChanged"),
        ("ca-compromise", "cACompromise"),
    ],
)
def test_parse_reason(text: str, name: str) -> None:
    assert parse_reason(text) == name


def test_unknown_reason_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError) as err:
        parse_reason("lost-laptop")
    for name in REASONS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "text", ["unspecified", "certificateHold", "certificate-hold", "removeFromCRL"]
)
def test_refused_reasons(text: str) -> None:
    with pytest.raises(UsageError, match="refused"):
        parse_reason(text)


def test_entry_normalises_reason() -> None:
    assert RevokedEntry(1, NOW, "key-compromise").reason == "keyCompromise"
    with pytest.raises(UsageError):
        RevokedEntry(1, NOW, "unspecified")


@pytest.mark.parametrize("serial", [0, -5, 2**159])
def test_entry_serial_bounds(serial: int) -> None:
    with pytest.raises(UsageError):
        RevokedEntry(serial, NOW)


def test_entry_times_must_be_aware() -> None:
    with pytest.raises(UsageError):
        RevokedEntry(1, NOW.replace(tzinfo=None))
    with pytest.raises(UsageError):
        RevokedEntry(1, NOW, invalidity_date=NOW.replace(tzinfo=None))


def test_entry_is_frozen() -> None:
    e = RevokedEntry(1, NOW)
    with pytest.raises(AttributeError):
        e.serial = 2  # type: ignore[misc]


# -- pkilint -----------------------------------------------------------------------------------


def _lint(path: Path, kind: str, profile: str) -> list[dict[str, object]]:
    proc = subprocess.run(
        [
            str(LINT_CRL),
            "lint",
            "-t",
            kind,
            "-p",
            profile,
            "-s",
            "WARNING",
            "-f",
            "JSON",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout or "{}")
    results = doc.get("results", doc) if isinstance(doc, dict) else doc
    findings: list[dict[str, object]] = []
    for item in results if isinstance(results, list) else []:
        findings += item.get("finding_descriptions", []) or []
    assert proc.returncode == 0 or findings, proc.stdout
    return findings


@pytest.mark.skipif(not LINT_CRL.exists() and not shutil.which("lint_crl"), reason="no pkilint")
@pytest.mark.parametrize("profile", ["BR", "PKIX"])
def test_pkilint_full_and_delta_clean(pki: TestPKI, tmp_path: Path, profile: str) -> None:
    full = tmp_path / "full.crl"
    full.write_bytes(_full(pki))
    delta = tmp_path / "delta.crl"
    delta.write_bytes(_full(pki, _entries()[:1], number=8, delta_base=7, freshest_url=None))
    root = tmp_path / "root.crl"
    root.write_bytes(
        build_crl(
            pki.root.cert,
            SoftwareKey(pki.root.key),  # type: ignore[arg-type]
            [RevokedEntry(42, NOW, "cACompromise")],
            number=3,
            this_update=NOW,
            next_update=NOW + dt.timedelta(days=300),
            idp_url="http://crl.example.org/root.crl",
            scope="ca",
        )
    )
    assert _lint(full, "CRL", profile) == []
    assert _lint(delta, "CRL", profile) == []
    assert _lint(root, "ARL", profile) == []


def test_reason_extension_is_never_critical_nor_unspecified(pki: TestPKI) -> None:
    crl = x509.load_der_x509_crl(_full(pki))
    for r in crl:
        for ext in r.extensions:
            assert not ext.critical
            if ext.oid == CRLEntryExtensionOID.CRL_REASON:
                assert ext.value.reason != x509.ReasonFlags.unspecified  # type: ignore[attr-defined]
