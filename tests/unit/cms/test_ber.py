"""mailseal.cms.ber: streaming the encapsulated content of BER SignedData (indefinite lengths,
constructed OCTET STRINGs of any chunking, as written by streaming encoders such as
``openssl cms -stream`` and Outlook), with depth and size limits."""

from __future__ import annotations

import base64

import pytest

import mailseal
from mailseal.asn1 import der
from mailseal.cms.ber import stream_signed_data
from mailseal.errors import LimitExceeded, MalformedCMS
from mailseal.limits import Limits

from .._support import MAIL_7BIT, content_info
from ..conftest import Person

EOC = b"\x00\x00"
OID_SIGNED_DATA = der.oid("1.2.840.113549.1.7.2")
OID_DATA = der.oid("1.2.840.113549.1.7.1")


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def _ber(signed_opaque: bytes, chunk: int, *, nested: bool = False) -> tuple[bytes, bytes]:
    """Re-encode a DER opaque signature as indefinite-length BER whose eContent is a
    constructed OCTET STRING of ``chunk``-byte pieces. Returns (BER, content)."""
    sd = content_info(signed_opaque)["content"]
    content = sd["encap_content_info"]["content"].native
    octets = b"".join(der.octet_string(p) for p in _pieces(content, chunk))
    if nested:  # a constructed OCTET STRING inside a constructed OCTET STRING
        half = len(octets) // 2
        cut = octets.index(b"\x04", half) if b"\x04" in octets[half:] else len(octets)
        octets = b"\x24\x80" + octets[:cut] + EOC + b"\x24\x80" + octets[cut:] + EOC
    econtent = b"\xa0\x80" + b"\x24\x80" + octets + EOC + EOC
    encap = b"\x30\x80" + OID_DATA + econtent + EOC
    body = (
        sd["version"].dump()
        + sd["digest_algorithms"].dump()
        + encap
        + sd["certificates"].dump()
        + sd["signer_infos"].dump()
    )
    ber = b"\x30\x80" + OID_SIGNED_DATA + b"\xa0\x80" + b"\x30\x80" + body + EOC + EOC + EOC
    return ber, content


@pytest.fixture(scope="module")
def opaque(alice: Person) -> bytes:
    return mailseal.sign(MAIL_7BIT, alice.ident, opaque=True)


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
@pytest.mark.parametrize("nested", [False, True])
def test_indefinite_length_ber_verifies(
    opaque: bytes, trust: mailseal.Trust, chunk: int, nested: bool
) -> None:
    ber, content = _ber(opaque, chunk, nested=nested)
    result = mailseal.verify(ber, trust=trust)
    assert result.valid, result.to_json()
    assert result.content == content
    wrapped = (
        b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(ber)
    )
    assert mailseal.verify(wrapped, trust=trust).valid


@pytest.mark.parametrize("read_size", [1, 3, 64])
def test_stream_signed_data_in_small_reads(opaque: bytes, read_size: int) -> None:
    ber, content = _ber(opaque, 5)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        out = ber[pos : pos + min(n, read_size)]
        pos += len(out)
        return out

    seen_oids: list[list[str]] = []
    got: list[bytes] = []
    streamed = stream_signed_data(read, seen_oids.append, got.append)
    assert b"".join(got) == content
    assert seen_oids == [["2.16.840.1.101.3.4.2.1"]]
    assert streamed.content_present
    assert streamed.content_type == "1.2.840.113549.1.7.1"
    assert content not in streamed.detached_der  # what is kept is bounded: no content


def test_detached_der_keeps_signers_and_certificates(opaque: bytes) -> None:
    ber, _ = _ber(opaque, 100)
    it = iter([ber])
    streamed = stream_signed_data(lambda n: next(it, b""), lambda oids: None, lambda c: None)
    from asn1crypto import cms as a_cms

    sd = a_cms.ContentInfo.load(streamed.detached_der)["content"]
    original = content_info(opaque)["content"]
    assert sd["signer_infos"].dump() == original["signer_infos"].dump()
    assert sd["certificates"].dump() == original["certificates"].dump()
    assert sd["encap_content_info"]["content"].native is None


@pytest.mark.parametrize(
    ("mutilate", "error"),
    [
        (lambda b: b[:-3], MalformedCMS),  # missing end-of-contents
        (lambda b: b[: len(b) // 2], MalformedCMS),
        (lambda b: b.replace(OID_SIGNED_DATA, der.oid("1.2.840.113549.1.7.3"), 1), MalformedCMS),
        (lambda b: b"\x31" + b[1:], mailseal.MailsealError),  # not DER: not a message either
        (lambda b: b"\x30\x89" + b"\x01" * 9, MalformedCMS),  # length field too long
    ],
    ids=["no-eoc", "half", "enveloped-oid", "wrong-outer-tag", "length-of-length"],
)
def test_broken_ber(opaque: bytes, mutilate, error: type[Exception]) -> None:
    ber, _ = _ber(opaque, 50)
    with pytest.raises(error):
        mailseal.verify(mutilate(ber))


def test_constructed_octet_nesting_limit(opaque: bytes) -> None:
    ber, _ = _ber(opaque, 50, nested=True)
    assert mailseal.verify(ber, limits=Limits(max_depth=3)).signers  # two levels: fine
    with pytest.raises(LimitExceeded, match="nested too deeply"):
        mailseal.verify(ber, limits=Limits(max_depth=0))


def test_signature_size_limit(opaque: bytes) -> None:
    ber, _ = _ber(opaque, 50)
    with pytest.raises(LimitExceeded, match="larger than"):
        mailseal.verify(ber, limits=Limits(max_signature_bytes=1000))
