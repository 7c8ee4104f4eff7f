"""Canonical, 7-bit-safe MIME entities for signing (RFC 8551 §3.1).

Before a MIME entity is signed it is rewritten so that no relay has a reason to touch it:
every line ends in CRLF, and any part that is 8bit, binary, contains NUL, or has lines longer
than RFC 5322's 998 octets is transfer-encoded (quoted-printable for text, base64 otherwise).
The rewritten bytes are passed to ``emit`` as they are produced, so the bytes that are hashed
are exactly the bytes that are written out. Memory stays bounded: a leaf part whose fate is
only known at its end is spooled (to disk beyond a few MiB).
"""

from __future__ import annotations

import binascii
import codecs
import functools
import importlib
import re
import struct
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import IO

from mailseal.errors import LimitExceeded, MalformedMessage
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime import headers as H
from mailseal.mime.reader import CHUNK, HeaderField, PartReader, Reader, read_header_block

__all__ = [
    "Canonicalizer",
    "NeedsSafePass",
    "b64_lines",
    "clean_body",
    "crlf_chunks",
    "has_bare_lf",
    "reader_over",
    "scan_piece",
    "to_crlf",
]

Emit = Callable[[bytes], object]
_SPOOL_MEMORY = 4 << 20
_MAX_LINE = 998  # RFC 5322 §2.1.1
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_B64_DELETE = bytes(b for b in range(256) if b not in _B64_ALPHABET)


def reader_over(part: PartReader) -> Reader:
    it = part.chunks()

    def fill(_n: int) -> bytes:
        return next(it, b"")

    return Reader(fill)


#: a line feed without a carriage return before it (the search jumps from LF to LF in C: two
#: to three times quicker on text than counting LFs and CRLFs)
_BARE_LF = re.compile(rb"\n(?<!\r\n)")


def crlf_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Normalise line ends to CRLF across chunk borders."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        carry = b""
        if data.endswith(b"\r"):
            carry, data = b"\r", data[:-1]
        if has_bare_lf(data):
            data = to_crlf(data)
        if data:
            yield data
    if carry:
        yield carry


def _reader_chunks(r: Reader) -> Iterator[bytes]:
    while True:
        chunk = r.read()
        if not chunk:
            return
        yield chunk


class _Scan:
    """Tracks whether body bytes are safe to send as 7bit."""

    __slots__ = (
        "cr",
        "cur",
        "from_line",
        "has_8bit",
        "has_nul",
        "maxline",
        "tail",
        "utf8",
        "utf8_ok",
    )

    def __init__(self) -> None:
        self.has_8bit = False
        self.has_nul = False
        self.maxline = 0
        self.cur = 0
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.utf8_ok = True
        self.from_line = False
        self.tail = b"\n"  # the body starts at a line start
        self.cr = False

    def feed(self, chunk: bytes) -> None:
        if not chunk.isascii():
            self.has_8bit = True
            if self.utf8_ok:
                try:
                    self.utf8.decode(chunk)
                except UnicodeDecodeError:
                    self.utf8_ok = False
        if b"\x00" in chunk:
            self.has_nul = True
        if not self.from_line and _has_from_line(self.tail, chunk):
            self.from_line = True
        self.tail = chunk[-5:] if len(chunk) >= 5 else (self.tail + chunk)[-5:]
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            self.cur += len(chunk)
        else:
            first = parts[0]
            longest = self.cur + len(first) - (first.endswith(b"\r") or (not first and self.cr))
            inner = parts[1:-1]
            if max(map(len, inner), default=0) > _MAX_LINE:
                # lengths without the CR of a CRLF line end, for the few long candidates
                longest = max(
                    longest,
                    *(len(p) - p.endswith(b"\r") for p in inner if len(p) > _MAX_LINE),
                )
            self.maxline = max(self.maxline, longest)
            self.cur = len(parts[-1])
        self.cr = chunk.endswith(b"\r")
        self.maxline = max(self.maxline, self.cur - 1 if self.cr else self.cur)

    @property
    def clean(self) -> bool:
        # maxline counts a CR before the LF: a 998-octet CRLF line is re-encoded needlessly,
        # which is harmless; an LF-only line of 999 octets is not let through
        return (
            not self.has_8bit
            and not self.has_nul
            and not self.from_line
            and self.maxline <= _MAX_LINE
        )


