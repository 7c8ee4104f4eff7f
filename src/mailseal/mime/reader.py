"""Bounded, streaming readers for MIME: header blocks and parts delimited by boundaries.

Nothing here holds more than one chunk of a body, one header block, or one (limited) line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO

from mailseal.errors import LimitExceeded, MalformedMessage
from mailseal.limits import DEFAULT_LIMITS, Limits

__all__ = ["HeaderField", "PartReader", "Reader", "read_header_block", "split_header_block"]

CHUNK = 1 << 20
_MAX_DELIMITER_LINE = 64 * 1024
_FIELD_NAME = re.compile(rb"[!-9;-~]+")
# one header field: its name, the rest of its line, and any continuation lines (a name never
# starts with a space or a tab, so where a field ends is unambiguous and the match is linear)
_FIELD = re.compile(rb"(?m)^(([!-9;-~]++)[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*)")
_ONE_FIELD = rb"[!-9;-~]++[ \t]*+:[^\n]*+\n(?:[ \t][^\n]*+\n)*+"
# a field of the entity rather than of the message: Content-*, and MIME-Version
_ENTITY_NAME = rb"(?i:content-|mime-version[ \t]*:)"
# a whole header block in the usual order: the message's fields, then the entity's (one way
# to match it at most, and possessive throughout: linear, and a quick no for any other order)
_ENTITY_FIELDS_LAST = re.compile(
    rb"((?:(?!" + _ENTITY_NAME + rb")" + _ONE_FIELD + rb")*+)"
    rb"((?:(?=" + _ENTITY_NAME + rb")" + _ONE_FIELD + rb")*+)"
)


class Reader:
    """A buffered byte source with push-back."""

    __slots__ = ("_buf", "_eof", "_fill", "consumed")

    def __init__(self, fill: Callable[[int], bytes]) -> None:
        self._fill = fill
        self._buf = b""
        self._eof = False
        self.consumed = 0

    @classmethod
    def from_stream(cls, stream: BinaryIO) -> Reader:
        return cls(stream.read)

    @classmethod
    def from_bytes(cls, data: bytes) -> Reader:
        """A reader over ``data`` held in memory (one buffer, no copies per read)."""
        pending = [data]

        def fill(_size: int) -> bytes:
            return pending.pop() if pending else b""

        return cls(fill)

    def _more(self, size: int = CHUNK) -> bool:
        if self._eof:
            return False
        data = self._fill(size)
        if not data:
            self._eof = True
            return False
        self._buf = self._buf + data if self._buf else data
        return True

    def unread(self, data: bytes) -> None:
        if data:
            self._buf = data + self._buf
            self.consumed -= len(data)

    def read(self, size: int = CHUNK) -> bytes:
        if not self._buf and not self._more(size):
            return b""
        out, self._buf = self._buf[:size], self._buf[size:]
        self.consumed += len(out)
        return out

    def peek(self, size: int) -> bytes:
        while len(self._buf) < size and self._more():
            pass
        return self._buf[:size]

    def readline(self, limit: int, what: str = "line") -> bytes:
        """One line including its LF (or the rest at EOF); LimitExceeded past ``limit``."""
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                if i + 1 > limit:
                    raise LimitExceeded(f"a {what} is longer than {limit} bytes")
                out, self._buf = self._buf[: i + 1], self._buf[i + 1 :]
                self.consumed += len(out)
                return out
            if len(self._buf) > limit:
                raise LimitExceeded(f"a {what} is longer than {limit} bytes")
            start = len(self._buf)
            if not self._more():
                out, self._buf = self._buf, b""
                self.consumed += len(out)
                return out


def _undecided_from(buf: bytes, delim: bytes) -> int:
    """Where the bytes start that may still turn out to begin a delimiter line (``buf`` holds
    no whole one): the line end before a last line that is a beginning of ``delim``, or a CR
    at the very end, else the end. The CR of a CRLF line end before a delimiter belongs to the
    delimiter, so it is kept back with it."""
    n = len(buf)
    lf = buf.rfind(b"\n", max(0, n - len(delim) - 1))
    # only the last LF can matter: a delimiter line has no LF of its own
    if lf < 0 or not delim.startswith(buf[lf + 1 :]):
        # a CR at the very end may be followed by the LF of a delimiter's line end
        return n - 1 if buf.endswith(b"\r") else n
    return lf - 1 if lf > 0 and buf[lf - 1] == 0x0D else lf


class PartReader:
    """Reads one MIME part's bytes up to the next delimiter line of ``boundary``.

    The CRLF (or LF) before the delimiter belongs to the delimiter (RFC 2046 §5.1.1) and is not
    returned. Afterwards :attr:`closing` tells whether it was the close delimiter
    (``--boundary--``) and :attr:`found` whether any delimiter was seen at all.
    """

    __slots__ = ("_at_start", "_delim", "_src", "closing", "done", "found")

    def __init__(self, src: Reader, boundary: bytes, *, at_line_start: bool = True) -> None:
        self._src = src
        self._delim = b"--" + boundary
        self._at_start = at_line_start
        self.done = False
        self.found = False
        self.closing = False

    def _delimiter_end(self, buf: bytes, j: int) -> int | None:
        """If ``buf[j:]`` starts a real delimiter line, the index after its line end;
        -1 when more data is needed to decide; None when it is not a delimiter."""
        k = j + len(self._delim)
        tail = buf[k : k + 2]
        if tail == b"-":
            return -1  # "--boundary-" at the end of the data read so far: wait for more
        closing = tail == b"--"
        if closing:
            k += 2
        # transport padding (RFC 2046): optional linear white space, then CRLF
        while k < len(buf) and buf[k] in (0x20, 0x09):
            k += 1
        if k >= len(buf):
            return -1
        if buf[k] == 0x0D:
            if k + 1 >= len(buf):
                return -1
            if buf[k + 1] == 0x0A:
                self.closing = closing
                return k + 2
            return None
        if buf[k] == 0x0A:
            self.closing = closing
            return k + 1
        if closing:
            # "--boundary--" followed by text on the same line: still a close delimiter
            self.closing = True
            nl = buf.find(b"\n", k)
            return -1 if nl < 0 else nl + 1
        return None

    def chunks(self) -> Iterator[bytes]:
        """The part's bytes in chunks; consumes the delimiter line at the end."""
        if self.done:
            return
        src = self._src
        delim = self._delim
        dl = len(delim)
        buf = b""
        search = 0
        first = self._at_start
        eof = False
        while True:
            j = -1
            if first:
                if buf.startswith(delim):
                    j = 0
                elif len(buf) >= dl or not delim.startswith(buf) or eof:
                    first = False
            if j < 0:
                k = buf.find(b"\n" + delim, search)
                j = k + 1 if k >= 0 else -1
            if j >= 0:
                end = self._delimiter_end(buf, j)
                if end == -1 and len(buf) - j > _MAX_DELIMITER_LINE:
                    end = None
                if end == -1 and not eof:
                    more = src.read()
                    if more:
                        buf += more
                    else:
                        eof = True
                    continue
                if end == -1:
                    end = len(buf)
                    self.closing = buf[j + dl : j + dl + 2] == b"--"
                if end is None:
                    first = False
                    search = j
                    continue
                stop = j
                if stop > 0 and buf[stop - 1] == 0x0A:
                    stop -= 1
                    if stop > 0 and buf[stop - 1] == 0x0D:
                        stop -= 1
                if stop > 0:
                    yield buf[:stop]
                src.unread(buf[end:])
                self.found = True
                self.done = True
                return
            if eof:
                if buf:
                    yield buf
                self.done = True
                return
            if not first:
                cut = _undecided_from(buf, delim)
                if cut > 0:
                    # usually the whole buffer: handed on without a copy
                    yield buf if cut == len(buf) else buf[:cut]
                    buf = buf[cut:] if cut < len(buf) else b""
                    search = 0
            more = src.read()
            if more:
                buf = buf + more if buf else more
            else:
                eof = True

    def read_all(self, limit: int, what: str) -> bytes:
        out = []
        total = 0
        for chunk in self.chunks():
            total += len(chunk)
            if total > limit:
                raise LimitExceeded(f"the {what} is larger than {limit} bytes")
            out.append(chunk)
        return b"".join(out)


