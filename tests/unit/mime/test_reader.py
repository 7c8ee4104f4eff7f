"""mailseal.mime.reader: the buffered Reader, PartReader boundary handling across chunk borders,
and header block parsing."""

from __future__ import annotations

import io

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mailseal.errors import LimitExceeded
from mailseal.limits import Limits
from mailseal.mime.reader import HeaderField, PartReader, Reader, read_header_block

from .._support import chunked_reader, chunked_reader_sidestep

CHUNKINGS = [1, 2, 3, 4, 5, 7, 13, 64, 1 << 20, [1, 3, 2, 7, 1, 1, 5], [9, 1]]


def _drain(r: Reader) -> bytes:
    out = []
    while True:
        chunk = r.read()
        if not chunk:
            return b"".join(out)
        out.append(chunk)


# -- Reader -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_readline_across_chunks(sizes: int | list[int]) -> None:
    data = b"one\r\ntwo\nthree\r\n\r\nlast without end"
    r = chunked_reader(data, sizes)
    lines = []
    while True:
        line = r.readline(100)
        if not line:
            break
        lines.append(line)
    assert lines == [b"one\r\n", b"two\n", b"three\r\n", b"\r\n", b"last without end"]
    assert r.consumed == len(data)


@pytest.mark.parametrize("sizes", [1, 5, 1 << 20])
def test_readline_limit(sizes: int) -> None:
    r = chunked_reader(b"x" * 10 + b"\n", sizes)
    assert r.readline(11) == b"x" * 10 + b"\n"  # the limit includes the line end
    r = chunked_reader(b"x" * 11 + b"\n", sizes)
    with pytest.raises(LimitExceeded, match="longer than 11"):
        r.readline(11)


def test_readline_limit_without_newline_is_bounded() -> None:
    """A line that never ends is refused as soon as the buffer passes the limit."""
    calls = 0

    def fill(_n: int) -> bytes:
        nonlocal calls
        calls += 1
        assert calls < 100, "the reader kept reading an endless line"
        return b"y" * 1000

    with pytest.raises(LimitExceeded, match="header line"):
        Reader(fill).readline(5000, "header line")


def test_peek_unread_and_consumed() -> None:
    r = chunked_reader(b"abcdefghij", 3)
    assert r.peek(5) == b"abcde"
    assert r.consumed == 0
    assert r.read(4) == b"abcd"
    assert r.consumed == 4
    r.unread(b"cd")
    assert r.consumed == 2
    assert r.peek(100) == b"cdefghij"
    assert _drain(r) == b"cdefghij"
    assert r.read() == b""
    assert r.peek(1) == b""


def test_reader_from_stream() -> None:
    import io

    r = Reader.from_stream(io.BytesIO(b"line\nrest"))
    assert r.readline(10) == b"line\n"
    assert _drain(r) == b"rest"


# -- PartReader ---------------------------------------------------------------------------------
def _multipart(
    parts: list[bytes],
    boundary: bytes,
    le: bytes,
    *,
    preamble: bytes = b"",
    epilogue: bytes = b"",
    padding: bytes = b"",
    close: bool = True,
) -> bytes:
    delim = b"--" + boundary
    out = [preamble + le if preamble else b""]
    for i, p in enumerate(parts):
        if i:
            out.append(le)
        out.append(delim + padding + le + p)
    if close:
        out.append(le + delim + b"--" + padding + le + epilogue)
    return b"".join(out)


def _sidestep_close_split(data: bytes, boundary: bytes, sizes: int | list[int]) -> Reader:
    """Pieces of ``sizes``, with borders anywhere (across a close delimiter's dashes too)."""
    return chunked_reader_sidestep(data, sizes, [boundary])


def _read_parts(r: Reader, boundary: bytes) -> tuple[bytes, list[bytes], list[PartReader]]:
    pre = PartReader(r, boundary, at_line_start=True)
    preamble = b"".join(pre.chunks())
    assert pre.found
    parts: list[bytes] = []
    readers: list[PartReader] = []
    closing = pre.closing
    while not closing:
        pr = PartReader(r, boundary)
        parts.append(b"".join(pr.chunks()))
        readers.append(pr)
        closing = pr.closing or not pr.found
    return preamble, parts, readers


