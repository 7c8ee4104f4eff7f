"""Trust on the command line: the trust options of ``verify``/``open``, ``mailseal validate``
(exit 0/1/2), and recipient validation in ``encrypt``/``seal``. Offline: no network."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

import mailseal
from mailseal.cli.main import main
from mailseal.pki.testpki import write_identity

from ._revpki import CA, DAY, NOW

KEY_COMPROMISE = x509.ReasonFlags.key_compromise


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsysbinary: pytest.CaptureFixture[bytes]) -> Callable[..., Run]:
    def run(*argv: str | Path) -> Run:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        cap = capsysbinary.readouterr()
        code = exc.value.code
        return Run(
            code if isinstance(code, int) else 2,
            cap.out.decode(errors="replace"),
            cap.err.decode(errors="replace"),
        )

    return run


def _mail(sender: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: someone@example.org\r\nSubject: cli\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    ).encode()


@pytest.fixture(scope="module")
def f(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files: a root, an issuing CA, certificates that name no CRL/OCSP URL (nothing to
    fetch), CRLs, OCSP responses and signed messages."""
    d = tmp_path_factory.mktemp("trustcli")
    root = CA.root()
    issuing = root.sub_ca("CLI Issuing CA")
    erin = issuing.user("erin@example.org")
    frank = issuing.user("frank@example.org")  # revoked below
    sig_only = issuing.user("sig@example.org", encrypt=False)
    old = issuing.user(
        "old@example.org", not_before=NOW - 10 * DAY, not_after=NOW - DAY, encrypt=False
    )
    out: dict[str, Path] = {"dir": d}

    def put(name: str, data: bytes) -> None:
        out[name] = d / name
        out[name].write_bytes(data)

    put("root.pem", _pem(root.cert))
    put("issuing.pem", _pem(issuing.cert))
    put("other-root.pem", _pem(CA.root("Somebody Else").cert))
    for stem, issued in (("erin", erin), ("frank", frank), ("sig", sig_only), ("old", old)):
        out[f"{stem}.crt"], out[f"{stem}.key"] = write_identity(d, stem, issued)
        put(f"{stem}-chain.pem", issued.cert_pem + _pem(issuing.cert))
    put("root.crl", root.crl())
    put("issuing.crl", issuing.crl())
    put("issuing-revoked.crl", issuing.crl(((frank.cert, KEY_COMPROMISE),), number=2))
    put("erin-good.ocsp", issuing.ocsp(erin.cert, "good"))
    put("frank-revoked.ocsp", issuing.ocsp(frank.cert, "revoked", reason=KEY_COMPROMISE))
    put("garbage.crl", b"this is not a CRL")
    put("erin.eml", mailseal.sign(_mail("erin@example.org"), issuing.identity(erin)))
    put("frank.eml", mailseal.sign(_mail("frank@example.org"), issuing.identity(frank)))
    put(
        "old.eml",
        mailseal.sign(_mail("old@example.org"), issuing.identity(old), when=NOW - 5 * DAY),
    )
    return out


def _pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def _crls(f: dict[str, Path], issuing: str = "issuing.crl") -> list[str | Path]:
    return ["--crl", f["root.crl"], "--crl", f[issuing]]


