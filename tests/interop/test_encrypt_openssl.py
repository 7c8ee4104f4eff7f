"""Encryption interop with OpenSSL 3 ``openssl cms``, both directions (recipe: openssl-cms.sh).

Every combination both sides support: AES-CBC EnvelopedData and AES-GCM AuthEnvelopedData, RSA
key transport with RSAES-OAEP and PKCS#1 v1.5, ECDH key agreement on P-256 and P-384 (X9.63 KDF
with the hash given by ``-keyopt ecdh_kdf_md``), recipients named by subjectKeyIdentifier,
several recipients, sign-then-encrypt in both directions, and tampering.

The CMS structures are checked with asn1crypto (``envelopes`` fixture), independently of the
mailseal code under test.
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
TRANSPORT = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: interop test\r\n"
    b"Date: Mon, 24 Nov 2025 08:00:00 +0000\r\n"
    b"Message-ID: <interop-enc-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
)
MAIL = TRANSPORT + MSG
# A body of many AES blocks, so one block can be changed without touching headers or padding.
LONG_MSG = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"".join(
    b"Line %02d of a longer body, so that the ciphertext has many AES blocks.\r\n" % i
    for i in range(1, 21)
)

CIPHERS = ["aes-256-gcm", "aes-128-gcm", "aes-256-cbc", "aes-128-cbc"]


# ---- helpers -----------------------------------------------------------------------------------


def ossl_decrypt(openssl: Any, data: bytes, ident: Any, *, der: bool = False) -> tuple[Any, Any]:
    """``openssl cms -decrypt`` as ``ident``: (process, plaintext or None)."""
    src, out = openssl.write(data, ".p7m" if der else ".eml"), openssl.path(".dec")
    args: list[str | Path] = ["openssl", "cms", "-decrypt", "-in", src, "-out", out]
    args += ["-recip", ident.cert, "-inkey", ident.key]
    if der:
        args += ["-inform", "DER"]
    proc = openssl.run(*args)
    return proc, (out.read_bytes() if proc.returncode == 0 and out.exists() else None)


def ossl_encrypt(
    openssl: Any,
    recipients: list[Any],
    cipher: str,
    *keyopts: str,
    content: bytes = MSG,
    keyid: bool = False,
    stream: bool = False,
) -> bytes:
    """``openssl cms -encrypt -binary`` (S/MIME output with From/To/Subject). ``keyopts``
    follow each ``-recip`` (that is where OpenSSL takes them)."""
    src, out = openssl.write(content, ".txt"), openssl.path(".eml")
    args: list[str | Path] = ["openssl", "cms", "-encrypt", "-binary", f"-{cipher}"]
    args += ["-in", src, "-out", out]
    if keyid:
        args.append("-keyid")
    if stream:
        args.append("-stream")
    for r in recipients:
        args += ["-recip", r.cert, *keyopts]
    args += ["-from", "Alice <alice@example.org>", "-to", "bob@example.org"]
    args += ["-subject", "from openssl"]
    proc = openssl.run(*args)
    assert proc.returncode == 0 and out.exists(), proc.stderr.decode()
    return out.read_bytes()


def ossl_sign(openssl: Any, signer: Any, chain: Path, *, opaque: bool = False) -> bytes:
    src, out = openssl.write(MSG, ".txt"), openssl.path(".eml")
    args: list[str | Path] = ["openssl", "cms", "-sign", "-binary", "-md", "sha256", "-in", src]
    args += ["-signer", signer.cert, "-inkey", signer.key, "-certfile", chain, "-out", out]
    if opaque:
        args.append("-nodetach")
    proc = openssl.run(*args)
    assert proc.returncode == 0, proc.stderr.decode()
    return out.read_bytes()


def ossl_verify(openssl: Any, data: bytes, trust: Path) -> tuple[Any, Any]:
    src, out = openssl.write(data, ".eml"), openssl.path(".out")
    proc = openssl.run("openssl", "cms", "-verify", "-in", src, "-CAfile", trust, "-out", out)
    return proc, (out.read_bytes() if proc.returncode == 0 and out.exists() else None)


def transport_of(data: bytes, smime: Any) -> bytes:
    head, _ = smime.split_headers(data)
    return head


# ---- mailseal encrypts, openssl decrypts ------------------------------------------------------


@pytest.mark.parametrize("kt", ["oaep", "pkcs1v15"])
@pytest.mark.parametrize("cipher", CIPHERS)
def test_mailseal_rsa_recipient_decrypted_by_openssl(
    mailseal: Any, openssl: Any, envelopes: Any, smime: Any, bob: Any, cipher: str, kt: str
) -> None:
    enc = mailseal.encrypt([bob], MAIL, "--cipher", cipher, f"--{kt}")
    head = smime.headers(enc)
    assert head["From"] == "Alice <alice@example.org>", "transport headers stay outside"
    assert head["Subject"] == "interop test"
    view = envelopes.view(enc)
    gcm = cipher.endswith("gcm")
    assert head.get_param("smime-type") == ("authEnveloped-data" if gcm else "enveloped-data")
    assert view.authenticated is gcm
    assert view.cipher == envelopes.OID_CIPHER[cipher]
    (ri,) = view.recipients
    assert ri.kind == "ktri"
    assert ri.rids == ("issuer_and_serial_number",)
    assert ri.serials == (bob.issued.cert.serial_number,)
    assert ri.algorithm == (envelopes.OID_RSA_OAEP if kt == "oaep" else envelopes.OID_RSA_PKCS1)
    proc, out = ossl_decrypt(openssl, enc, bob)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == MSG, "openssl must recover the encrypted entity byte for byte"


@pytest.mark.parametrize(
    ("who", "kdf", "cipher"),
    [("carol", "sha256", c) for c in CIPHERS]
    + [("dave", "sha384", "aes-256-gcm"), ("dave", "sha384", "aes-128-cbc")],
    ids=lambda v: str(v),
)
def test_mailseal_ecdh_recipient_decrypted_by_openssl(
    mailseal: Any,
    openssl: Any,
    envelopes: Any,
    request: pytest.FixtureRequest,
    who: str,
    kdf: str,
    cipher: str,
) -> None:
    """RFC 5753: ephemeral-static ECDH, the X9.63 KDF hash matched to the curve (SHA-256 for
    P-256, SHA-384 for P-384), and an AES key wrap as strong as the content key."""
    ident = request.getfixturevalue(who)
    enc = mailseal.encrypt([ident], MAIL, "--cipher", cipher)
    view = envelopes.view(enc)
    (ri,) = view.recipients
    assert ri.kind == "kari"
    assert ri.algorithm == envelopes.OID_ECDH[kdf]
    assert ri.wrap == envelopes.OID_WRAP[16 if cipher.startswith("aes-128") else 32]
    proc, out = ossl_decrypt(openssl, enc, ident)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == MSG


def test_mailseal_default_choice_decrypted_by_openssl(
    mailseal: Any, openssl: Any, envelopes: Any, bob: Any
) -> None:
    """No options: AES-256-GCM AuthEnvelopedData with RSAES-OAEP, reported on stderr."""
    src, out = mailseal.path(".in"), mailseal.path(".eml")
    src.write_bytes(MAIL)
    proc = mailseal.run("encrypt", "-i", src, "-o", out, "--to", bob.cert)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"aes-256-gcm" in proc.stderr and bob.email.encode() in proc.stderr, proc.stderr
    view = envelopes.view(out.read_bytes())
    assert view.authenticated and view.cipher == envelopes.OID_CIPHER["aes-256-gcm"]
    assert view.recipients[0].algorithm == envelopes.OID_RSA_OAEP
    dec, text = ossl_decrypt(openssl, out.read_bytes(), bob)
    assert dec.returncode == 0 and text == MSG, dec.stderr.decode()


def test_mailseal_compatible_decrypted_by_openssl(
    mailseal: Any, openssl: Any, envelopes: Any, bob: Any
) -> None:
    enc = mailseal.encrypt([bob], MAIL, "--compatible")
    view = envelopes.view(enc)
    assert not view.authenticated and view.cipher == envelopes.OID_CIPHER["aes-256-cbc"]
    assert view.recipients[0].algorithm == envelopes.OID_RSA_PKCS1
    proc, out = ossl_decrypt(openssl, enc, bob)
    assert proc.returncode == 0 and out == MSG, proc.stderr.decode()


@pytest.mark.parametrize("who", ["bob", "carol", "dave"])
def test_mailseal_ski_recipient_decrypted_by_openssl(
    mailseal: Any, openssl: Any, envelopes: Any, request: pytest.FixtureRequest, who: str
) -> None:
    ident = request.getfixturevalue(who)
    enc = mailseal.encrypt([ident], MAIL, "--ski")
    (ri,) = envelopes.view(enc).recipients
    assert ri.rids == ("subject_key_identifier" if ri.kind == "ktri" else "r_key_id",), (
        "--ski names the recipient by subjectKeyIdentifier (kari: rKeyId)"
    )
    proc, out = ossl_decrypt(openssl, enc, ident)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == MSG


def test_mailseal_several_recipients_decrypted_by_openssl_as_each(
    mailseal: Any,
    openssl: Any,
    envelopes: Any,
    alice: Any,
    bob: Any,
    carol: Any,
    dave: Any,
    alice_enc: Any,
) -> None:
    people = [alice, bob, carol, dave]
    enc = mailseal.encrypt(people, MAIL)
    view = envelopes.view(enc)
    assert [r.kind for r in view.recipients] == ["ktri", "ktri", "kari", "kari"]
    for ident in people:
        proc, out = ossl_decrypt(openssl, enc, ident)
        assert proc.returncode == 0, f"{ident.stem}: " + proc.stderr.decode()
        assert out == MSG, ident.stem
    proc, _ = ossl_decrypt(openssl, enc, alice_enc)  # same address, another certificate
    assert proc.returncode != 0, "a non-recipient decrypted the message"


def test_mailseal_self_and_no_self(
    mailseal: Any, openssl: Any, envelopes: Any, alice: Any, bob: Any
) -> None:
    """``--self`` adds the sender as a recipient (they can read their sent copy); ``--no-self``
    overrides it."""
    enc = mailseal.encrypt([bob], MAIL, "--self", alice.cert)
    assert len(envelopes.view(enc).recipients) == 2
    for ident in (alice, bob):
        proc, out = ossl_decrypt(openssl, enc, ident)
        assert proc.returncode == 0 and out == MSG, proc.stderr.decode()
    enc = mailseal.encrypt([bob], MAIL, "--self", alice.cert, "--no-self")
    assert [r.serials for r in envelopes.view(enc).recipients] == [(bob.issued.cert.serial_number,)]
    proc, _ = ossl_decrypt(openssl, enc, alice)
    assert proc.returncode != 0


# ---- openssl encrypts, mailseal decrypts ------------------------------------------------------

OPENSSL_CASES = [
    # (id, recipient, openssl cipher, keyopts, mailseal cipher name)
    ("rsa-aes256cbc", "bob", "aes-256-cbc", (), "aes-256-cbc"),
    ("rsa-aes192cbc", "bob", "aes-192-cbc", (), "aes-192-cbc"),
    ("rsa-aes128cbc", "bob", "aes-128-cbc", (), "aes-128-cbc"),
    ("rsa-aes256gcm", "bob", "aes-256-gcm", (), "aes-256-gcm"),
    ("rsa-aes128gcm", "bob", "aes-128-gcm", (), "aes-128-gcm"),
    ("rsa-aes192gcm", "bob", "aes-192-gcm", (), "aes-192-gcm"),
    ("oaep-sha1", "bob", "aes-128-cbc", ("-keyopt", "rsa_padding_mode:oaep"), "aes-128-cbc"),
    (
        "oaep-sha256-gcm",
        "bob",
        "aes-256-gcm",
        (
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
        ),
        "aes-256-gcm",
    ),
    (
        "oaep-sha512",
        "bob",
        "aes-256-cbc",
        ("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha512"),
        "aes-256-cbc",
    ),
    ("p256-kdf-sha1", "carol", "aes-128-cbc", (), "aes-128-cbc"),
    ("p256-kdf-sha256", "carol", "aes-128-cbc", ("-keyopt", "ecdh_kdf_md:sha256"), "aes-128-cbc"),
    ("p256-kdf-sha256-gcm", "carol", "aes-256-gcm", ("-keyopt", "ecdh_kdf_md:sha256"), None),
    (
        "p256-cofactor",
        "carol",
        "aes-256-cbc",
        ("-keyopt", "ecdh_cofactor_mode:1", "-keyopt", "ecdh_kdf_md:sha256"),
        "aes-256-cbc",
    ),
    ("p384-kdf-sha384", "dave", "aes-256-gcm", ("-keyopt", "ecdh_kdf_md:sha384"), "aes-256-gcm"),
    ("p384-kdf-sha384-cbc", "dave", "aes-256-cbc", ("-keyopt", "ecdh_kdf_md:sha384"), None),
    ("p384-kdf-sha512", "dave", "aes-128-gcm", ("-keyopt", "ecdh_kdf_md:sha512"), None),
]


@pytest.mark.parametrize(
    ("who", "cipher", "keyopts", "name"),
    [c[1:] for c in OPENSSL_CASES],
    ids=[c[0] for c in OPENSSL_CASES],
)
def test_openssl_encrypt_decrypted_by_mailseal(
    mailseal: Any,
    openssl: Any,
    envelopes: Any,
    request: pytest.FixtureRequest,
    who: str,
    cipher: str,
    keyopts: tuple[str, ...],
    name: str | None,
) -> None:
    ident = request.getfixturevalue(who)
    enc = ossl_encrypt(openssl, [ident], cipher, *keyopts)
    assert envelopes.view(enc).cipher == envelopes.OID_CIPHER[cipher]
    d = mailseal.decrypt(enc, [ident])
    assert d.rc == 0, d.explain()
    assert d.content is not None
    # decrypt -o: the transport headers, then the decrypted entity
    assert d.content.endswith(MSG), d.content
    head = d.content[: -len(MSG)]
    assert b"From: Alice <alice@example.org>\r\n" in head and b"Subject: from openssl\r\n" in head
    assert b"Content-Type" not in head, "the pkcs7-mime headers are not transport headers"
    report = d.err
    assert (name or cipher) in report, report
    gcm = cipher.endswith("gcm")
    assert ("(authenticated)" in report) is gcm, report
    assert ident.email in report, report


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_openssl_keyid_recipient_decrypted_by_mailseal(
    mailseal: Any, openssl: Any, envelopes: Any, request: pytest.FixtureRequest, who: str
) -> None:
    ident = request.getfixturevalue(who)
    enc = ossl_encrypt(openssl, [ident], "aes-256-gcm", keyid=True)
    (ri,) = envelopes.view(enc).recipients
    assert ri.rids[0] in ("subject_key_identifier", "r_key_id")
    d = mailseal.decrypt(enc, [ident])
    assert d.rc == 0, d.explain()
    assert d.content is not None and d.content.endswith(MSG)


def test_openssl_several_recipients_decrypted_by_mailseal_as_each(
    mailseal: Any, openssl: Any, alice: Any, bob: Any, carol: Any, dave: Any, alice_enc: Any
) -> None:
    people = [alice, bob, carol, dave]
    enc = ossl_encrypt(openssl, people, "aes-256-gcm")  # EC: OpenSSL's default SHA-1 KDF
    for ident in people:
        d = mailseal.decrypt(enc, [ident])
        assert d.rc == 0, d.explain()
        assert d.content is not None and d.content.endswith(MSG), ident.stem
        assert ident.email in d.err
    # someone else: the error names the recipients and the identity tried
    d = mailseal.decrypt(enc, [alice_enc])
    d.assert_clean_error()
    for ident in people:
        assert format(ident.issued.cert.serial_number, "x") in d.err, d.explain()
    assert format(alice_enc.issued.cert.serial_number, "x") in d.err, d.explain()


def _decrypt_and_open(mailseal: Any, data: bytes, *args: Any, env: Any = None) -> list[Any]:
    src, out = mailseal.path(".msg"), mailseal.path(".dec")
    src.write_bytes(data)
    results = []
    for cmd in ("decrypt", "open"):
        if out.exists():
            out.unlink()
        proc = mailseal.run(cmd, "-i", src, "-o", out, *args, env=env)
        results.append((proc, out.read_bytes() if out.exists() else None))
    return results


@pytest.mark.parametrize("legacy", [False, True], ids=["pbes2-aes", "legacy-3des"])
def test_openssl_encrypt_decrypted_with_p12(
    mailseal: Any, openssl: Any, pki: Any, bob: Any, legacy: bool
) -> None:
    p12 = mailseal.path(".p12")
    p12.write_bytes(bob.issued.pkcs12(b"pass phrase", legacy=legacy, chain=pki.chain))
    enc = ossl_encrypt(openssl, [bob], "aes-256-cbc")
    env = {"MAILSEAL_TEST_P12": "pass phrase"}
    args = ("--p12", p12, "--password-env", "MAILSEAL_TEST_P12")
    for proc, out in _decrypt_and_open(mailseal, enc, *args, env=env):
        assert proc.returncode == 0, proc.stderr.decode()
        assert out is not None and out.endswith(MSG)


def test_openssl_encrypt_decrypted_among_several_identities(
    mailseal: Any, openssl: Any, alice: Any, bob: Any, carol: Any
) -> None:
    """Every identity given is tried; the one that matches opens the message, whatever its
    position (an old key after a renewal is given the same way)."""
    enc = ossl_encrypt(openssl, [bob], "aes-256-gcm")
    args = [a for p in (alice, carol, bob) for a in ("--cert", p.cert, "--key", p.key)]
    for proc, out in _decrypt_and_open(mailseal, enc, *args):
        assert proc.returncode == 0, proc.stderr.decode()
        assert out is not None and out.endswith(MSG)
        assert bob.email.encode() in proc.stderr + proc.stdout


def test_pem_key_and_protected_p12_together(
    mailseal: Any, openssl: Any, pki: Any, alice: Any, bob: Any
) -> None:
    p12 = mailseal.path(".p12")
    p12.write_bytes(bob.issued.pkcs12(b"pass phrase", chain=pki.chain))
    enc = ossl_encrypt(openssl, [bob], "aes-256-cbc")
    env = {"MAILSEAL_TEST_P12": "pass phrase"}
    args = ("--cert", alice.cert, "--key", alice.key, "--p12", p12)
    for proc, out in _decrypt_and_open(
        mailseal, enc, *args, "--password-env", "MAILSEAL_TEST_P12", env=env
    ):
        assert proc.returncode == 0, proc.stderr.decode()
        assert out is not None and out.endswith(MSG)


def test_legacy_openssl_smime_x_pkcs7_mime_decrypted_by_mailseal(
    mailseal: Any, openssl: Any, smime: Any, bob: Any
) -> None:
    """``openssl smime`` (the old command) labels its output application/x-pkcs7-mime."""
    src, out = openssl.write(MSG, ".txt"), openssl.path(".eml")
    proc = openssl.run("openssl", "smime", "-encrypt", "-aes256", "-in", src, "-out", out, bob.cert)
    assert proc.returncode == 0, proc.stderr.decode()
    enc = out.read_bytes()
    assert smime.content_type(enc) == "application/x-pkcs7-mime"
    d = mailseal.decrypt(enc, [bob])
    assert d.rc == 0, d.explain()
    # openssl smime converts the input to CRLF text itself: compare the text only
    assert d.content is not None and b"Hello from the interop test.\r\n" in d.content


def test_mailseal_decrypt_output_verified_by_openssl_and_mailseal(
    mailseal: Any, openssl: Any, smime: Any, alice: Any, bob: Any, trust_pem: Path
) -> None:
    """``decrypt -o`` of a sealed message writes the transport headers and the signed entity:
    a complete signed message that both verifiers accept, with the From address intact."""
    sealed = mailseal.seal(alice, [bob], MAIL)
    d = mailseal.decrypt(sealed, [bob])
    assert d.rc == 0 and d.content is not None, d.explain()
    head = smime.headers(d.content)
    assert head["From"] == "Alice <alice@example.org>" and head["Subject"] == "interop test"
    assert head.get_content_type() == "multipart/signed"
    proc, content = ossl_verify(openssl, d.content, trust_pem)
    assert proc.returncode == 0, proc.stderr.decode()
    assert content == MSG
    v = mailseal.verify(d.content)
    mailseal.assert_valid(v)
    assert v.signers[0]["address_matches_from"] is True, v.explain()


NON_MIME = {
    "plain-text": b"hello, no MIME header here\r\nsecond line\r\n",
    "empty": b"",
}


@pytest.mark.parametrize("content", list(NON_MIME))
def test_openssl_encrypted_non_mime_content_decrypted_by_mailseal(
    mailseal: Any, openssl: Any, bob: Any, content: str
) -> None:
    """Peers encrypt whatever file they are given (RFC 8551 wants a MIME entity; a plain file
    or an empty one is what ``openssl cms``/gpgsm/cmsutil users send)."""
    enc = ossl_encrypt(openssl, [bob], "aes-256-gcm", content=NON_MIME[content])
    d = mailseal.decrypt(enc, [bob])
    assert d.rc == 0, d.explain()
    assert d.content is not None and d.content.endswith(NON_MIME[content])


@pytest.mark.parametrize("content", list(NON_MIME))
def test_openssl_encrypted_non_mime_content_opened_by_mailseal(
    mailseal: Any, openssl: Any, bob: Any, content: str
) -> None:
    enc = ossl_encrypt(openssl, [bob], "aes-256-gcm", content=NON_MIME[content])
    o = mailseal.open(enc, [bob])
    assert o.rc == 0, o.explain()
    assert o.kinds == ["encrypted"] and o.layers[0]["authenticated"] is True
    assert o.content is not None and o.content.endswith(NON_MIME[content])


def test_openssl_3des_refused_by_mailseal(mailseal: Any, openssl: Any, bob: Any) -> None:
    """3DES content (what old clients send) is refused with a clear error, not decrypted."""
    enc = ossl_encrypt(openssl, [bob], "des3")
    d = mailseal.decrypt(enc, [bob])
    d.assert_clean_error()
    assert "3DES" in d.err or "des-ede3" in d.err, d.explain()


def test_large_message_streams_both_ways(
    mailseal: Any, openssl: Any, envelopes: Any, bob: Any, carol: Any
) -> None:
    """A 3 MiB message: mailseal switches to BER with indefinite lengths past 1 MiB, openssl
    -stream writes BER too; each side reads the other's."""
    body = b"".join(
        b"line %07d: some filler text for a large message body\r\n" % i for i in range(56_000)
    )
    big = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body
    assert len(big) > 3 << 20
    enc = mailseal.encrypt([bob, carol], TRANSPORT + big)
    assert envelopes.view(enc).ber, "a large message is written as BER, streamed"
    for ident in (bob, carol):
        proc, out = ossl_decrypt(openssl, enc, ident)
        assert proc.returncode == 0, proc.stderr.decode()
        assert out == big
    enc = ossl_encrypt(openssl, [bob], "aes-256-gcm", content=big, stream=True)
    assert envelopes.view(enc).ber
    d = mailseal.decrypt(enc, [bob])
    assert d.rc == 0, d.explain()
    assert d.content is not None and d.content.endswith(big)