class HeaderField:
    """One header field: its name and the raw bytes of its (possibly folded) lines."""

    __slots__ = ("_canon", "_value", "lines", "lname", "name")

    def __init__(self, name: str, lines: list[bytes], canon: bytes | None = None) -> None:
        self.name = name
        self.lname = name.lower()
        self.lines = lines
        # the canonical form, when the reader already knows it (a CRLF-clean header block)
        self._canon = canon
        self._value: str | None = None

    def add_line(self, line: bytes) -> None:
        """Append a continuation line (while the header block is being read)."""
        self.lines.append(line)
        self._value = None

    def raw(self) -> bytes:
        return b"".join(self.lines)

    def value(self) -> str:
        """The unfolded value as text (undecodable bytes kept as surrogates)."""
        if self._value is not None:
            return self._value
        lines = self.lines
        if len(lines) == 1:
            raw = lines[0].rstrip(b"\r\n")
        else:
            raw = b"".join([line.rstrip(b"\r\n") for line in lines])
        _, _, val = raw.partition(b":")
        self._value = text = val.strip().decode("utf-8", "surrogateescape")
        return text

    def canonical(self) -> bytes:
        """The field's lines with CRLF line ends."""
        if self._canon is not None:
            return self._canon
        lines = self.lines
        if len(lines) == 1 and lines[0].endswith(b"\r\n") and b"\r" not in lines[0][:-2]:
            return lines[0]
        return b"".join(line.rstrip(b"\r\n") + b"\r\n" for line in lines)


