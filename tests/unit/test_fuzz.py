"""Property: whatever is done to a signed message, mailseal.verify returns a VerifyResult or
raises a MailsealError, and nothing else (DESIGN.md house rules 3 and 7).

Mutations: bit flips, truncation, insertions of random and MIME-significant bytes, deletions,
duplicated slices, line-end changes, and header deletions, stacked up to four deep.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailseal
from mailseal.pki.testpki import TestPKI

from ._support import MAIL_8BIT
from .conftest import Person

TOKENS = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"--",
    b"=",
    b"\x00",
    b"\xff\xfe",
    b";",
    b'"',
    b" ",
    b"\t",
    b"Content-Type: multipart/signed; boundary=x\r\n",
    b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"micalg=sha-512;",
    b"\x30\x80",
    b"\x30\x84\xff\xff\xff\xff",
    b"MII",
    b"====",
    b"From: x@example.org\r\n",
    b"From: (((((((((((((((((((( \r\n",
]

_pos = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("insert"), _pos, st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("insert"), _pos, st.sampled_from(TOKENS)),
    st.tuples(st.just("delete"), _pos, st.integers(1, 200)),
    st.tuples(st.just("duplicate"), _pos, st.integers(1, 300)),
    st.tuples(st.just("line_ends"), st.sampled_from(["lf", "cr", "crcrlf", "mixed"])),
    st.tuples(st.just("delete_header"), st.integers(0, 40)),
)


def mutate(data: bytes, op: tuple) -> bytes:
    kind = op[0]
    n = len(data)
    at = int(op[1] * n) if kind in ("flip", "truncate", "insert", "delete", "duplicate") else 0
    if kind == "flip":
        if n == 0:
            return data
        at = min(at, n - 1)
        return data[:at] + bytes([data[at] ^ (1 << op[2])]) + data[at + 1 :]
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + op[2] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + op[2] :]
    if kind == "duplicate":
        return data[:at] + data[at : at + op[2]] + data[at:]
    if kind == "line_ends":
        lf = data.replace(b"\r\n", b"\n")
        if op[1] == "lf":
            return lf
        if op[1] == "cr":
            return lf.replace(b"\n", b"\r")
        if op[1] == "crcrlf":
            return data.replace(b"\r\n", b"\r\r\n")
        return b"".join(
            line + (b"\r\n" if i % 2 else b"\n") for i, line in enumerate(lf.split(b"\n"))
        )
    # delete the k-th header field (with its folded lines) wherever header blocks are
    fields = list(re.finditer(rb"(?m)^[!-9;-~]+:.*\r?\n(?:[ \t].*\r?\n)*", data))
    if not fields:
        return data
    m = fields[op[1] % len(fields)]
    return data[: m.start()] + data[m.end() :]


@pytest.fixture(scope="module")
def samples(alice: Person, person, ca: TestPKI) -> list[bytes]:
    carol = person("carol@example.org", key_type="p256")
    nested = (
        b"From: alice@example.org\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n"
        b"--m\r\nContent-Type: text/plain\r\n\r\npart\r\n--m\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"\x00\x01\x02\r\n--m--\r\n"
    )
    return [
        mailseal.sign(MAIL_8BIT, alice.ident),
        mailseal.sign(MAIL_8BIT, alice.ident, opaque=True),
        mailseal.sign(nested, [alice.ident, carol.ident], ski=True),
        mailseal.sign(MAIL_8BIT, carol.ident, opaque=True),
    ]


@pytest.fixture(scope="module")
def fuzz_trust(ca: TestPKI) -> mailseal.Trust:
    return mailseal.Trust([ca.root.cert])


def check(data: bytes, trust: mailseal.Trust) -> None:
    try:
        result = mailseal.verify(data, trust=trust)
        assert isinstance(result, mailseal.VerifyResult)
        json.dumps(result.to_json())
        for s in result.signers:
            s.describe()
    except mailseal.MailsealError as exc:
        assert str(exc), "a MailsealError needs a message a person can act on"
        return
    for s in result.signers:
        if s.valid:
            assert s.intact and s.trusted
    if result.valid:
        assert all(s.valid for s in result.signers)


@pytest.mark.timeout(120)
@given(
    which=st.integers(0, 3),
    ops=st.lists(MUTATION, min_size=1, max_size=4),
)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_mutated_messages_give_a_verdict_or_a_mailseal_error(
    samples: list[bytes], fuzz_trust: mailseal.Trust, which: int, ops: list[tuple]
) -> None:
    data = samples[which]
    for op in ops:
        data = mutate(data, op)
    check(data, fuzz_trust)


def test_unmutated_samples_are_valid(samples: list[bytes], fuzz_trust: mailseal.Trust) -> None:
    for data in samples:
        result = mailseal.verify(data, trust=fuzz_trust)
        assert result.status in (mailseal.Status.VALID, mailseal.Status.ADDRESS_MISMATCH)
        assert all(s.intact and s.trusted for s in result.signers)


@pytest.mark.parametrize("cut", [1, 10, 100, 500, 1000, 2000, 3000, -500, -100, -10, -3, -1])
@pytest.mark.parametrize("which", [0, 1])
def test_every_truncation_point(
    samples: list[bytes], fuzz_trust: mailseal.Trust, which: int, cut: int
) -> None:
    check(samples[which][:cut], fuzz_trust)


# -- signing: anything mailseal signs, it verifies ------------------------------------------------
@pytest.fixture(scope="module")
def plain_messages() -> list[bytes]:
    from .mime.test_canon import NESTED, RFC822_7BIT

    return [MAIL_8BIT, NESTED, RFC822_7BIT, b"just text\nFrom here\n"]


@pytest.mark.timeout(120)
@given(
    which=st.integers(0, 3),
    ops=st.lists(MUTATION, min_size=0, max_size=3),
    opaque=st.booleans(),
)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_whatever_is_signed_verifies(
    plain_messages: list[bytes],
    alice: Person,
    fuzz_trust: mailseal.Trust,
    which: int,
    ops: list[tuple],
    opaque: bool,
) -> None:
    data = plain_messages[which]
    for op in ops:
        data = mutate(data, op)
    try:
        signed = mailseal.sign(data, alice.ident, opaque=opaque)
    except mailseal.MailsealError:
        return
    result = mailseal.verify(signed, trust=fuzz_trust)
    assert result.signers[0].intact and result.signers[0].trusted, result.to_json()
    assert result.status in (mailseal.Status.VALID, mailseal.Status.ADDRESS_MISMATCH)
    content = result.content
    assert content is not None
    assert content.count(b"\n") == content.count(b"\r\n"), "a bare LF in signed content"
