"""S/MIME signing over MIME (RFC 8551 §3.5): detached multipart/signed and opaque signed-data."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Callable, Sequence
from typing import BinaryIO, Protocol

from mailseal._background import BackgroundFeed, fan_out
from mailseal._memo import per_object
from mailseal.cms.algorithms import DIGESTS
from mailseal.cms.signed import (
    DER_LIMIT,
    OpaqueSignedWriter,
    PreparedSigner,
    encode_signed_data,
)
from mailseal.errors import InputError
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime import headers as H
from mailseal.mime.canon import Canonicalizer, NeedsSafePass, _B64Encoder, b64_lines, clean_body
from mailseal.mime.reader import HeaderField, Reader, read_header_block, split_header_block

__all__ = ["SMALL_MAX", "sign_small", "sign_stream", "split_message_headers", "transport_bytes"]

_SPOOL_MEMORY = 8 << 20
#: The largest message held in memory that is signed (:func:`sign_small`) or decrypted
#: (:func:`mailseal.mime.envelope.decrypt_bytes`) in one pass.
SMALL_MAX = 1 << 20
_DEFAULT_TYPE = b"Content-Type: text/plain; charset=us-ascii\r\n"


def split_message_headers(
    fields: list[HeaderField],
) -> tuple[list[HeaderField], list[HeaderField]]:
    """(transport headers that stay outside, Content-* headers of the signed entity)."""
    outer: list[HeaderField] = []
    inner: list[HeaderField] = []
    for f in fields:
        lname = f.lname
        if lname.startswith("content-"):
            inner.append(f)
        elif lname != "mime-version":
            outer.append(f)
    return outer, inner


def transport_bytes(fields: Sequence[HeaderField]) -> bytes:
    """A message's transport header fields (what stays outside an S/MIME layer), canonical."""
    outer, _ = split_message_headers(list(fields))
    return b"".join([f.canonical() for f in outer])


def _micalg(signers: Sequence[PreparedSigner]) -> str:
    names: list[str] = []
    for s in signers:
        m = DIGESTS[s.digest].micalg
        if m not in names:
            names.append(m)
    return ",".join(names)


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class _CMSWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class Base64Body:
    """The base64 body of an ``application/pkcs7-mime`` part: a streaming CMS writer feeding a
    base64 encoder into ``sink``. When canonicalisation has to start over, :attr:`rewind`
    truncates what was written and :meth:`emitter` makes a fresh writer; ``rewind`` is None
    when the sink cannot be rewound (the canonicaliser then uses its safe pass only)."""

    def __init__(
        self, sink: BinaryIO, make_writer: Callable[[Callable[[bytes], None]], _CMSWriter]
    ) -> None:
        self._sink = sink
        self._make = make_writer
        self._mark = sink.tell() if _seekable(sink) else None
        self._current: tuple[_CMSWriter, BackgroundFeed, _B64Encoder] | None = None
        self.rewind: Callable[[], None] | None = self._rewind if self._mark is not None else None

    def emitter(self) -> Callable[[bytes], None]:
        self.abort()
        encoder = _B64Encoder(self._sink.write)
        # a large body is base64-encoded and written in a second thread while the CMS
        # writer prepares what follows
        feed = BackgroundFeed(encoder.write)
        writer = self._make(feed)
        self._current = (writer, feed, encoder)
        return writer.write

    def _rewind(self) -> None:
        assert self._mark is not None
        self.abort()  # nothing may be written after the truncation
        self._sink.seek(self._mark)
        self._sink.truncate()

    def close(self) -> None:
        assert self._current is not None
        writer, feed, encoder = self._current
        writer.close()
        feed.close()
        encoder.close()
        self._current = None

    def abort(self) -> None:
        """Drop the current writer and wait until its output thread, if any, has stopped."""
        if self._current is not None:
            writer, feed, _ = self._current
            self._current = None
            writer.abort()
            feed.abort(wait=True)