# ---- sign-then-encrypt ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signer", "recipient", "opts"),
    [
        ("alice", "bob", ()),
        ("alice", "bob", ("--opaque",)),
        ("alice", "bob", ("--compatible",)),
        ("carol", "dave", ("--cipher", "aes-256-cbc")),
    ],
    ids=["rsa-gcm-detached", "rsa-gcm-opaque", "rsa-compatible", "ecdsa-to-p384-cbc"],
)
def test_mailseal_seal_opened_by_openssl(
    mailseal: Any,
    openssl: Any,
    smime: Any,
    envelopes: Any,
    trust_pem: Path,
    request: pytest.FixtureRequest,
    signer: str,
    recipient: str,
    opts: tuple[str, ...],
) -> None:
    """openssl decrypts, then verifies the inner signature; the sender can read it too."""
    s, r = request.getfixturevalue(signer), request.getfixturevalue(recipient)
    sealed = mailseal.seal(s, [r], MAIL, *opts)
    assert smime.headers(sealed)["From"] == "Alice <alice@example.org>"
    assert len(envelopes.view(sealed).recipients) == 2, "the sender is a recipient by default"
    for reader in (r, s):
        proc, inner = ossl_decrypt(openssl, sealed, reader)
        assert proc.returncode == 0, f"{reader.stem}: " + proc.stderr.decode()
        expected = "application/pkcs7-mime" if "--opaque" in opts else "multipart/signed"
        assert smime.content_type(inner) == expected
        proc, content = ossl_verify(openssl, inner, trust_pem)
        assert proc.returncode == 0, proc.stderr.decode()
        assert content == MSG


