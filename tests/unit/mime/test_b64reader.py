"""The base64 body reader behind opaque signatures and encrypted messages.

A body arrives in pieces of any size; whichever way it is cut (and whether the last piece is
decoded in one strict call or by the careful path), the reader returns the same bytes, and a
truncated body is an error.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.errors import MalformedMessage
from mailseal.mime.body import _b64_whole, _B64Reader
from mailseal.mime.reader import Reader

from .._support import chunked_reader


def _drain(r: _B64Reader, n: int) -> bytes:
    out = []
    while True:
        part = r.read(n)
        if not part:
            return b"".join(out)
        out.append(part)


def _body(data: bytes, line: int, eol: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"".join(text[i : i + line] + eol for i in range(0, len(text), line))


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=700),
    line=st.sampled_from([76, 64, 4, 5, 1, 1000]),
    eol=st.sampled_from([b"\r\n", b"\n"]),
    sizes=st.one_of(st.integers(1, 90), st.lists(st.integers(1, 300), min_size=1, max_size=6)),
    n=st.sampled_from([1, 7, 1 << 20]),
    trailer=st.sampled_from([b"", b"\r\n", b"  \r\n"]),
)
def test_any_cut_gives_the_same_bytes(
    data: bytes, line: int, eol: bytes, sizes: int | list[int], n: int, trailer: bytes
) -> None:
    body = _body(data, line, eol) + trailer
    assert _drain(_B64Reader(chunked_reader(body, sizes)), n) == data
    whole = Reader.from_bytes(body)
    assert _drain(_B64Reader(whole), n) == data


@pytest.mark.parametrize("sizes", [1, 3, 1 << 20])
def test_padding_only_at_the_end_and_garbage(sizes: int) -> None:
    # padding inside the body and characters outside the alphabet take the careful path
    body = b"QUJD\r\nRA==\r\n"
    assert _drain(_B64Reader(chunked_reader(body, sizes)), 100) == b"ABCD"
    messy = b"QU JD\r\n*RA==\r\n"
    assert _drain(_B64Reader(chunked_reader(messy, sizes)), 100) == b"ABCD"
    # what base64 ignores may also end the body, after the last line break
    assert _drain(_B64Reader(chunked_reader(b"QUJD\r\nRA==\r\n \t", sizes)), 100) == b"ABCD"
    assert _drain(_B64Reader(chunked_reader(b"QUJD\r\nRA\r\n*", sizes)), 100) == b"ABCD"


@pytest.mark.parametrize("sizes", [1, 2, 1 << 20])
def test_truncated_body_is_an_error(sizes: int) -> None:
    with pytest.raises(MalformedMessage, match="truncated"):
        _drain(_B64Reader(chunked_reader(b"QUJDRA==\r\nQ\r\n", sizes)), 100)


def _reader_result(body: bytes) -> bytes | str:
    try:
        return _drain(_B64Reader(Reader.from_bytes(body)), 1 << 20)
    except MalformedMessage as exc:
        return str(exc)


def _whole_result(body: bytes) -> bytes | str:
    try:
        return _b64_whole(body)
    except MalformedMessage as exc:
        return str(exc)


@settings(max_examples=500, deadline=None)
@given(
    data=st.binary(max_size=300),
    line=st.sampled_from([76, 4, 5, 1000]),
    eol=st.sampled_from([b"\r\n", b"\n"]),
    pieces=st.lists(
        st.sampled_from([b"=", b"==", b"===", b"Q", b"QQ", b"*", b" ", b"\r\n"]), max_size=4
    ),
    cut=st.integers(0, 10),
)
def test_whole_body_decoded_as_the_reader_decodes_it(
    data: bytes, line: int, eol: bytes, pieces: list[bytes], cut: int
) -> None:
    """The one-call decoding of a body held in memory gives the reader's bytes, or its error,
    for well-formed bodies and for ones with padding, stray characters or a missing tail."""
    body = _body(data, line, eol)
    body = body[: max(0, len(body) - cut)] + b"".join(pieces)
    assert _whole_result(body) == _reader_result(body)


@pytest.mark.parametrize(
    "body",
    [
        b"QQ==",
        b"QQ=",
        b"QQ===",
        b"QUJ=",
        b"QUJ==",
        b"QUJD=",
        b"Q=",
        b"QQ==QUJD",
        b"QQ==\r\nQUJD\r\n",
        b"Q",
        b"",
        b"====",
        b"QU=JD",
        b"*QUJD*\r\n",
    ],
)
def test_whole_body_padding_corners(body: bytes) -> None:
    assert _whole_result(body) == _reader_result(body)
