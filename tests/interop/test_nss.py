"""Interop with Mozilla NSS (``cmsutil``/``certutil``/``pk12util``, the CMS engine of Thunderbird),
both directions (recipe: nss-cmsutil.sh).

``cmsutil -D`` exits 0 even for a bad or untrusted signature: the verdict is parsed from the
``signerN.status=`` fields it prints with ``-h 2``. cmsutil works on raw CMS, so mailseal messages
are taken apart byte-exactly and NSS output is wrapped in MIME by the test.
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
GOOD = "GoodSignature"


def nss_sign(nss: Any, nick: str, *opts: str, opaque: bool = False, content: bytes = MSG) -> bytes:
    """``cmsutil -S`` (-G signingTime, -P SMIMECapabilities + encrypKeyPref, -T detached)."""
    src = nss.write(content, ".txt")
    out = nss.path(".p7m" if opaque else ".p7s")
    args = ["cmsutil", "-S", "-d", nss.db, "-N", nick, "-G", "-P", *opts, "-i", src, "-o", out]
    if not opaque:
        args.append("-T")
    proc = nss.run(*args)
    assert proc.returncode == 0 and out.exists(), proc.stderr.decode()
    return bytes(out.read_bytes())


def nss_check_detached(nss: Any, smime: Any, signed: bytes) -> Any:
    entity, sig = smime.split_detached(signed)
    return nss.decode(nss.write(sig, ".p7s"), nss.write(entity, ".txt"))


# ---- mailseal signs, NSS verifies -------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "opts"),
    [("alice", ()), ("carol", ()), ("alice", ("--pss",))],
    ids=["rsa", "ecdsa", "rsa-pss"],
)
def test_mailseal_detached_verified_by_nss(
    mailseal: Any,
    nss: Any,
    smime: Any,
    request: pytest.FixtureRequest,
    who: str,
    opts: tuple[str, ...],
) -> None:
    r = nss_check_detached(nss, smime, mailseal.sign(request.getfixturevalue(who), MSG, *opts))
    assert r.statuses == [GOOD], r.explain()


@pytest.mark.parametrize("who", ["alice", "carol"], ids=["rsa", "ecdsa"])
def test_mailseal_opaque_verified_by_nss(
    mailseal: Any, nss: Any, smime: Any, request: pytest.FixtureRequest, who: str
) -> None:
    signed = mailseal.sign(request.getfixturevalue(who), MSG, "--opaque")
    r = nss.decode(nss.write(smime.opaque_der(signed), ".p7m"))
    assert r.statuses == [GOOD], r.explain()
    assert r.content == MSG


def test_mailseal_ski_signer_identifier_verified_by_nss(
    mailseal: Any, nss: Any, smime: Any, alice: Any
) -> None:
    r = nss_check_detached(nss, smime, mailseal.sign(alice, MSG, "--ski"))
    assert r.statuses == [GOOD], r.explain()


def test_mailseal_two_signers_verified_by_nss(
    mailseal: Any, nss: Any, smime: Any, alice: Any, carol: Any
) -> None:
    signed = mailseal.sign([alice, carol])
    if len(smime.signer_infos(smime.split_detached(signed)[1])) == 1:
        # TODO: the CLI keeps only the last --cert/--key pair; drop this skip once it takes
        # repeated pairs.
        pytest.skip("mailseal sign does not take repeated --cert/--key pairs yet")
    r = nss_check_detached(nss, smime, signed)
    assert r.statuses == [GOOD, GOOD], r.explain()


def test_mailseal_encryption_key_preference_verified_by_nss(
    mailseal: Any, nss: Any, smime: Any, alice: Any, alice_enc: Any
) -> None:
    signed = mailseal.sign(alice, MSG, "--encryption-cert", alice_enc.cert)
    _, sig = smime.split_detached(signed)
    assert smime.signed_attr(smime.signer_infos(sig)[0], "encrypt_key_pref") is not None
    r = nss_check_detached(nss, smime, signed)
    assert r.statuses == [GOOD], r.explain()


def test_mailseal_tampered_rejected_by_nss(mailseal: Any, nss: Any, smime: Any, alice: Any) -> None:
    entity, sig = smime.split_detached(mailseal.sign(alice))
    r = nss.decode(nss.write(sig, ".p7s"), nss.write(smime.tamper(entity), ".txt"))
    assert r.statuses == ["DigestMismatch"], r.explain()


def test_mailseal_signature_untrusted_in_nss_with_other_anchor(
    mailseal: Any, nss_other: Any, smime: Any, carol: Any
) -> None:
    r = nss_check_detached(nss_other, smime, mailseal.sign(carol))
    assert r.statuses == ["SigningCertNotTrusted"], r.explain()


# ---- NSS signs, mailseal verifies -------------------------------------------------------------


@pytest.mark.parametrize("who", ["bob", "carol"], ids=["rsa", "ecdsa"])
def test_nss_detached_verified_by_mailseal(
    mailseal: Any, nss: Any, smime: Any, request: pytest.FixtureRequest, who: str
) -> None:
    ident = request.getfixturevalue(who)
    sig = nss_sign(nss, ident.email, "-H", "SHA256")
    v = mailseal.verify(smime.wrap_detached(MSG, sig))
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()
    assert ident.email in v.signers[0]["addresses"], v.explain()
    assert v.signers[0]["digest_algorithm"] == "sha256", v.explain()


@pytest.mark.parametrize("who", ["bob", "carol"], ids=["rsa", "ecdsa"])
def test_nss_opaque_verified_by_mailseal(
    mailseal: Any, nss: Any, smime: Any, request: pytest.FixtureRequest, who: str
) -> None:
    der = nss_sign(nss, request.getfixturevalue(who).email, opaque=True)
    v = mailseal.verify(der)  # raw DER
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()
    v = mailseal.verify(smime.wrap_opaque(der))
    mailseal.assert_valid(v)
    assert v.content == MSG, v.explain()


def test_nss_sha384_verified_by_mailseal(mailseal: Any, nss: Any, smime: Any, bob: Any) -> None:
    sig = nss_sign(nss, bob.email, "-H", "SHA384")
    v = mailseal.verify(smime.wrap_detached(MSG, sig, micalg="sha-384"))
    mailseal.assert_valid(v)
    assert v.signers[0]["digest_algorithm"] == "sha384", v.explain()


def test_nss_tampered_detected_by_mailseal(mailseal: Any, nss: Any, smime: Any, bob: Any) -> None:
    sig = nss_sign(nss, bob.email)
    v = mailseal.verify(smime.wrap_detached(smime.tamper(MSG), sig), want_content=False)
    mailseal.assert_status(v, "tampered")
    assert v.signers[0]["intact"] is False, v.explain()


def test_nss_signature_wrong_anchor_untrusted_in_mailseal(
    mailseal: Any, nss: Any, smime: Any, carol: Any, other_trust_pem: Any
) -> None:
    sig = nss_sign(nss, carol.email)
    v = mailseal.verify(smime.wrap_detached(MSG, sig), trust=other_trust_pem)
    mailseal.assert_status(v, "untrusted")
    assert v.signers[0]["intact"] is True, v.explain()