# -- verify ---------------------------------------------------------------------------------------
def test_verify_soft_default_says_not_checked(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    r = cli("verify", "-i", f["erin.eml"], "--trust", f["root.pem"])
    assert r.code == 0, r
    assert "revocation not checked" in r.out.splitlines()[0]


def test_verify_with_crls(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    r = cli(
        "verify", "-i", f["erin.eml"], "--trust", f["root.pem"], "--revocation", "hard", *_crls(f)
    )
    assert r.code == 0, r
    assert "revocation not checked" not in r.out
    r = cli(
        "verify", "-i", f["frank.eml"], "--trust", f["root.pem"], *_crls(f, "issuing-revoked.crl")
    )
    assert r.code == 1
    assert "revoked" in r.out and "keyCompromise" in r.out


def test_verify_hard_offline_without_data(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    r = cli(
        "verify", "-i", f["erin.eml"], "--trust", f["root.pem"], "--revocation", "hard", "--offline"
    )
    assert r.code == 1
    assert "revocation-unknown" in r.out


def test_verify_revocation_off(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    r = cli(
        "verify",
        "-i",
        f["frank.eml"],
        "--trust",
        f["root.pem"],
        "--revocation",
        "off",
        *_crls(f, "issuing-revoked.crl"),
    )
    assert r.code == 0 and "revocation not checked (off)" in r.out


def test_verify_with_ocsp_responses(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    common = ["--trust", f["root.pem"], "--crl", f["root.crl"], "--revocation", "hard"]
    r = cli("verify", "-i", f["erin.eml"], *common, "--ocsp-response", f["erin-good.ocsp"])
    assert r.code == 0, r
    r = cli("verify", "-i", f["frank.eml"], *common, "--ocsp-response", f["frank-revoked.ocsp"])
    assert r.code == 1 and "revoked" in r.out


def test_verify_json_has_the_evidence(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    r = cli(
        "verify",
        "-i",
        f["frank.eml"],
        "--trust",
        f["root.pem"],
        "--json",
        *_crls(f, "issuing-revoked.crl"),
    )
    assert r.code == 1
    doc = json.loads(r.out)
    (signer,) = doc["signers"]
    assert signer["status"] == "revoked"
    ev = signer["validation"]["revocation"][0]
    assert (ev["status"], ev["source"], ev["origin"], ev["reason"]) == (
        "revoked",
        "crl",
        "supplied",
        "keyCompromise",
    )


def test_verify_intermediate_option(
    cli: Callable[..., Run], f: dict[str, Path], tmp_path: Path
) -> None:
    """A signature that carries only the signer's certificate needs --intermediate."""
    bare = tmp_path / "bare.eml"
    mail = tmp_path / "mail.eml"
    mail.write_bytes(_mail("erin@example.org"))
    r = cli("sign", "-i", mail, "-o", bare, "--cert", f["erin.crt"], "--key", f["erin.key"])
    assert r.code == 0
    assert cli("verify", "-i", bare, "--trust", f["root.pem"]).code == 1
    r = cli("verify", "-i", bare, "--trust", f["root.pem"], "--intermediate", f["issuing.pem"])
    assert r.code == 0, r
    # the intermediate of that validated path is now in the certificate cache
    assert cli("verify", "-i", bare, "--trust", f["root.pem"]).code == 0
    assert cli("verify", "-i", bare, "--trust", f["root.pem"], "--no-cert-cache").code == 1
    elsewhere = tmp_path / "other-cache"
    base = ["verify", "-i", bare, "--trust", f["root.pem"], "--cert-cache", elsewhere]
    assert cli(*base).code == 1
    assert not elsewhere.exists()  # nothing learnt, nothing written
    assert cli(*base, "--intermediate", f["issuing.pem"]).code == 0
    assert elsewhere.stat().st_mode & 0o777 == 0o700
    assert cli(*base).code == 0


def test_verify_at_and_signing_time(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    base = ["verify", "-i", f["old.eml"], "--trust", f["root.pem"]]
    r = cli(*base)
    assert r.code == 1 and "expired" in r.out
    then = (NOW - 3 * DAY).isoformat()
    assert cli(*base, "--at", then).code == 0
    assert cli(*base, "--at", (NOW - 3 * DAY).strftime("%Y-%m-%dT%H:%M:%S")).code == 0  # UTC
    r = cli(*base, "--trust-signing-time")
    assert r.code == 0, r
    assert "valid when signed" in r.out


def test_bad_trust_inputs_are_exit_2(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    for extra, fragment in (
        (["--at", "yesterday"], "ISO 8601"),
        (["--crl", f["garbage.crl"]], "garbage.crl"),
        (["--ocsp-response", f["garbage.crl"]], "garbage.crl"),
        (["--crl", f["dir"] / "missing.crl"], "missing.crl"),
        (["--revocation", "sometimes"], "sometimes"),
    ):
        r = cli("verify", "-i", f["erin.eml"], "--trust", f["root.pem"], *extra)
        assert r.code == 2, (extra, r)
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mailseal: error: "), r.err
        assert fragment in lines[0]


def test_system_trust(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    """The system bundle loads (when there is one); the test CA is not in it."""
    r = cli("verify", "-i", f["erin.eml"], "--system-trust", "--offline")
    if r.code == 2:
        assert "no system CA bundle" in r.err
    else:
        assert r.code == 1 and "untrusted" in r.out


def test_open_has_the_trust_options(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    r = cli(
        "open", "-i", f["frank.eml"], "--trust", f["root.pem"], *_crls(f, "issuing-revoked.crl")
    )
    assert r.code == 1 and "revoked" in r.out
    r = cli(
        "open", "-i", f["erin.eml"], "--trust", f["root.pem"], "--revocation", "hard", *_crls(f)
    )
    assert r.code == 0, r


# -- validate -------------------------------------------------------------------------------------
def test_validate_exit_codes(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    common = ["--trust", f["root.pem"], "--intermediate", f["issuing.pem"]]
    r = cli("validate", f["erin.crt"], *common, "--revocation", "hard", *_crls(f))
    assert r.code == 0, r
    assert r.out.startswith("OK  valid signing certificate of erin@example.org")
    assert "revocation: good" in r.out
    r = cli("validate", f["frank.crt"], *common, *_crls(f, "issuing-revoked.crl"))
    assert r.code == 1 and r.out.startswith("BAD revoked")
    r = cli("validate", f["sig.crt"], *common, "--purpose", "encrypt")
    assert r.code == 1 and "wrong-purpose" in r.out
    r = cli("validate", f["erin.crt"], *common, "--email", "mallory@example.org")
    assert r.code == 1 and "address-mismatch" in r.out
    assert cli("validate", f["erin.crt"], *common, "--email", "erin@EXAMPLE.ORG").code == 0
    r = cli("validate", f["erin.crt"], "--trust", f["erin.crt"].parent / "issuing.pem")
    assert r.code == 0  # the issuing CA as the anchor
    r = cli("validate", f["garbage.crl"])
    assert r.code == 2 and r.err.startswith("mailseal: error: ")
    r = cli("validate", f["dir"] / "nothing.pem")
    assert r.code == 2


def test_validate_chain_in_the_file_and_json(cli: Callable[..., Run], f: dict[str, Path]) -> None:
    r = cli("validate", f["erin-chain.pem"], "--trust", f["root.pem"], "--json")
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert doc["valid"] is True and doc["purpose"] == "sign"
    assert len(doc["path"]) == 3
    assert doc["validation"]["revocation_mode"] == "soft"
    r = cli("validate", f["erin.crt"], "--json")
    assert r.code == 1 and json.loads(r.out)["status"] == "untrusted"


# -- recipients -----------------------------------------------------------------------------------
def test_encrypt_refuses_a_revoked_recipient(
    cli: Callable[..., Run], f: dict[str, Path], tmp_path: Path
) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(_mail("erin@example.org"))
    out = tmp_path / "enc.eml"
    trust = ["--trust", f["root.pem"], "--intermediate", f["issuing.pem"]]
    r = cli(
        "encrypt",
        "-i",
        mail,
        "-o",
        out,
        "--to",
        f["frank.crt"],
        *trust,
        *_crls(f, "issuing-revoked.crl"),
    )
    assert r.code == 2
    assert r.err.startswith("mailseal: error: cannot encrypt to frank@example.org: revoked")
    assert not out.exists()
    # without trust anchors: no validation beyond the encryption's own checks
    assert cli("encrypt", "-i", mail, "-o", out, "--to", f["frank.crt"], "-q").code == 0
    # a valid recipient with revocation checked
    r = cli(
        "encrypt",
        "-i",
        mail,
        "-o",
        out,
        "--to",
        f["erin.crt"],
        *trust,
        "--revocation",
        "hard",
        *_crls(f),
    )
    assert r.code == 0, r
    # unknown revocation status: refused in hard mode, a note in soft mode
    r = cli(
        "encrypt",
        "-i",
        mail,
        "-o",
        out,
        "--to",
        f["erin.crt"],
        *trust,
        "--revocation",
        "hard",
        "--offline",
    )
    assert r.code == 2 and "revocation-unknown" in r.err
    r = cli("encrypt", "-i", mail, "-o", out, "--to", f["erin.crt"], *trust, "--offline")
    assert r.code == 0 and "revocation not checked" in r.err


def test_encrypt_refuses_wrong_purpose_and_untrusted(
    cli: Callable[..., Run], f: dict[str, Path], tmp_path: Path
) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(_mail("erin@example.org"))
    r = cli(
        "encrypt",
        "-i",
        mail,
        "-o",
        tmp_path / "x",
        "--to",
        f["erin.crt"],
        "--trust",
        f["other-root.pem"],
    )
    assert r.code == 2 and "cannot encrypt to erin@example.org: untrusted" in r.err
    r = cli(
        "encrypt",
        "-i",
        mail,
        "-o",
        tmp_path / "x",
        "--to",
        f["old.crt"],
        "--trust",
        f["root.pem"],
        "--intermediate",
        f["issuing.pem"],
    )
    assert r.code == 2  # expired (and signing only)


def test_seal_validates_recipients(
    cli: Callable[..., Run], f: dict[str, Path], tmp_path: Path
) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(_mail("erin@example.org"))
    base = [
        "seal",
        "-i",
        mail,
        "-o",
        tmp_path / "s.eml",
        "--cert",
        f["erin.crt"],
        "--key",
        f["erin.key"],
        "--trust",
        f["root.pem"],
        "--intermediate",
        f["issuing.pem"],
    ]
    r = cli(*base, "--to", f["frank.crt"], *_crls(f, "issuing-revoked.crl"))
    assert r.code == 2 and "cannot encrypt to frank@example.org: revoked" in r.err
    assert cli(*base, "--to", f["frank.crt"], *_crls(f), "-q").code == 0