def _canonicalize(
    source: BinaryIO,
    first: tuple[Reader, list[HeaderField], int | None],
    emit_factory: Callable[[], Callable[[bytes], None]],
    rewind_output: Callable[[], None] | None,
    limits: Limits,
) -> None:
    """Canonicalise the entity in ``source`` through a fresh emitter.

    When both ``source`` and the output can be rewound, a single optimistic pass is tried first
    (parts that are already 7-bit clean stream straight through); otherwise, or when that pass
    meets a part that needs re-encoding, the safe pass runs.
    """
    r, inner, start = first
    if start is not None and rewind_output is not None:
        try:
            Canonicalizer(emit_factory(), limits, optimistic=True).entity(r, inner)
            return
        except NeedsSafePass:
            rewind_output()
            source.seek(start)
            r = Reader.from_stream(source)
            fields, _sep = read_header_block(r, limits)
            _outer, inner = split_message_headers(fields)
    Canonicalizer(emit_factory(), limits).entity(r, inner)


def _detached_head(head: bytes, signers: Sequence[PreparedSigner], boundary: bytes) -> bytes:
    """The multipart/signed header and preamble, up to the first part."""
    return (
        head
        + b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
        + b' micalg="'
        + _micalg(signers).encode()
        + b'"; boundary="'
        + boundary
        + b'"\r\n\r\nThis is an S/MIME signed message.\r\n\r\n--'
        + boundary
        + b"\r\n"
    )


def _detached_tail(boundary: bytes, cms: bytes, signers: Sequence[PreparedSigner]) -> bytes:
    """The signature part and the closing delimiter, after the signed entity."""
    lines = _shared_lines(signers[0]).lines(cms) if len(signers) == 1 else b64_lines(cms)
    return b"".join((b"\r\n--", boundary, _SIGNATURE_PART, lines, b"--", boundary, b"--\r\n"))


_SIGNATURE_PART = (
    b'\r\nContent-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
    b"Content-Description: S/MIME Cryptographic Signature\r\n\r\n"
)


class _SharedLines:
    """One signer's detached SignedData begins the same way in every message (the headers,
    the certificates; what changes is in the SignerInfo at the end), so the base64 lines of
    that beginning are kept and only the rest is encoded. The shared beginning is learnt by
    comparing two signatures in a row, and checked byte for byte before each use."""

    __slots__ = ("known", "last")

    def __init__(self) -> None:
        self.last = b""
        #: (the shared beginning, a whole number of 57-byte lines; its base64 lines)
        self.known = (b"", b"")

    def lines(self, der: bytes) -> bytes:
        """``b64_lines(der)``."""
        prefix, text = self.known
        if prefix and len(der) > len(prefix) and der.startswith(prefix):
            return text + b64_lines(der[len(prefix) :])
        out = b64_lines(der)
        last, self.last = self.last, der
        # how many whole lines the two encodings share (at least one byte is left after them)
        lo, hi = 0, (min(len(last), len(der)) - 1) // 57
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if last[: mid * 57] == der[: mid * 57]:
                lo = mid
            else:
                hi = mid - 1
        if lo:
            self.known = (der[: lo * 57], out[: lo * 78])  # 76 characters and CRLF a line
        return out


@per_object(maxsize=16)
def _shared_lines(signer: PreparedSigner) -> _SharedLines:
    return _SharedLines()


_OPAQUE_HEAD = (
    b"Content-Type: application/pkcs7-mime; smime-type=signed-data;"
    + b' name="smime.p7m"\r\n'
    + b"Content-Transfer-Encoding: base64\r\n"
    + b'Content-Disposition: attachment; filename="smime.p7m"\r\n\r\n'
)


def _new_boundary() -> bytes:
    return b"----=_mailseal_" + os.urandom(16).hex().encode()


