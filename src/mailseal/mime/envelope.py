"""S/MIME encryption, decryption and compression over MIME (RFC 8551 §3.3, §3.6).

``encrypt_stream`` canonicalises the entity (transport headers stay outside, as for signing)
and writes ``application/pkcs7-mime; smime-type=enveloped-data`` (AES-CBC) or
``smime-type=authEnveloped-data`` (AES-GCM). ``decrypt_stream`` and ``decompress_stream`` read
any of the forms clients send: pkcs7-mime, x-pkcs7-mime, octet-stream named ``*.p7m``/``*.p7z``,
or raw DER.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal, NamedTuple

from cryptography import x509

from mailseal._memo import per_object
from mailseal._values import quick_init
from mailseal.cms.compressed import CompressWriter
from mailseal.cms.compressed import decompress_stream as _decompress
from mailseal.cms.content import ContentCipher
from mailseal.cms.enveloped import (
    EnvelopeInfo,
    EnvelopeRecipient,
    EnvelopeWriter,
    open_envelope,
    open_envelope_bytes,
)
from mailseal.errors import InputError, NotSMIME
from mailseal.keys.base import Decrypter
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime import headers as H
from mailseal.mime.body import _b64_whole, _B64Reader, _looks_like_der_cms, _name_param
from mailseal.mime.canon import _reader_chunks, crlf_chunks
from mailseal.mime.reader import HeaderField, Reader, read_header_block, split_header_block
from mailseal.mime.sign import (
    SMALL_MAX,
    Base64Body,
    _canonicalize,
    _seekable,
    split_message_headers,
    transport_bytes,
)

__all__ = [
    "SMimeKind",
    "classify",
    "compress_stream",
    "decompress_stream",
    "decrypt_bytes",
    "decrypt_stream",
    "encrypt_stream",
]

SMimeKind = Literal[
    "enveloped-data", "authEnveloped-data", "signed-data", "compressed-data", "multipart-signed"
]
_MIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")


def _pkcs7_headers(outer: list[HeaderField], smime_type: str, name: str, description: str) -> bytes:
    return (
        b"".join(f.canonical() for f in outer)
        + b"MIME-Version: 1.0\r\n"
        + f"Content-Type: application/pkcs7-mime; smime-type={smime_type};"
        f' name="{name}"\r\n'.encode()
        + b"Content-Transfer-Encoding: base64\r\n"
        + f'Content-Disposition: attachment; filename="{name}"\r\n'.encode()
        + f"Content-Description: {description}\r\n\r\n".encode()
    )


def _start(
    source: BinaryIO, limits: Limits
) -> tuple[Reader, list[HeaderField], list[HeaderField], int | None]:
    start = source.tell() if _seekable(source) else None
    r = Reader.from_stream(source)
    if not r.peek(1):
        raise InputError("the input is empty")
    fields, _sep = read_header_block(r, limits)
    outer, inner = split_message_headers(fields)
    return r, outer, inner, start


def encrypt_stream(
    source: BinaryIO,
    sink: BinaryIO,
    recipients: Sequence[EnvelopeRecipient],
    cipher: ContentCipher,
    *,
    limits: Limits = DEFAULT_LIMITS,
    raw: bool = False,
) -> None:
    """Encrypt the message or entity in ``source`` to ``recipients``; write S/MIME to ``sink``.

    ``raw=True`` encrypts the entity below the transport headers exactly as it is (for content
    that is already canonical, such as a signed message) instead of canonicalising it.
    """
    r, outer, inner, start = _start(source, limits)
    smime_type = "authEnveloped-data" if cipher.aead else "enveloped-data"
    sink.write(_pkcs7_headers(outer, smime_type, "smime.p7m", "S/MIME Encrypted Message"))
    body = Base64Body(sink, lambda write: EnvelopeWriter(write, cipher, recipients))

    ct = H.content_type(inner)
    light = (
        not raw
        and ct.present
        and ct.maintype not in ("multipart", "message")
        and H.transfer_encoding(inner) != "binary"
    )
    try:
        if raw or light:
            # Inside encryption no relay can touch the content (RFC 8551 §3.1.2 asks for no
            # transfer encoding), so a single part only needs CRLF line ends; already-canonical
            # content (a signed message) is taken as it is.
            emit = body.emitter()
            emit(b"".join(f.canonical() for f in inner) + b"\r\n")
            chunks = _reader_chunks(r)
            for chunk in chunks if raw else crlf_chunks(chunks):
                emit(chunk)
        else:
            _canonicalize(source, (r, inner, start), body.emitter, body.rewind, limits)
        body.close()
    finally:
        body.abort()


def compress_stream(source: BinaryIO, sink: BinaryIO, *, limits: Limits = DEFAULT_LIMITS) -> None:
    """Compress the message or entity (RFC 3274, ``smime-type=compressed-data``)."""
    r, outer, inner, start = _start(source, limits)
    sink.write(_pkcs7_headers(outer, "compressed-data", "smime.p7z", "S/MIME Compressed Message"))
    body = Base64Body(sink, CompressWriter)
    try:
        _canonicalize(source, (r, inner, start), body.emitter, body.rewind, limits)
        body.close()
    finally:
        body.abort()


@quick_init
@dataclass(frozen=True, slots=True)
class Classified:
    """The S/MIME layer at the top of a message, with a reader positioned at its body."""

    kind: SMimeKind | None
    headers: tuple[HeaderField, ...]
    content_type: str
    read: Callable[[int], bytes] | None  # the DER of a pkcs7-mime body or raw input


def classify(r: Reader, limits: Limits = DEFAULT_LIMITS) -> Classified:
    """Look at the top of a message: which S/MIME layer (if any) is it?"""
    head = r.peek(64)
    if not head:
        raise InputError("the input is empty")
    if _looks_like_der_cms(head):
        return Classified(_der_kind(head), (), "application/pkcs7-mime", r.read)
    fields, _sep = read_header_block(r, limits)
    if not fields:
        raise NotSMIME("the input is not a MIME message (no header fields)")
    return _classified(tuple(fields), r)


def _classified(
    fields: tuple[HeaderField, ...],
    r: Reader,
    whole: bytes | None = None,
    entity: _Entity | None = None,
) -> Classified:
    """What the header fields say the body at ``r`` is. Only the Content-* fields are
    consulted, so the message's Content-* fields alone give the same answer. ``whole`` is
    the entire body when it is held in memory (then ``r`` reads just that); ``entity`` is what
    :func:`_entity` says of ``fields``, when already known."""
    e = entity or _entity(fields)
    if not e.pkcs7:
        return Classified(e.kind, fields, e.content_type, None)
    read: Callable[[int], bytes]
    if not e.base64:
        read = r.read
    elif whole is None:
        read = _B64Reader(r).read
    else:
        read = _decoded_on_first_read(whole)
    if e.kind is not None:
        return Classified(e.kind, fields, e.content_type, read)
    # no (or an unknown) smime-type: the CMS content type decides
    peek = _Peek(read)
    return Classified(_der_kind(peek.peek(64)), fields, e.content_type, peek.read)


def _decoded_on_first_read(body: bytes) -> Callable[[int], bytes]:
    """A reader of a whole base64 body that decodes it when first read (a caller that only
    wants the kind never meets a decoding error)."""
    decoded: list[io.BytesIO] = []

    def read(n: int) -> bytes:
        if not decoded:
            decoded.append(io.BytesIO(_b64_whole(body)))
        return decoded[0].read(n)

    return read


class _Entity(NamedTuple):
    """What a message's Content-* fields say, before its body is looked at."""

    content_type: str
    #: multipart-signed, or the kind a pkcs7-mime body's smime-type names (None: not named)
    kind: SMimeKind | None
    #: the body is CMS: application/pkcs7-mime (or an octet-stream named .p7m or .p7z)
    pkcs7: bool
    base64: bool


