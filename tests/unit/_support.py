"""Byte-level helpers shared by the unit tests.

Everything here works on bytes with plain string operations, independent of the mailseal code
under test: signed messages are taken apart line by line (never re-serialised with ``email``),
and CMS structures are read with asn1crypto.
"""

from __future__ import annotations

import base64
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass

from asn1crypto import cms as a_cms
from asn1crypto import keys as a_keys
from asn1crypto import pem as a_pem
from cryptography.hazmat.primitives.asymmetric import rsa

from mailseal.mime.reader import Reader

CRLF = b"\r\n"

#: A whole RFC 5322 message with an 8bit UTF-8 text body and LF-only line ends.
MAIL_8BIT = (
    b"From: Alice <alice@example.org>\n"
    b"To: Bob <bob@example.org>\n"
    b"Subject: Gr\xc3\xbc\xc3\x9fe\n"
    b"Date: Mon, 24 Nov 2025 08:00:00 +0000\n"
    b"Message-ID: <unit-1@example.org>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"H\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\n"
    b"From the start of a line\n"
    b"last line\n"
)

#: A whole RFC 5322 message, 7bit, CRLF.
MAIL_7BIT = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: plain\r\n"
    b"Date: Mon, 24 Nov 2025 08:00:00 +0000\r\n"
    b"Message-ID: <unit-2@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Hello Bob.\r\n"
    b"Second line.\r\n"
)


# -- headers --------------------------------------------------------------------------------
def split_head(entity: bytes) -> tuple[bytes, bytes]:
    """(header block including its blank line, body) of an entity; LF or CRLF."""
    m = re.search(rb"\r?\n\r?\n", entity)
    if m is None:
        return entity, b""
    return entity[: m.end()], entity[m.end() :]


def header_lines(head: bytes) -> list[bytes]:
    """Unfolded header fields (without line ends) of a header block."""
    fields: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b" " + line.strip()
        else:
            fields.append(line)
    return fields


def header(head: bytes, name: str) -> str | None:
    """The unfolded value of the first ``name`` field in a header block."""
    prefix = name.lower().encode() + b":"
    for f in header_lines(head):
        if f.lower().startswith(prefix):
            return f[len(prefix) :].strip().decode("utf-8", "replace")
    return None


def header_names(head: bytes) -> list[str]:
    return [f.split(b":", 1)[0].decode().lower() for f in header_lines(head)]


def param(value: str, name: str) -> str | None:
    m = re.search(rf'(?:^|;)\s*{re.escape(name)}\s*=\s*("([^"]*)"|[^;\s]+)', value, re.I)
    if m is None:
        return None
    return m.group(2) if m.group(2) is not None else m.group(1)


# -- multipart ------------------------------------------------------------------------------
@dataclass
class Multipart:
    """A multipart body cut at its delimiter lines; ``parts`` are the exact bytes between
    them (the line end before a delimiter belongs to the delimiter, RFC 2046 §5.1.1)."""

    head: bytes
    boundary: bytes
    preamble: bytes
    parts: list[bytes]
    delimiters: list[bytes]  # the delimiter lines as found, with their line ends
    epilogue: bytes


def split_multipart(entity: bytes) -> Multipart:
    head, body = split_head(entity)
    ctype = header(head, "content-type") or ""
    b = param(ctype, "boundary")
    assert b, f"no boundary in {ctype!r}"
    boundary = b.encode()
    delim = b"--" + boundary
    lines = body.splitlines(keepends=True)
    chunks: list[list[bytes]] = [[]]
    delimiters: list[bytes] = []
    closed = False
    for line in lines:
        bare = line.rstrip(b"\r\n").rstrip(b" \t")
        if not closed and bare in (delim, delim + b"--"):
            delimiters.append(line)
            chunks.append([])
            if bare.endswith(b"--"):
                closed = True
            continue
        chunks[-1].append(line)

    def strip_le(data: bytes) -> bytes:
        if data.endswith(b"\r\n"):
            return data[:-2]
        if data.endswith(b"\n"):
            return data[:-1]
        return data

    texts = [b"".join(c) for c in chunks]
    if closed:
        preamble, parts, epilogue = texts[0], texts[1:-1], texts[-1]
    else:
        preamble, parts, epilogue = texts[0], texts[1:], b""
    return Multipart(
        head=head,
        boundary=boundary,
        preamble=strip_le(preamble) if parts else preamble,
        parts=[strip_le(p) for p in parts],
        delimiters=delimiters,
        epilogue=epilogue,
    )


