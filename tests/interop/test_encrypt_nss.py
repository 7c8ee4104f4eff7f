"""Encryption interop with Mozilla NSS ``cmsutil`` (3.87 on Debian bookworm; the CMS engine of
Thunderbird), both directions.

NSS 3.87 reads and writes EnvelopedData with AES-CBC and RSA PKCS#1 v1.5 key transport only:
mailseal reaches it with ``--compatible`` (or ``--cipher aes-256-cbc --pkcs1v15``). What NSS
cannot do is tried anyway and marked xfail with NSS's own error, so the test starts passing
when a newer NSS can. ``cmsutil -D`` exits 1 when it cannot decode a message.

cmsutil works on raw CMS: mailseal's pkcs7-mime body is decoded to DER for it, and its DER
output is wrapped in MIME (or given raw) to mailseal. ``nss_keys(alice)`` is a database holding
alice's key and the other people's certificates.
"""

from __future__ import annotations

import re
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
    b"MIME-Version: 1.0\r\n"
)
MAIL = TRANSPORT + MSG
FROM_BOB = b"From: Bob <bob@example.org>\r\nTo: Alice <alice@example.org>\r\nSubject: nss\r\n"
GOOD = "GoodSignature"


def nss_error(proc: Any) -> str:
    """NSS's own complaint (the SEC_ERROR_... line), for xfail reasons."""
    text = proc.stderr.decode("utf-8", "replace")
    m = re.search(r"SEC_ERROR_[A-Z_]+[^\n]*", text)
    if m:
        return m.group(0).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " / ".join(lines[-2:]) or f"exit {proc.returncode}"


# ---- mailseal encrypts, NSS decrypts ----------------------------------------------------------


@pytest.mark.parametrize(
    "opts",
    [
        ("--compatible",),
        ("--cipher", "aes-128-cbc", "--pkcs1v15"),
        ("--compatible", "--ski"),
    ],
    ids=["compatible", "aes128cbc-pkcs1", "compatible-ski"],
)
def test_mailseal_cbc_pkcs1_decrypted_by_nss(
    mailseal: Any, nss_keys: Any, smime: Any, bob: Any, opts: tuple[str, ...]
) -> None:
    enc = mailseal.encrypt([bob], MAIL, *opts)
    proc, out = nss_keys(bob).decrypt(smime.opaque_der(enc))
    assert proc.returncode == 0, nss_error(proc)
    assert out == MSG


@pytest.mark.parametrize(
    ("opts", "lacks", "reference"),
    [
        ((), "AES-GCM AuthEnvelopedData", ("aes-256-gcm",)),
        (("--cipher", "aes-256-gcm", "--pkcs1v15"), "AES-GCM AuthEnvelopedData", ("aes-256-gcm",)),
        (
            ("--cipher", "aes-256-cbc", "--oaep"),
            "RSAES-OAEP key transport",
            ("aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"),
        ),
    ],
    ids=["default-gcm-oaep", "gcm-pkcs1", "cbc-oaep"],
)
def test_mailseal_gcm_or_oaep_decrypted_by_nss(
    mailseal: Any,
    nss_keys: Any,
    smime: Any,
    openssl_envelope: Any,
    bob: Any,
    opts: tuple[str, ...],
    lacks: str,
    reference: tuple[str, ...],
) -> None:
    n = nss_keys(bob)
    enc = mailseal.encrypt([bob], MAIL, *opts)
    proc, out = n.decrypt(smime.opaque_der(enc))
    if out is None:
        _, ref_out = n.decrypt(openssl_envelope(MSG, [bob], *reference))
        assert ref_out is None, "NSS reads OpenSSL's version of it but not mailseal's"
        pytest.xfail(
            f"NSS 3.87 cmsutil cannot decrypt {lacks} (OpenSSL's neither): {nss_error(proc)}"
        )
    assert out == MSG


