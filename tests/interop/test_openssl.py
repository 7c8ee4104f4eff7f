"""Interop with OpenSSL 3 ``openssl cms``, both directions (recipe: interop/openssl-cms.sh).

OpenSSL reads and writes S/MIME itself, so most checks exchange whole messages; raw DER
(.p7s/.p7m) is exercised too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.interop

MSG = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello from the interop test.\r\n"
    b"Second line.\r\n"
)


# ---- helpers -----------------------------------------------------------------------------------


def ossl_verify(
    openssl: Any,
    data: bytes,
    trust: Path,
    *,
    der: bool = False,
    content: bytes | None = None,
) -> tuple[Any, bytes | None]:
    """``openssl cms -verify`` of an S/MIME message (or DER with -inform DER)."""
    src = openssl.write(data, ".p7m" if der else ".eml")
    out = openssl.path(".out")
    args: list[str | Path] = [
        "openssl",
        "cms",
        "-verify",
        "-in",
        src,
        "-CAfile",
        trust,
        "-out",
        out,
    ]
    if der:
        args += ["-inform", "DER", "-binary"]
    if content is not None:
        args += ["-content", openssl.write(content, ".txt")]
    proc = openssl.run(*args)
    return proc, (out.read_bytes() if proc.returncode == 0 and out.exists() else None)


def ossl_sign(
    openssl: Any,
    signers: Any,
    chain: Path,
    *opts: str,
    content: bytes = MSG,
    opaque: bool = False,
    der: bool = False,
    md: str = "sha256",
) -> bytes:
    """``openssl cms -sign -binary``: S/MIME output unless ``der``. ``opts`` go after the
    signer options (``-keyopt`` must follow the key it applies to)."""
    src = openssl.write(content, ".txt")
    out = openssl.path(".p7" if der else ".eml")
    args: list[str | Path] = ["openssl", "cms", "-sign", "-binary", "-md", md, "-in", src]
    for ident in signers if isinstance(signers, list | tuple) else [signers]:
        args += ["-signer", ident.cert, "-inkey", ident.key]
    args += [*opts, "-certfile", chain, "-out", out]
    if opaque:
        args.append("-nodetach")
    if der:
        args += ["-outform", "DER"]
    proc = openssl.run(*args)
    assert proc.returncode == 0, proc.stderr.decode()
    return out.read_bytes()


# ---- mailseal signs, openssl verifies ---------------------------------------------------------


def test_mailseal_detached_rsa_verified_by_openssl(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, trust_pem: Path
) -> None:
    signed = mailseal.sign(alice)
    head = smime.headers(signed)
    assert head.get_content_type() == "multipart/signed"
    assert head.get_param("protocol") == "application/pkcs7-signature"
    assert head.get_param("micalg") == "sha-256"
    entity, sig = smime.split_detached(signed)
    assert entity == MSG, "a canonical entity must be signed as given"
    assert smime.signer_infos(sig)[0]["sid"].name == "issuer_and_serial_number"
    proc, out = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == entity


@pytest.mark.parametrize(("digest", "micalg"), [("sha384", "sha-384"), ("sha512", "sha-512")])
def test_mailseal_digest_choice_verified_by_openssl(
    mailseal: Any,
    openssl: Any,
    smime: Any,
    alice: Any,
    trust_pem: Path,
    digest: str,
    micalg: str,
) -> None:
    signed = mailseal.sign(alice, MSG, "--digest", digest)
    assert smime.headers(signed).get_param("micalg") == micalg
    _, sig = smime.split_detached(signed)
    assert smime.signer_infos(sig)[0]["digest_algorithm"]["algorithm"].native == digest
    proc, _ = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()


def test_mailseal_opaque_rsa_verified_by_openssl(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, trust_pem: Path
) -> None:
    signed = mailseal.sign(alice, MSG, "--opaque")
    head = smime.headers(signed)
    assert head.get_content_type() == "application/pkcs7-mime"
    assert head.get_param("smime-type") == "signed-data"
    proc, out = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == MSG
    # the same CMS as raw DER
    proc, out = ossl_verify(openssl, smime.opaque_der(signed), trust_pem, der=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == MSG


@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_mailseal_ecdsa_verified_by_openssl(
    mailseal: Any, openssl: Any, smime: Any, carol: Any, trust_pem: Path, opaque: bool
) -> None:
    signed = mailseal.sign(carol, MSG, *(["--opaque"] if opaque else []))
    der = smime.opaque_der(signed) if opaque else smime.split_detached(signed)[1]
    assert smime.signer_infos(der)[0]["signature_algorithm"].signature_algo == "ecdsa"
    proc, out = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == MSG


def test_mailseal_rsa_pss_verified_by_openssl(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, trust_pem: Path
) -> None:
    signed = mailseal.sign(alice, MSG, "--pss")
    _, sig = smime.split_detached(signed)
    alg = smime.signer_infos(sig)[0]["signature_algorithm"]
    assert alg["algorithm"].native == "rsassa_pss"
    proc, _ = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()


def test_mailseal_ed25519_verified_by_openssl(
    mailseal: Any, openssl: Any, smime: Any, erin: Any, trust_pem: Path
) -> None:
    signed = mailseal.sign(erin)
    _, sig = smime.split_detached(signed)
    assert smime.signer_infos(sig)[0]["signature_algorithm"]["algorithm"].native == "ed25519"
    mailseal.assert_valid(mailseal.verify(signed))  # mailseal's own round trip
    proc, _ = ossl_verify(openssl, signed, trust_pem)
    if proc.returncode != 0 and b"eddsa_digest_signverify_init" in proc.stderr:
        pytest.xfail(
            "OpenSSL 3.0 `cms` cannot verify (nor create) Ed25519 SignerInfos with signed "
            "attributes: eddsa_digest_signverify_init: invalid digest"
        )
    assert proc.returncode == 0, proc.stderr.decode()


def test_mailseal_ski_signer_identifier_verified_by_openssl(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, trust_pem: Path
) -> None:
    signed = mailseal.sign(alice, MSG, "--ski")
    _, sig = smime.split_detached(signed)
    si = smime.signer_infos(sig)[0]
    assert si["sid"].name == "subject_key_identifier"
    assert si["version"].native == "v3"  # RFC 5652 §5.3
    proc, out = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == MSG


def test_mailseal_two_signers_verified_by_openssl(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, carol: Any, trust_pem: Path
) -> None:
    signed = mailseal.sign([alice, carol])
    _, sig = smime.split_detached(signed)
    if len(smime.signer_infos(sig)) == 1:
        # TODO: the CLI keeps only the last --cert/--key pair; drop this skip once it takes
        # repeated pairs.
        pytest.skip("mailseal sign does not take repeated --cert/--key pairs yet")
    assert len(smime.signer_infos(sig)) == 2
    proc, _ = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    mailseal.assert_valid(mailseal.verify(signed), signers=2)


def test_mailseal_encryption_key_preference_verified_by_openssl(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, alice_enc: Any, trust_pem: Path
) -> None:
    signed = mailseal.sign(alice, MSG, "--encryption-cert", alice_enc.cert)
    _, sig = smime.split_detached(signed)
    pref = smime.signed_attr(smime.signer_infos(sig)[0], "encrypt_key_pref")
    assert pref is not None, "no SMIMEEncryptionKeyPreference signed attribute"
    assert pref.name == "issuer_and_serial_number"
    assert pref.chosen["serial_number"].native == alice_enc.issued.cert.serial_number
    proc, _ = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    v = mailseal.verify(signed)
    mailseal.assert_valid(v)
    assert v.signers[0]["encryption_key_preference"], v.explain()


def test_mailseal_full_message_keeps_outer_headers(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, trust_pem: Path
) -> None:
    mail = smime.MAIL  # From/To/Subject/Date/Message-ID/MIME-Version + the MSG entity
    signed = mailseal.sign(alice, mail)
    head = smime.headers(signed)
    assert head["From"] == "Alice <alice@example.org>"
    assert head["Subject"] == "interop test"
    assert head.get_content_type() == "multipart/signed"
    entity, _ = smime.split_detached(signed)
    assert entity.startswith(b"Content-Type: text/plain")
    assert b"Hello from the interop test.\r\nSecond line.\r\n" in entity
    proc, out = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == entity
    v = mailseal.verify(signed)
    mailseal.assert_valid(v)
    assert v.signers[0]["address_matches_from"] is True, v.explain()


def test_mailseal_lf_input_is_canonicalised(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, trust_pem: Path
) -> None:
    signed = mailseal.sign(alice, MSG.replace(b"\r\n", b"\n"))
    entity, _ = smime.split_detached(signed)
    assert entity == MSG, "LF input must be signed in canonical CRLF form"
    proc, out = ossl_verify(openssl, signed, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == MSG


def test_mailseal_tampered_rejected_by_openssl_and_mailseal(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, trust_pem: Path
) -> None:
    bad = smime.tamper(mailseal.sign(alice))
    proc, _ = ossl_verify(openssl, bad, trust_pem)
    assert proc.returncode != 0
    mailseal.assert_status(mailseal.verify(bad), "tampered")


def test_mailseal_wrong_anchor_rejected_by_openssl_and_mailseal(
    mailseal: Any, openssl: Any, alice: Any, other_trust_pem: Path
) -> None:
    signed = mailseal.sign(alice)
    proc, _ = ossl_verify(openssl, signed, other_trust_pem)
    assert proc.returncode != 0
    v = mailseal.verify(signed, trust=other_trust_pem)
    mailseal.assert_status(v, "untrusted")
    assert v.signers[0]["intact"] is True, v.explain()
    assert v.signers[0]["trusted"] is False, v.explain()


def test_mailseal_opaque_tampered_rejected_by_openssl_and_mailseal(
    mailseal: Any, openssl: Any, smime: Any, carol: Any, trust_pem: Path
) -> None:
    bad = smime.tamper_base64(mailseal.sign(carol, MSG, "--opaque"))
    proc, _ = ossl_verify(openssl, bad, trust_pem)
    assert proc.returncode != 0
    v = mailseal.verify(bad, want_content=False)
    mailseal.assert_status(v, "tampered")
    assert v.signers[0]["intact"] is False, v.explain()


@pytest.mark.parametrize("legacy", [False, True], ids=["pbes2-aes", "legacy-3des"])
def test_mailseal_pkcs12_signer_verified_by_openssl(
    mailseal: Any,
    openssl: Any,
    smime: Any,
    pki: Any,
    bob: Any,
    trust_pem: Path,
    legacy: bool,
) -> None:
    """``sign --p12`` with the password from the environment; the PKCS#12 carries the chain."""
    p12 = mailseal.path(".p12")
    p12.write_bytes(bob.issued.pkcs12(b"s3cret pass", legacy=legacy, chain=pki.chain))
    src, out = mailseal.path(".in"), mailseal.path(".eml")
    src.write_bytes(MSG)
    proc = mailseal.run(
        "sign",
        "-i",
        src,
        "-o",
        out,
        "--p12",
        p12,
        "--password-env",
        "MAILSEAL_TEST_P12_PASS",
        env={"MAILSEAL_TEST_P12_PASS": "s3cret pass"},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    signed = out.read_bytes()
    proc, got = ossl_verify(openssl, signed, trust_pem)  # the chain must come from the p12
    assert proc.returncode == 0, proc.stderr.decode()
    assert got == MSG


# ---- openssl signs, mailseal verifies ---------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "opts", "sigalg"),
    [
        ("alice", (), "rsassa_pkcs1v15"),
        ("carol", (), "ecdsa"),
        ("alice", ("-keyopt", "rsa_padding_mode:pss"), "rsassa_pss"),
    ],
    ids=["rsa", "ecdsa", "rsa-pss"],
)
def test_openssl_smime_detached_verified_by_mailseal(
    mailseal: Any,
    openssl: Any,
    smime: Any,
    chain_pem: Path,
    request: pytest.FixtureRequest,
    who: str,
    opts: tuple[str, ...],
    sigalg: str,
) -> None:
    ident = request.getfixturevalue(who)
    signed = ossl_sign(openssl, ident, chain_pem, *opts)
    _, sig = smime.split_detached(signed)
    assert smime.signer_infos(sig)[0]["signature_algorithm"].signature_algo == sigalg
    v = mailseal.verify(signed)
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()
    signer = v.signers[0]
    assert signer["digest_algorithm"] == "sha256", v.explain()
    assert ident.email in signer["addresses"], v.explain()
    if sigalg == "rsassa_pss":
        assert "pss" in str(signer["signature_algorithm"]).lower(), v.explain()