def test_mailseal_seal_no_self_not_readable_by_sender(
    mailseal: Any, openssl: Any, envelopes: Any, alice: Any, bob: Any
) -> None:
    sealed = mailseal.seal(alice, [bob], MAIL, "--no-self")
    assert len(envelopes.view(sealed).recipients) == 1
    proc, _ = ossl_decrypt(openssl, sealed, alice)
    assert proc.returncode != 0
    proc, _ = ossl_decrypt(openssl, sealed, bob)
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize(
    ("signer", "recipient", "cipher", "keyopts", "opaque"),
    [
        ("alice", "bob", "aes-256-gcm", (), False),
        ("alice", "bob", "aes-256-cbc", (), True),
        ("carol", "dave", "aes-128-gcm", ("-keyopt", "ecdh_kdf_md:sha384"), False),
    ],
    ids=["rsa-gcm-detached", "rsa-cbc-opaque", "ecdsa-ecdh-gcm"],
)
def test_openssl_sign_then_encrypt_opened_by_mailseal(
    mailseal: Any,
    openssl: Any,
    chain_pem: Path,
    request: pytest.FixtureRequest,
    signer: str,
    recipient: str,
    cipher: str,
    keyopts: tuple[str, ...],
    opaque: bool,
) -> None:
    """``openssl cms -sign | openssl cms -encrypt``: one verdict per layer."""
    s, r = request.getfixturevalue(signer), request.getfixturevalue(recipient)
    signed = ossl_sign(openssl, s, chain_pem, opaque=opaque)
    enc = ossl_encrypt(openssl, [r], cipher, *keyopts, content=signed)
    o = mailseal.open(enc, [r], "--ignore-address")
    assert o.rc == 0, o.explain()
    assert o.report is not None
    assert o.kinds == ["encrypted", "signed"], o.explain()
    enc_layer, sig_layer = o.layers
    gcm = cipher.endswith("gcm")
    assert enc_layer["status"] == "valid" and enc_layer["cipher"] == cipher
    assert enc_layer["authenticated"] is gcm
    assert enc_layer["opened_by"] == r.email
    assert sig_layer["status"] == "valid", o.explain()
    signers = sig_layer["signature"]["signers"]
    assert len(signers) == 1 and s.email in signers[0]["addresses"]
    assert signers[0]["intact"] is True and signers[0]["trusted"] is True
    assert o.report["signed"] is True and o.report["encrypted"] is True
    assert o.report["authenticated"] is True, "a valid signature authenticates CBC content"
    assert o.content is not None and o.content.endswith(MSG)