_WINDOW = (_MAX_LINE + 1) // 2  # every line of 999+ octets covers an aligned window this long


def _check_lines(data: bytes, cur: int) -> int:
    """Raise NeedsSafePass if CRLF text ``data`` has a line over 998 octets; ``cur`` is the
    length of the line continued from before. Returns the length of the line left open."""
    limit = _MAX_LINE + 1  # segment lengths below include the CR
    first = data.find(b"\n")
    if first < 0:
        cur += len(data)
        if cur > limit:
            raise NeedsSafePass
        return cur
    if cur + first > limit:
        raise NeedsSafePass
    last = data.rfind(b"\n")
    find = data.find
    p = first + 1
    while p + _WINDOW <= last:
        if find(b"\n", p, p + _WINDOW) < 0:
            start = data.rfind(b"\n", 0, p) + 1
            end = find(b"\n", p)
            if end - start > limit:
                raise NeedsSafePass
            p = end + 1
            continue
        p += _WINDOW
    rest = len(data) - last - 1
    if rest > limit:
        raise NeedsSafePass
    return rest


def _has_from_line(tail: bytes, chunk: bytes) -> bool:
    """Does a line start with "From " (mbox tools rewrite those lines, RFC 4155)?"""
    return b"\nFrom " in chunk or b"\nFrom " in tail + chunk[:5]


#: a line feed that is bare, or that starts a line with "From "
_BARE_LF_OR_FROM = re.compile(rb"\n(?:(?<!\r\n)|From )")


def _bare_lf_or_from(data: bytes) -> bool:
    """Does ``data`` have a bare line feed (the line ends need converting)? Raises
    NeedsSafePass when a line inside it starts with "From " (one search finds the first of
    either; only after a bare line feed is there a second one)."""
    m = _BARE_LF_OR_FROM.search(data)
    if m is None:
        return False
    if m.end() - m.start() > 1 or data.find(b"\nFrom ", m.start()) >= 0:
        raise NeedsSafePass
    return True


