"""mailseal.cli.main: the commands, their exit codes (0 valid / 1 evaluated, not valid /
2 unusable) and the one-line errors. Run in-process through ``main(argv)`` (the real entry
point's semantics, exit codes included); a few runs go through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import mailseal
from mailseal.cli.main import main
from mailseal.pki.testpki import TestPKI, write_identity

from .._support import (
    MAIL_8BIT,
    content_info,
    header,
    param,
    rsa_key_pem,
    rsa_numbers,
    signer_infos,
    split_head,
)
from ..conftest import Person


@dataclass
class Run:
    code: int
    out: bytes
    err: bytes

    @property
    def err_lines(self) -> list[str]:
        return self.err.decode(errors="replace").splitlines()


@pytest.fixture
def cli(capsysbinary: pytest.CaptureFixture[bytes]) -> Callable[..., Run]:
    def run(*argv: str | Path) -> Run:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        cap = capsysbinary.readouterr()
        code = exc.value.code
        return Run(code if isinstance(code, int) else 2, cap.out, cap.err)

    return run


def assert_one_line_error(r: Run, *fragments: str) -> None:
    assert r.code == 2, (r.code, r.err)
    assert len(r.err_lines) == 1, r.err
    line = r.err_lines[0]
    assert line.startswith("mailseal: error: "), line
    assert "Traceback" not in line and "internal error" not in line
    for f in fragments:
        assert f in line, line


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory,
    ca: TestPKI,
    other_ca: TestPKI,
    alice: Person,
    bob: Person,
    person: Callable[..., Person],
    weak_rsa: Person,
) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    out: dict[str, Path] = {}
    for stem, p in (("alice", alice), ("bob", bob), ("weak", weak_rsa)):
        out[f"{stem}.crt"], out[f"{stem}.key"] = write_identity(d, stem, p.issued)
    enc = person("alice@example.org", usage="encryption")
    out["alice-enc.crt"] = d / "alice-enc.crt"
    out["alice-enc.crt"].write_bytes(enc.issued.cert_pem)
    out["alice-enc.key.pem"] = d / "alice-enc.key.pem"
    out["alice.key.enc"] = d / "alice.key.enc"
    out["alice.key.enc"].write_bytes(alice.issued.key_pem_encrypted(b"s3cret"))
    out["alice.p12"] = d / "alice.p12"
    out["alice.p12"].write_bytes(alice.issued.pkcs12(b"p12pass", chain=ca.chain))
    for name, data in (
        ("root.pem", ca.trust_pem()),
        ("chain.pem", ca.chain_pem()),
        ("other-root.pem", other_ca.trust_pem()),
        ("mail.eml", MAIL_8BIT),
        ("garbage.pem", b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n"),
    ):
        out[name] = d / name
        out[name].write_bytes(data)
    out["dir"] = d
    return out


@pytest.fixture(scope="module")
def signed_file(files: dict[str, Path]) -> Path:
    path = files["dir"] / "signed.eml"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "sign",
                "-i",
                str(files["mail.eml"]),
                "-o",
                str(path),
                "--cert",
                str(files["alice.crt"]),
                "--key",
                str(files["alice.key"]),
                "--chain",
                str(files["chain.pem"]),
            ]
        )
    assert exc.value.code == 0
    return path


# -- sign and verify ----------------------------------------------------------------------------
def test_sign_then_verify(
    cli: Callable[..., Run], files: dict[str, Path], signed_file: Path
) -> None:
    signed = signed_file.read_bytes()
    assert header(split_head(signed)[0], "Content-Type").startswith("multipart/signed")
    r = cli("verify", "-i", signed_file, "--trust", files["root.pem"])
    assert r.code == 0, r
    lines = r.out.decode().splitlines()
    assert lines[0].startswith("OK  signer 1: valid signature by alice@example.org (sha256")
    assert lines[-1] == "message: valid"
    assert r.err == b""
    assert not list(files["dir"].glob(".*mailseal-tmp"))  # atomic output left nothing behind


def test_verify_trust_directory(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path, signed_file: Path
) -> None:
    (tmp_path / "anchor.pem").write_bytes(files["root.pem"].read_bytes())
    assert cli("verify", "-i", signed_file, "--trust", tmp_path).code == 0


@pytest.mark.parametrize(
    ("extra", "check"),
    [
        (["--opaque"], lambda s: b"application/pkcs7-mime" in s),
        (["--digest", "sha512"], lambda s: b'micalg="sha-512"' in s),
        (
            ["--pss"],
            lambda s: signer_infos(s)[0]["signature_algorithm"]["algorithm"].native == "rsassa_pss",
        ),
        (["--ski"], lambda s: signer_infos(s)[0]["sid"].name == "subject_key_identifier"),
        (["--cert", "@bob.crt", "--key", "@bob.key"], lambda s: len(signer_infos(s)) == 2),
    ],
    ids=["opaque", "sha512", "pss", "ski", "two-signers"],
)
def test_sign_options(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path, extra: list[str], check
) -> None:
    out = tmp_path / "out.eml"
    args = [str(files[a[1:]]) if a.startswith("@") else a for a in extra]
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "-o",
        out,
        "--cert",
        files["alice.crt"],
        "--key",
        files["alice.key"],
        "--chain",
        files["chain.pem"],
        *args,
    )
    assert r.code == 0, r
    signed = out.read_bytes()
    assert check(signed)
    v = cli("verify", "-i", out, "--trust", files["root.pem"], "--ignore-address")
    assert v.code == 0, v


def test_sign_with_encryption_certificate(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.eml"
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "-o",
        out,
        "--cert",
        files["alice.crt"],
        "--key",
        files["alice.key"],
        "--encryption-cert",
        files["alice-enc.crt"],
    )
    assert r.code == 0, r
    oids = {a["type"].dotted for a in signer_infos(out.read_bytes())[0]["signed_attrs"]}
    assert {"1.2.840.113549.1.9.16.2.11", "1.3.6.1.4.1.311.16.4"} <= oids
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "--cert",
        files["alice.crt"],
        "--key",
        files["alice.key"],
        "--encryption-cert",
        files["alice-enc.crt"],
        "--encryption-cert",
        files["alice-enc.crt"],
    )
    assert_one_line_error(r, "encryption-cert")


def test_sign_with_encrypted_key_and_p12(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSEAL_TEST_PW", "s3cret")
    out = tmp_path / "a.eml"
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "-o",
        out,
        "--cert",
        files["alice.crt"],
        "--key",
        files["alice.key.enc"],
        "--password-env",
        "MAILSEAL_TEST_PW",
    )
    assert r.code == 0, r
    pw = tmp_path / "pw.txt"
    pw.write_bytes(b"p12pass\nignored second line\n")
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "-o",
        out,
        "--p12",
        files["alice.p12"],
        "--password-file",
        pw,
    )
    assert r.code == 0, r
    assert cli("verify", "-i", out, "--trust", files["root.pem"]).code == 0
    monkeypatch.setenv("MAILSEAL_TEST_PW", "wrong")
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "--cert",
        files["alice.crt"],
        "--key",
        files["alice.key.enc"],
        "--password-env",
        "MAILSEAL_TEST_PW",
    )
    assert_one_line_error(r, "password")
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "--p12",
        files["alice.p12"],
        "--password-env",
        "MAILSEAL_TEST_PW",
    )
    assert_one_line_error(r, "password")
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "--cert",
        files["alice.crt"],
        "--key",
        files["alice.key.enc"],
        "--password-env",
        "MAILSEAL_UNSET_VARIABLE",
    )
    assert_one_line_error(r, "MAILSEAL_UNSET_VARIABLE")


# -- verdicts and exit codes ----------------------------------------------------------------------
def test_tampered_is_exit_1(
    cli: Callable[..., Run], files: dict[str, Path], signed_file: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.eml"
    bad.write_bytes(signed_file.read_bytes().replace(b"last line", b"LAST LINE"))
    r = cli("verify", "-i", bad, "--trust", files["root.pem"])
    assert r.code == 1
    text = r.out.decode()
    assert text.splitlines()[0].startswith("BAD signer 1: tampered")
    assert text.splitlines()[-1] == "message: NOT valid (tampered)"


def test_untrusted_is_exit_1(
    cli: Callable[..., Run], files: dict[str, Path], signed_file: Path
) -> None:
    r = cli("verify", "-i", signed_file, "--trust", files["other-root.pem"])
    assert r.code == 1
    assert r.out.decode().splitlines()[-1] == "message: NOT valid (untrusted)"
    r = cli("verify", "-i", signed_file)
    assert r.code == 1
    assert "no trust anchor" in r.out.decode()


def test_address_mismatch_and_ignore(
    cli: Callable[..., Run], files: dict[str, Path], signed_file: Path, tmp_path: Path
) -> None:
    forged = tmp_path / "forged.eml"
    forged.write_bytes(
        signed_file.read_bytes().replace(b"<alice@example.org>", b"<ceo@example.org>", 1)
    )
    r = cli("verify", "-i", forged, "--trust", files["root.pem"])
    assert r.code == 1 and b"address-mismatch" in r.out
    assert cli("verify", "-i", forged, "--trust", files["root.pem"], "--ignore-address").code == 0


def test_verify_json(cli: Callable[..., Run], files: dict[str, Path], signed_file: Path) -> None:
    r = cli("verify", "-i", signed_file, "--trust", files["root.pem"], "--json")
    assert r.code == 0
    doc = json.loads(r.out)
    assert doc["status"] == "valid" and doc["valid"] is True
    expected = mailseal.verify(
        signed_file.read_bytes(),
        trust=[mailseal.load_certificates(files["root.pem"].read_bytes())[0]],
    ).to_json()
    for d in (doc, expected):  # validated "now": a moment apart
        for s in d["signers"]:
            s["validation"].pop("time")
    assert doc == expected
    r = cli("verify", "-i", signed_file, "--trust", files["other-root.pem"], "--json")
    assert r.code == 1 and json.loads(r.out)["status"] == "untrusted"


def test_verify_writes_content(
    cli: Callable[..., Run], files: dict[str, Path], signed_file: Path, tmp_path: Path
) -> None:
    content = tmp_path / "content.eml"
    r = cli("verify", "-i", signed_file, "--trust", files["root.pem"], "-o", content)
    assert r.code == 0
    expected = mailseal.verify(signed_file.read_bytes()).content
    assert content.read_bytes() == expected
    r = cli("verify", "-i", signed_file, "--trust", files["root.pem"], "-o", "-")
    assert r.code == 0
    assert r.out == expected  # content on stdout, verdict on stderr
    assert r.err.decode().splitlines()[-1] == "message: valid"


def test_verify_extra_certificates(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path
) -> None:
    """A signature whose chain is missing: --certs supplies the intermediate."""
    out = tmp_path / "nochain.eml"
    assert (
        cli(
            "sign",
            "-i",
            files["mail.eml"],
            "-o",
            out,
            "--cert",
            files["alice.crt"],
            "--key",
            files["alice.key"],
        ).code
        == 0
    )
    assert len(content_info(out.read_bytes())["content"]["certificates"]) == 1
    assert cli("verify", "-i", out, "--trust", files["root.pem"]).code == 1
    assert (
        cli("verify", "-i", out, "--trust", files["root.pem"], "--certs", files["chain.pem"]).code
        == 0
    )


def test_inspect(cli: Callable[..., Run], files: dict[str, Path], signed_file: Path) -> None:
    r = cli("inspect", "-i", signed_file)
    assert r.code == 0
    text = r.out.decode()
    assert "layer 1: signed-data (detached, multipart/signed)" in text
    assert "micalg: sha-256" in text
    assert "signer 1: issuer+serial" in text
    r = cli("inspect", "-i", signed_file, "--json")
    doc = json.loads(r.out)
    (layer,) = doc["layers"]
    assert layer["form"] == "detached" and layer["micalg"] == "sha-256"
    assert layer["signers"][0]["digest_algorithm"] == "sha256"
    assert doc["from"] == ["alice@example.org"]


def test_version_and_help(cli: Callable[..., Run]) -> None:
    r = cli("--version")
    assert r.code == 0 and b"mailseal, version" in r.out
    r = cli("--help")
    assert r.code == 0 and b"verify" in r.out and b"sign" in r.out
    assert cli("verify", "--help").code == 0


# -- unusable input and arguments: exit 2, one line ----------------------------------------------
def test_missing_input_file(cli: Callable[..., Run], tmp_path: Path) -> None:
    assert_one_line_error(cli("verify", "-i", tmp_path / "nope.eml"), "cannot read")
    assert_one_line_error(cli("inspect", "-i", tmp_path / "nope.eml"), "cannot read")


def test_sign_without_signer(cli: Callable[..., Run], files: dict[str, Path]) -> None:
    assert_one_line_error(cli("sign", "-i", files["mail.eml"]), "--cert")
    assert_one_line_error(
        cli("sign", "-i", files["mail.eml"], "--cert", files["alice.crt"]), "--key"
    )


def test_key_not_matching_certificate(cli: Callable[..., Run], files: dict[str, Path]) -> None:
    r = cli(
        "sign", "-i", files["mail.eml"], "--cert", files["alice.crt"], "--key", files["bob.key"]
    )
    assert_one_line_error(r, "does not belong")


def test_inconsistent_key_file(
    cli: Callable[..., Run], files: dict[str, Path], alice: Person, tmp_path: Path
) -> None:
    """A damaged RSA key (here its CRT coefficient) is one line naming what is wrong, for
    signing and for decrypting alike."""
    assert isinstance(alice.issued.key, rsa.RSAPrivateKey)
    damaged = rsa_numbers(alice.issued.key)
    damaged["coefficient"] ^= 4
    key = tmp_path / "damaged.key"
    key.write_bytes(rsa_key_pem(damaged))
    r = cli("sign", "-i", files["mail.eml"], "--cert", files["alice.crt"], "--key", key)
    assert_one_line_error(r, "the RSA private key is inconsistent", "CRT coefficient")
    r = cli("decrypt", "-i", files["mail.eml"], "--cert", files["alice.crt"], "--key", key)
    assert_one_line_error(r, "the RSA private key is inconsistent")


def test_refused_algorithm(cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "never.eml"
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "-o",
        out,
        "--cert",
        files["weak.crt"],
        "--key",
        files["weak.key"],
    )
    assert_one_line_error(r, "2048")
    assert not out.exists()  # nothing half-written


def test_bad_certificate_files(
    cli: Callable[..., Run], files: dict[str, Path], signed_file: Path
) -> None:
    assert_one_line_error(cli("verify", "-i", signed_file, "--trust", files["garbage.pem"]))
    assert_one_line_error(cli("verify", "-i", signed_file, "--trust", files["mail.eml"]))
    assert_one_line_error(cli("verify", "-i", signed_file, "--trust", files["dir"] / "missing.pem"))
    r = cli(
        "sign", "-i", files["mail.eml"], "--cert", files["garbage.pem"], "--key", files["alice.key"]
    )
    assert_one_line_error(r)
    r = cli(
        "sign", "-i", files["mail.eml"], "--cert", files["alice.crt"], "--key", files["alice.crt"]
    )
    assert_one_line_error(r, "private key")


def test_unwritable_output(cli: Callable[..., Run], files: dict[str, Path]) -> None:
    r = cli(
        "sign",
        "-i",
        files["mail.eml"],
        "-o",
        files["dir"] / "no" / "such" / "dir.eml",
        "--cert",
        files["alice.crt"],
        "--key",
        files["alice.key"],
    )
    assert_one_line_error(r, "cannot write")


def test_verify_unsigned_message(cli: Callable[..., Run], files: dict[str, Path]) -> None:
    """docs/verdicts.md: a message that is not signed cannot be evaluated (exit 2)."""
    assert_one_line_error(cli("verify", "-i", files["mail.eml"]), "not signed")


def test_inspect_unsigned_message(cli: Callable[..., Run], files: dict[str, Path]) -> None:
    r = cli("inspect", "-i", files["mail.eml"])
    assert r.code == 0 and b"no S/MIME layer" in r.out


def test_click_usage_errors_are_exit_2(cli: Callable[..., Run]) -> None:
    for argv in (("verify", "--no-such-option"), ("sign", "--digest", "sha1"), ("frobnicate",)):
        r = cli(*argv)
        assert r.code == 2
        assert b"Traceback" not in r.err
        assert r.err.startswith(b"mailseal: error: ")
        assert r.err.count(b"\n") == 1, "one line on stderr"


# -- through a real process and pipes ------------------------------------------------------------
def _proc(*argv: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailseal", *map(str, argv)],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(60)
def test_pipeline_through_stdin_and_stdout(files: dict[str, Path]) -> None:
    signed = _proc(
        "sign",
        "--cert",
        files["alice.crt"],
        "--key",
        files["alice.key"],
        "--chain",
        files["chain.pem"],
        stdin=MAIL_8BIT,
    )
    assert signed.returncode == 0, signed.stderr
    assert signed.stderr == b""
    assert param(header(split_head(signed.stdout)[0], "Content-Type") or "", "micalg") == "sha-256"
    verified = _proc("verify", "--trust", files["root.pem"], stdin=signed.stdout)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.decode().splitlines()[-1] == "message: valid"
    tampered = _proc(
        "verify",
        "--trust",
        files["root.pem"],
        stdin=signed.stdout.replace(b"last line", b"LAST line"),
    )
    assert tampered.returncode == 1
    empty = _proc("verify", stdin=b"")
    assert empty.returncode == 2
    assert len(empty.stderr.decode().splitlines()) == 1
    assert b"Traceback" not in empty.stderr


def test_cert_bundle_with_chain(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path, alice: Person, ca: TestPKI
) -> None:
    """A certificate file holding the leaf and then its chain: the rest becomes the chain."""
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(alice.issued.cert_pem + ca.chain[0].public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "b.eml"
    assert (
        cli(
            "sign",
            "-i",
            files["mail.eml"],
            "-o",
            out,
            "--cert",
            bundle,
            "--key",
            files["alice.key"],
        ).code
        == 0
    )
    assert len(content_info(out.read_bytes())["content"]["certificates"]) == 2
    assert cli("verify", "-i", out, "--trust", files["root.pem"]).code == 0


def _sign_to(cli: Callable[..., Run], files: dict[str, Path], out: Path | str) -> Run:
    return cli(
        "sign", "-i", files["mail.eml"], "-o", out,
        "--cert", files["alice.crt"], "--key", files["alice.key"],
    )  # fmt: skip


def test_output_to_a_fifo_writes_through_it(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path
) -> None:
    """-o naming a FIFO (or a device such as /dev/null) writes into it and leaves it a FIFO:
    the atomic rename used for regular files would replace it with a plain file."""
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = _sign_to(cli, files, fifo)
    reader.join(timeout=30)
    assert r.code == 0, r
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and b"multipart/signed" in got[0]
    assert not list(tmp_path.glob(".*mailseal-tmp"))


def test_output_through_a_symlink_keeps_the_link(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path
) -> None:
    real = tmp_path / "real.eml"
    real.write_bytes(b"old content")
    link = tmp_path / "link.eml"
    link.symlink_to(real)
    r = _sign_to(cli, files, link)
    assert r.code == 0, r
    assert link.is_symlink()
    assert b"multipart/signed" in real.read_bytes()
    assert not list(tmp_path.glob(".*mailseal-tmp"))


def test_output_to_a_character_device_is_not_replaced(
    cli: Callable[..., Run], files: dict[str, Path], tmp_path: Path
) -> None:
    """The real /dev/null stays a character device after -o /dev/null."""
    import os
    import stat

    before = os.stat("/dev/null")
    assert stat.S_ISCHR(before.st_mode)
    r = _sign_to(cli, files, "/dev/null")
    assert r.code == 0, r
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