SAMPLE_PARTS = [
    b"Content-Type: text/plain\r\n\r\nfirst part\r\nwith --B inside a line\r\n",
    b"Content-Type: text/plain\r\n\r\n--BX is not a delimiter\r\n--B-- neither? no: see below",
    b"",
    b"\r\nbody only, no headers\r\n\r\n",
]


@pytest.mark.parametrize("le", [b"\r\n", b"\n"])
@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_parts_split_exactly_across_chunk_borders(le: bytes, sizes: int | list[int]) -> None:
    parts = [
        b"Content-Type: text/plain" + le + le + b"first part" + le + b"x--B in a line" + le,
        b"Content-Type: text/plain" + le + le + b"--BX is not a delimiter" + le + b"end",
        b"",
        le + b"body only" + le + le,
    ]
    data = _multipart(parts, b"B", le, preamble=b"This is the preamble.", epilogue=b"epi" + le)
    r = _sidestep_close_split(data, b"B", sizes)
    preamble, got, readers = _read_parts(r, b"B")
    assert preamble == b"This is the preamble."
    assert got == parts
    assert all(p.found for p in readers)
    assert readers[-1].closing
    assert _drain(r) == b"epi" + le


@pytest.mark.parametrize("sizes", CHUNKINGS)
def test_delimiter_at_very_start_and_transport_padding(sizes: int | list[int]) -> None:
    data = b"--B \t\r\nhead: x\r\n\r\nbody\r\n--B--  \r\n"
    r = _sidestep_close_split(data, b"B", sizes)
    preamble, parts, readers = _read_parts(r, b"B")
    assert preamble == b""
    assert parts == [b"head: x\r\n\r\nbody"]
    assert readers[0].closing


@pytest.mark.parametrize("sizes", [1, 3, 1 << 20])
def test_delimiter_needs_line_start(sizes: int) -> None:
    data = b"text--B\r\nmore text --B\r\n--B\r\npart\r\n--B--\r\n"
    r = _sidestep_close_split(data, b"B", sizes)
    preamble, parts, _ = _read_parts(r, b"B")
    assert preamble == b"text--B\r\nmore text --B"
    assert parts == [b"part"]


@pytest.mark.parametrize("sizes", [1, 2, 1 << 20])
def test_longer_boundary_prefix_is_not_a_delimiter(sizes: int) -> None:
    # "--Bx" starts with "--B" but is a different boundary; "--B\r" without LF is not one either
    data = b"--B\r\n--Bx\r\n--B\rstill part\r\n--B--\r\n"
    r = _sidestep_close_split(data, b"B", sizes)
    _, parts, _ = _read_parts(r, b"B")
    assert parts == [b"--Bx\r\n--B\rstill part"]


@pytest.mark.parametrize("sizes", [1, 4, 1 << 20])
def test_missing_close_delimiter(sizes: int) -> None:
    data = b"--B\r\npart one\r\n--B\r\npart two runs to the end\r\n"
    r = _sidestep_close_split(data, b"B", sizes)
    _, parts, readers = _read_parts(r, b"B")
    assert parts == [b"part one", b"part two runs to the end\r\n"]
    assert readers[0].found and not readers[0].closing
    assert not readers[1].found and not readers[1].closing


@pytest.mark.parametrize("sizes", [1, 7, 1 << 20])
def test_no_delimiter_at_all(sizes: int) -> None:
    data = b"no boundary\r\nanywhere\r\n"
    pr = PartReader(chunked_reader(data, sizes), b"B")
    assert b"".join(pr.chunks()) == data
    assert not pr.found
    assert pr.done
    assert list(pr.chunks()) == []  # a finished reader yields nothing more


def test_read_all_limit() -> None:
    data = b"--B\r\n" + b"x" * 1000 + b"\r\n--B--\r\n"
    r = chunked_reader(data, 10)
    pre = PartReader(r, b"B")
    list(pre.chunks())
    with pytest.raises(LimitExceeded, match="signature part"):
        PartReader(r, b"B").read_all(999, "signature part")
    r = chunked_reader(data, 10)
    list(PartReader(r, b"B").chunks())
    assert PartReader(r, b"B").read_all(1000, "part") == b"x" * 1000


@pytest.mark.parametrize("sizes", [1, 2, 3, 4])
def test_close_delimiter_split_on_cr_lf(sizes: int) -> None:
    """Close delimiter split right after "--B--" or inside its CRLF."""
    data = b"--B\r\nx\r\n--B--\r\nepilogue"
    r = chunked_reader(data, [len(b"--B\r\nx\r\n--B--"), sizes])
    _, parts, readers = _read_parts(r, b"B")
    assert parts == [b"x"]
    assert readers[-1].closing