def join_multipart(mp: Multipart) -> bytes:
    """Reassemble a :class:`Multipart` with its original delimiter lines."""
    le = b"\r\n" if mp.head.endswith(b"\r\n") else b"\n"
    out = [mp.head]
    if mp.preamble:
        out.append(mp.preamble + le)
    for i, part in enumerate(mp.parts):
        if i > 0:
            out.append(le)
        out.append(mp.delimiters[i])
        out.append(part)
    if len(mp.delimiters) > len(mp.parts):
        out.append(le + mp.delimiters[len(mp.parts)])
    out.append(mp.epilogue)
    return b"".join(out)


def signed_parts(signed: bytes) -> tuple[bytes, bytes, bytes]:
    """(outer header block, exact signed content, signature part) of a multipart/signed."""
    mp = split_multipart(signed)
    assert len(mp.parts) == 2, f"expected two parts, found {len(mp.parts)}"
    return mp.head, mp.parts[0], mp.parts[1]


def cms_der(signed: bytes) -> bytes:
    """The DER ContentInfo carried by a detached or opaque S/MIME message."""
    head, body = split_head(signed)
    ctype = (header(head, "content-type") or "").lower()
    if ctype.startswith("multipart/signed"):
        _, _, sig_part = signed_parts(signed)
        _, body = split_head(sig_part)
    return base64.b64decode(re.sub(rb"\s+", b"", body))


def content_info(signed: bytes) -> a_cms.ContentInfo:
    return a_cms.ContentInfo.load(cms_der(signed))


def signer_infos(signed: bytes) -> list[a_cms.SignerInfo]:
    return list(content_info(signed)["content"]["signer_infos"])


def signed_attrs(si: a_cms.SignerInfo) -> dict[str, list[object]]:
    """Signed attributes by dotted OID: each a list of asn1crypto values."""
    out: dict[str, list[object]] = {}
    for attr in si["signed_attrs"]:
        out.setdefault(attr["type"].dotted, []).extend(list(attr["values"]))
    return out


def replace_cms(signed: bytes, der: bytes) -> bytes:
    """The message with its CMS structure swapped for ``der`` (base64, 76-column lines)."""
    b64 = base64.encodebytes(der).replace(b"\n", b"\r\n")
    head, _ = split_head(signed)
    ctype = (header(head, "content-type") or "").lower()
    if not ctype.startswith("multipart/signed"):
        return head + b64
    mp = split_multipart(signed)
    sig_head, _ = split_head(mp.parts[1])
    mp.parts[1] = sig_head + b64.rstrip(b"\r\n")
    return join_multipart(mp)


def replace_header_value(signed: bytes, name: str, new_value: bytes, *, part: int | None = None):
    """Replace a (possibly folded) header field of the outer header block, or of signature part
    ``part`` (1 = the signature part) of a multipart/signed."""
    if part is None:
        head, body = split_head(signed)
        return _replace_field(head, name, new_value) + body
    mp = split_multipart(signed)
    p_head, p_body = split_head(mp.parts[part])
    mp.parts[part] = _replace_field(p_head, name, new_value) + p_body
    return join_multipart(mp)


def _replace_field(head: bytes, name: str, new_value: bytes) -> bytes:
    le = b"\r\n" if b"\r\n" in head else b"\n"
    lines = head.split(le)
    out: list[bytes] = []
    skipping = False
    done = False
    for line in lines:
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = False
        if not done and line.lower().startswith(name.lower().encode() + b":"):
            out.append(name.encode() + b": " + new_value)
            skipping = True
            done = True
            continue
        out.append(line)
    assert done, f"no {name} field"
    return le.join(out)