def _entity(fields: Sequence[HeaderField]) -> _Entity:
    ct = H.content_type(fields)
    if ct.value == "multipart/signed":
        return _Entity(ct.value, "multipart-signed", False, False)
    if ct.value in _MIME_TYPES or (
        ct.value == "application/octet-stream"
        and _name_param(fields, ct).endswith((".p7m", ".p7z"))
    ):
        kind = _SMIME_TYPES.get((ct.param("smime-type") or "").lower())
        return _Entity(ct.value, kind, True, H.transfer_encoding(fields) == "base64")
    return _Entity(ct.value, None, False, False)


#: for the Content-* fields :func:`~mailseal.mime.reader.split_header_block` has seen before
#: (it hands out the same tuple for the same text)
_entity_seen = per_object(maxsize=64)(_entity)


_SMIME_TYPES: dict[str, SMimeKind] = {
    "enveloped-data": "enveloped-data",
    "authenveloped-data": "authEnveloped-data",
    "signed-data": "signed-data",
    "compressed-data": "compressed-data",
}


class _Peek:
    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buf = b""

    def peek(self, n: int) -> bytes:
        while len(self._buf) < n:
            more = self._read(n - len(self._buf))
            if not more:
                break
            self._buf += more
        return self._buf[:n]

    def read(self, n: int) -> bytes:
        if self._buf:
            out, self._buf = self._buf[:n], self._buf[n:]
            return out
        return self._read(n)


