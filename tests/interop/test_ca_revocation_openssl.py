"""OpenSSL 3 reads what mailseal's CA publishes (recipe: interop/openssl-ocsp-crl.sh).

CRLs: ``openssl crl -CAfile`` verifies complete and delta CRLs, ``openssl verify -crl_check``
finds a revoked certificate in them (with ``-use_deltas`` for one revoked since the complete
CRL). OCSP: requests made by ``openssl ocsp`` are answered by mailseal's responder, and
``openssl ocsp -respin`` verifies the responses (CA-signed and delegated, nonce echoed,
several certificates in one request, pre-signed ones, the unsigned error statuses).
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailseal.keys.software import SoftwareKey
from mailseal.pki.crl import RevokedEntry, build_crl
from mailseal.pki.ocsp import (
    CertStatus,
    MemoryResponseCache,
    OcspSigner,
    Responder,
    make_responder_certificate,
    malformed_request,
    presign,
)
from mailseal.pki.testpki import Issued, TestPKI

pytestmark = pytest.mark.interop

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
CRL_URL = "http://crl.example.org/issuing.crl"
DELTA_URL = "http://crl.example.org/issuing-delta.crl"


def _explain(proc: Any) -> str:
    return (
        f"\n$ {' '.join(str(a) for a in proc.args)}\nexit {proc.returncode}\n"
        f"{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}"
    )


def _pem_crl(der: bytes) -> bytes:
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN X509 CRL-----\n" + "\n".join(lines) + "\n-----END X509 CRL-----\n").encode()


class Setup:
    """A test PKI with files for OpenSSL, and end-entity certificates that name the CRL."""

    def __init__(self, openssl: Any) -> None:
        self.openssl = openssl
        self.pki = TestPKI.create("Revocation Interop", now=NOW)
        self.ca = self.pki.issuer
        self.ca_pem = openssl.write(self.ca.cert_pem, ".pem")
        self.root_pem = openssl.write(self.pki.root.cert_pem, ".pem")
        self.chain_pem = openssl.write(self.ca.cert_pem + self.pki.root.cert_pem, ".pem")
        self.users = {n: self._user(n) for n in ("alice", "bob", "carol", "dave")}
        self.pems = {n: openssl.write(u.cert_pem, ".pem") for n, u in self.users.items()}

    def _user(self, name: str) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        ca_ski = self.ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=20))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(f"{name}@example.org")]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(CRL_URL)], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
            .sign(self.ca.key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return Issued.of(cert, key)

    def serial(self, name: str) -> int:
        return self.users[name].cert.serial_number

    def crl(self, entries: list[RevokedEntry], **kw: Any) -> bytes:
        args: dict[str, Any] = {
            "number": 10,
            "this_update": NOW - dt.timedelta(minutes=5),
            "next_update": NOW + dt.timedelta(days=7),
            "idp_url": CRL_URL,
        }
        args.update(kw)
        return build_crl(self.ca.cert, SoftwareKey(self.ca.key), entries, **args)  # type: ignore[arg-type]

    def signer(self) -> OcspSigner:
        return OcspSigner(self.ca.cert, SoftwareKey(self.ca.key))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup(openssl: Any) -> Setup:
    return Setup(openssl)


# -- CRLs ---------------------------------------------------------------------------------------


def _full_and_delta(setup: Setup) -> tuple[bytes, bytes]:
    bob = RevokedEntry(
        setup.serial("bob"), NOW - dt.timedelta(days=1), "keyCompromise", NOW - dt.timedelta(days=2)
    )
    carol = RevokedEntry(setup.serial("carol"), NOW - dt.timedelta(minutes=1), "superseded")
    full = setup.crl([bob], freshest_url=DELTA_URL)
    delta = setup.crl([carol], number=11, delta_base=10, next_update=NOW + dt.timedelta(days=1))
    return full, delta


def test_openssl_crl_verifies_full_and_delta(setup: Setup, openssl: Any) -> None:
    full, delta = _full_and_delta(setup)
    for der, must in (
        (
            full,
            [
                "Key Compromise",
                "Invalidity Date",
                "Issuing Distribution Point",
                "Freshest CRL",
                "Only User Certificates",
                CRL_URL,
                DELTA_URL,
            ],
        ),
        (delta, ["Delta CRL Indicator", "Superseded", "Only User Certificates"]),
    ):
        path = openssl.write(der, ".crl")
        proc = openssl.run(
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            path,
            "-noout",
            "-text",
            "-CAfile",
            setup.ca_pem,
        )
        out = proc.stdout.decode() + proc.stderr.decode()
        assert proc.returncode == 0 and "verify OK" in out, _explain(proc)
        for text in must:
            assert text in out, text + _explain(proc)


def test_openssl_crl_rejects_a_tampered_crl(setup: Setup, openssl: Any) -> None:
    full, _ = _full_and_delta(setup)
    i = full.index(CRL_URL.encode())
    bad = full[:i] + b"H" + full[i + 1 :]
    path = openssl.write(bad, ".crl")
    proc = openssl.run(
        "openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-CAfile", setup.ca_pem
    )
    assert "verify failure" in (proc.stdout + proc.stderr).decode() or proc.returncode != 0


def _verify(setup: Setup, openssl: Any, name: str, crls: list[bytes], *opts: str) -> Any:
    args: list[str | Path] = ["openssl", "verify", "-crl_check", *opts, "-CAfile", setup.root_pem]
    args += ["-untrusted", setup.ca_pem]
    for c in crls:
        args += ["-CRLfile", openssl.write(_pem_crl(c), ".pem")]
    return openssl.run(*args, setup.pems[name])


def test_openssl_verify_finds_the_revoked_certificate(setup: Setup, openssl: Any) -> None:
    full, _ = _full_and_delta(setup)
    ok = _verify(setup, openssl, "alice", [full])
    assert ok.returncode == 0 and b": OK" in ok.stdout, _explain(ok)
    revoked = _verify(setup, openssl, "bob", [full])
    assert revoked.returncode != 0 and b"certificate revoked" in revoked.stdout + revoked.stderr, (
        _explain(revoked)
    )


def test_openssl_uses_the_delta_crl(setup: Setup, openssl: Any) -> None:
    full, delta = _full_and_delta(setup)
    # carol is revoked only in the delta CRL: fine without deltas, revoked with them
    without = _verify(setup, openssl, "carol", [full, delta])
    assert without.returncode == 0, _explain(without)
    with_deltas = _verify(setup, openssl, "carol", [full, delta], "-use_deltas")
    assert with_deltas.returncode != 0, _explain(with_deltas)
    assert b"certificate revoked" in with_deltas.stdout + with_deltas.stderr, _explain(with_deltas)
    still_ok = _verify(setup, openssl, "alice", [full, delta], "-use_deltas")
    assert still_ok.returncode == 0, _explain(still_ok)


# -- OCSP ---------------------------------------------------------------------------------------


class Records:
    def __init__(self, statuses: dict[int, CertStatus]) -> None:
        self.statuses = statuses

    def status(self, ca_key_id: bytes, serial: int) -> CertStatus | None:
        return self.statuses.get(serial)


def _statuses(setup: Setup) -> Records:
    return Records(
        {
            setup.serial("alice"): CertStatus("good"),
            setup.serial("bob"): CertStatus(
                "revoked", NOW - dt.timedelta(hours=1), "keyCompromise"
            ),
        }
    )


def _ask(
    setup: Setup, openssl: Any, responder: Responder, names: list[str], *opts: str
) -> tuple[str, Any]:
    """An OCSP request made by openssl for ``names``, answered by ``responder``, checked by
    openssl: (openssl's report, the process).

    Two checks, because ``openssl ocsp`` builds a new request (with a new nonce) as soon as
    it is given ``-cert``: the signature and the nonce against the request actually sent
    (``-reqin``), then the status of each certificate (``-cert``, ``-no_nonce``)."""
    req = openssl.path(".req")
    certs: list[str | Path] = []
    for n in names:
        certs += ["-cert", setup.pems[n]]
    proc = openssl.run("openssl", "ocsp", *opts, "-issuer", setup.ca_pem, *certs, "-reqout", req)
    assert proc.returncode == 0, _explain(proc)
    resp = openssl.write(responder.respond(req.read_bytes()), ".resp")
    common: list[str | Path] = [
        "-respin",
        resp,
        "-issuer",
        setup.ca_pem,
        "-CAfile",
        setup.chain_pem,
    ]
    first = openssl.run("openssl", "ocsp", *common, "-reqin", req)
    report = (first.stdout + first.stderr).decode()
    if first.returncode != 0:
        return report, first
    digest = [o for o in opts if o.startswith("-sha")]
    second = openssl.run("openssl", "ocsp", *common, *digest, *certs, "-no_nonce")
    return report + (second.stdout + second.stderr).decode(), second


@pytest.mark.parametrize("delegated", [False, True])
def test_openssl_accepts_good_revoked_unknown_with_nonce(
    setup: Setup, openssl: Any, delegated: bool
) -> None:
    signer = setup.signer()
    if delegated:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = make_responder_certificate(
            setup.ca.cert,
            SoftwareKey(setup.ca.key),
            key.public_key(),
            now=NOW,  # type: ignore[arg-type]
        )
        signer = OcspSigner(setup.ca.cert, SoftwareKey(key), responder_cert=cert)
    responder = Responder([signer], statuses=_statuses(setup))
    for name, status in (("alice", "good"), ("bob", "revoked"), ("dave", "unknown")):
        out, proc = _ask(setup, openssl, responder, [name])  # openssl sends a nonce by default
        assert "Response verify OK" in out, out + _explain(proc)
        assert f": {status}" in out, out
        assert "nonce" not in out.lower(), out  # no "WARNING: no nonce", no "Nonce Verify error"
        if status == "revoked":
            assert "Reason: keyCompromise" in out, out


def test_openssl_sha256_cert_id_and_several_certificates(setup: Setup, openssl: Any) -> None:
    responder = Responder([setup.signer()], statuses=_statuses(setup))
    out, proc = _ask(setup, openssl, responder, ["alice", "bob", "dave"], "-sha256")
    assert "Response verify OK" in out, out + _explain(proc)
    for name, status in (("alice", "good"), ("bob", "revoked"), ("dave", "unknown")):
        assert f"{setup.pems[name]}: {status}" in out, out


def test_openssl_accepts_presigned_responses(setup: Setup, openssl: Any) -> None:
    signer = setup.signer()
    cache = MemoryResponseCache()
    cache.put(*presign(signer, setup.serial("alice"), "good", now=NOW))
    cache.put(
        *presign(
            signer,
            setup.serial("bob"),
            "revoked",
            revoked_at=NOW - dt.timedelta(hours=1),
            reason="keyCompromise",
            now=NOW,
        )
    )
    responder = Responder([signer], responses=cache)
    for digest in ("-sha1", "-sha256"):
        for name, status in (("alice", "good"), ("bob", "revoked"), ("carol", "unknown")):
            out, proc = _ask(setup, openssl, responder, [name], "-no_nonce", digest)
            assert "Response verify OK" in out, out + _explain(proc)
            assert f"{setup.pems[name]}: {status}" in out, out


def test_openssl_reads_the_error_statuses(setup: Setup, openssl: Any) -> None:
    other = TestPKI.create("Someone Else", key_type="p256", with_intermediate=False, now=NOW)
    stranger = other.user("erin@example.org", key_type="p256")
    req = openssl.path(".req")
    proc = openssl.run(
        "openssl",
        "ocsp",
        "-issuer",
        openssl.write(other.issuer.cert_pem, ".pem"),
        "-cert",
        openssl.write(stranger.cert_pem, ".pem"),
        "-reqout",
        req,
    )
    assert proc.returncode == 0, _explain(proc)
    responder = Responder([setup.signer()], statuses=_statuses(setup))
    for body, text in (
        (responder.respond(req.read_bytes()), "unauthorized"),
        (malformed_request(), "malformedrequest"),
        (responder.respond(b"\x30\x03\x02\x01\x00"), "malformedrequest"),
    ):
        check = openssl.run(
            "openssl", "ocsp", "-respin", openssl.write(body, ".resp"), "-resp_text"
        )
        assert text in (check.stdout + check.stderr).decode().lower(), _explain(check)


def test_openssl_notices_a_missing_nonce(setup: Setup, openssl: Any) -> None:
    """The check above would see a response without the nonce (here: echo turned off)."""
    responder = Responder([setup.signer()], statuses=_statuses(setup), echo_nonce=False)
    out, proc = _ask(setup, openssl, responder, ["alice"])
    assert "WARNING: no nonce in response" in out, out + _explain(proc)
    assert "Response verify OK" in out and ": good" in out, out