def test_mailseal_ecdh_decrypted_by_nss(
    mailseal: Any, nss: Any, smime: Any, openssl_envelope: Any, carol: Any
) -> None:
    """NSS holds carol's P-256 key (``nss`` fixture) but 3.87 cannot parse a
    KeyAgreeRecipientInfo at all."""

    def nss_decrypt(der: bytes) -> tuple[Any, bytes | None]:
        src, out = nss.write(der, ".p7m"), nss.path(".dec")
        proc = nss.run("cmsutil", "-D", "-d", nss.db, "-i", src, "-o", out)
        return proc, (out.read_bytes() if proc.returncode == 0 else None)

    enc = mailseal.encrypt([carol], MAIL, "--cipher", "aes-256-cbc")
    proc, out = nss_decrypt(smime.opaque_der(enc))
    if out is None:
        ref = openssl_envelope(MSG, [carol], "aes-256-cbc", "-keyopt", "ecdh_kdf_md:sha256")
        assert nss_decrypt(ref)[1] is None, "NSS reads OpenSSL's ECDH but not mailseal's"
        pytest.xfail(
            f"NSS 3.87 cmsutil cannot decode ECDH (kari) recipients, OpenSSL's neither: "
            f"{nss_error(proc)}"
        )
    assert out == MSG


def test_mailseal_rsa_and_ec_recipients_decrypted_by_nss(
    mailseal: Any, nss_keys: Any, smime: Any, openssl_envelope: Any, bob: Any, carol: Any
) -> None:
    """A message to an RSA and an EC recipient: NSS 3.87 rejects the whole message, even for
    the RSA recipient, because it cannot parse the kari entry. (Thunderbird users with RSA keys
    cannot read mail also sent to EC certificates.)"""
    n = nss_keys(bob)
    enc = mailseal.encrypt([bob, carol], MAIL, "--compatible")
    proc, out = n.decrypt(smime.opaque_der(enc))
    if out is None:
        _, ref_out = n.decrypt(openssl_envelope(MSG, [bob, carol], "aes-256-cbc"))
        assert ref_out is None, "NSS reads OpenSSL's RSA+EC message but not mailseal's"
        pytest.xfail(
            "NSS 3.87 cmsutil cannot decode a message with any ECDH recipient, OpenSSL's "
            f"neither: {nss_error(proc)}"
        )
    assert out == MSG


def test_mailseal_several_recipients_decrypted_by_nss_as_each(
    mailseal: Any, nss_keys: Any, smime: Any, alice: Any, bob: Any
) -> None:
    der = smime.opaque_der(mailseal.encrypt([alice, bob], MAIL, "--compatible"))
    for ident in (alice, bob):
        proc, out = nss_keys(ident).decrypt(der)
        assert proc.returncode == 0, f"{ident.stem}: {nss_error(proc)}"
        assert out == MSG


def test_mailseal_large_message_decrypted_by_nss(
    mailseal: Any, nss_keys: Any, smime: Any, envelopes: Any, bob: Any
) -> None:
    """Past 1 MiB mailseal writes BER with indefinite lengths; NSS reads it."""
    big = b"Content-Type: text/plain\r\n\r\n"
    big += b"".join(
        b"line %07d of a large body, filler filler filler\r\n" % i for i in range(30_000)
    )
    enc = mailseal.encrypt([bob], TRANSPORT + big, "--compatible")
    assert envelopes.view(enc).ber
    proc, out = nss_keys(bob).decrypt(smime.opaque_der(enc))
    assert proc.returncode == 0, nss_error(proc)
    assert out == big


# ---- NSS encrypts, mailseal decrypts ----------------------------------------------------------


def test_nss_encrypt_decrypted_by_mailseal(
    mailseal: Any, nss_keys: Any, smime: Any, envelopes: Any, alice: Any, bob: Any
) -> None:
    proc, der = nss_keys(bob).envelope(MSG, [alice.email])
    assert der is not None, nss_error(proc)
    view = envelopes.view(der)
    cipher = next(k for k, v in envelopes.OID_CIPHER.items() if v == view.cipher)
    assert cipher.endswith("cbc") and view.recipients[0].algorithm == envelopes.OID_RSA_PKCS1
    d = mailseal.decrypt(der, [alice])  # raw DER, as cmsutil wrote it
    assert d.rc == 0, d.explain()
    assert d.content == MSG
    assert cipher in d.err and "(authenticated)" not in d.err, d.explain()
    d = mailseal.decrypt(smime.wrap_pkcs7(der, "enveloped-data", headers=FROM_BOB), [alice])
    assert d.rc == 0, d.explain()
    assert d.content == FROM_BOB + MSG


