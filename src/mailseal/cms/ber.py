"""A streaming BER reader for the one large field of a CMS message: the encapsulated content.

An opaque signed message may carry gigabytes inside ``eContent``. :func:`stream_signed_data`
walks the framing of ContentInfo/SignedData incrementally, passes the content octets to a
callback as they arrive, and keeps only the (bounded) remainder: digest algorithms,
certificates, CRLs and SignerInfos. Definite and indefinite lengths and constructed OCTET
STRINGs of any chunking are accepted, with depth and size limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from mailseal.asn1 import der
from mailseal.asn1 import oids as O
from mailseal.cms import fastder as F
from mailseal.errors import LimitExceeded, MalformedCMS
from mailseal.limits import DEFAULT_LIMITS, Limits

__all__ = ["StreamedSignedData", "stream_signed_data"]

_CHUNK = 1 << 20


class _Src:
    """Bytes from ``read_fn`` with a read offset (no per-take copying of the buffer)."""

    __slots__ = ("buf", "off", "pos", "read_fn")

    def __init__(self, read_fn: Callable[[int], bytes]) -> None:
        self.read_fn = read_fn
        self.buf = b""
        self.off = 0
        self.pos = 0  # bytes consumed so far

    def take(self, n: int) -> bytes:
        avail = len(self.buf) - self.off
        if avail < n:
            parts = [self.buf[self.off :]]
            while avail < n:
                more = self.read_fn(max(_CHUNK, n - avail))
                if not more:
                    raise MalformedCMS("the CMS structure is truncated")
                parts.append(more)
                avail += len(more)
            self.buf = b"".join(parts)
            self.off = 0
        out = self.buf[self.off : self.off + n]
        self.off += n
        self.pos += n
        return out

    def take_upto(self, n: int) -> bytes:
        """Up to ``n`` bytes (at least one), for streaming large primitive values."""
        if self.off >= len(self.buf):
            more = self.read_fn(_CHUNK)
            if not more:
                raise MalformedCMS("the CMS structure is truncated")
            self.buf = more
            self.off = 0
        k = min(n, len(self.buf) - self.off)
        out = self.buf[self.off : self.off + k]
        self.off += k
        self.pos += k
        return out

    def at_eof(self) -> bool:
        if self.off < len(self.buf):
            return False
        more = self.read_fn(_CHUNK)
        if more:
            self.buf = more
            self.off = 0
            return False
        return True


class _Header(NamedTuple):
    tag: int  # first identifier octet
    length: int | None  # None = indefinite
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)


def _read_header(src: _Src) -> _Header:
    buf, off = src.buf, src.off
    if len(buf) - off >= 10:
        # the whole header (at most 1 + 1 + 8 octets) is already buffered: no per-octet takes
        tag = buf[off]
        if tag & 0x1F == 0x1F:
            raise MalformedCMS("unexpected high-numbered ASN.1 tag in CMS framing")
        n = buf[off + 1]
        if n < 0x80:
            size = 2
            length: int | None = n
        elif n == 0x80:
            if not tag & 0x20:
                raise MalformedCMS("indefinite length on a primitive ASN.1 value")
            size = 2
            length = None
        else:
            count = n & 0x7F
            if count > 8:
                raise MalformedCMS("ASN.1 length field too long")
            size = 2 + count
            length = int.from_bytes(buf[off + 2 : off + size], "big")
        src.off = off + size
        src.pos += size
        return _Header(tag, length, buf[off : off + size])
    return _read_header_slow(src)


def _read_header_slow(src: _Src) -> _Header:
    first = src.take(1)
    tag = first[0]
    raw = bytearray(first)
    if tag & 0x1F == 0x1F:
        # high tag number form: never used by CMS at the levels we stream
        raise MalformedCMS("unexpected high-numbered ASN.1 tag in CMS framing")
    lb = src.take(1)
    raw += lb
    n = lb[0]
    if n < 0x80:
        return _Header(tag, n, bytes(raw))
    if n == 0x80:
        if not tag & 0x20:
            raise MalformedCMS("indefinite length on a primitive ASN.1 value")
        return _Header(tag, None, bytes(raw))
    count = n & 0x7F
    if count > 8:
        raise MalformedCMS("ASN.1 length field too long")
    lbytes = src.take(count)
    raw += lbytes
    return _Header(tag, int.from_bytes(lbytes, "big"), bytes(raw))


def _read_value(src: _Src, hdr: _Header, budget: list[int], depth: int, limits: Limits) -> bytes:
    """The complete encoding (header included) of a value whose header was just read."""
    if depth > limits.max_depth * 4:
        raise LimitExceeded("CMS structure nested too deeply")
    if hdr.length is not None:
        budget[0] -= hdr.length
        if budget[0] < 0:
            raise LimitExceeded(
                f"CMS signature data larger than {limits.max_signature_bytes} bytes"
            )
        return hdr.raw + src.take(hdr.length)
    parts = [hdr.raw]
    while True:
        sub = _read_header(src)
        if sub.tag == 0 and sub.length == 0:
            parts.append(sub.raw)
            return b"".join(parts)
        parts.append(_read_value(src, sub, budget, depth + 1, limits))


def _expect(src: _Src, tag: int, what: str) -> _Header:
    hdr = _read_header(src)
    if hdr.tag != tag:
        raise MalformedCMS(f"the CMS structure is not as expected: {what} is missing")
    return hdr


@dataclass(frozen=True, slots=True)
class StreamedSignedData:
    """What remains of a SignedData once its content has streamed past."""

    #: ContentInfo DER with the eContent removed (a detached SignedData), for parsing.
    detached_der: bytes
    content_type: str
    content_present: bool
    #: digest OIDs named in SignedData.digestAlgorithms (known before the content streamed)
    digest_oids: tuple[str, ...]


def _parse_digest_oids(set_der: bytes) -> list[str]:
    from asn1crypto import cms as a_cms

    out = []
    try:
        parsed = a_cms.DigestAlgorithms.load(set_der)
        for item in parsed:
            out.append(item["algorithm"].dotted)
    except Exception as exc:
        raise MalformedCMS(f"SignedData.digestAlgorithms is malformed ({exc})") from None
    return out


def stream_signed_data(
    read: Callable[[int], bytes],
    on_digest_oids: Callable[[list[str]], None],
    on_content: Callable[[bytes], object],
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> StreamedSignedData:
    """Walk a BER ContentInfo holding SignedData from ``read``.

    ``on_digest_oids`` is called once, before any content, with the digest algorithms the
    signers declared; ``on_content`` receives the eContent octets in order.
    """
    src = _Src(read)
    budget = [limits.max_signature_bytes]
    ci = _expect(src, 0x30, "a SEQUENCE")
    oid_hdr = _expect(src, 0x06, "the signedData content type")
    oid_val = src.take(oid_hdr.length or 0)
    if oid_hdr.raw + oid_val != der.oid(O.ID_SIGNED_DATA):
        raise MalformedCMS("the CMS content is not SignedData")
    _expect(src, 0xA0, "[0] content")
    sd = _expect(src, 0x30, "SignedData SEQUENCE")
    sd_start = src.pos
    ver_hdr = _expect(src, 0x02, "SignedData.version")
    version = _read_value(src, ver_hdr, budget, 0, limits)
    dig_hdr = _expect(src, 0x31, "SignedData.digestAlgorithms")
    digest_set = _read_value(src, dig_hdr, budget, 0, limits)
    digest_oids = _parse_digest_oids(digest_set)
    on_digest_oids(digest_oids)
    encap = _expect(src, 0x30, "EncapsulatedContentInfo")
    encap_start = src.pos
    ctype_hdr = _expect(src, 0x06, "eContentType")
    ctype_der = ctype_hdr.raw + src.take(ctype_hdr.length or 0)
    content_present = False

    def encap_done() -> bool:
        if encap.length is not None:
            return src.pos - encap_start >= encap.length
        return False

    if not encap_done():
        nxt = _read_header(src)
        if nxt.tag == 0 and nxt.length == 0 and encap.length is None:
            pass  # end of an indefinite, empty encapsulation
        elif nxt.tag != 0xA0:
            raise MalformedCMS("unexpected field in EncapsulatedContentInfo")
        else:
            content_present = True
            _stream_explicit(src, nxt, on_content, limits)
            if encap.length is None:
                eoc = _read_header(src)
                if not (eoc.tag == 0 and eoc.length == 0):
                    raise MalformedCMS("EncapsulatedContentInfo has trailing fields")
    if encap.length is not None and src.pos - encap_start != encap.length:
        raise MalformedCMS("EncapsulatedContentInfo length does not match its contents")

    rest = []
    while True:
        if sd.length is not None and src.pos - sd_start >= sd.length:
            break
        hdr = _read_header(src)
        if sd.length is None and hdr.tag == 0 and hdr.length == 0:
            break
        rest.append(_read_value(src, hdr, budget, 0, limits))
    if sd.length is not None and src.pos - sd_start != sd.length:
        raise MalformedCMS("SignedData length does not match its contents")
    # close the outer [0] and ContentInfo when indefinite
    if sd.length is None or ci.length is None:
        for _ in range(2):
            if src.at_eof():
                break
            hdr = _read_header(src)
            if not (hdr.tag == 0 and hdr.length == 0):
                raise MalformedCMS("trailing data after SignedData")
    sd_der = der.sequence(version, digest_set, der.sequence(ctype_der), *rest)
    detached = der.sequence(der.oid(O.ID_SIGNED_DATA), der.context(0, sd_der))
    ctype = _dotted(ctype_der)
    return StreamedSignedData(detached, ctype, content_present, tuple(digest_oids))


def _dotted(oid_der: bytes) -> str:
    """Dotted form of a complete OBJECT IDENTIFIER encoding."""
    n = oid_der[1]
    body = oid_der[2:] if n < 0x80 else oid_der[2 + (n & 0x7F) :]
    try:
        return F.dotted(body)
    except F.Unusual:
        raise MalformedCMS("a malformed OBJECT IDENTIFIER") from None


def _stream_explicit(
    src: _Src, hdr: _Header, on_content: Callable[[bytes], object], limits: Limits
) -> None:
    start = src.pos
    inner = _read_header(src)
    if inner.tag not in (0x04, 0x24):
        raise MalformedCMS("eContent is not an OCTET STRING")
    _stream_octets(src, inner, on_content, 0, limits)
    if hdr.length is None:
        eoc = _read_header(src)
        if not (eoc.tag == 0 and eoc.length == 0):
            raise MalformedCMS("eContent [0] has trailing fields")
    elif src.pos - start != hdr.length:
        raise MalformedCMS("eContent length does not match its contents")


def _stream_octets(
    src: _Src,
    hdr: _Header,
    on_content: Callable[[bytes], object],
    depth: int,
    limits: Limits,
    *,
    tags: tuple[int, int] = (0x04, 0x24),
) -> None:
    """Stream an OCTET STRING (primitive or constructed of any depth) to ``on_content``.

    ``tags`` are the primitive and constructed tags of the outermost value (an IMPLICIT
    ``[0]`` in EncryptedContentInfo is 0x80/0xA0); inner segments are always 0x04/0x24.
    """
    if depth > limits.max_depth:
        raise LimitExceeded("constructed OCTET STRING nested too deeply")
    if hdr.tag == tags[0]:
        remaining = hdr.length or 0
        while remaining:
            chunk = src.take_upto(min(remaining, _CHUNK))
            remaining -= len(chunk)
            on_content(chunk)
        return
    if hdr.tag != tags[1]:
        raise MalformedCMS("constructed OCTET STRING holds a non-OCTET STRING")
    start = src.pos
    while True:
        if hdr.length is not None and src.pos - start >= hdr.length:
            if src.pos - start != hdr.length:
                raise MalformedCMS("constructed OCTET STRING length mismatch")
            return
        sub = _read_header(src)
        if hdr.length is None and sub.tag == 0 and sub.length == 0:
            return
        _stream_octets(src, sub, on_content, depth + 1, limits)