_BLANK_LINE = re.compile(rb"\n\r?\n")


def _block_end(buf: bytes, limits: Limits) -> re.Match[bytes] | None:
    """The blank line after a header block at the start of ``buf`` that is within the limits
    (the block is not looked at otherwise); None when there is none."""
    m = _BLANK_LINE.search(buf)
    if m is None or m.end() > limits.max_header_block:
        return None
    end = m.start() + 1
    if buf.count(b"\n", 0, end) > limits.max_header_fields:
        return None
    if (
        end >= limits.max_header_line
        and max(map(len, buf[:end].split(b"\n"))) >= limits.max_header_line
    ):
        return None
    return m


def _fields_of(block: bytes) -> list[tuple[bytes, bytes]] | None:
    """Each field's text and name, when ``block`` is nothing but well-formed header fields."""
    found: list[tuple[bytes, bytes]] = _FIELD.findall(block)
    # the fields found follow each other without a gap: together they are the whole block
    return found if sum([len(text) for text, _name in found]) == len(block) else None


def _fast_header_block(
    src: Reader, limits: Limits
) -> tuple[list[HeaderField], bytes | None] | None:
    """The common case in one pass over the buffer: a well-formed header block followed by a
    blank line. None (nothing consumed) sends anything else to the line-by-line reader."""
    buf = src.peek(8192)
    m = _block_end(buf, limits)
    if m is None:
        return None
    block = buf[: m.start() + 1]
    found = _fields_of(block)
    if found is None:
        return None
    # every line ends in CRLF and no CR stands alone: each field is already canonical
    crlf = block.count(b"\r") == block.count(b"\r\n") == block.count(b"\n")
    if b"\n " in block or b"\n\t" in block:
        fields = [_folded(name, text, crlf) for text, name in found]
    elif crlf:
        fields = [HeaderField(name.decode("ascii"), [text], text) for text, name in found]
    else:
        fields = [HeaderField(name.decode("ascii"), [text]) for text, name in found]
    sep = buf[m.start() + 1 : m.end()]
    src.read(m.end())
    return fields, sep


def _folded(name: bytes, text: bytes, crlf: bool) -> HeaderField:
    # a folded field keeps one entry per physical line, as the line reader does
    lines = [x + b"\n" for x in text.split(b"\n")[:-1]]
    return HeaderField(name.decode("ascii"), lines, text if crlf else None)