# ---- tampering --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcm_messages(mailseal: Any, openssl: Any, bob: Any) -> dict[str, bytes]:
    return {
        "mailseal": mailseal.encrypt([bob], MAIL),
        "openssl": ossl_encrypt(openssl, [bob], "aes-256-gcm"),
    }


@pytest.mark.parametrize("where", ["ciphertext", "tag"])
@pytest.mark.parametrize("maker", ["mailseal", "openssl"])
def test_gcm_tampering_refused(
    mailseal: Any,
    openssl: Any,
    envelopes: Any,
    gcm_messages: dict[str, bytes],
    bob: Any,
    maker: str,
    where: str,
) -> None:
    """One flipped bit in AES-GCM ciphertext or tag: nothing is released, exit 2."""
    bad = envelopes.flip(gcm_messages[maker], where, block=1, bit=3)
    proc, _ = ossl_decrypt(openssl, bad, bob)
    assert proc.returncode != 0, "the flip did not reach the authenticated data"
    d = mailseal.decrypt(bad, [bob])
    d.assert_clean_error()
    assert "modified" in d.err or "authentic" in d.err, d.explain()
    o = mailseal.open(bad, [bob])
    o.assert_clean_error()
    assert o.report is None


def test_cbc_modified_block_decrypts_but_is_reported_unauthenticated(
    mailseal: Any, openssl: Any, envelopes: Any, bob: Any
) -> None:
    """EFAIL: a changed CBC block decrypts to changed plaintext without any error. mailseal
    cannot detect it either, but says that the layer is not integrity-protected."""
    enc = mailseal.encrypt([bob], TRANSPORT + LONG_MSG, "--cipher", "aes-256-cbc")
    bad = envelopes.flip(enc, "ciphertext", block=12, bit=0)
    proc, garbled = ossl_decrypt(openssl, bad, bob)
    assert proc.returncode == 0 and garbled != LONG_MSG, "openssl reads the changed message"
    d = mailseal.decrypt(bad, [bob])
    assert d.rc == 0, d.explain()
    assert d.content is not None and d.content.endswith(garbled), "same plaintext as openssl"
    assert "does not protect integrity" in d.err or "CBC" in d.err, d.explain()
    o = mailseal.open(bad, [bob])
    assert o.report is not None, o.explain()
    assert o.kinds == ["encrypted"]
    assert o.layers[0]["authenticated"] is False and o.layers[0]["cipher"] == "aes-256-cbc"
    assert o.report["authenticated"] is False and o.report["signed"] is False
    assert o.report["encrypted"] is True
    for cmd in (mailseal.decrypt, mailseal.open):
        r = cmd(bad, [bob], "--require-authenticated")
        r.assert_clean_error()
        assert "authenticated" in r.err, r.explain()