@pytest.mark.parametrize("who", ["alice", "carol"], ids=["rsa", "ecdsa"])
def test_openssl_smime_opaque_verified_by_mailseal(
    mailseal: Any, openssl: Any, chain_pem: Path, request: pytest.FixtureRequest, who: str
) -> None:
    signed = ossl_sign(openssl, request.getfixturevalue(who), chain_pem, opaque=True)
    v = mailseal.verify(signed)
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()


@pytest.mark.parametrize("who", ["alice", "carol"], ids=["rsa", "ecdsa"])
def test_openssl_der_opaque_verified_by_mailseal(
    mailseal: Any,
    openssl: Any,
    smime: Any,
    chain_pem: Path,
    request: pytest.FixtureRequest,
    who: str,
) -> None:
    der = ossl_sign(openssl, request.getfixturevalue(who), chain_pem, opaque=True, der=True)
    v = mailseal.verify(der)  # raw DER .p7m, no MIME around it
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()
    v = mailseal.verify(smime.wrap_opaque(der))
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()


def test_openssl_der_detached_in_test_built_multipart(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, chain_pem: Path
) -> None:
    sig = ossl_sign(openssl, alice, chain_pem, der=True)
    v = mailseal.verify(smime.wrap_detached(MSG, sig))
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()


@pytest.mark.parametrize(("md", "name"), [("sha384", "sha384"), ("sha512", "sha512")])
def test_openssl_other_digests_verified_by_mailseal(
    mailseal: Any, openssl: Any, carol: Any, chain_pem: Path, md: str, name: str
) -> None:
    v = mailseal.verify(ossl_sign(openssl, carol, chain_pem, md=md))
    mailseal.assert_valid(v)
    assert v.signers[0]["digest_algorithm"] == name, v.explain()