def sign_stream(
    source: BinaryIO,
    sink: BinaryIO,
    signers: Sequence[PreparedSigner],
    *,
    opaque: bool = False,
    when: _dt.datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """Read a message or MIME entity from ``source`` and write it signed to ``sink``."""
    if not signers:
        raise InputError("at least one signer is needed")
    start = source.tell() if _seekable(source) else None
    r = Reader.from_stream(source)
    if not r.peek(1):
        raise InputError("the input is empty: there is nothing to sign")
    fields, _sep = read_header_block(r, limits)
    outer, inner = split_message_headers(fields)
    first = (r, inner, start)
    src = source
    names = list(dict.fromkeys(s.digest for s in signers))
    hashers: dict[str, hashlib._Hash] = {}

    def new_hashers() -> list[Callable[[bytes], None]]:
        hashers.clear()
        hashers.update({n: hashlib.new(n) for n in names})
        return [h.update for h in hashers.values()]

    def out(data: bytes) -> None:
        sink.write(data)

    head = b"".join(f.canonical() for f in outer) + b"MIME-Version: 1.0\r\n"

    if not opaque:
        boundary = _new_boundary()
        out(_detached_head(head, signers, boundary))
        mark = sink.tell() if _seekable(sink) else None
        # a large entity is hashed in a second thread while it is checked and written
        feeds: list[BackgroundFeed] = []

        def emitter() -> Callable[[bytes], None]:
            for old in feeds:
                old.abort()
            feed = BackgroundFeed(fan_out(new_hashers()))
            feeds[:] = [feed]
            write = sink.write

            def emit(data: bytes) -> None:
                feed(data)
                write(data)

            return emit

        def rewind() -> None:
            assert mark is not None
            sink.seek(mark)
            sink.truncate()

        try:
            _canonicalize(src, first, emitter, rewind if mark is not None else None, limits)
            feeds[-1].close()
        finally:
            for feed in feeds:
                feed.abort()
        digests = {name: h.digest() for name, h in hashers.items()}
        cms, _ = encode_signed_data(signers, digests, when=when)
        out(_detached_tail(boundary, cms, signers))
        return

    out(head + _OPAQUE_HEAD)
    body = Base64Body(sink, lambda write: OpaqueSignedWriter(write, signers, when=when))
    try:
        _canonicalize(src, first, body.emitter, body.rewind, limits)
        body.close()
    finally:
        body.abort()


def _entity_head(inner: Sequence[HeaderField]) -> bytes | None:
    """The signed entity's header block (and the blank line), when its Content-* fields let
    :func:`sign_small` sign it: one part, a transfer encoding that is 7-bit already."""
    ct = H.content_type(inner)
    if ct.maintype == "multipart" or ct.value == "message/rfc822":
        return None
    if H.transfer_encoding(inner) not in ("7bit", "quoted-printable", "base64"):
        return None
    return b"".join([f.canonical() for f in inner] or [_DEFAULT_TYPE]) + b"\r\n"


#: for the Content-* fields :func:`~mailseal.mime.reader.split_header_block` has seen before
#: (it hands out the same tuple for the same text)
_entity_head_seen = per_object(maxsize=64)(_entity_head)


def sign_small(
    message: bytes,
    signers: Sequence[PreparedSigner],
    *,
    opaque: bool = False,
    when: _dt.datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes | None:
    """Sign a message held in memory in one pass, when it is the common shape: one part (not
    multipart, not message/rfc822) whose body needs no re-encoding, at most
    :data:`SMALL_MAX` bytes. Returns None for anything else, which :func:`sign_stream`
    handles; what it returns is byte for byte what :func:`sign_stream` writes."""
    if not signers or not message or len(message) > SMALL_MAX:
        return None
    inner: Sequence[HeaderField]
    split = split_header_block(message, limits)
    if split is not None:
        transport, inner, start = split
        rest = message[start:]
    else:
        r = Reader.from_bytes(message)
        fields, sep = read_header_block(r, limits)
        if sep not in (b"\r\n", b"\n"):
            return None
        outer, inner = split_message_headers(fields)
        transport = b"".join([f.canonical() for f in outer])
        rest = r.read(SMALL_MAX)
    entity_head = _entity_head_seen(inner) if isinstance(inner, tuple) else _entity_head(inner)
    if entity_head is None:
        return None
    body = clean_body(rest)
    if body is None:
        return None
    entity = entity_head + body
    if opaque and len(entity) > DER_LIMIT:
        return None
    digests: dict[str, bytes] = {s.digest: b"" for s in signers}
    for name in digests:
        digests[name] = hashlib.new(name, entity).digest()
    head = transport + b"MIME-Version: 1.0\r\n"
    if opaque:
        prefix, suffix = encode_signed_data(signers, digests, when=when, content_length=len(entity))
        return head + _OPAQUE_HEAD + b64_lines(prefix + entity + suffix)
    cms, _ = encode_signed_data(signers, digests, when=when)
    boundary = _new_boundary()
    return _detached_head(head, signers, boundary) + entity + _detached_tail(boundary, cms, signers)
