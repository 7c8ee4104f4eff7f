"""mailseal.mime.headers: Content-Type parameters, transfer encodings and addresses."""

from __future__ import annotations

import pytest

from mailseal.errors import MailsealError, MalformedMessage
from mailseal.mime import headers as H
from mailseal.mime.reader import HeaderField


def _fields(*lines: bytes) -> list[HeaderField]:
    out = []
    for line in lines:
        name = line.split(b":", 1)[0].decode()
        out.append(HeaderField(name, [line + b"\r\n"]))
    return out


def _ct(value: bytes) -> H.ContentType:
    return H.content_type(_fields(b"Content-Type: " + value))


def test_default_content_type() -> None:
    ct = H.content_type([])
    assert (ct.value, ct.present, ct.params) == ("text/plain", False, {})
    assert H.content_type([], default="application/octet-stream").value == (
        "application/octet-stream"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"Text/PLAIN", "text/plain"),
        (b"multipart/signed ; boundary=x", "multipart/signed"),
        (b"application/x-pkcs7-signature", "application/x-pkcs7-signature"),
        (b"text", "text/plain"),  # no subtype: the default, as RFC 2045 §5.2 says
        (b"", "text/plain"),
    ],
)
def test_content_type_value(value: bytes, expected: str) -> None:
    assert _ct(value).value == expected


def test_content_type_params() -> None:
    ct = _ct(
        b'multipart/signed; PROTOCOL="application/pkcs7-signature"; micalg=SHA-256;'
        b' boundary="----=_Part 1"; boundary=second'
    )
    assert ct.present
    assert ct.param("protocol") == "application/pkcs7-signature"
    assert ct.param("Micalg") == "SHA-256"  # names are case-insensitive, values are kept
    assert ct.param("boundary") == "----=_Part 1"  # the first occurrence wins
    assert ct.boundary() == b"----=_Part 1"
    assert ct.param("missing") is None


def test_content_type_folded_header() -> None:
    f = HeaderField(
        "Content-Type",
        [b"Content-Type: multipart/mixed;\r\n", b'\tboundary="folded-b"\r\n'],
    )
    assert H.content_type([f]).boundary() == b"folded-b"


def test_content_type_rfc2231_parameter() -> None:
    ct = _ct(b"application/octet-stream; name*=utf-8''sm%C3%B8rrebr%C3%B8d.p7m")
    assert ct.param("name") == "sm\u00f8rrebr\u00f8d.p7m"


def test_first_content_type_wins_and_lookup_is_case_insensitive() -> None:
    fields = _fields(b"CONTENT-TYPE: text/html", b"Content-Type: text/plain")
    assert H.content_type(fields).value == "text/html"
    assert H.find(fields, "content-type") is fields[0]
    assert H.find(fields, "X-Missing") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"multipart/mixed", "no boundary"),
        (b'multipart/mixed; boundary=""', "no boundary"),
        (b'multipart/mixed; boundary="' + b"x" * 201 + b'"', "too long"),
        (b'multipart/mixed; boundary="caf\xc3\xa9"', "printable ASCII"),
        (b'multipart/mixed; boundary="tab\there"', "printable ASCII"),
    ],
)
def test_bad_boundaries(value: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        _ct(value).boundary()


def test_boundary_outside_rfc2046_grammar_is_accepted() -> None:
    # real mail breaks the grammar (e.g. a 71-character boundary or "!" inside): still usable
    assert _ct(b'multipart/mixed; boundary="' + b"b" * 71 + b'"').boundary() == b"b" * 71
    assert _ct(b'multipart/mixed; boundary="a!b"').boundary() == b"a!b"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ((), "7bit"),
        ((b"Content-Transfer-Encoding: BASE64",), "base64"),
        ((b'Content-Transfer-Encoding: "Quoted-Printable"',), "quoted-printable"),
        ((b"Content-Transfer-Encoding:   8bit  ",), "8bit"),
        ((b"Content-Transfer-Encoding:",), "7bit"),
    ],
)
def test_transfer_encoding(lines: tuple[bytes, ...], expected: str) -> None:
    assert H.transfer_encoding(_fields(*lines)) == expected


def test_addresses() -> None:
    fields = _fields(
        b'From: "Alice, the first" <alice@example.org>',
        b"From: bob@example.org (Bob), undisclosed-recipients:;",
        b"To: carol@example.org",
        b"From: not an address",
    )
    assert H.addresses(fields, "from") == ("alice@example.org", "bob@example.org")
    assert H.addresses(fields, "To") == ("carol@example.org",)
    assert H.addresses(fields, "cc") == ()


@pytest.mark.parametrize("value", [b"(" * 5000, b"a:" * 5000])
def test_addresses_on_hostile_from(value: bytes) -> None:
    fields = _fields(b"From: " + value)
    try:
        result = H.addresses(fields, "from")
    except MailsealError:
        return
    assert result == ()