def test_nss_encrypt_to_ec_recipient(mailseal: Any, nss_keys: Any, bob: Any, carol: Any) -> None:
    proc, der = nss_keys(bob).envelope(MSG, [carol.email])
    if der is None:
        pytest.xfail(
            f"NSS 3.87 cmsutil cannot encrypt to an EC (ECDH) certificate: {nss_error(proc)}"
        )
    d = mailseal.decrypt(der, [carol])
    assert d.rc == 0 and d.content == MSG, d.explain()


def test_nss_several_recipients_decrypted_by_mailseal_as_each(
    mailseal: Any, nss_keys: Any, alice: Any, bob: Any, dave: Any
) -> None:
    proc, der = nss_keys(bob).envelope(MSG, [alice.email, bob.email])
    assert der is not None, nss_error(proc)
    for ident in (alice, bob):
        d = mailseal.decrypt(der, [ident])
        assert d.rc == 0, d.explain()
        assert d.content == MSG
    d = mailseal.decrypt(der, [dave])
    d.assert_clean_error()
    assert "Identities tried" in d.err and dave.email in d.err, d.explain()


# ---- sign-then-encrypt ------------------------------------------------------------------------


@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_mailseal_seal_opened_by_nss(
    mailseal: Any, nss_keys: Any, smime: Any, alice: Any, bob: Any, opaque: bool
) -> None:
    """NSS (bob) decrypts the raw CMS, then checks the inner signature (alice)."""
    sealed = mailseal.seal(alice, [bob], MAIL, "--compatible", *(["--opaque"] if opaque else []))
    n = nss_keys(bob)
    proc, inner = n.decrypt(smime.opaque_der(sealed))
    assert proc.returncode == 0 and inner is not None, nss_error(proc)
    if opaque:
        r = n.decode(n.write(smime.opaque_der(inner), ".p7m"))
        assert r.content == MSG, r.explain()
    else:
        entity, sig = smime.split_detached(inner)
        assert entity == MSG
        r = n.decode(n.write(sig, ".p7s"), n.write(entity, ".txt"))
    assert r.statuses == [GOOD], r.explain()
    # the sender can read the sent copy
    proc, again = nss_keys(alice).decrypt(smime.opaque_der(sealed))
    assert proc.returncode == 0 and again == inner, nss_error(proc)


@pytest.mark.parametrize("form", ["detached-mime", "opaque-der"])
def test_nss_sign_then_encrypt_opened_by_mailseal(
    mailseal: Any, nss_keys: Any, smime: Any, alice: Any, bob: Any, form: str
) -> None:
    """``cmsutil -S`` as bob, then ``cmsutil -E`` to alice; one verdict per layer."""
    n = nss_keys(bob)
    if form == "detached-mime":
        inner = smime.wrap_detached(MSG, n.sign(MSG, bob.email, opaque=False))
    else:
        inner = n.sign(MSG, bob.email, opaque=True)
    proc, der = n.envelope(inner, [alice.email])
    assert der is not None, nss_error(proc)
    o = mailseal.open(smime.wrap_pkcs7(der, "enveloped-data", headers=FROM_BOB), [alice])
    assert o.rc == 0, o.explain()
    assert o.kinds == ["encrypted", "signed"], o.explain()
    enc_layer, sig_layer = o.layers
    assert enc_layer["authenticated"] is False and enc_layer["cipher"].endswith("cbc")
    assert enc_layer["opened_by"] == alice.email
    assert sig_layer["status"] == "valid", o.explain()
    signer = sig_layer["signature"]["signers"][0]
    assert bob.email in signer["addresses"] and signer["address_matches_from"] is True
    assert o.report is not None and o.report["authenticated"] is True
    assert o.content == FROM_BOB + MSG
