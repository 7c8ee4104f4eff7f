"""CMS CompressedData (RFC 3274) with zlib, written and read as streams.

Decompression is bounded (``Limits.max_decompressed`` bytes and
``Limits.max_compression_ratio``) so that a small message cannot expand into gigabytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from mailseal.asn1 import der
from mailseal.asn1 import oids as O
from mailseal.cms.ber import _expect, _read_header, _read_value, _Src, _stream_explicit
from mailseal.errors import LimitExceeded, MalformedCMS
from mailseal.limits import DEFAULT_LIMITS, Limits

__all__ = ["CompressWriter", "decompress_stream"]

ID_ALG_ZLIB = "1.2.840.113549.1.9.16.3.8"  # RFC 3274 §2
_EOC = b"\x00\x00"


class CompressWriter:
    """zlib-compress written pieces into ContentInfo(CompressedData), BER-streamed."""

    def __init__(self, write: Callable[[bytes], None], *, level: int = 6) -> None:
        self._write = write
        self._z = zlib.compressobj(level)
        write(
            b"\x30\x80"
            + der.oid(O.ID_CT_COMPRESSED_DATA)
            + b"\xa0\x80\x30\x80"
            + der.integer(0)
            + der.sequence(der.oid(ID_ALG_ZLIB))
            + b"\x30\x80"
            + der.oid(O.ID_DATA)
            + b"\xa0\x80\x24\x80"
        )

    def _emit(self, data: bytes) -> None:
        if data:
            self._write(der.tlv(0x04, data))

    def write(self, data: bytes) -> None:
        self._emit(self._z.compress(data))

    def abort(self) -> None:
        """Give up on this content (nothing is held that needs releasing)."""

    def close(self) -> None:
        self._emit(self._z.flush())
        # end of the OCTET STRING, [0], EncapsulatedContentInfo, CompressedData, [0], ContentInfo
        self._write(_EOC * 6)


def decompress_stream(
    read: Callable[[int], bytes],
    sink: Callable[[bytes], object],
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> int:
    """Decompress a ContentInfo(CompressedData) to ``sink``; returns the decompressed size."""
    src = _Src(read)
    budget = [limits.max_signature_bytes]
    ci = _expect(src, 0x30, "a ContentInfo SEQUENCE")
    oid_hdr = _expect(src, 0x06, "the content type")
    if oid_hdr.raw + src.take(oid_hdr.length or 0) != der.oid(O.ID_CT_COMPRESSED_DATA):
        raise MalformedCMS("the CMS content is not CompressedData")
    ctx = _expect(src, 0xA0, "the [0] content")
    cd = _expect(src, 0x30, "the CompressedData SEQUENCE")
    _read_value(src, _expect(src, 0x02, "the version"), budget, 0, limits)
    alg = _read_value(src, _expect(src, 0x30, "the compression algorithm"), budget, 0, limits)
    if der.oid(ID_ALG_ZLIB) not in alg[:16]:
        raise MalformedCMS("the compression algorithm is not zlib (RFC 3274)")
    encap = _expect(src, 0x30, "the EncapsulatedContentInfo")
    _read_value(src, _expect(src, 0x06, "the content type"), budget, 0, limits)
    explicit = _expect(src, 0xA0, "the compressed content")
    z = zlib.decompressobj()
    state = {"in": 0, "out": 0}

    def feed(chunk: bytes) -> None:
        data = chunk
        while data:
            try:
                out = z.decompress(data, 1 << 20)
            except zlib.error as exc:
                raise MalformedCMS(f"the compressed content is corrupt ({exc})") from None
            # count what zlib consumed, not what it was offered, so that a bomb in one large
            # segment is stopped as early as one in many small segments
            state["in"] += len(data) - len(z.unconsumed_tail)
            _account(len(out))
            if out:
                sink(out)
            data = z.unconsumed_tail

    def _account(n: int) -> None:
        state["out"] += n
        if state["out"] > limits.max_decompressed:
            raise LimitExceeded(
                f"the compressed content expands beyond {limits.max_decompressed} bytes"
            )
        if state["out"] > 1 << 20 and state["out"] > limits.max_compression_ratio * max(
            state["in"], 1
        ):
            raise LimitExceeded(
                "the compressed content expands more than "
                f"{limits.max_compression_ratio} times (a compression bomb?)"
            )

    _stream_explicit(src, explicit, feed, limits)
    rest = z.flush()
    _account(len(rest))
    if rest:
        sink(rest)
    if not z.eof:
        raise MalformedCMS("the compressed content is truncated")
    for hdr in (encap, cd, ctx, ci):
        if hdr.length is None:
            eoc = _read_header(src)
            if not (eoc.tag == 0 and eoc.length == 0):
                raise MalformedCMS("unexpected data after the compressed content")
    return state["out"]
