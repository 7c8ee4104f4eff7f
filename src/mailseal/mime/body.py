"""Reading the body of an S/MIME part, for signed and encrypted messages alike: base64
decoded as the streaming CMS readers pull it, a bare DER CMS object told apart from a header
block, and the file name a part gives itself.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

from mailseal.errors import MalformedMessage
from mailseal.mime import headers as H
from mailseal.mime.canon import _B64_DELETE
from mailseal.mime.reader import CHUNK, HeaderField, Reader


def _name_param(fields: Sequence[HeaderField], ct: H.ContentType) -> str:
    name = ct.param("name") or ""
    disp = H.find(fields, "content-disposition")
    if disp is not None and "filename" in disp.value().lower():
        for piece in disp.value().split(";"):
            k, _, v = piece.strip().partition("=")
            if k.strip().lower() == "filename":
                name = v.strip().strip('"')
    return name.lower()


class _B64Reader:
    """Pull-based base64 decoding of a body for the streaming CMS reader."""

    def __init__(self, r: Reader) -> None:
        self.r = r
        self.carry = b""
        self.buf = b""
        self.done = False

    def read(self, n: int) -> bytes:
        while not self.buf and not self.done:
            chunk = self.r.read()
            if not chunk:
                self.done = True
                rest = self.carry.translate(None, _B64_DELETE).rstrip(b"=")
                if rest:
                    if len(rest) % 4 == 1:
                        raise MalformedMessage("the base64 body is truncated")
                    self.buf = _b64(rest + b"=" * (-len(rest) % 4))
                break
            data = self.carry + chunk if self.carry else chunk
            # Fast path: whole lines of a well-formed body hold whole base64 quanta, and
            # a2b_base64 skips the line breaks itself. Anything odd takes the careful path.
            cut = data.rfind(b"\n") + 1
            if cut and data.find(b"=", 0, cut) < 0:
                try:
                    decoded = binascii.a2b_base64(data[:cut])
                except binascii.Error:
                    decoded = None
                if decoded is not None and len(decoded) % 3 == 0:
                    self.carry = data[cut:]
                    self.buf = decoded
                    continue
            data = data.translate(None, _B64_DELETE)
            k = len(data) - len(data) % 4
            self.carry = data[k:]
            if k:
                self.buf = _b64(data[:k])
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _b64_whole(data: bytes) -> bytes:
    """A whole base64 body held in memory, decoded exactly as :class:`_B64Reader` decodes it.

    When nothing but padding (and what base64 ignores) follows the first "=", one call
    decodes it all: the reader's quantum-by-quantum decoding gives the same bytes there, and
    whatever that call refuses is left to the reader itself.
    """
    eq = data.find(b"=")
    if eq < 0 or not data[eq:].translate(None, _B64_DELETE).strip(b"="):
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            pass
    reader = _B64Reader(Reader.from_bytes(data))
    return b"".join(iter(lambda: reader.read(CHUNK), b""))


def _b64(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data, strict_mode=False)
    except binascii.Error as exc:
        raise MalformedMessage(f"the base64 body is corrupt ({exc})") from None


_CMS_TYPE_PREFIXES = (
    bytes.fromhex("06092a864886f70d0107"),  # id-data, id-signedData, ... (RFC 5652)
    bytes.fromhex("060b2a864886f70d0109100109"),  # id-ct-compressedData (RFC 3274)
    bytes.fromhex("060b2a864886f70d0109100117"),  # id-ct-authEnvelopedData (RFC 5083)
)


def _looks_like_der_cms(head: bytes) -> bool:
    """A ContentInfo: SEQUENCE, a length, then a CMS content type OID (or at least bytes that
    cannot be a header line)."""
    if head[:1] != b"\x30":
        return False
    n = head[1] if len(head) > 1 else 0
    off = 2 if n < 0x80 else 2 + (n & 0x7F)
    if any(head.startswith(p, off) for p in _CMS_TYPE_PREFIXES):
        return True
    # "0" starting a header line ("0-Priority: ...") is text; a DER length byte is not
    first_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    return not (first_line.isascii() and first_line.decode("ascii").isprintable())
