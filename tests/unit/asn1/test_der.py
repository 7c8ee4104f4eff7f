"""mailseal.asn1.der: the hand-written DER encoder, checked against asn1crypto."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import core, parser
from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.asn1 import der


class _Ints(core.SetOf):
    _child_spec = core.Integer


class _Octets(core.SetOf):
    _child_spec = core.OctetString


# -- lengths and TLVs -------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x123456])
def test_encode_length_matches_asn1crypto(n: int) -> None:
    content = b"\x00" * n
    expected = core.OctetString(content).dump()
    assert der.tlv(0x04, content) == expected
    assert der.encode_length(n) == expected[1 : len(expected) - n]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (2**24, b"\x84\x01\x00\x00\x00"),
        (2**32 - 1, b"\x84\xff\xff\xff\xff"),
        (2**32, b"\x85\x01\x00\x00\x00\x00"),
    ],
)
def test_encode_length_long_form_is_minimal(n: int, expected: bytes) -> None:
    assert der.encode_length(n) == expected


@given(st.integers(min_value=0, max_value=70_000))
@settings(max_examples=60, deadline=None)
def test_tlv_parses_back(n: int) -> None:
    content = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    encoded = der.tlv(0x04, content)
    info = parser.parse(encoded, strict=True)
    assert info[0:3] == (0, 0, 4)  # universal, primitive, OCTET STRING
    assert info[4] == content


def test_sequence_and_context() -> None:
    assert der.sequence() == b"\x30\x00"
    assert der.sequence(der.integer(1), der.null()) == b"\x30\x05\x02\x01\x01\x05\x00"
    assert der.context(0, der.integer(5)) == core.Integer(5, explicit=0).dump()
    assert der.context(3, b"x", constructed=False) == core.OctetString(b"x", implicit=3).dump()
    assert der.context(30, b"", constructed=False) == b"\x9e\x00"


def test_octet_string_and_null() -> None:
    for data in (b"", b"\x00", b"abc" * 100):
        assert der.octet_string(data) == core.OctetString(data).dump()
    assert der.null() == core.Null().dump()


# -- SET OF ordering (X.690 §11.6) ------------------------------------------------------------
@given(st.lists(st.integers(min_value=0, max_value=2**70), max_size=12))
@settings(max_examples=80, deadline=None)
def test_set_of_sorts_like_asn1crypto(values: list[int]) -> None:
    encoded = [der.integer(v) for v in values]
    assert der.set_of(encoded) == _Ints(values).dump(force=True)


@given(st.lists(st.binary(max_size=300), max_size=8))
@settings(max_examples=80, deadline=None)
def test_set_of_octets_sorted_by_encoding(values: list[bytes]) -> None:
    assert der.set_of([der.octet_string(v) for v in values]) == _Octets(values).dump(force=True)


def test_set_of_accepts_any_iterable() -> None:
    a, b = der.integer(2), der.integer(1)
    assert der.set_of({a, b}) == der.set_of([b, a]) == der.set_of(iter([a, b]))


# -- INTEGER ------------------------------------------------------------------------------------
@given(st.integers(min_value=0, max_value=2**4096))
@settings(max_examples=200, deadline=None)
def test_integer_non_negative_matches_asn1crypto(value: int) -> None:
    assert der.integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize(
    "value", [0, 1, 127, 128, 255, 256, 32767, 32768, 2**159, 2**160 - 1, 2**160]
)
def test_integer_boundaries(value: int) -> None:
    assert der.integer(value) == core.Integer(value).dump()
    assert core.Integer.load(der.integer(value)).native == value


@pytest.mark.parametrize(
    "value", [-1, -127, -128, -129, -255, -256, -257, -32767, -32768, -(2**63), -(2**64) - 1]
)
def test_integer_negative_matches_asn1crypto(value: int) -> None:
    # -128 is 02 01 80, not 02 02 ff 80 (X.690 §8.3.2: no redundant leading octet)
    assert der.integer(value) == core.Integer(value).dump()


@given(st.integers(min_value=-(2**2048), max_value=2**2048))
@settings(max_examples=200, deadline=None)
def test_integer_any_sign_matches_asn1crypto(value: int) -> None:
    assert der.integer(value) == core.Integer(value).dump()


# -- OBJECT IDENTIFIER --------------------------------------------------------------------------
@st.composite
def _oids(draw: st.DrawFn) -> str:
    first = draw(st.integers(0, 2))
    second = draw(st.integers(0, 39)) if first < 2 else draw(st.integers(0, 2**40))
    rest = draw(st.lists(st.integers(0, 2**64), max_size=10))
    return ".".join(str(a) for a in [first, second, *rest])


@given(_oids())
@settings(max_examples=200, deadline=None)
def test_oid_matches_asn1crypto(dotted: str) -> None:
    encoded = der.oid(dotted)
    assert encoded == core.ObjectIdentifier(dotted).dump()
    assert core.ObjectIdentifier.load(encoded).dotted == dotted


@pytest.mark.parametrize(
    "dotted",
    [
        "1.2.840.113549.1.7.2",  # signedData
        "1.2.840.113549.1.9.16.2.11",  # id-aa-encrypKeyPref
        "1.3.6.1.4.1.311.16.4",  # Microsoft encryption key preference
        "2.16.840.1.101.3.4.2.1",  # sha256
        "1.3.101.112",  # Ed25519
        "2.999.3",  # second arc >= 40 under joint-iso-itu-t
        "0.0",
    ],
)
def test_known_oids(dotted: str) -> None:
    assert der.oid(dotted) == core.ObjectIdentifier(dotted).dump()


def test_oid_needs_two_arcs() -> None:
    with pytest.raises(ValueError, match="two arcs"):
        der.oid("1")


# -- signing time (RFC 5652 §11.3) --------------------------------------------------------------
@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(1950, 1, 1, 0, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2025, 11, 24, 8, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
    ],
)
def test_signing_time_utctime_inside_1950_2049(when: dt.datetime) -> None:
    encoded = der.signing_time(when)
    assert encoded[0] == 0x17
    assert encoded == core.UTCTime(when).dump()
    assert core.UTCTime.load(encoded).native == when


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(1949, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2050, 1, 1, 0, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2150, 6, 1, 12, 0, 0, tzinfo=dt.UTC),
    ],
)
def test_signing_time_generalized_outside(when: dt.datetime) -> None:
    encoded = der.signing_time(when)
    assert encoded[0] == 0x18
    assert encoded == core.GeneralizedTime(when).dump()
    assert core.GeneralizedTime.load(encoded).native == when


def test_signing_time_converts_to_utc() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    local = dt.datetime(2025, 11, 24, 9, 0, 0, tzinfo=cet)
    assert der.signing_time(local) == b"\x17\x0d251124080000Z"


def test_signing_time_drops_fractions() -> None:
    when = dt.datetime(2025, 11, 24, 8, 0, 0, 999_999, tzinfo=dt.UTC)
    assert der.signing_time(when) == b"\x17\x0d251124080000Z"
