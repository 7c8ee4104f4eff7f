"""mailseal.mime.sign.sign_small: the one-pass signer for messages held in memory.

Whatever it signs must come out byte for byte as the streaming signer writes it; whatever it
declines (multipart, 8-bit, long lines, "From " lines, bare CRs, other transfer encodings) the
streaming signer handles.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mailseal
from mailseal.cms.signed import PreparedSigner
from mailseal.mime import sign as S

from ..conftest import Person

WHEN = dt.datetime(2026, 11, 24, 12, 0, 0, tzinfo=dt.UTC)
BOUNDARY = b"----=_mailseal_fixedboundaryfortests"


@pytest.fixture
def fixed_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "_new_boundary", lambda: BOUNDARY)


def _streamed(message: bytes, signers: list[PreparedSigner], opaque: bool) -> bytes:
    out = io.BytesIO()
    S.sign_stream(io.BytesIO(message), out, signers, opaque=opaque, when=WHEN)
    return out.getvalue()


def _signers(person: Person, *more: Person) -> list[PreparedSigner]:
    return [PreparedSigner(p.ident) for p in (person, *more)]


SIMPLE = [
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n",
    b"From: a@example.org\nSubject: LF only\n\nline one\nline two\n",
    b"Subject: mixed ends\r\n\r\none\r\ntwo\nthree",
    b"Content-Type: text/html; charset=us-ascii\r\n\r\n<p>bare entity</p>\r\n",
    b"Subject: no content headers at all\r\n\r\n",
    b"Subject: x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQK\r\n",
    b"Subject: x\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\ncaf=C3=A9\r\n",
    b"Subject: folded\r\n  over two lines\r\nContent-Type: text/plain;\r\n charset=us-ascii\r\n"
    b"\r\nbody\r\n",
    b"Subject: x\r\n\r\n" + b"y" * 998 + b"\r\n",
    b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.org\r\n",
    b"Subject: x\r\n\r\nbare\rcarriage return\r\nand a CR before CRLF\r\r\n",
    b"Subject: x\r\n\r\nends in a bare CR\r",
    b"Subject: x\n\nmixed\r\nends\nand a bare\rCR\n",
]

DECLINED = [
    b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
    b"Subject: x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n",
    b"Subject: x\r\n\r\ncaf\xc3\xa9\r\n",
    b"Subject: x\r\nContent-Transfer-Encoding: 8bit\r\n\r\nplain\r\n",
    b"Subject: x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n",
    b"Subject: x\r\n\r\nFrom the start\r\n",
    b"Subject: x\r\n\r\nfirst\r\nFrom here\r\n",
    b"Subject: x\r\n\r\nnul \x00 inside\r\n",
    b"Subject: x\r\n\r\n" + b"y" * 999 + b"\n",
    b"Subject: only headers, no blank line\r\n",
    b"not a header line\r\n\r\nbody\r\n",
    b"",
]


@pytest.mark.usefixtures("fixed_boundary")
@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
@pytest.mark.parametrize("message", SIMPLE, ids=range(len(SIMPLE)))
def test_simple_messages_match_the_streaming_signer(
    alice: Person, message: bytes, opaque: bool
) -> None:
    signers = _signers(alice)
    small = S.sign_small(message, signers, opaque=opaque, when=WHEN)
    assert small is not None, "a simple message should take the one-pass path"
    assert small == _streamed(message, signers, opaque)


@pytest.mark.parametrize("message", DECLINED, ids=range(len(DECLINED)))
def test_other_messages_are_left_to_the_streaming_signer(alice: Person, message: bytes) -> None:
    assert S.sign_small(message, _signers(alice), when=WHEN) is None
    assert S.sign_small(message, _signers(alice), opaque=True, when=WHEN) is None


def test_size_limits(alice: Person, monkeypatch: pytest.MonkeyPatch) -> None:
    signers = _signers(alice)
    big = b"Subject: x\r\n\r\n" + (b"z" * 70 + b"\r\n") * ((S.SMALL_MAX // 72) + 1)
    assert len(big) > S.SMALL_MAX
    assert S.sign_small(big, signers, when=WHEN) is None
    # LF-only content that grows past the DER limit once it has CRLF line ends: the opaque
    # form is then BER, written by the streaming signer
    monkeypatch.setattr(S, "DER_LIMIT", 100)
    grows = b"Subject: x\n\n" + b"a\n" * 50
    assert S.sign_small(grows, signers, opaque=True, when=WHEN) is None
    assert S.sign_small(grows, signers, when=WHEN) is not None


@pytest.mark.usefixtures("fixed_boundary")
def test_two_signers_and_digests(alice: Person, person: object) -> None:
    carol = person("carol@example.org", key_type="ed25519")  # type: ignore[operator]
    signers = [PreparedSigner(alice.ident), PreparedSigner(carol.ident)]
    message = SIMPLE[0]
    for opaque in (False, True):
        small = S.sign_small(message, signers, opaque=opaque, when=WHEN)
        assert small == _streamed(message, signers, opaque)


def test_public_sign_uses_it_and_verifies(
    alice: Person, trust: mailseal.Trust, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailseal._sign as sign_module

    def not_streamed(*_args: object, **_kw: object) -> None:
        raise AssertionError("a simple message held in memory should not be streamed")

    monkeypatch.setattr(sign_module, "_sign_stream", not_streamed)
    message = b"From: alice@example.org\nSubject: LF only\n\nline one\nline two\n"
    for opaque in (False, True):
        signed = mailseal.sign(message, alice.ident, opaque=opaque)
        result = mailseal.verify(signed, trust=trust)
        assert result.valid, result
        assert result.content is not None and result.content.endswith(b"line one\r\nline two\r\n")


_LINES = st.sampled_from(
    [
        b"plain text",
        b"",
        b"From someone",
        b">From quoted",
        b"caf\xc3\xa9",
        b"tab\there",
        b"nul\x00",
        b"bare\rcr",
        b"x" * 998,
        b"x" * 999,
        b"=3D quoted",
        b".",
    ]
)
_HEADERS = st.sampled_from(
    [
        b"Subject: s",
        b"From: a@example.org",
        b"Content-Type: text/plain; charset=us-ascii",
        b"Content-Type: multipart/mixed; boundary=q",
        b"Content-Type: message/rfc822",
        b"Content-Type: application/octet-stream",
        b"Content-Transfer-Encoding: 7bit",
        b"Content-Transfer-Encoding: 8bit",
        b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: binary",
        b"MIME-Version: 1.0",
        b" folded",
    ]
)


@pytest.mark.usefixtures("fixed_boundary")
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=st.lists(_HEADERS, max_size=5),
    lines=st.lists(_LINES, max_size=6),
    eol=st.sampled_from([b"\r\n", b"\n"]),
    body_eol=st.sampled_from([b"\r\n", b"\n"]),
    opaque=st.booleans(),
)
def test_whatever_it_signs_matches_the_streaming_signer(
    alice: Person,
    headers: list[bytes],
    lines: list[bytes],
    eol: bytes,
    body_eol: bytes,
    opaque: bool,
) -> None:
    message = b"".join(h + eol for h in headers) + eol + body_eol.join(lines)
    signers = _signers(alice)
    small = S.sign_small(message, signers, opaque=opaque, when=WHEN)
    if small is not None:
        assert small == _streamed(message, signers, opaque)


@settings(max_examples=300, deadline=None)
@example(shared=bytes(range(200)), tails=[b"a", b"bc", b"d" * 100])
@given(
    shared=st.binary(min_size=0, max_size=400),
    tails=st.lists(st.binary(min_size=0, max_size=200), min_size=1, max_size=6),
)
def test_shared_lines_give_the_same_base64(shared: bytes, tails: list[bytes]) -> None:
    """Signatures in a row that begin alike reuse the beginning's base64 lines: each result is
    exactly what encoding the whole signature gives, whatever is shared or not."""
    from mailseal.mime.canon import b64_lines

    memo = S._SharedLines()
    for tail in tails:
        der = shared + tail
        assert memo.lines(der) == b64_lines(der)
    # once learnt, a signature that begins differently is still encoded whole
    other = bytes([shared[0] ^ 1]) + shared[1:] + b"x" if shared else b"y"
    assert memo.lines(other) == b64_lines(other)


def test_shared_lines_are_learnt_and_used(alice: Person, trust: mailseal.Trust) -> None:
    """Signing twice with one signer learns the part that does not change (at least the
    certificates), and the signatures still verify."""
    signer = PreparedSigner(alice.ident)
    first = mailseal.sign(b"Subject: a\r\n\r\nhello\r\n", signer)
    memo = S._shared_lines(signer)
    assert memo.known == (b"", b"")
    second = mailseal.sign(b"Subject: b\r\n\r\nhello again\r\n", signer)
    prefix, text = memo.known
    assert len(prefix) >= sum(len(c) for c in signer.cert_ders)
    assert text in second
    third = mailseal.sign(b"Subject: c\r\n\r\nand again\r\n", signer)
    assert text in third
    for signed in (first, second, third):
        result = mailseal.verify(signed, trust=trust)
        assert result.valid, result
