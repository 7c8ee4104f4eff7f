"""A lean DER walker for the SignedData shapes real clients send.

Verification is dominated by parsing, so the common case (definite-length DER, the usual
fields) is read here directly into :class:`~mailseal.cms.inspect.ParsedSignerInfo` values.
Anything unusual raises :class:`Unusual` and the caller falls back to the general asn1crypto
parser, which also produces the precise error for malformed input.
"""

from __future__ import annotations

import datetime as _dt

from mailseal.asn1 import der
from mailseal.asn1 import oids as O

__all__ = ["Unusual", "children", "dotted", "tlv"]


class Unusual(Exception):
    """The structure is not in the fast path's shape (not necessarily invalid)."""


def tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos``; single-byte tags only."""
    if pos + 2 > end:
        raise Unusual
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise Unusual
    n = buf[pos + 1]
    pos += 2
    if n >= 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > end:
            raise Unusual
        if k == 1:
            n = buf[pos]
        elif k == 2:
            n = (buf[pos] << 8) | buf[pos + 1]
        else:
            n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    if pos + n > end:
        raise Unusual
    return tag, pos, pos + n


def children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, header start, content start, content end) of each child TLV.

    Each child is read as :func:`tlv` reads it, written out here: this runs for every
    constructed value of every message, and the call per child cost more than the reading.
    """
    out = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise Unusual
        tag = buf[pos]
        if tag & 0x1F == 0x1F:
            raise Unusual
        n = buf[pos + 1]
        cs = pos + 2
        if n >= 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or cs + k > end:
                raise Unusual
            if k == 1:
                n = buf[cs]
            elif k == 2:
                n = (buf[cs] << 8) | buf[cs + 1]
            else:
                n = int.from_bytes(buf[cs : cs + k], "big")
            cs += k
        ce = cs + n
        if ce > end:
            raise Unusual
        out.append((tag, pos, cs, ce))
        pos = ce
    return out


_KNOWN_OIDS: dict[bytes, str] = {}


def _register(*dotted_oids: str) -> dict[bytes, str]:
    return {der.oid(d)[2:]: d for d in dotted_oids}


_KNOWN_OIDS = _register(
    *(v for k, v in vars(O).items() if k.isupper() and isinstance(v, str) and v[:1].isdigit())
)


def dotted(body: bytes) -> str:
    """Dotted form of OBJECT IDENTIFIER content octets."""
    known = _KNOWN_OIDS.get(body)
    if known is not None:
        return known
    arcs: list[int] = []
    val = 0
    for b in body:
        val = (val << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(val)
            val = 0
    if not arcs or body[-1] & 0x80:
        raise Unusual
    first = arcs[0]
    top = 2 if first >= 80 else first // 40
    return ".".join(str(a) for a in [top, first - 40 * top, *arcs[1:]])


def parse_time(tag: int, raw: bytes) -> _dt.datetime:
    text = raw.decode("ascii")
    if not text.endswith("Z"):
        raise Unusual
    if tag == 0x17:
        if len(text) != 13:
            raise Unusual
        yy = int(text[:2])
        year = 2000 + yy if yy < 50 else 1900 + yy
        rest = text[2:12]
    elif tag == 0x18:
        if len(text) != 15:
            raise Unusual
        year = int(text[:4])
        rest = text[4:14]
    else:
        raise Unusual
    return _dt.datetime(
        year,
        int(rest[0:2]),
        int(rest[2:4]),
        int(rest[4:6]),
        int(rest[6:8]),
        int(rest[8:10]),
        tzinfo=_dt.UTC,
    )