def test_openssl_keyid_signer_verified_by_mailseal(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, chain_pem: Path
) -> None:
    signed = ossl_sign(openssl, alice, chain_pem, "-keyid")
    _, sig = smime.split_detached(signed)
    assert smime.signer_infos(sig)[0]["sid"].name == "subject_key_identifier"
    mailseal.assert_valid(mailseal.verify(signed))


def test_openssl_two_signers_verified_by_mailseal(
    mailseal: Any, openssl: Any, alice: Any, carol: Any, chain_pem: Path
) -> None:
    v = mailseal.verify(ossl_sign(openssl, [alice, carol], chain_pem))
    mailseal.assert_valid(v, signers=2)
    addresses = {a for s in v.signers for a in s["addresses"]}
    assert {alice.email, carol.email} <= addresses, v.explain()


def test_openssl_no_signed_attributes_verified_by_mailseal(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, chain_pem: Path
) -> None:
    signed = ossl_sign(openssl, alice, chain_pem, "-noattr")
    _, sig = smime.split_detached(signed)
    assert not smime.signer_infos(sig)[0]["signed_attrs"]
    mailseal.assert_valid(mailseal.verify(signed))


def test_openssl_tampered_detected_by_mailseal(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, chain_pem: Path
) -> None:
    signed = ossl_sign(openssl, alice, chain_pem)
    mailseal.assert_status(mailseal.verify(smime.tamper(signed)), "tampered")
    opaque = ossl_sign(openssl, alice, chain_pem, opaque=True, der=True)
    v = mailseal.verify(smime.tamper(opaque), want_content=False)
    mailseal.assert_status(v, "tampered")
    assert v.signers[0]["intact"] is False, v.explain()


def test_openssl_signature_wrong_anchor_untrusted_in_mailseal(
    mailseal: Any, openssl: Any, carol: Any, chain_pem: Path, other_trust_pem: Path
) -> None:
    v = mailseal.verify(ossl_sign(openssl, carol, chain_pem), trust=other_trust_pem)
    mailseal.assert_status(v, "untrusted")
    assert v.signers[0]["intact"] is True, v.explain()
    assert v.signers[0]["trusted"] is False, v.explain()