def split_header_block(
    data: bytes, limits: Limits = DEFAULT_LIMITS
) -> tuple[bytes, tuple[HeaderField, ...], int] | None:
    """Split the header block of a message held in memory in one pass, when the block is
    well-formed and already canonical (every line ends in CRLF, as does the blank line after
    it): (the transport fields as bytes, the Content-* fields, where the body starts).

    This is :func:`read_header_block` followed by
    :func:`~mailseal.mime.sign.split_message_headers` (MIME-Version belongs to neither side),
    without a field object for each transport field. None for any other message, which those
    two functions handle.
    """
    buf = data[:8192]
    m = _block_end(buf, limits)
    if m is None or m.end() - m.start() != 3:  # the blank line is a CRLF
        return None
    block = buf[: m.start() + 1]
    if not block.count(b"\r") == block.count(b"\r\n") == block.count(b"\n"):
        return None
    layout = _ENTITY_FIELDS_LAST.fullmatch(block)
    if layout is not None:
        # the usual order: every transport field, then MIME-Version and the Content-* fields
        return layout.group(1), _entity_fields_of(layout.group(2)), m.end()
    found = _fields_of(block)
    if found is None:
        return None
    transport = []
    entity = []
    for text, name in found:
        lname = name.lower()
        if lname.startswith(b"content-"):
            entity.append(text)
        elif lname != b"mime-version":
            transport.append(text)
    return b"".join(transport), _entity_fields_of(b"".join(entity)), m.end()


def _entity_fields_of(text: bytes) -> tuple[HeaderField, ...]:
    return _entity_fields_seen(text) if len(text) <= 1024 else _entity_fields(text)


def _entity_fields(text: bytes) -> tuple[HeaderField, ...]:
    """The Content-* fields among MIME-Version and Content-* fields (CRLF-clean)."""
    return tuple(
        [
            _canonical_field(name, field)
            for field, name in _FIELD.findall(text)
            if name.lower() != b"mime-version"
        ]
    )


#: A client writes the same Content-* fields on every message of a kind (an encrypted message,
#: a signed one): those already read are not read again. Field objects are not changed once a
#: header block has been read, so they can be shared.
_entity_fields_seen = functools.lru_cache(maxsize=64)(_entity_fields)


def _canonical_field(name: bytes, text: bytes) -> HeaderField:
    """A field from a CRLF-clean block."""
    if text.find(b"\n") == len(text) - 1:
        return HeaderField(name.decode("ascii"), [text], text)
    return _folded(name, text, True)


def read_header_block(
    src: Reader, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[HeaderField], bytes | None]:
    """Read a header block up to and including the blank line.

    Returns the fields and the blank separator line as read (None when the input ended inside
    the headers, which RFC 5322 allows for a message without a body). When the first line is
    not a header field at all, nothing is consumed and no fields are returned.
    """
    fast = _fast_header_block(src, limits)
    if fast is not None:
        return fast
    return _header_block_by_lines(src, limits)


def _header_block_by_lines(src: Reader, limits: Limits) -> tuple[list[HeaderField], bytes | None]:
    """The general reader behind :func:`read_header_block`, one line at a time."""
    fields: list[HeaderField] = []
    total = 0
    first = True
    while True:
        line = src.readline(limits.max_header_line, "header line")
        if not line:
            return fields, None
        total += len(line)
        if total > limits.max_header_block:
            raise LimitExceeded(f"a header block is larger than {limits.max_header_block} bytes")
        if line in (b"\r\n", b"\n"):
            return fields, line
        if line[0] in (0x20, 0x09):
            if not fields:
                if first:
                    src.unread(line)
                    return [], None
                raise MalformedMessage("a header continuation line has no field to continue")
            fields[-1].add_line(line)
            continue
        name, colon, _ = line.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name.rstrip(b" \t")):
            if first:
                src.unread(line)
                return [], None
            # A body that starts without the blank line: treat this line as the body's first.
            src.unread(line)
            return fields, b""
        first = False
        if len(fields) >= limits.max_header_fields:
            raise LimitExceeded(f"more than {limits.max_header_fields} header fields")
        fields.append(HeaderField(name.rstrip(b" \t").decode("ascii"), [line]))
