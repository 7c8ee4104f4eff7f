"""Interop with GnuPG ``gpgsm`` (2.2 on Debian bookworm), both directions (recipe: gpgsm.sh).

gpgsm works on raw CMS: mailseal messages are taken apart byte-exactly (signed entity + DER
signature), and gpgsm's DER output is wrapped in MIME by the test (or given to mailseal as DER).
The throwaway GNUPGHOME, trustlist.txt and loopback pinentry live in the ``gpgsm`` fixture.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.interop

MSG = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello from the interop test.\r\n"
    b"Second line.\r\n"
)


def gpgsm_sign(gpgsm: Any, signer: str, *, opaque: bool = False, content: bytes = MSG) -> bytes:
    src = gpgsm.write(content, ".txt")
    out = gpgsm.path(".p7m" if opaque else ".p7s")
    mode = "--sign" if opaque else "--detach-sign"
    proc = gpgsm.batch("-u", signer, mode, "--output", out, src, passphrase=True)
    assert proc.returncode == 0 and out.exists(), proc.stderr.decode()
    return bytes(out.read_bytes())


# ---- mailseal signs, gpgsm verifies -----------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "carol"], ids=["rsa", "ecdsa"])
def test_mailseal_detached_verified_by_gpgsm(
    mailseal: Any, gpgsm: Any, smime: Any, request: pytest.FixtureRequest, who: str
) -> None:
    entity, sig = smime.split_detached(mailseal.sign(request.getfixturevalue(who)))
    r = gpgsm.verify(gpgsm.write(sig, ".p7s"), gpgsm.write(entity, ".txt"))
    assert r.proc.returncode == 0, r.explain()
    assert (r.good, r.bad, r.trusted) == (1, 0, 1), r.explain()


@pytest.mark.parametrize("who", ["alice", "carol"], ids=["rsa", "ecdsa"])
def test_mailseal_opaque_verified_by_gpgsm(
    mailseal: Any, gpgsm: Any, smime: Any, request: pytest.FixtureRequest, who: str
) -> None:
    signed = mailseal.sign(request.getfixturevalue(who), MSG, "--opaque")
    r = gpgsm.verify(gpgsm.write(smime.opaque_der(signed), ".p7m"))
    assert r.proc.returncode == 0, r.explain()
    assert (r.good, r.bad, r.trusted) == (1, 0, 1), r.explain()
    assert r.content == MSG


def test_mailseal_two_signers_verified_by_gpgsm(
    mailseal: Any, gpgsm: Any, smime: Any, alice: Any, carol: Any
) -> None:
    entity, sig = smime.split_detached(mailseal.sign([alice, carol]))
    if len(smime.signer_infos(sig)) == 1:
        # TODO: the CLI keeps only the last --cert/--key pair; drop this skip once it takes
        # repeated pairs.
        pytest.skip("mailseal sign does not take repeated --cert/--key pairs yet")
    r = gpgsm.verify(gpgsm.write(sig, ".p7s"), gpgsm.write(entity, ".txt"))
    assert r.proc.returncode == 0, r.explain()
    assert (r.good, r.bad) == (2, 0), r.explain()


def test_mailseal_tampered_rejected_by_gpgsm(
    mailseal: Any, gpgsm: Any, smime: Any, alice: Any
) -> None:
    entity, sig = smime.split_detached(mailseal.sign(alice))
    r = gpgsm.verify(gpgsm.write(sig, ".p7s"), gpgsm.write(smime.tamper(entity), ".txt"))
    assert r.proc.returncode != 0, r.explain()
    assert (r.good, r.bad) == (0, 1), r.explain()


def test_mailseal_rsa_pss_verified_by_gpgsm(
    mailseal: Any, gpgsm: Any, smime: Any, alice: Any
) -> None:
    """gpgsm 2.2.40 verifies RSASSA-PSS when the hash AlgorithmIdentifiers in the PSS parameters
    have absent parameters, as mailseal writes them (RFC 5754 §2). It rejects OpenSSL's encoding
    with NULL parameters ("Invalid digest algorithm", then a double free), although RFC 4055 §2.1
    makes both encodings equivalent: keep mailseal on the absent form."""
    entity, sig = smime.split_detached(mailseal.sign(alice, MSG, "--pss"))
    alg = smime.signer_infos(sig)[0]["signature_algorithm"]
    assert alg["algorithm"].native == "rsassa_pss"
    hash_alg = alg["parameters"]["hash_algorithm"].dump()  # original bytes of a parsed value
    assert not hash_alg.endswith(b"\x05\x00"), "hash AlgorithmIdentifier carries NULL parameters"
    r = gpgsm.verify(gpgsm.write(sig, ".p7s"), gpgsm.write(entity, ".txt"))
    assert r.proc.returncode == 0, r.explain()
    assert (r.good, r.bad, r.trusted) == (1, 0, 1), r.explain()


def test_mailseal_ski_signer_identifier_verified_by_gpgsm(
    mailseal: Any, gpgsm: Any, smime: Any, alice: Any
) -> None:
    entity, sig = smime.split_detached(mailseal.sign(alice, MSG, "--ski"))
    r = gpgsm.verify(gpgsm.write(sig, ".p7s"), gpgsm.write(entity, ".txt"))
    if r.good == 0 and b"BER error" in r.proc.stderr:
        pytest.xfail(
            "gpgsm 2.2 / libksba 1.6 cannot parse a SignerInfo identified by "
            "subjectKeyIdentifier (ksba_cms_parse failed: BER error); same with openssl -keyid"
        )
    assert (r.good, r.bad) == (1, 0), r.explain()


# ---- gpgsm signs, mailseal verifies -----------------------------------------------------------


def test_gpgsm_detached_verified_by_mailseal(
    mailseal: Any, gpgsm: Any, smime: Any, bob: Any
) -> None:
    sig = gpgsm_sign(gpgsm, bob.email)
    v = mailseal.verify(smime.wrap_detached(MSG, sig))
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()
    assert bob.email in v.signers[0]["addresses"], v.explain()


def test_gpgsm_opaque_verified_by_mailseal(mailseal: Any, gpgsm: Any, smime: Any, bob: Any) -> None:
    der = gpgsm_sign(gpgsm, bob.email, opaque=True)
    v = mailseal.verify(der)  # raw DER
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()
    v = mailseal.verify(smime.wrap_opaque(der))
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()


def test_gpgsm_tampered_detected_by_mailseal(
    mailseal: Any, gpgsm: Any, smime: Any, bob: Any
) -> None:
    sig = gpgsm_sign(gpgsm, bob.email)
    v = mailseal.verify(smime.wrap_detached(smime.tamper(MSG), sig), want_content=False)
    mailseal.assert_status(v, "tampered")
    assert v.signers[0]["intact"] is False, v.explain()


def test_gpgsm_signature_wrong_anchor_untrusted_in_mailseal(
    mailseal: Any, gpgsm: Any, smime: Any, bob: Any, other_trust_pem: Any
) -> None:
    sig = gpgsm_sign(gpgsm, bob.email)
    v = mailseal.verify(smime.wrap_detached(MSG, sig), trust=other_trust_pem)
    mailseal.assert_status(v, "untrusted")
    assert v.signers[0]["intact"] is True, v.explain()


def test_gpgsm_ecdsa_verified_by_mailseal(
    mailseal: Any, gpgsm: Any, smime: Any, pki: Any, carol: Any
) -> None:
    p12 = gpgsm.write(carol.issued.pkcs12(b"test", legacy=True, chain=pki.chain), ".p12")
    proc = gpgsm.batch("--import", p12, passphrase=True)
    if proc.returncode != 0:
        pytest.xfail(
            "gpgsm 2.2.40 cannot import an EC private key from PKCS#12 (segfaults, exit "
            f"{proc.returncode}; OpenSSL-made files too), so it cannot sign with ECDSA here"
        )
    sig = gpgsm_sign(gpgsm, carol.email)
    mailseal.assert_valid(mailseal.verify(smime.wrap_detached(MSG, sig)))