def test_cbc_bad_padding_is_a_clean_error(
    mailseal: Any, openssl: Any, envelopes: Any, bob: Any
) -> None:
    """Flipping the last bit of the next-to-last block flips the padding length byte: the
    padding is then invalid whatever it was."""
    enc = mailseal.encrypt([bob], TRANSPORT + LONG_MSG, "--cipher", "aes-128-cbc")
    bad = envelopes.flip(enc, "ciphertext", block=-2, byte=15, bit=0)
    proc, _ = ossl_decrypt(openssl, bad, bob)
    assert proc.returncode != 0, "openssl accepted the broken padding"
    d = mailseal.decrypt(bad, [bob])
    d.assert_clean_error()
    mailseal.open(bad, [bob]).assert_clean_error()


def test_cbc_modified_sealed_message_fails_its_signature(
    mailseal: Any, openssl: Any, envelopes: Any, alice: Any, bob: Any
) -> None:
    """Under a signature, a changed CBC block is caught by the signature layer (exit 1), while
    the encryption layer is still reported as not integrity-protected."""
    sealed = mailseal.seal(alice, [bob], TRANSPORT + LONG_MSG, "--cipher", "aes-256-cbc")
    _, inner = ossl_decrypt(openssl, sealed, bob)
    assert inner is not None
    at = inner.index(b"Line 10 of")  # change plain text inside the signed part only
    bad = envelopes.flip(sealed, "ciphertext", block=at // 16, bit=1)
    o = mailseal.open(bad, [bob])
    assert o.rc == 1, o.explain()
    assert o.kinds == ["encrypted", "signed"], o.explain()
    assert o.layers[0]["authenticated"] is False
    assert o.layers[1]["status"] == "tampered", o.explain()
    assert o.report is not None and o.report["authenticated"] is False


def test_require_authenticated_accepts_gcm(
    mailseal: Any, openssl: Any, bob: Any, gcm_messages: dict[str, bytes], alice: Any
) -> None:
    for data in gcm_messages.values():
        d = mailseal.decrypt(data, [bob], "--require-authenticated")
        assert d.rc == 0, d.explain()
    sealed = mailseal.seal(alice, [bob], MAIL)
    o = mailseal.open(sealed, [bob], "--require-authenticated")
    assert o.rc == 0, o.explain()
    sealed = mailseal.seal(alice, [bob], MAIL, "--compatible")
    o = mailseal.open(sealed, [bob], "--require-authenticated")
    o.assert_clean_error()  # even under a valid signature: the option refuses CBC outright
    enc = ossl_encrypt(openssl, [bob], "aes-256-cbc")
    mailseal.decrypt(enc, [bob], "--require-authenticated").assert_clean_error()
