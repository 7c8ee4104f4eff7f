"""mailseal.cms.signed and cms.algorithms, through mailseal.sign: every algorithm, detached and
opaque, the signed attributes, signer identifiers, several signers, and what is refused.

The CMS structures are parsed with asn1crypto and the signatures checked with cryptography
directly, so these tests do not only trust mailseal's own verifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import cms as a_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

import mailseal
from mailseal.cms.signed import PreparedSigner, SignerOptions
from mailseal.errors import AlgorithmError, IdentityError, UsageError
from mailseal.pki.testpki import TestPKI

from .._support import (
    MAIL_7BIT,
    content_info,
    header,
    param,
    signed_attrs,
    signed_parts,
    signer_infos,
    split_head,
)
from ..conftest import Person

ID_DATA = "1.2.840.113549.1.7.1"
ID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
ID_SIGNING_TIME = "1.2.840.113549.1.9.5"
ID_SMIME_CAPABILITIES = "1.2.840.113549.1.9.15"
ID_AA_ENCRYP_KEY_PREF = "1.2.840.113549.1.9.16.2.11"
MS_ENCRYPT_KEY_PREF = "1.3.6.1.4.1.311.16.4"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSASSA_PSS = "1.2.840.113549.1.1.10"
ED25519 = "1.3.101.112"
DIGEST_OIDS = {
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
ECDSA_OIDS = {
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
WHEN = dt.datetime(2025, 11, 24, 8, 30, 15, tzinfo=dt.UTC)

# (key type, sign() options, digest, verdict's signature algorithm name)
ALGORITHMS: list[tuple[str, dict[str, Any], str, str]] = [
    ("rsa2048", {}, "sha256", "RSASSA-PKCS1-v1_5"),
    ("rsa2048", {"digest": "sha384"}, "sha384", "RSASSA-PKCS1-v1_5"),
    ("rsa2048", {"digest": "sha512"}, "sha512", "RSASSA-PKCS1-v1_5"),
    ("rsa2048", {"pss": True}, "sha256", "RSASSA-PSS"),
    ("rsa2048", {"pss": True, "digest": "sha384"}, "sha384", "RSASSA-PSS"),
    ("rsa2048", {"pss": True, "digest": "sha512"}, "sha512", "RSASSA-PSS"),
    ("p256", {}, "sha256", "ECDSA"),
    ("p256", {"digest": "sha512"}, "sha512", "ECDSA"),
    ("p384", {}, "sha384", "ECDSA"),
    ("p521", {}, "sha512", "ECDSA"),
    ("ed25519", {}, "sha512", "Ed25519"),
]


def _algo_id(row: tuple[str, dict[str, Any], str, str]) -> str:
    key_type, opts, digest, _ = row
    return "-".join([key_type, *(k for k, v in opts.items() if v is True), digest])


@pytest.fixture(scope="module")
def signer_for(person: Callable[..., Person]) -> Callable[[str], Person]:
    def make(key_type: str) -> Person:
        usage = "signing" if key_type == "ed25519" else "dual"
        return person(f"{key_type}@example.org", key_type=key_type, usage=usage)

    return make


def _message_from(p: Person) -> bytes:
    return MAIL_7BIT.replace(b"alice@example.org", p.email.encode())


def _to_be_signed(si: a_cms.SignerInfo) -> bytes:
    """The DER of the signed attributes as signed: with a SET OF tag (RFC 5652 §5.4)."""
    encoded = si["signed_attrs"].dump()
    return b"\x31" + encoded[1:]


def _check_signature_independently(si: a_cms.SignerInfo, p: Person, digest: str) -> None:
    pub = p.cert.public_key()
    data = _to_be_signed(si)
    sig = si["signature"].native
    alg = si["signature_algorithm"]["algorithm"].dotted
    h = HASHES[digest]()
    if isinstance(pub, rsa.RSAPublicKey):
        if alg == RSASSA_PSS:
            pad: padding.AsymmetricPadding = padding.PSS(
                mgf=padding.MGF1(HASHES[digest]()), salt_length=h.digest_size
            )
        else:
            pad = padding.PKCS1v15()
        pub.verify(sig, data, pad, h)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, data, ec.ECDSA(h))
    else:
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        pub.verify(sig, data)


@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
@pytest.mark.parametrize("row", ALGORITHMS, ids=[_algo_id(r) for r in ALGORITHMS])
def test_every_algorithm(
    row: tuple[str, dict[str, Any], str, str],
    opaque: bool,
    signer_for: Callable[[str], Person],
    ca: TestPKI,
    trust: mailseal.Trust,
) -> None:
    key_type, opts, digest, sig_name = row
    p = signer_for(key_type)
    message = _message_from(p)
    signed = mailseal.sign(message, p.ident, opaque=opaque, when=WHEN, **opts)

    result = mailseal.verify(signed, trust=trust)
    assert result.valid, result.to_json()
    assert result.form == ("opaque" if opaque else "detached")
    (v,) = result.signers
    assert (v.intact, v.trusted, v.digest_algorithm, v.signature_algorithm) == (
        True,
        True,
        digest,
        sig_name,
    )
    assert v.signing_time == WHEN
    assert v.addresses == (p.email,) and v.address_matches_from is True

    head, _ = split_head(signed)
    ctype = header(head, "Content-Type") or ""
    if opaque:
        assert ctype.startswith("application/pkcs7-mime")
        assert param(ctype, "smime-type") == "signed-data"
        assert param(ctype, "name") == "smime.p7m"
        assert header(head, "Content-Transfer-Encoding") == "base64"
    else:
        assert ctype.startswith("multipart/signed")
        assert param(ctype, "protocol") == "application/pkcs7-signature"
        assert param(ctype, "micalg") == {"sha256": "sha-256", "sha384": "sha-384"}.get(
            digest, "sha-512"
        )

    ci = content_info(signed)
    assert ci["content_type"].native == "signed_data"
    sd = ci["content"]
    assert sd["version"].native == "v1"
    assert [a["algorithm"].dotted for a in sd["digest_algorithms"]] == [DIGEST_OIDS[digest]]
    encap = sd["encap_content_info"]
    assert encap["content_type"].dotted == ID_DATA
    content = result.content
    assert content is not None
    if opaque:
        assert encap["content"].native == content
    else:
        assert encap["content"].native is None  # detached
        assert signed_parts(signed)[1] == content
    certs = [c.chosen.dump() for c in sd["certificates"]]
    assert p.issued.cert.public_bytes(Encoding.DER) in certs
    assert ca.chain[0].public_bytes(Encoding.DER) in certs
    assert ca.root.cert.public_bytes(Encoding.DER) not in certs  # the anchor is not sent

    (si,) = sd["signer_infos"]
    assert si["version"].native == "v1"
    assert si["sid"].name == "issuer_and_serial_number"
    assert si["sid"].chosen["serial_number"].native == p.cert.serial_number
    assert si["digest_algorithm"]["algorithm"].dotted == DIGEST_OIDS[digest]
    assert si["digest_algorithm"]["parameters"].native is None  # RFC 5754 §2: absent
    sig_alg = si["signature_algorithm"]
    oid = sig_alg["algorithm"].dotted
    if sig_name == "RSASSA-PKCS1-v1_5":
        assert oid == RSA_ENCRYPTION
        assert sig_alg.dump().endswith(b"\x05\x00")  # NULL parameters (RFC 3370 §3.2)
    elif sig_name == "RSASSA-PSS":
        assert oid == RSASSA_PSS
        params = sig_alg["parameters"]
        assert params["hash_algorithm"]["algorithm"].dotted == DIGEST_OIDS[digest]
        assert params["mask_gen_algorithm"]["algorithm"].native == "mgf1"
        assert (
            params["mask_gen_algorithm"]["parameters"]["algorithm"].dotted == (DIGEST_OIDS[digest])
        )
        assert params["salt_length"].native == hashlib.new(digest).digest_size
    elif sig_name == "ECDSA":
        assert oid == ECDSA_OIDS[digest]
        # parameters absent (RFC 5753 §7.1.3): the SEQUENCE holds the OID only
        assert len(sig_alg.dump()) == 2 + len(sig_alg["algorithm"].dump())
    else:
        assert oid == ED25519
        assert len(sig_alg.dump()) == 7  # SEQUENCE { OID } only (RFC 8419 §2.3)

    attrs = signed_attrs(si)
    assert [v.dotted for v in attrs[ID_CONTENT_TYPE]] == [ID_DATA]
    assert [v.native for v in attrs[ID_MESSAGE_DIGEST]] == [hashlib.new(digest, content).digest()]
    assert [v.native for v in attrs[ID_SIGNING_TIME]] == [WHEN]
    (caps,) = attrs[ID_SMIME_CAPABILITIES]
    assert [c["capability_id"].native for c in caps][:2] == ["aes256_gcm", "aes128_gcm"]
    for oid_ in (ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNING_TIME, ID_SMIME_CAPABILITIES):
        assert len(attrs[oid_]) == 1
    assert ID_AA_ENCRYP_KEY_PREF not in attrs  # no separate encryption certificate
    # DER: the SET OF attributes is sorted (X.690 §11.6), so the signature is over canonical DER
    encodings = [a.dump() for a in si["signed_attrs"]]
    assert encodings == sorted(encodings)
    _check_signature_independently(si, p, digest)


def test_default_digests_follow_the_key(signer_for: Callable[[str], Person]) -> None:
    expected = {
        "rsa2048": "sha-256",
        "p256": "sha-256",
        "p384": "sha-384",
        "p521": "sha-512",
        "ed25519": "sha-512",
    }
    for key_type, micalg in expected.items():
        signed = mailseal.sign(MAIL_7BIT, signer_for(key_type).ident)
        assert param(header(split_head(signed)[0], "Content-Type") or "", "micalg") == micalg


def test_ed25519_always_uses_sha512(signer_for: Callable[[str], Person]) -> None:
    """RFC 8419 §3.1: with Ed25519 the message digest is SHA-512, whatever was asked for."""
    p = signer_for("ed25519")
    signed = mailseal.sign(_message_from(p), p.ident, digest="sha256")
    (si,) = signer_infos(signed)
    assert si["digest_algorithm"]["algorithm"].dotted == DIGEST_OIDS["sha512"]
    assert param(header(split_head(signed)[0], "Content-Type") or "", "micalg") == "sha-512"


# -- refused for new signatures ------------------------------------------------------------------
def test_rsa_under_2048_is_refused(weak_rsa: Person) -> None:
    with pytest.raises(AlgorithmError, match="2048"):
        mailseal.sign(MAIL_7BIT, weak_rsa.ident)
    with pytest.raises(AlgorithmError):
        mailseal.sign(MAIL_7BIT, weak_rsa.ident, opaque=True, digest="sha512")
    with pytest.raises(AlgorithmError):
        PreparedSigner(weak_rsa.ident)


@pytest.mark.parametrize("digest", ["sha1", "md5", "sha224"])
def test_weak_or_unlisted_digests_are_refused(alice: Person, digest: str) -> None:
    with pytest.raises(AlgorithmError, match="refused"):
        mailseal.sign(MAIL_7BIT, alice.ident, digest=digest)  # type: ignore[arg-type]
    with pytest.raises(AlgorithmError):
        PreparedSigner(alice.ident, SignerOptions(digest=digest))  # type: ignore[arg-type]


def test_pss_needs_rsa(signer_for: Callable[[str], Person]) -> None:
    with pytest.raises(AlgorithmError, match="RSA"):
        mailseal.sign(MAIL_7BIT, signer_for("p256").ident, pss=True)


def test_refusals_are_mailseal_errors() -> None:
    assert issubclass(AlgorithmError, mailseal.MailsealError)
    assert issubclass(UsageError, mailseal.MailsealError)
    assert issubclass(IdentityError, mailseal.MailsealError)


def test_no_signer_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        mailseal.sign(MAIL_7BIT, [])


# -- signer identifiers --------------------------------------------------------------------------
@pytest.mark.parametrize("opaque", [False, True])
def test_subject_key_identifier(alice: Person, trust: mailseal.Trust, opaque: bool) -> None:
    signed = mailseal.sign(MAIL_7BIT, alice.ident, ski=True, opaque=opaque)
    sd = content_info(signed)["content"]
    assert sd["version"].native == "v3"  # RFC 5652 §5.1
    (si,) = sd["signer_infos"]
    assert si["version"].native == "v3"
    assert si["sid"].name == "subject_key_identifier"
    ski = alice.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert si["sid"].chosen.native == ski
    result = mailseal.verify(signed, trust=trust)
    assert result.valid
    assert result.signers[0].signer_id == f"subjectKeyIdentifier {ski.hex()}"


def test_ski_needs_the_extension(person: Callable[..., Person]) -> None:
    p = person("noski@example.org", ski=False)
    with pytest.raises(IdentityError, match="subjectKeyIdentifier"):
        mailseal.sign(MAIL_7BIT, p.ident, ski=True)
    assert mailseal.sign(MAIL_7BIT, p.ident)  # issuer and serial still work


# -- several signers ------------------------------------------------------------------------------
@pytest.mark.parametrize("opaque", [False, True])
def test_two_signers(
    alice: Person, signer_for: Callable[[str], Person], trust: mailseal.Trust, opaque: bool
) -> None:
    carol = signer_for("p384")
    signed = mailseal.sign(MAIL_7BIT, [alice.ident, carol.ident], opaque=opaque)
    if not opaque:
        micalg = param(header(split_head(signed)[0], "Content-Type") or "", "micalg")
        assert micalg == "sha-256,sha-384"
    sd = content_info(signed)["content"]
    assert sorted(a["algorithm"].dotted for a in sd["digest_algorithms"]) == sorted(
        [DIGEST_OIDS["sha256"], DIGEST_OIDS["sha384"]]
    )
    assert len(sd["signer_infos"]) == 2
    result = mailseal.verify(signed, trust=mailseal.Trust([trust.anchors[0]], check_address=False))
    assert result.valid
    assert len(result.signers) == 2
    assert [s.index for s in result.signers] == [0, 1]
    assert all(s.valid and s.intact and s.trusted for s in result.signers)
    assert {s.addresses[0] for s in result.signers} == {alice.email, carol.email}
    assert {s.digest_algorithm for s in result.signers} == {"sha256", "sha384"}
    # with the From check on, only the signer whose address is in From matches
    checked = mailseal.verify(signed, trust=trust)
    by_addr = {s.addresses[0]: s for s in checked.signers}
    assert by_addr[alice.email].valid
    assert by_addr[carol.email].status is mailseal.Status.ADDRESS_MISMATCH
    assert checked.status is mailseal.Status.ADDRESS_MISMATCH


def test_two_signers_one_untrusted(alice: Person, other_ca: TestPKI, trust: mailseal.Trust) -> None:
    stranger_cert = other_ca.user("alice@example.org")
    stranger = mailseal.load_identity(stranger_cert.cert_pem, stranger_cert.key_pem)
    signed = mailseal.sign(MAIL_7BIT, [alice.ident, stranger])
    result = mailseal.verify(signed, trust=trust)
    statuses = sorted(s.status.value for s in result.signers)
    assert statuses == ["untrusted", "valid"]
    assert all(s.intact for s in result.signers)
    assert result.status is mailseal.Status.UNTRUSTED
    assert not result.valid


def test_the_same_signer_twice(alice: Person, trust: mailseal.Trust) -> None:
    result = mailseal.verify(mailseal.sign(MAIL_7BIT, [alice.ident, alice.ident]), trust=trust)
    assert result.valid and len(result.signers) == 2


# -- SMIMEEncryptionKeyPreference (RFC 8551 §2.5.3) and Microsoft's twin --------------------------
def test_encryption_key_preference(person: Callable[..., Person], trust: mailseal.Trust) -> None:
    sig = person("dora@example.org", usage="signing")
    enc = person("dora@example.org", usage="encryption")
    ident = sig.ident.with_encryption_certificate(enc.cert)
    signed = mailseal.sign(_message_from(sig), ident)
    (si,) = signer_infos(signed)
    attrs = signed_attrs(si)
    (pref,) = attrs[ID_AA_ENCRYP_KEY_PREF]
    assert isinstance(pref, a_cms.SMIMEEncryptionKeyPreference)
    assert pref.name == "issuer_and_serial_number"
    assert pref.chosen["serial_number"].native == enc.cert.serial_number
    assert pref.chosen["issuer"].dump() == enc.cert.issuer.public_bytes()
    (ms,) = attrs[MS_ENCRYPT_KEY_PREF]
    ias = ms.parse(a_cms.IssuerAndSerialNumber)
    assert ias["serial_number"].native == enc.cert.serial_number
    assert ias["issuer"].dump() == enc.cert.issuer.public_bytes()
    certs = [c.chosen.dump() for c in content_info(signed)["content"]["certificates"]]
    assert enc.cert.public_bytes(Encoding.DER) in certs  # recipients can encrypt to it
    result = mailseal.verify(signed, trust=trust)
    assert result.valid
    pref_text = result.signers[0].encryption_key_preference
    assert pref_text is not None
    assert format(enc.cert.serial_number, "x") in pref_text
    assert "dora@example.org" in pref_text
    assert result.signers[0].capabilities[0] == "aes256-gcm"


def test_no_key_preference_for_the_signing_certificate_itself(alice: Person) -> None:
    ident = alice.ident.with_encryption_certificate(alice.cert)
    attrs = signed_attrs(signer_infos(mailseal.sign(MAIL_7BIT, ident))[0])
    assert ID_AA_ENCRYP_KEY_PREF not in attrs
    assert MS_ENCRYPT_KEY_PREF not in attrs


# -- the content digest is of the bytes emitted ---------------------------------------------------
@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_message_digest_is_of_the_emitted_first_part(alice: Person, digest: str) -> None:
    signed = mailseal.sign(MAIL_7BIT.replace(b"\r\n", b"\n"), alice.ident, digest=digest)  # type: ignore[arg-type]
    _, content, _ = signed_parts(signed)
    (si,) = signer_infos(signed)
    assert signed_attrs(si)[ID_MESSAGE_DIGEST][0].native == hashlib.new(digest, content).digest()


def test_signing_time_defaults_to_now(alice: Person) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    (si,) = signer_infos(mailseal.sign(MAIL_7BIT, alice.ident))
    after = dt.datetime.now(dt.UTC)
    (when,) = signed_attrs(si)[ID_SIGNING_TIME]
    assert before <= when.native <= after


def test_prepared_signer_is_reusable(alice: Person, trust: mailseal.Trust) -> None:
    prepared = PreparedSigner(alice.ident, SignerOptions(digest="sha384"))
    for body in (b"one\n", b"two\n"):
        result = mailseal.verify(mailseal.sign(body, prepared), trust=trust)
        assert result.signers[0].digest_algorithm == "sha384"
        assert result.signers[0].status is mailseal.Status.VALID


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 300, 65535, 65536, 70000])
def test_detached_frame_is_the_der_around_the_signer_info(alice: Person, length: int) -> None:
    """The frame kept per signer is, byte for byte, the DER SignedData that ends in a
    SignerInfo of that length, whatever the length's encoding; asking for another length
    gives another frame, and the same length the same one."""
    from mailseal.asn1 import der

    signer = PreparedSigner(alice.ident)
    info = bytes(length)
    head, certs = signer.single_frame()
    signed_data = der.tlv(0x30, head + der.sequence(der.oid(ID_DATA)) + certs + der.tlv(0x31, info))
    expected = der.tlv(0x30, der.oid("1.2.840.113549.1.7.2") + der.tlv(0xA0, signed_data))
    assert signer.detached_frame(length) + info == expected
    assert signer.detached_frame(length + 1) + bytes(length + 1) != expected
    assert signer.detached_frame(length) + info == expected
    a_cms.ContentInfo.load(expected)  # well-formed, as asn1crypto reads it