@pytest.mark.parametrize("sizes", [1, 2, [4, 12], [len(b"--B\r\nhello\r\n--B-"), 100]])
def test_close_delimiter_split_between_dashes(sizes: int | list[int]) -> None:
    data = b"--B\r\nhello\r\n--B--\r\nepilogue\r\n"
    r = chunked_reader(data, sizes)
    _, parts, readers = _read_parts(r, b"B")
    assert parts == [b"hello"]
    assert readers[-1].found and readers[-1].closing


# A property test over random parts and random chunkings, against a plain reference splitter.
_PART_BYTES = st.binary(max_size=40) | st.text(alphabet="-B \r\nab", max_size=40).map(str.encode)


@given(
    parts=st.lists(_PART_BYTES, min_size=1, max_size=5),
    preamble=st.binary(max_size=20),
    epilogue=st.binary(max_size=20),
    le=st.sampled_from([b"\r\n", b"\n"]),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8),
)
@settings(max_examples=300, deadline=None)
def test_partreader_matches_reference(
    parts: list[bytes], preamble: bytes, epilogue: bytes, le: bytes, sizes: list[int]
) -> None:
    boundary = b"B"
    for p in [*parts, preamble]:
        assume(b"--B" not in p)
        # with LF line ends, a CR before the delimiter's LF would read as one CRLF line end
        assume(not (le == b"\n" and p.endswith(b"\r")))
    data = _multipart(parts, boundary, le, preamble=preamble, epilogue=epilogue)
    r = _sidestep_close_split(data, boundary, sizes)
    got_pre, got, readers = _read_parts(r, boundary)
    assert got_pre == preamble
    assert got == parts
    assert readers[-1].closing
    assert _drain(r) == epilogue


# -- header blocks --------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [1, 2, 5, 1 << 20])
def test_header_block_with_folding(sizes: int) -> None:
    data = (
        b"From: Alice <alice@example.org>\r\n"
        b"Content-Type: multipart/signed;\r\n"
        b'\tprotocol="application/pkcs7-signature";\r\n'
        b'  micalg=sha-256; boundary="xyz"\r\n'
        b"Subject : spaced name\n"
        b"X-Empty:\r\n"
        b"\r\n"
        b"body\r\n"
    )
    r = chunked_reader(data, sizes)
    fields, sep = read_header_block(r)
    assert sep == b"\r\n"
    assert [f.name for f in fields] == ["From", "Content-Type", "Subject", "X-Empty"]
    ct = fields[1]
    assert ct.lname == "content-type"
    assert len(ct.lines) == 3
    assert ct.value() == (
        'multipart/signed;\tprotocol="application/pkcs7-signature";  micalg=sha-256; boundary="xyz"'
    )
    assert fields[2].value() == "spaced name"
    assert fields[2].canonical() == b"Subject : spaced name\r\n"
    assert fields[3].value() == ""
    assert b"".join(f.raw() for f in fields) + sep == data[: data.index(b"body")]
    assert _drain(r) == b"body\r\n"


def test_header_canonical_turns_lf_into_crlf() -> None:
    f = HeaderField("Subject", [b"Subject: a\n", b" b\n"])
    assert f.canonical() == b"Subject: a\r\n b\r\n"
    assert f.raw() == b"Subject: a\n b\n"
    assert f.value() == "a b"


def test_header_value_keeps_undecodable_bytes() -> None:
    f = HeaderField("Subject", [b"Subject: caf\xe9 \xc3\xa9\r\n"])
    assert f.value().encode("utf-8", "surrogateescape") == b"caf\xe9 \xc3\xa9"


def test_header_value_follows_continuation_lines() -> None:
    # the value is remembered once asked for, and forgotten when a continuation line arrives
    f = HeaderField("Subject", [b"Subject: one\r\n"])
    assert f.value() == "one"
    f.add_line(b" two\r\n")
    assert f.value() == "one two"
    assert f.lines == [b"Subject: one\r\n", b" two\r\n"]


@pytest.mark.parametrize(
    "data",
    [b"Hello world\r\nsecond line\r\n", b" continuation first\r\n", b"no colon here\r\n"],
)
def test_header_block_absent_consumes_nothing(data: bytes) -> None:
    r = chunked_reader(data, 3)
    fields, sep = read_header_block(r)
    assert fields == [] and sep is None
    assert _drain(r) == data


