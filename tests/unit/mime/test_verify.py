"""mailseal.mime.verify through mailseal.verify: the real-world shapes of signed mail.

Relays that re-encode 8bit bodies, LF-only stored copies, every micalg spelling, the
x-pkcs7-* and octet-stream variants, bare DER/PEM, and streams that cannot seek.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

import mailseal
from mailseal.errors import MalformedMessage, NotSMIME

from .._support import (
    MAIL_7BIT,
    MAIL_8BIT,
    cms_der,
    header,
    join_multipart,
    relay_8bit_to_qp,
    replace_header_value,
    signed_parts,
    split_head,
    split_multipart,
)
from ..conftest import Person

Status = mailseal.Status


@pytest.fixture(scope="module")
def detached(alice: Person) -> bytes:
    return mailseal.sign(MAIL_8BIT, alice.ident)


@pytest.fixture(scope="module")
def opaque(alice: Person) -> bytes:
    return mailseal.sign(MAIL_8BIT, alice.ident, opaque=True)


# -- a relay that re-encodes 8bit content ---------------------------------------------------------
def _naive_multipart_signed(entity: bytes, signer: Person, chain: list) -> bytes:
    """A multipart/signed made the naive way: the 8bit entity signed as it is (what many
    hand-rolled signers do), with cryptography's PKCS#7 builder."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(entity)
    builder = builder.add_signer(signer.cert, signer.issued.key, hashes.SHA256())
    for c in chain:
        builder = builder.add_certificate(c)
    der = builder.sign(
        Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    )
    b64 = base64.encodebytes(der).replace(b"\n", b"\r\n")
    return (
        b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: naive\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        b'micalg=sha-256; boundary="naive"\r\n\r\n'
        b"--naive\r\n" + entity + b"\r\n--naive\r\n"
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"--naive--\r\n"
    )


ENTITY_8BIT = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"H\xc3\xa9llo w\xc3\xb6rld, 100 \xe2\x82\xac.\r\n"
)


def test_relay_reencoding_breaks_a_naive_8bit_signature(
    alice: Person, trust: mailseal.Trust, ca
) -> None:
    naive = _naive_multipart_signed(ENTITY_8BIT, alice, list(ca.chain))
    before = mailseal.verify(naive, trust=trust)
    assert before.valid, before.to_json()  # mailseal reads what others sign
    relayed = relay_8bit_to_qp(naive)
    assert relayed != naive
    assert b"quoted-printable" in signed_parts(relayed)[1]
    after = mailseal.verify(relayed, trust=trust)
    assert after.status is Status.TAMPERED
    (v,) = after.signers
    assert not v.intact
    assert v.trusted  # the certificate is still fine: tampered and untrusted are kept apart


def test_relay_reencoding_leaves_mailseal_output_alone(
    detached: bytes, opaque: bytes, trust: mailseal.Trust
) -> None:
    for signed in (detached, opaque):
        relayed = relay_8bit_to_qp(signed)
        assert relayed == signed  # nothing 8bit left for the relay to touch
        result = mailseal.verify(relayed, trust=trust)
        assert result.valid
        assert "H=C3=A9llo" in result.content.decode()


# -- stored copies --------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["detached", "opaque"])
def test_lf_only_stored_copy_verifies(
    form: str, detached: bytes, opaque: bytes, trust: mailseal.Trust
) -> None:
    signed = detached if form == "detached" else opaque
    assert signed.count(b"\r\n") > 10
    stored = signed.replace(b"\r\n", b"\n")
    result = mailseal.verify(stored, trust=trust)
    assert result.valid, result.to_json()
    if form == "detached":
        assert any("CRLF" in n for n in result.signers[0].notes)


def test_lf_only_copy_with_changed_text_is_still_tampered(
    detached: bytes, trust: mailseal.Trust
) -> None:
    stored = detached.replace(b"\r\n", b"\n").replace(b"last line", b"LAST line")
    result = mailseal.verify(stored, trust=trust)
    assert result.status is Status.TAMPERED


def test_crlf_restored_copy_of_lf_signed_naive_message_is_tampered(
    alice: Person, trust: mailseal.Trust, ca
) -> None:
    """The CRLF fallback only restores CRLF; it never turns a real change into a pass."""
    naive = _naive_multipart_signed(ENTITY_8BIT, alice, list(ca.chain))
    changed = naive.replace(b"H\xc3\xa9llo", b"Hallo")
    assert mailseal.verify(changed, trust=trust).status is Status.TAMPERED


