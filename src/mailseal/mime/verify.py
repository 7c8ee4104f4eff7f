"""Reading signed S/MIME messages: locate the signed content and the CMS signature, hash the
content as it streams past, and return everything needed to judge each signer.

Accepted forms: ``multipart/signed`` (with ``application/pkcs7-signature``,
``application/x-pkcs7-signature``, or ``application/octet-stream`` named ``*.p7s``), opaque
``application/(x-)pkcs7-mime; smime-type=signed-data`` (or octet-stream named ``*.p7m``), and
a bare DER or PEM CMS SignedData. ``micalg`` is only a hint for which digests to compute while
streaming; the SignerInfo decides, and a missing digest is computed in a second pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

from mailseal._values import quick_init
from mailseal.cms.algorithms import DIGEST_BY_OID, DIGESTS, digest_for_micalg
from mailseal.cms.ber import stream_signed_data
from mailseal.cms.inspect import ParsedSignedData, parse_signed_data
from mailseal.errors import LimitExceeded, MalformedCMS, MalformedMessage, NotSMIME
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime import headers as H
from mailseal.mime.body import _B64Reader, _looks_like_der_cms, _name_param
from mailseal.mime.canon import _B64_DELETE, crlf_chunks, reader_over
from mailseal.mime.reader import CHUNK, HeaderField, PartReader, Reader, read_header_block

__all__ = ["SignedMessage", "read_signed"]

_KEEP_CONTENT = 1 << 20  # keep content in memory (for signatures without attributes) up to this
_SIG_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
_MIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")


@quick_init
@dataclass(frozen=True, slots=True)
class SignedMessage:
    form: Literal["detached", "opaque"]
    headers: tuple[HeaderField, ...]
    signed_data: ParsedSignedData
    digests: dict[str, bytes]
    canonical_digests: dict[str, bytes] | None
    content: bytes | None  # when small enough to keep
    content_length: int
    micalg: str | None
    notes: tuple[str, ...]
    from_addresses: tuple[str, ...] = ()


class _Hashing:
    """Feeds content to several digests, a sink, and the bare-LF detector."""

    def __init__(self, names: Sequence[str], sink: BinaryIO | None) -> None:
        self.hashers = {n: hashlib.new(n) for n in names}
        self.sink = sink
        self.length = 0
        self.keep: list[bytes] | None = []

    def __call__(self, chunk: bytes) -> None:
        for h in self.hashers.values():
            h.update(chunk)
        if self.sink is not None:
            self.sink.write(chunk)
        self.length += len(chunk)
        if self.keep is not None:
            if self.length <= _KEEP_CONTENT:
                self.keep.append(chunk)
            else:
                self.keep = None

    def content(self) -> bytes | None:
        return b"".join(self.keep) if self.keep is not None else None


def _rehash(
    source: BinaryIO, start: int, length: int, names: list[str], *, canonical: bool
) -> dict[str, bytes]:
    hashers = {n: hashlib.new(n) for n in names}
    source.seek(start)
    remaining = length

    def raw() -> object:
        nonlocal remaining
        while remaining > 0:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                raise MalformedMessage("the message changed while it was being read")
            remaining -= len(chunk)
            yield chunk

    it = crlf_chunks(raw()) if canonical else raw()  # type: ignore[arg-type]
    for chunk in it:  # type: ignore[attr-defined]
        for h in hashers.values():
            h.update(chunk)
    return {n: h.digest() for n, h in hashers.items()}


def _decode_body(data: bytes, cte: str, what: str) -> bytes:
    if cte == "base64":
        cleaned = data.translate(None, _B64_DELETE)
        try:
            return base64.b64decode(cleaned)
        except binascii.Error as exc:
            raise MalformedMessage(f"the {what} is not valid base64 ({exc})") from None
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


def _ensure_seekable(source: BinaryIO) -> BinaryIO:
    try:
        if source.seekable():
            return source
    except (AttributeError, OSError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - caller owns it
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            break
        spool.write(chunk)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def read_signed(
    source: BinaryIO,
    content_sink: BinaryIO | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> SignedMessage:
    """Read a signed message from ``source``; the signed content is written to ``content_sink``."""
    source = _ensure_seekable(source)
    base = source.tell()
    r = Reader.from_stream(source)
    head = r.peek(64)
    if not head:
        raise MalformedMessage("the input is empty")
    if _looks_like_der_cms(head):
        return _opaque(r.read, [], content_sink, limits, micalg=None)
    if head.lstrip().startswith((b"-----BEGIN PKCS7-----", b"-----BEGIN CMS-----")):
        return _pem(r, content_sink, limits)
    fields, _sep = read_header_block(r, limits)
    if not fields:
        raise NotSMIME("the input is not a MIME message (no header fields)")
    ct = H.content_type(fields)
    name = _name_param(fields, ct)
    if ct.value == "multipart/signed":
        return _detached(source, base, r, fields, ct, content_sink, limits)
    if ct.value in _MIME_TYPES or (
        ct.value == "application/octet-stream" and name.endswith(".p7m")
    ):
        smime_type = (ct.param("smime-type") or "").lower()
        if smime_type and smime_type != "signed-data":
            raise NotSMIME(
                f"the message is S/MIME {smime_type}, not a signature: open it with decrypt/open"
            )
        cte = H.transfer_encoding(fields)
        reader = _B64Reader(r).read if cte == "base64" else r.read
        return _opaque(reader, fields, content_sink, limits, micalg=None)
    raise NotSMIME(f"the message is not signed (its content type is {ct.value})")


def _pem(r: Reader, sink: BinaryIO | None, limits: Limits) -> SignedMessage:
    first = r.readline(limits.max_header_line, "PEM line")
    if b"PKCS7" not in first and b"CMS" not in first:
        raise NotSMIME("PEM input that is not PKCS7/CMS")
    b64 = _B64Reader(_UntilPemEnd(r, limits))
    return _opaque(b64.read, [], sink, limits, micalg=None)


class _UntilPemEnd(Reader):
    def __init__(self, r: Reader, limits: Limits) -> None:
        def fill(_n: int) -> bytes:
            line = r.readline(limits.max_body_line, "PEM line")
            if not line or line.startswith(b"-----END"):
                return b""
            return line

        super().__init__(fill)


def _opaque(
    read: Callable[[int], bytes],
    fields: list[HeaderField],
    sink: BinaryIO | None,
    limits: Limits,
    *,
    micalg: str | None,
) -> SignedMessage:
    holder: list[_Hashing] = []

    def on_digests(oids: list[str]) -> None:
        names = [DIGEST_BY_OID[o].name for o in oids if o in DIGEST_BY_OID] or ["sha256"]
        holder.append(_Hashing(names, sink))

    def on_content(chunk: bytes) -> None:
        holder[0](chunk)

    streamed = stream_signed_data(read, on_digests, on_content, limits=limits)
    hashing = holder[0]
    if not streamed.content_present:
        raise MalformedCMS(
            "the signed-data has no encapsulated content (a detached signature without its content)"
        )
    parsed = parse_signed_data(streamed.detached_der, limits=limits)
    content = hashing.content()
    digests = {n: h.digest() for n, h in hashing.hashers.items()}
    if content is not None:
        for si in parsed.signer_infos:
            if si.digest_name and si.digest_name not in digests and si.digest_name in DIGESTS:
                digests[si.digest_name] = hashlib.new(si.digest_name, content).digest()
    return SignedMessage(
        form="opaque",
        headers=tuple(fields),
        signed_data=parsed,
        digests=digests,
        canonical_digests=None,
        content=content,
        content_length=hashing.length,
        micalg=micalg,
        notes=parsed.notes,
        from_addresses=H.addresses(fields, "from"),
    )


def _detached(
    source: BinaryIO,
    base: int,
    r: Reader,
    fields: list[HeaderField],
    ct: H.ContentType,
    sink: BinaryIO | None,
    limits: Limits,
) -> SignedMessage:
    boundary = ct.boundary()
    micalg = ct.param("micalg")
    names = digest_for_micalg(micalg or "")
    if not names:
        names = ["sha1", "sha256", "sha384", "sha512"]
    elif "sha256" not in names:
        names.append("sha256")
    pre = PartReader(r, boundary, at_line_start=True)
    for _ in pre.chunks():
        pass
    if not pre.found:
        raise MalformedMessage("the multipart/signed boundary never appears")
    if pre.closing:
        raise MalformedMessage("the multipart/signed message has no parts")
    start = base + r.consumed
    part1 = PartReader(r, boundary)
    hashing = _Hashing(names, sink)
    for chunk in part1.chunks():
        hashing(chunk)
    if not part1.found or part1.closing:
        raise MalformedMessage("the multipart/signed message has no signature part")
    part2 = PartReader(r, boundary)
    sub = reader_over(part2)
    sig_fields, _sep = read_header_block(sub, limits)
    sig_ct = H.content_type(sig_fields, default="text/plain")
    sig_name = _name_param(sig_fields, sig_ct)
    if not (
        sig_ct.value in _SIG_TYPES
        or (sig_ct.value == "application/octet-stream" and sig_name.endswith((".p7s", ".p7m")))
        or sig_name.endswith(".p7s")
    ):
        raise MalformedMessage(
            f"the second part of multipart/signed is {sig_ct.value}, not a CMS signature"
        )
    body = []
    total = 0
    cap = limits.max_signature_bytes * 2
    while True:
        chunk = sub.read()
        if not chunk:
            break
        total += len(chunk)
        if total > cap:
            raise LimitExceeded(f"the signature part is larger than {cap} bytes")
        body.append(chunk)
    der_bytes = _decode_body(b"".join(body), H.transfer_encoding(sig_fields), "signature part")
    parsed = parse_signed_data(der_bytes, limits=limits)
    notes: list[str] = list(parsed.notes)
    if parsed.content is not None:
        notes.append("the detached signature also carries content; it was ignored")
    digests = {n: h.digest() for n, h in hashing.hashers.items()}
    needed = [
        si.digest_name
        for si in parsed.signer_infos
        if si.digest_name in DIGESTS and si.digest_name not in digests
    ]
    needed = [n for n in dict.fromkeys(needed) if n]
    if needed:
        digests.update(_rehash(source, start, hashing.length, needed, canonical=False))
    canonical: dict[str, bytes] | None = None
    # A stored copy may have lost its CRs. Only when a signer does not match the content as
    # read is the CRLF-restored form worth a second pass.
    if any(
        si.digest_name in digests
        and (si.message_digest is None or si.message_digest != digests[si.digest_name])
        for si in parsed.signer_infos
    ):
        want = list(
            dict.fromkeys(si.digest_name for si in parsed.signer_infos if si.digest_name in DIGESTS)
        )
        canonical = _rehash(source, start, hashing.length, [w for w in want if w], canonical=True)
    return SignedMessage(
        form="detached",
        headers=tuple(fields),
        signed_data=parsed,
        digests=digests,
        canonical_digests=canonical,
        content=hashing.content(),
        content_length=hashing.length,
        micalg=micalg,
        notes=tuple(notes),
        from_addresses=H.addresses(fields, "from"),
    )