def delete_header(head: bytes, name: str) -> bytes:
    le = b"\r\n" if b"\r\n" in head else b"\n"
    out: list[bytes] = []
    skipping = False
    for line in head.split(le):
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = False
        if line.lower().startswith(name.lower().encode() + b":"):
            skipping = True
            continue
        out.append(line)
    return le.join(out)


# -- a relay that "helps" with 8bit content ---------------------------------------------------
def relay_8bit_to_qp(entity: bytes) -> bytes:
    """What a 7-bit relay does to a message: every leaf part that is declared 8bit/binary or
    carries 8-bit bytes is re-encoded to quoted-printable (its header changed accordingly).
    Multiparts are walked recursively; everything else is left byte for byte."""
    head, body = split_head(entity)
    ctype = (header(head, "content-type") or "text/plain").lower()
    if ctype.startswith("multipart/"):
        mp = split_multipart(entity)
        mp.parts = [relay_8bit_to_qp(p) for p in mp.parts]
        return join_multipart(mp)
    cte = (header(head, "content-transfer-encoding") or "7bit").lower()
    if cte not in ("8bit", "binary") and body.isascii():
        return entity
    le = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    text = body.replace(b"\r\n", b"\n")
    encoded = quopri.encodestring(text).replace(b"\n", le)
    fields = delete_header(head.rstrip(b"\r\n"), "Content-Transfer-Encoding")
    new_head = fields + le + b"Content-Transfer-Encoding: quoted-printable" + le + le
    return new_head + encoded


# -- feeding readers --------------------------------------------------------------------------
def pieces(data: bytes, sizes: list[int] | int) -> Iterator[bytes]:
    """``data`` cut in pieces of the given size(s), cycling through a list of sizes."""
    if isinstance(sizes, int):
        sizes = [sizes]
    i = 0
    k = 0
    while i < len(data):
        n = max(1, sizes[k % len(sizes)])
        yield data[i : i + n]
        i += n
        k += 1


def chunked_reader(data: bytes, sizes: list[int] | int) -> Reader:
    """A mailseal Reader whose source hands out ``data`` in pieces of the given sizes."""
    it = pieces(data, sizes)

    def fill(_n: int) -> bytes:
        return next(it, b"")

    return Reader(fill)


def chunked_reader_sidestep(data: bytes, sizes: list[int] | int, boundaries: list[bytes]) -> Reader:
    """Like :func:`chunked_reader`. Piece borders fall everywhere, including between the two
    trailing dashes of a close delimiter (``boundaries`` is kept for the callers' readability)."""
    del boundaries
    return chunked_reader(data, sizes)


def lines_of(data: bytes) -> list[bytes]:
    """Lines without their CRLF; asserts that every line end is a CRLF."""
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF in output"
    assert b"\r" not in data.replace(b"\r\n", b""), "bare CR in output"
    return data.split(b"\r\n")


def rsa_numbers(key: rsa.RSAPrivateKey) -> dict[str, int]:
    """The fields of ``key`` as a PKCS#1 RSAPrivateKey, to change before :func:`rsa_key_der`."""
    n = key.private_numbers()
    return {
        "version": 0,
        "modulus": n.public_numbers.n,
        "public_exponent": n.public_numbers.e,
        "private_exponent": n.d,
        "prime1": n.p,
        "prime2": n.q,
        "exponent1": n.dmp1,
        "exponent2": n.dmq1,
        "coefficient": n.iqmp,
    }


def rsa_key_der(numbers: dict[str, int]) -> bytes:
    """A PKCS#1 RSAPrivateKey with exactly these numbers, consistent or not."""
    return bytes(a_keys.RSAPrivateKey(numbers).dump())


def rsa_key_pem(numbers: dict[str, int]) -> bytes:
    return bytes(a_pem.armor("RSA PRIVATE KEY", rsa_key_der(numbers)))