def test_preamble_epilogue_and_outer_headers_are_not_signed(
    detached: bytes, trust: mailseal.Trust
) -> None:
    mp = split_multipart(detached)
    mp.preamble = b"A different preamble."
    mp.epilogue = b"an epilogue\r\n"
    changed = join_multipart(mp).replace(b"Subject: Gr\xc3\xbc\xc3\x9fe", b"Subject: edited")
    result = mailseal.verify(changed, trust=trust)
    assert result.valid


def test_content_is_byte_exact(detached: bytes, trust: mailseal.Trust) -> None:
    result = mailseal.verify(detached, trust=trust)
    assert result.content == signed_parts(detached)[1]
    sink = io.BytesIO()
    streamed = mailseal.verify_stream(io.BytesIO(detached), sink, trust=trust)
    assert streamed.valid
    assert sink.getvalue() == result.content


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        chunk = self._src.read(min(len(b), 1000))
        b[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("micalg", [b"sha-512", None])
def test_unseekable_source(
    person: Callable[..., Person], trust: mailseal.Trust, micalg: bytes | None
) -> None:
    """A pipe: the second hashing pass (micalg not naming the digest) needs a spool."""
    carol = person("carol@example.org", key_type="p384")
    signed = mailseal.sign(MAIL_7BIT.replace(b"alice@", b"carol@"), carol.ident)
    if micalg is not None:
        signed = signed.replace(b'micalg="sha-384"', b"micalg=" + micalg)
    result = mailseal.verify_stream(io.BufferedReader(_Unseekable(signed)), trust=trust)
    assert result.valid, result.to_json()


# -- micalg ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "micalg",
    [
        b'micalg="sha-256"',
        b"micalg=sha256",
        b"micalg=SHA-256",
        b'micalg="SHA256"',
        b"micalg=sha-512",  # wrong: the SignerInfo decides
        b"micalg=sha-1",
        b"micalg=md5",
        b"micalg=unknown-algorithm",
        b'micalg="sha-512, sha-384"',
        b"micalg=",
        None,  # missing
    ],
)
def test_micalg_spellings(detached: bytes, trust: mailseal.Trust, micalg: bytes | None) -> None:
    assert b' micalg="sha-256";' in detached
    new = b" " + micalg + b";" if micalg is not None else b""
    signed = detached.replace(b' micalg="sha-256";', new)
    result = mailseal.verify(signed, trust=trust)
    assert result.valid, result.to_json()


@pytest.mark.parametrize("micalg", [b"sha-256", b"sha-1", None])
def test_wrong_micalg_on_sha384_and_sha512_signatures(
    person: Callable[..., Person], trust: mailseal.Trust, micalg: bytes | None
) -> None:
    for key_type, real in (("p384", b"sha-384"), ("p521", b"sha-512")):
        p = person(f"{key_type}@example.org", key_type=key_type)
        signed = mailseal.sign(MAIL_7BIT.replace(b"alice@", key_type.encode() + b"@"), p.ident)
        old = b' micalg="' + real + b'";'
        assert old in signed
        signed = signed.replace(old, b" micalg=" + micalg + b";" if micalg else b"")
        result = mailseal.verify(signed, trust=trust)
        assert result.valid, result.to_json()


# -- content types of the signature ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("ctype", "extra_protocol"),
    [
        (b'application/x-pkcs7-signature; name="smime.p7s"', b"application/x-pkcs7-signature"),
        (b"application/x-pkcs7-signature", None),
        (b'application/octet-stream; name="smime.p7s"', None),
        (b'application/octet-stream; name="SMIME.P7S"', None),
        (b"application/pkcs7-signature", None),
    ],
)
def test_signature_part_variants(
    detached: bytes, trust: mailseal.Trust, ctype: bytes, extra_protocol: bytes | None
) -> None:
    signed = replace_header_value(detached, "Content-Type", ctype, part=1)
    if extra_protocol:
        signed = signed.replace(b'"application/pkcs7-signature"', b'"' + extra_protocol + b'"', 1)
    result = mailseal.verify(signed, trust=trust)
    assert result.valid, result.to_json()
    assert result.form == "detached"