def test_header_block_without_blank_line_before_body() -> None:
    data = b"Subject: x\r\nContent-Type: text/plain\r\nThis line is body.\r\n"
    r = chunked_reader(data, 4)
    fields, sep = read_header_block(r)
    assert [f.name for f in fields] == ["Subject", "Content-Type"]
    assert sep == b""
    assert _drain(r) == b"This line is body.\r\n"


def test_header_block_ends_at_eof() -> None:
    r = chunked_reader(b"Subject: only headers\r\nX-A: 1", 2)
    fields, sep = read_header_block(r)
    assert [f.value() for f in fields] == ["only headers", "1"]
    assert sep is None


def test_header_block_lf_only() -> None:
    r = chunked_reader(b"A: 1\nB: 2\n\nbody", 1)
    fields, sep = read_header_block(r)
    assert [f.name for f in fields] == ["A", "B"]
    assert sep == b"\n"
    assert _drain(r) == b"body"


def test_header_limits() -> None:
    with pytest.raises(LimitExceeded, match="header line"):
        read_header_block(
            chunked_reader(b"Subject: " + b"x" * 200 + b"\r\n\r\n", 7), Limits(max_header_line=100)
        )
    many = b"".join(b"X-%d: v\r\n" % i for i in range(11)) + b"\r\n"
    with pytest.raises(LimitExceeded, match="header fields"):
        read_header_block(chunked_reader(many, 64), Limits(max_header_fields=10))
    assert len(read_header_block(chunked_reader(many, 64), Limits(max_header_fields=11))[0]) == 11
    with pytest.raises(LimitExceeded, match="header block"):
        read_header_block(chunked_reader(many, 64), Limits(max_header_block=50))
    folded = b"Subject: a\r\n" + b" b\r\n" * 100 + b"\r\n"
    with pytest.raises(LimitExceeded, match="header block"):
        read_header_block(chunked_reader(folded, 64), Limits(max_header_block=200))


_HEADER_LINES = st.sampled_from(
    [
        b"Subject: plain\r\n",
        b"From: A <a@example.org>\n",
        b"X-Name : spaced before the colon\r\n",
        b"Empty:\r\n",
        b"NoSpace:value\r\n",
        b" folded continuation\r\n",
        b"\tfolded with a tab\n",
        b"Bad Name: a space inside the name\r\n",
        b"no colon at all\r\n",
        b"Caf\xc3\xa9: eight-bit name\r\n",
        b"Subject: eight-bit caf\xc3\xa9 value\r\n",
        b"Odd: a bare\rcarriage return\r\n",
        b"Weird-Chars!#$%&'*+^_`|~: ok\r\n",
        b":\r\n",
    ]
)


_CANONICAL_FIELDS = [
    b"Subject: plain\r\n",
    b"X-Name : spaced before the colon\r\n",
    b"Empty:\r\n",
    b"Weird-Chars!#$%&'*+^_`|~: ok\r\n",
    b"Content-Type: text/plain; charset=us-ascii\r\n",
    b"content-transfer-encoding: base64\r\n",
    b"CONTENT-DISPOSITION : attachment\r\n",
    b"Content-Description: folded\r\n  over two lines\r\n\tand three\r\n",
    b"Content-: an empty suffix\r\n",
    b"Contents: not a content field\r\n",
    b"MIME-Version: 1.0\r\n",
    b"mime-version : 1.0\r\n",
    b"MIME-Versions: not MIME-Version\r\n",
    b"Subject: eight-bit caf\xc3\xa9 value\r\n",
]
_SPLIT_LINES = _HEADER_LINES | st.sampled_from([*_CANONICAL_FIELDS, b"Content-Type: a/b\n"])


