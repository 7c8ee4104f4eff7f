"""A minimal DER encoder for the hot path.

asn1crypto parses and builds the general structures; this module writes the few
fixed-shape pieces that are emitted for every message (signed attributes, SignerInfo,
SignedData framing) without building object trees.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from functools import lru_cache

__all__ = [
    "context",
    "encode_length",
    "integer",
    "null",
    "octet_string",
    "oid",
    "sequence",
    "set_of",
    "signing_time",
    "tlv",
]


def encode_length(n: int) -> bytes:
    """DER length octets for a content of ``n`` bytes."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    """One TLV with a single-byte tag."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    if n < 0x100:
        return bytes((tag, 0x81, n)) + content
    if n < 0x10000:
        return bytes((tag, 0x82, n >> 8, n & 0xFF)) + content
    return bytes((tag,)) + encode_length(n) + content


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def set_of(parts: Iterable[bytes]) -> bytes:
    """A DER SET OF: the encodings sorted as octet strings (X.690 §11.6)."""
    return tlv(0x31, b"".join(sorted(parts)))


def context(number: int, content: bytes, *, constructed: bool = True) -> bytes:
    """A context-specific tag ``[number]`` around ``content`` (number < 31)."""
    return tlv((0xA0 if constructed else 0x80) | number, content)


def octet_string(data: bytes) -> bytes:
    return tlv(0x04, data)


def null() -> bytes:
    return b"\x05\x00"


def integer(value: int) -> bytes:
    length = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return tlv(0x02, value.to_bytes(length, "big", signed=True))


@lru_cache(maxsize=512)
def oid(dotted: str) -> bytes:
    """DER OBJECT IDENTIFIER for a dotted string."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2:
        raise ValueError(f"OID needs two arcs: {dotted}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return tlv(0x06, bytes(out))


def signing_time(when: _dt.datetime) -> bytes:
    """RFC 5652 §11.3 Time: UTCTime for 1950-2049, GeneralizedTime otherwise."""
    when = when.astimezone(_dt.UTC)
    if 1950 <= when.year < 2050:
        return tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode("ascii"))