def _der_kind(head: bytes) -> SMimeKind | None:
    from mailseal.asn1 import der
    from mailseal.asn1 import oids as O

    table: list[tuple[str, SMimeKind]] = [
        (O.ID_SIGNED_DATA, "signed-data"),
        (O.ID_ENVELOPED_DATA, "enveloped-data"),
        (O.ID_CT_AUTH_ENVELOPED_DATA, "authEnveloped-data"),
        (O.ID_CT_COMPRESSED_DATA, "compressed-data"),
    ]
    for oid, kind in table:
        if der.oid(oid) in head[:24]:
            return kind
    return None


def decrypt_stream(
    source: BinaryIO,
    sink: BinaryIO,
    identities: Sequence[tuple[x509.Certificate, Decrypter]],
    *,
    limits: Limits = DEFAULT_LIMITS,
    write_transport: bool = False,
    require_authenticated: bool = False,
) -> tuple[EnvelopeInfo, tuple[HeaderField, ...]]:
    """Decrypt an encrypted message; the decrypted MIME entity goes to ``sink``, preceded by
    the message's transport headers when ``write_transport``.

    Returns what was learnt and the message's (outer) header fields.
    """
    r = Reader.from_stream(source)
    top = classify(r, limits)
    if top.kind not in ("enveloped-data", "authEnveloped-data") or top.read is None:
        raise NotSMIME(
            "the message is not encrypted"
            + (f" (it is S/MIME {top.kind})" if top.kind else f" (its type is {top.content_type})")
        )
    if write_transport:
        prefix = transport_bytes(top.headers)
        pending = [prefix] if prefix else []

        def write(data: bytes) -> None:
            # the headers go out with the first decrypted bytes, never before a failure
            if pending:
                sink.write(pending.pop())
            sink.write(data)

        info = open_envelope(
            top.read, identities, write, limits=limits, require_authenticated=require_authenticated
        )
        if pending:
            sink.write(pending.pop())
        return info, top.headers
    info = open_envelope(
        top.read, identities, sink.write, limits=limits, require_authenticated=require_authenticated
    )
    return info, top.headers


def decrypt_bytes(
    message: bytes,
    identities: Sequence[tuple[x509.Certificate, Decrypter]],
    *,
    limits: Limits = DEFAULT_LIMITS,
    require_authenticated: bool = False,
) -> tuple[EnvelopeInfo, bytes, bytes] | None:
    """Decrypt an encrypted message of at most :data:`SMALL_MAX` bytes held in memory: (what
    was learnt, the transport header fields as canonical bytes, the decrypted entity). None
    when the message is larger or not an encrypted message at all (:func:`decrypt_stream` then
    reads it and says what it is); everything else is decided here, with the same checks and
    errors."""
    if len(message) > SMALL_MAX:
        return None
    split = None if _looks_like_der_cms(message[:64]) else split_header_block(message, limits)
    if split is not None:
        transport, inner, start = split
        body = message[start:]
        top = _classified(inner, Reader.from_bytes(body), body, _entity_seen(inner))
    else:
        top = classify(Reader.from_bytes(message), limits)
        transport = b""
    if top.kind not in ("enveloped-data", "authEnveloped-data") or top.read is None:
        return None
    parts = []
    while True:
        part = top.read(SMALL_MAX)
        if not part:
            break
        parts.append(part)
    info, plaintext = open_envelope_bytes(
        b"".join(parts), identities, limits=limits, require_authenticated=require_authenticated
    )
    if split is None:
        transport = transport_bytes(top.headers)
    return info, transport, plaintext


def decompress_stream(
    source: BinaryIO, sink: BinaryIO, *, limits: Limits = DEFAULT_LIMITS
) -> tuple[int, tuple[HeaderField, ...]]:
    """Decompress a compressed-data message; returns the size and the outer header fields."""
    r = Reader.from_stream(source)
    top = classify(r, limits)
    if top.kind != "compressed-data" or top.read is None:
        raise NotSMIME("the message is not S/MIME compressed-data")
    size = _decompress(top.read, sink.write, limits=limits)
    return size, top.headers