@settings(max_examples=500, deadline=None)
@given(
    lines=st.lists(_SPLIT_LINES, max_size=10),
    sep=st.sampled_from([b"\r\n", b"\n"]),
    body=st.sampled_from([b"", b"body\r\n", b"Looks: like a header\r\n"]),
)
def test_header_block_fast_path_agrees_with_line_reader(
    lines: list[bytes], sep: bytes, body: bytes
) -> None:
    """Whatever the one-pass reader of a whole header block accepts, it reads exactly as the
    line-by-line reader does (fields, their raw lines, the separator and what is left); and
    the one-pass splitter agrees with both (see :func:`_check_split`)."""
    from mailseal.mime.reader import _fast_header_block, _header_block_by_lines

    data = b"".join(lines) + sep + body
    _check_split(data)
    limits = Limits()
    fast_r = Reader.from_stream(io.BytesIO(data))
    fast = _fast_header_block(fast_r, limits)
    slow_r = Reader.from_stream(io.BytesIO(data))
    slow = _header_block_by_lines(slow_r, limits)
    if fast is None:
        assert _drain(fast_r) == data  # nothing consumed
        return
    assert [(f.name, f.lines) for f in fast[0]] == [(f.name, f.lines) for f in slow[0]]
    assert fast[1] == slow[1]
    assert _drain(fast_r) == _drain(slow_r)


def _check_split(data: bytes) -> bool:
    """The one-pass splitter agrees with reading the header block and splitting the fields:
    the transport fields' canonical bytes, the Content-* fields (names, lines, canonical form)
    and where the body starts. False when it declined."""
    from mailseal.mime.reader import split_header_block
    from mailseal.mime.sign import split_message_headers

    fast = split_header_block(data)
    if fast is None:
        return False
    r = Reader.from_bytes(data)
    fields, sep = read_header_block(r)
    transport, inner, start = fast
    outer, expected_inner = split_message_headers(fields)
    assert sep == b"\r\n"
    assert transport == b"".join(f.canonical() for f in outer)
    assert [(f.name, f.lines, f.canonical()) for f in inner] == [
        (f.name, f.lines, f.canonical()) for f in expected_inner
    ]
    assert data[start:] == r.read(1 << 20)
    return True


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.sampled_from(_CANONICAL_FIELDS), min_size=1, max_size=10),
    body=st.sampled_from([b"", b"body\r\n", b"\r\nLooks: like a header\r\n"]),
)
def test_split_header_block_takes_every_canonical_block(lines: list[bytes], body: bytes) -> None:
    assert _check_split(b"".join(lines) + b"\r\n" + body)


@pytest.mark.parametrize(
    "data",
    [
        b"From: a@example.org\nContent-Type: text/plain\n\nbody\n",  # LF line ends
        b"From: a@example.org\r\nContent-Type: text/plain\r\n\nbody\r\n",  # LF blank line
        b"From: a@example.org\r\nSubject: a\rb\r\n\r\nbody\r\n",  # a bare CR
        b"From: a@example.org\r\nno colon\r\n\r\nbody\r\n",  # not a field
        b" From: a@example.org\r\n\r\n",  # starts with a continuation
        b"From: a@example.org\r\n",  # no blank line
        b"\r\nbody\r\n",  # no header block
        b"",
    ],
)
def test_split_header_block_declines(data: bytes) -> None:
    from mailseal.mime.reader import split_header_block

    assert split_header_block(data) is None


def test_split_header_block_within_limits() -> None:
    from mailseal.mime.reader import split_header_block

    data = b"From: a@example.org\r\nContent-Type: text/plain\r\n\r\nbody"
    assert _check_split(data)
    assert split_header_block(data, Limits(max_header_fields=1)) is None
    assert split_header_block(data, Limits(max_header_block=40)) is None
    assert split_header_block(data, Limits(max_header_line=20)) is None


def test_split_header_block_reuses_entity_fields_of_the_usual_size() -> None:
    from mailseal.mime.reader import _entity_fields_seen, split_header_block

    entity = b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
    one = split_header_block(b"Subject: 1\r\n" + entity + b"\r\nbody")
    two = split_header_block(b"Subject: 2\r\n" + entity + b"\r\nbody")
    assert one is not None and two is not None
    assert one[0] == b"Subject: 1\r\n" and two[0] == b"Subject: 2\r\n"
    assert one[1] is two[1] and [f.name for f in one[1]] == ["Content-Type"]
    # large Content-* fields (what a hostile message can make large) are not kept
    big = b"Content-Description: " + b"x" * 2000 + b"\r\n"
    before = _entity_fields_seen.cache_info().currsize
    three = split_header_block(b"Subject: 3\r\n" + big + b"\r\nbody")
    four = split_header_block(b"Subject: 3\r\n" + big + b"\r\nbody")
    assert three is not None and four is not None
    assert three[1] is not four[1] and _entity_fields_seen.cache_info().currsize == before
