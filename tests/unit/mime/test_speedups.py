"""The compiled byte loops (mailseal/mime/_speedups.c) against their pure-Python twins.

The package works without the compiled module; where it is built, each function must give
the same answer as the Python one for every input, hostile ones included. Without a C
compiler these tests are skipped, unless MAILSEAL_REQUIRE_PEERS=1 (as in CI), which makes
a missing build a failure.
"""

from __future__ import annotations

import base64
import os
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.mime import canon

try:
    from mailseal.mime import _speedups
except ImportError:  # pragma: no cover - depends on the build
    if os.environ.get("MAILSEAL_REQUIRE_PEERS") == "1":
        pytest.fail(
            "mailseal.mime._speedups is not built (no C compiler?) and MAILSEAL_REQUIRE_PEERS=1",
            pytrace=False,
        )
    pytest.skip("mailseal.mime._speedups is not built", allow_module_level=True)


def test_canon_uses_the_compiled_functions() -> None:
    assert canon.scan_piece is _speedups.scan_piece
    assert canon.b64_lines is _speedups.b64_lines
    assert canon.has_bare_lf is _speedups.has_bare_lf


# -- text pieces: line ends, long lines, "From " lines, NUL, 8-bit --------------------------

_PIECES = [
    *(b"a", b"b" * 7, b" ", b"\r", b"\n", b"\r\n", b"From ", b"From"),
    *(b"\x00", b"\x80", b"\xff"),
]


@st.composite
def text_pieces(draw: st.DrawFn) -> bytes:
    parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(_PIECES),
                # lines around the 998-octet limit, with every kind of line end
                st.builds(
                    lambda n, end: b"x" * n + end,
                    st.integers(990, 1002),
                    st.sampled_from([b"", b"\n", b"\r\n", b"\r"]),
                ),
                st.binary(max_size=20),
            ),
            max_size=40,
        )
    )
    return b"".join(parts)


@given(text_pieces(), st.integers(0, 1100))
@settings(max_examples=1500, deadline=None)
def test_scan_piece_matches_python(data: bytes, open_line: int) -> None:
    assert _speedups.scan_piece(data, open_line) == canon._py_scan_piece(data, open_line)


@given(text_pieces())
@settings(max_examples=1500, deadline=None)
def test_has_bare_lf_matches_python(data: bytes) -> None:
    assert _speedups.has_bare_lf(data) is canon._py_has_bare_lf(data)


@pytest.mark.parametrize(
    ("data", "open_line", "expected"),
    [
        (b"", 0, (False, 0)),
        (b"", 999, (False, 999)),
        (b"abc", 996, (False, 999)),
        (b"abcd", 996, (False, -1)),
        (b"\n", 0, (True, 0)),
        (b"\r\n", 0, (False, 0)),
        (b"x" * 998 + b"\r\n", 0, (False, 0)),
        (b"x" * 999 + b"\r\n", 0, (False, -1)),
        (b"x" * 998 + b"\n", 0, (True, 0)),
        (b"x" * 999 + b"\n", 0, (False, -1)),
        (b"ok\r\n" + b"x" * 998 + b"\r\nok\r\n", 0, (False, 0)),
        (b"ok\r\n" + b"x" * 999 + b"\r\nok\r\n", 0, (False, -1)),
        (b"ok\r\n" + b"x" * 999, 0, (False, 999)),
        (b"ok\r\n" + b"x" * 1000, 0, (False, -1)),
        (b"a\r\nFrom me\r\n", 0, (False, -1)),
        (b"a\r\nFrom", 0, (False, 4)),  # the border check in the caller sees the rest
        (b"From me\r\n", 0, (False, 0)),  # the start of a piece is the caller's to check
        (b"a\x00b\r\n", 0, (False, -1)),
        (b"caf\xc3\xa9\r\n", 0, (False, -1)),
        (b"a\nb\r\nc", 0, (True, 1)),
    ],
)
def test_scan_piece_cases(data: bytes, open_line: int, expected: tuple[bool, int]) -> None:
    assert _speedups.scan_piece(data, open_line) == expected
    assert canon._py_scan_piece(data, open_line) == expected


def test_scan_piece_large_pieces_and_every_word_position() -> None:
    rng = random.Random(5)
    lines = b"".join(
        bytes(rng.choice(b"abcdefghij ") for _ in range(rng.randrange(0, 200))) + b"\r\n"
        for _ in range(3000)
    )
    assert _speedups.scan_piece(lines, 0) == canon._py_scan_piece(lines, 0) == (False, 0)
    # one bad byte anywhere (both sides of the 8- and 32-byte word loops) is seen
    for pos in [0, 1, 7, 8, 31, 32, 33, len(lines) // 2, len(lines) - 3, len(lines) - 1]:
        for bad in (0x00, 0x80, 0xFF):
            damaged = lines[:pos] + bytes([bad]) + lines[pos + 1 :]
            assert _speedups.scan_piece(damaged, 0) == (False, -1)
            assert canon._py_scan_piece(damaged, 0) == (False, -1)


def test_scan_piece_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        _speedups.scan_piece("text", 0)
    with pytest.raises(TypeError):
        _speedups.scan_piece(b"text")
    with pytest.raises(ValueError):
        _speedups.scan_piece(b"text", -1)
    with pytest.raises(OverflowError):
        _speedups.scan_piece(b"text", 1 << 80)
    # a huge open line does not overflow: it is simply too long
    assert _speedups.scan_piece(b"abc", (1 << 63) - 2) == (False, -1)


def test_scan_piece_accepts_memoryview_and_bytearray() -> None:
    data = b"line one\r\nline two\nend"
    expected = canon._py_scan_piece(data, 3)
    assert _speedups.scan_piece(memoryview(data), 3) == expected
    assert _speedups.scan_piece(bytearray(data), 3) == expected


# -- base64 lines -------------------------------------------------------------------------


@given(st.binary(max_size=2000))
@settings(max_examples=1500, deadline=None)
def test_b64_lines_matches_python(data: bytes) -> None:
    assert _speedups.b64_lines(data) == canon._py_b64_lines(data)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 56, 57, 58, 113, 114, 115, 57 * 100, 65536, 70001])
def test_b64_lines_lengths(n: int) -> None:
    data = os.urandom(n)
    out = _speedups.b64_lines(data)
    assert out == canon._py_b64_lines(data)
    assert out == canon._py_b64_lines(memoryview(data))
    assert out.endswith(b"\r\n")
    lines = out.split(b"\r\n")[:-1]
    assert all(len(line) == 76 for line in lines[:-1])
    assert base64.b64decode(b"".join(lines)) == data


def test_b64_lines_of_a_memoryview_slice() -> None:
    data = os.urandom(1000)
    view = memoryview(data)[13:900]
    assert _speedups.b64_lines(view) == canon._py_b64_lines(data[13:900])


def test_b64_lines_rejects_non_buffers() -> None:
    with pytest.raises(TypeError):
        _speedups.b64_lines("text")
    with pytest.raises(TypeError):
        _speedups.has_bare_lf(12)


def test_large_buffers_work_from_several_threads() -> None:
    """The GIL is released on large buffers: the same answers from threads at once."""
    data = (b"y" * 75 + b"\r\n") * 20000 + b"tail\n"
    expected = (canon._py_scan_piece(data, 0), canon._py_b64_lines(data))
    results: list[object] = []

    def work() -> None:
        for _ in range(5):
            results.append((_speedups.scan_piece(data, 0), _speedups.b64_lines(data)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    assert all(r == expected for r in results)
