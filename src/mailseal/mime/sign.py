"""S/MIME signing over MIME (RFC 8551 §3.5): detached multipart/signed and opaque signed-data."""

from __future__ import annotations

import datetime as _dt
import hashlib
import secrets
import tempfile
from collections.abc import Sequence
from typing import BinaryIO

from mailseal.cms.algorithms import DIGESTS
from mailseal.cms.signed import PreparedSigner, encode_signed_data
from mailseal.errors import InputError
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime.canon import Canonicalizer, _B64Encoder
from mailseal.mime.reader import CHUNK, HeaderField, Reader, read_header_block

__all__ = ["sign_stream", "split_message_headers"]

_SPOOL_MEMORY = 8 << 20


def split_message_headers(
    fields: list[HeaderField],
) -> tuple[list[HeaderField], list[HeaderField]]:
    """(transport headers that stay outside, Content-* headers of the signed entity)."""
    outer = [f for f in fields if not f.lname.startswith("content-") and f.lname != "mime-version"]
    inner = [f for f in fields if f.lname.startswith("content-")]
    return outer, inner


def _micalg(signers: Sequence[PreparedSigner]) -> str:
    names: list[str] = []
    for s in signers:
        m = DIGESTS[s.digest].micalg
        if m not in names:
            names.append(m)
    return ",".join(names)


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
    r = Reader.from_stream(source)
    if not r.peek(1):
        raise InputError("the input is empty: there is nothing to sign")
    fields, _sep = read_header_block(r, limits)
    outer, inner = split_message_headers(fields)
    hashers: dict[str, hashlib._Hash] = {s.digest: hashlib.new(s.digest) for s in signers}
    updaters = [h.update for h in hashers.values()]

    def out(data: bytes) -> None:
        sink.write(data)

    head = b"".join(f.canonical() for f in outer) + b"MIME-Version: 1.0\r\n"

    if not opaque:
        boundary = b"----=_mailseal_" + secrets.token_hex(16).encode()
        out(
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
        if len(updaters) == 1:
            upd = updaters[0]

            def emit(data: bytes) -> None:
                upd(data)
                out(data)

        else:

            def emit(data: bytes) -> None:
                for u in updaters:
                    u(data)
                out(data)

        Canonicalizer(emit, limits).entity(r, inner)
        digests = {name: h.digest() for name, h in hashers.items()}
        cms, _ = encode_signed_data(signers, digests, when=when)
        out(
            b"\r\n--"
            + boundary
            + b'\r\nContent-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
            + b"Content-Transfer-Encoding: base64\r\n"
            + b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
            + b"Content-Description: S/MIME Cryptographic Signature\r\n\r\n"
        )
        enc = _B64Encoder(out)
        enc.write(cms)
        enc.close()
        out(b"\r\n--" + boundary + b"--\r\n")
        return

    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
        write = spool.write

        def emit_spool(data: bytes) -> None:
            for u in updaters:
                u(data)
            write(data)

        Canonicalizer(emit_spool, limits).entity(r, inner)
        length = spool.tell()
        spool.seek(0)
        digests = {name: h.digest() for name, h in hashers.items()}
        prefix, suffix = encode_signed_data(signers, digests, when=when, content_length=length)
        out(
            head
            + b"Content-Type: application/pkcs7-mime; smime-type=signed-data;"
            + b' name="smime.p7m"\r\n'
            + b"Content-Transfer-Encoding: base64\r\n"
            + b'Content-Disposition: attachment; filename="smime.p7m"\r\n\r\n'
        )
        enc = _B64Encoder(out)
        enc.write(prefix)
        while True:
            chunk = spool.read(CHUNK)
            if not chunk:
                break
            enc.write(chunk)
        enc.write(suffix)
        enc.close()