def to_crlf(data: bytes) -> bytes:
    """LF and CRLF line ends as CRLF; a CR on its own stays as it is."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _py_has_bare_lf(data: bytes) -> bool:
    """Does a line feed in ``data`` have no carriage return before it?"""
    return _BARE_LF.search(data) is not None


def _py_scan_piece(data: bytes, open_line: int) -> tuple[bool, int]:
    """The optimistic signing pass's check of one piece of a body, ``open_line`` being the
    length of the line it continues. Returns (whether an LF has no CR before it, the length of
    the line left open at its end), or (False, -1) when the body needs the careful pass: a
    byte outside ASCII, a NUL, a line inside the piece starting "From ", or a line longer than
    998 octets once its line end is CRLF (a line still open counts without its line end)."""
    if not data.isascii() or b"\x00" in data:
        return False, -1
    try:
        bare = _bare_lf_or_from(data)
        return bare, _check_lines(to_crlf(data) if bare else data, open_line)
    except NeedsSafePass:
        return False, -1


def clean_body(body: bytes) -> bytes | None:
    """A whole body as the optimistic pass writes it when it lets the body through (7-bit, no
    NUL, no line starting "From ", no line over 998 octets): LF and CRLF line ends become
    CRLF, anything else stays as it is. None when the body needs the careful pass. For
    bodies held in memory (the streaming pass does the same chunk by chunk)."""
    if body.startswith(b"From "):
        return None
    bare, open_line = scan_piece(body, 0)
    if open_line < 0:
        return None
    return to_crlf(body) if bare else body


class _B64Encoder:
    __slots__ = ("carry", "emit")

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.carry = b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        if self.carry:
            need = 57 - len(self.carry)
            if len(view) < need:
                self.carry += data
                return
            self.emit(b64_lines(self.carry + view[:need]))
            view = view[need:]
        n = len(view) - len(view) % 57
        self.carry = bytes(view[n:])
        if n:
            self.emit(b64_lines(view[:n]))

    def close(self) -> None:
        if self.carry:
            self.emit(b64_lines(self.carry))
            self.carry = b""


def _py_b64_lines(data: bytes | memoryview) -> bytes:
    """Base64 in 76-character lines, each ending in CRLF (RFC 2045 §6.8)."""
    enc = binascii.b2a_base64(data, newline=False)
    n = len(enc)
    if n <= 76:
        return enc + b"\r\n"
    full = n // 76
    # struct cuts the text into 76-byte lines in one C call
    lines = list(_line_splitter(full).unpack_from(enc))
    if n % 76:
        lines.append(enc[full * 76 :])
    lines.append(b"")
    return b"\r\n".join(lines)


@functools.lru_cache(maxsize=64)
def _line_splitter(count: int) -> struct.Struct:
    return struct.Struct("76s" * count)


def _compiled() -> ModuleType | None:
    # imported by name: the module exists only where the build had a C compiler
    try:
        return importlib.import_module("mailseal.mime._speedups")
    except ImportError:  # pragma: no cover - built without a C compiler
        return None


# The same three functions compiled (mailseal/mime/_speedups.c) where the build had a C
# compiler: the byte loops of large messages run several times quicker, and without the GIL.
_c = _compiled()
b64_lines: Callable[[bytes | memoryview], bytes] = _c.b64_lines if _c else _py_b64_lines
has_bare_lf: Callable[[bytes], bool] = _c.has_bare_lf if _c else _py_has_bare_lf
scan_piece: Callable[[bytes, int], tuple[bool, int]] = _c.scan_piece if _c else _py_scan_piece


class _QPEncoder:
    """Quoted-printable for text: line breaks stay line breaks (CRLF), everything unsafe is
    encoded, and "From " at a line start is protected against mbox munging."""

    __slots__ = ("at_start", "carry", "emit")

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.carry = b""
        self.at_start = True  # the next output begins a line

    def _encode(self, text: bytes) -> None:
        # text: complete lines, LF-terminated (CR before LF removed); a bare CR left here must
        # be encoded, and b2a_qp would take a CR LF pair for a line break, so go line by line
        if b"\r" in text:
            lines = text.split(b"\n")
            out = b"\n".join(
                binascii.b2a_qp(line, quotetabs=False, istext=False, header=False) for line in lines
            )
        else:
            out = binascii.b2a_qp(text, quotetabs=False, istext=True, header=False)
        out = out.replace(b"\n", b"\r\n")
        if self.at_start and out.startswith(b"From "):
            out = b"=46rom " + out[5:]
        out = out.replace(b"\r\nFrom ", b"\r\n=46rom ")
        if out:
            self.at_start = out.endswith(b"\n")
        self.emit(out)

    def write(self, data: bytes) -> None:
        data = self.carry + data if self.carry else data
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) > CHUNK:
                # one huge line: encode it in pieces joined by soft line breaks
                self.carry = b""
                self._encode(data)
                self.emit(b"=\r\n")
            else:
                self.carry = data
            return
        self.carry = data[cut + 1 :]
        self._encode(data[: cut + 1].replace(b"\r\n", b"\n"))

    def close(self) -> None:
        if self.carry:
            self._encode(self.carry)
            self.carry = b""


class _QPDecoder:
    __slots__ = ("carry", "out")

    def __init__(self, out: Callable[[bytes], None]) -> None:
        self.out = out
        self.carry = b""

    def write(self, data: bytes) -> None:
        data = self.carry + data if self.carry else data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.carry = data
            return
        self.carry = data[cut + 1 :]
        self.out(binascii.a2b_qp(data[: cut + 1]))

    def close(self) -> None:
        if self.carry:
            self.out(binascii.a2b_qp(self.carry))
            self.carry = b""


class _B64Decoder:
    __slots__ = ("carry", "out")

    def __init__(self, out: Callable[[bytes], None]) -> None:
        self.out = out
        self.carry = b""

    def write(self, data: bytes) -> None:
        data = self.carry + data.translate(None, _B64_DELETE)
        n = len(data) - len(data) % 4
        self.carry = data[n:]
        if n:
            try:
                self.out(binascii.a2b_base64(data[:n]))
            except binascii.Error as exc:
                raise MalformedMessage(f"a base64 body is corrupt ({exc})") from None

    def close(self) -> None:
        if self.carry.strip(b"="):
            raise MalformedMessage("a base64 body ends in the middle of a group")


class NeedsSafePass(Exception):
    """An optimistic pass met a part that must be re-encoded; start again safely."""


class Canonicalizer:
    """Rewrites one MIME entity into canonical, 7-bit-safe form, emitting it as it goes.

    With ``optimistic=True`` parts that claim to be 7-bit are streamed straight through in one
    pass; if one turns out not to be (8-bit bytes, NUL, an over-long line), the pass stops with
    :class:`NeedsSafePass` and the caller starts over without it, after rewinding its input
    and output. The safe pass spools such parts and decides after seeing them whole.
    """

    def __init__(
        self, emit: Emit, limits: Limits = DEFAULT_LIMITS, *, optimistic: bool = False
    ) -> None:
        self.emit = emit
        self.limits = limits
        self.parts = 0
        self.optimistic = optimistic

    # -- entities ---------------------------------------------------------------------------
    def entity(self, r: Reader, fields: list[HeaderField], depth: int = 0) -> None:
        if depth > self.limits.max_depth:
            raise LimitExceeded(f"MIME parts nested deeper than {self.limits.max_depth}")
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise LimitExceeded(f"more than {self.limits.max_parts} MIME parts")
        ct = H.content_type(fields)
        if ct.maintype == "multipart":
            self._multipart(r, fields, ct, depth)
        elif ct.value == "message/rfc822":
            cte = H.transfer_encoding(fields)
            self._headers(fields, replace_cte="7bit" if cte in ("8bit", "binary") else None)
            self.emit(b"\r\n")
            inner, _sep = read_header_block(r, self.limits)
            # the embedded message's own header block, with its transfer encoding updated
            self._headers_and_body(r, inner, depth + 1)
        else:
            self._leaf(r, fields, ct)

    def _headers(self, fields: list[HeaderField], replace_cte: str | None) -> None:
        if replace_cte is None:
            self.emit(b"".join([f.canonical() for f in fields]))
            return
        out = []
        cte = b"Content-Transfer-Encoding: " + replace_cte.encode() + b"\r\n"
        for f in fields:
            if f.lname == "content-transfer-encoding":
                if cte:
                    out.append(cte)
                    cte = b""
                continue
            out.append(f.canonical())
        out.append(cte)
        self.emit(b"".join(out))

    def _multipart(
        self, r: Reader, fields: list[HeaderField], ct: H.ContentType, depth: int
    ) -> None:
        cte = H.transfer_encoding(fields)
        self._headers(fields, replace_cte="7bit" if cte in ("8bit", "binary") else None)
        self.emit(b"\r\n")
        self._multipart_body(r, ct, depth)

    def _multipart_body(self, r: Reader, ct: H.ContentType, depth: int) -> None:
        boundary = ct.boundary()
        delim = b"--" + boundary
        pre = PartReader(r, boundary, at_line_start=True)
        had_preamble = False
        for chunk in crlf_chunks(pre.chunks()):
            had_preamble = True
            self.emit(chunk)
        if not pre.found:
            raise MalformedMessage(f"the boundary of a {ct.value} part never appears")
        self.emit((b"\r\n" if had_preamble else b"") + delim + b"\r\n")
        closing = pre.closing
        while not closing:
            part = PartReader(r, boundary)
            sub = reader_over(part)
            sub_fields, _sep = read_header_block(sub, self.limits)
            self._headers_and_body(sub, sub_fields, depth + 1)
            while sub.read():
                pass
            closing = part.closing or not part.found
            if closing:
                self.emit(b"\r\n" + delim + b"--\r\n")
            else:
                self.emit(b"\r\n" + delim + b"\r\n")
        # epilogue: up to the end of the enclosing part
        for chunk in crlf_chunks(_reader_chunks(r)):
            self.emit(chunk)

    def _headers_and_body(self, r: Reader, fields: list[HeaderField], depth: int) -> None:
        ct = H.content_type(fields)
        if ct.maintype == "multipart" or ct.value == "message/rfc822":
            self.entity(r, fields, depth)
        else:
            self.parts += 1
            if self.parts > self.limits.max_parts:
                raise LimitExceeded(f"more than {self.limits.max_parts} MIME parts")
            self._leaf(r, fields, ct)

    # -- leaves -----------------------------------------------------------------------------
    def _leaf(self, r: Reader, fields: list[HeaderField], ct: H.ContentType) -> None:
        self._leaf_body(r, fields, ct, write_headers=True)

    def _leaf_body(
        self, r: Reader, fields: list[HeaderField], ct: H.ContentType, *, write_headers: bool
    ) -> None:
        cte = H.transfer_encoding(fields)
        text = ct.maintype == "text"
        if cte in ("8bit", "binary"):
            target = "quoted-printable" if text else "base64"
            if write_headers:
                self._headers(self._with_charset(fields, ct, None), replace_cte=target)
                self.emit(b"\r\n")
            self._encode(_reader_chunks(r), target, text)
            return
        if self.optimistic and cte in ("7bit", "quoted-printable", "base64"):
            if write_headers:
                self._headers(fields, replace_cte=None)
                if not fields:
                    self.emit(b"Content-Type: text/plain; charset=us-ascii\r\n")
                self.emit(b"\r\n")
            self._stream_clean(r)
            return
        # 7bit, quoted-printable, base64 or unknown: decide after seeing the whole body
        import tempfile  # here: it loads shutil, bz2 and lzma, which the usual paths never need

        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
            scan = _Scan()
            for chunk in _reader_chunks(r):
                scan.feed(chunk)
                spool.write(chunk)
            spool.seek(0)
            if scan.clean or cte not in ("7bit", "quoted-printable", "base64"):
                if write_headers:
                    self._headers(fields, replace_cte=None)
                    if not fields:
                        self.emit(b"Content-Type: text/plain; charset=us-ascii\r\n")
                    self.emit(b"\r\n")
                for chunk in crlf_chunks(_file_chunks(spool)):
                    self.emit(chunk)
                return
            target = "quoted-printable" if text else "base64"
            if write_headers:
                charset = None
                if text and not ct.param("charset") and scan.has_8bit:
                    charset = "utf-8" if scan.utf8_ok else "unknown-8bit"
                self._headers(self._with_charset(fields, ct, charset), replace_cte=target)
                self.emit(b"\r\n")
            self._encode(self._decoded(_file_chunks(spool), cte), target, text)

    def _stream_clean(self, r: Reader) -> None:
        """Pass a body through with CRLF line ends, or raise NeedsSafePass."""
        emit = self.emit
        carry = b""
        open_line = 0  # length of the line still open at the end of the previous chunk
        tail = b"\n"
        while True:
            chunk = r.read()
            if not chunk:
                break
            # a "From " line across the chunk border (scan_piece finds those inside it)
            if b"\nFrom " in tail + chunk[:5]:
                raise NeedsSafePass
            data = carry + chunk if carry else chunk
            carry = b""
            if data.endswith(b"\r"):
                carry, data = b"\r", data[:-1]
            bare, open_line = scan_piece(data, open_line)
            if open_line < 0:
                raise NeedsSafePass
            if bare:
                data = to_crlf(data)
            tail = chunk[-5:] if len(chunk) >= 5 else (tail + chunk)[-5:]
            emit(data)
        if carry:
            emit(carry)

    def _with_charset(
        self, fields: list[HeaderField], ct: H.ContentType, charset: str | None
    ) -> list[HeaderField]:
        if ct.present:
            return fields
        value = f"Content-Type: text/plain; charset={charset or 'us-ascii'}\r\n".encode()
        return [*fields, HeaderField("Content-Type", [value])]

    @staticmethod
    def _decoded(chunks: Iterator[bytes], cte: str) -> Iterator[bytes]:
        if cte not in ("quoted-printable", "base64"):
            yield from chunks
            return
        out: list[bytes] = []
        dec: _QPDecoder | _B64Decoder = (
            _QPDecoder(out.append) if cte == "quoted-printable" else _B64Decoder(out.append)
        )
        for chunk in chunks:
            dec.write(chunk)
            yield from out
            out.clear()
        dec.close()
        yield from out

    def _encode(self, chunks: Iterator[bytes], target: str, text: bool) -> None:
        enc: _QPEncoder | _B64Encoder = (
            _QPEncoder(self.emit) if target == "quoted-printable" else _B64Encoder(self.emit)
        )
        for chunk in chunks:
            enc.write(chunk)
        enc.close()


def _file_chunks(f: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            return
        yield chunk