def test_octet_stream_named_only_by_disposition(detached: bytes, trust: mailseal.Trust) -> None:
    signed = replace_header_value(detached, "Content-Type", b"application/octet-stream", part=1)
    assert b'filename="smime.p7s"' in signed
    assert mailseal.verify(signed, trust=trust).valid


def test_signature_part_as_raw_der(detached: bytes, trust: mailseal.Trust) -> None:
    mp = split_multipart(detached)
    sig_head, _ = split_head(mp.parts[1])
    sig_head = sig_head.replace(
        b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: binary"
    )
    mp.parts[1] = sig_head + cms_der(detached)
    assert mailseal.verify(join_multipart(mp), trust=trust).valid


def test_second_part_that_is_no_signature(detached: bytes) -> None:
    signed = replace_header_value(detached, "Content-Type", b"text/plain", part=1)
    signed = signed.replace(b'filename="smime.p7s"', b'filename="notes.txt"')
    with pytest.raises(MalformedMessage, match="not a CMS signature"):
        mailseal.verify(signed)


@pytest.mark.parametrize(
    "ctype",
    [
        b'application/x-pkcs7-mime; smime-type=signed-data; name="smime.p7m"',
        b"application/pkcs7-mime; name=smime.p7m",  # smime-type missing
        b'application/octet-stream; name="smime.p7m"',
        b"application/octet-stream",  # named only by Content-Disposition
        b'Application/PKCS7-MIME; smime-type="Signed-Data"',
    ],
)
def test_opaque_variants(opaque: bytes, trust: mailseal.Trust, ctype: bytes) -> None:
    signed = replace_header_value(opaque, "Content-Type", ctype)
    result = mailseal.verify(signed, trust=trust)
    assert result.valid, result.to_json()
    assert result.form == "opaque"


def test_opaque_enveloped_data_is_not_a_signature(opaque: bytes) -> None:
    signed = replace_header_value(
        opaque, "Content-Type", b"application/pkcs7-mime; smime-type=enveloped-data"
    )
    with pytest.raises(NotSMIME, match="enveloped-data"):
        mailseal.verify(signed)


@pytest.mark.parametrize("label", [b"PKCS7", b"CMS"])
def test_bare_der_and_pem(opaque: bytes, trust: mailseal.Trust, label: bytes) -> None:
    der = cms_der(opaque)
    result = mailseal.verify(der, trust=trust)
    assert result.valid and result.form == "opaque"
    pem = (
        b"-----BEGIN "
        + label
        + b"-----\n"
        + base64.encodebytes(der)
        + b"-----END "
        + label
        + b"-----\n"
    )
    assert mailseal.verify(pem, trust=trust).valid


def test_pem_that_is_not_cms() -> None:
    with pytest.raises(NotSMIME):
        mailseal.verify(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_detached_signature_alone_is_not_evaluable(detached: bytes) -> None:
    with pytest.raises(mailseal.MailsealError, match="no encapsulated content"):
        mailseal.verify(cms_der(detached))


@pytest.mark.parametrize(
    "message",
    [
        MAIL_7BIT,
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n",
        b"Subject: no body\r\n",
    ],
)
def test_unsigned_messages_cannot_be_evaluated(message: bytes) -> None:
    """docs/verdicts.md: a message that is not signed raises (exit code 2 in the CLI)."""
    with pytest.raises(NotSMIME, match="not signed"):
        mailseal.verify(message)


def test_first_header_starting_with_a_digit_zero(alice: Person, trust: mailseal.Trust) -> None:
    signed = mailseal.sign(b"0-Priority: high\r\n" + MAIL_7BIT, alice.ident)
    assert signed.startswith(b"0-Priority: high\r\n")
    assert mailseal.verify(signed, trust=trust).valid


def test_headerless_text_is_not_a_message() -> None:
    with pytest.raises(NotSMIME):
        mailseal.verify(b"just some text\r\n")


def test_outer_header_lookup_is_case_insensitive(detached: bytes, trust: mailseal.Trust) -> None:
    signed = detached.replace(b"Content-Type: multipart/signed", b"content-type: Multipart/Signed")
    assert header(split_head(signed)[0], "content-type").startswith("Multipart/Signed")
    assert mailseal.verify(signed, trust=trust).valid
