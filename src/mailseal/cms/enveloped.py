"""CMS EnvelopedData (RFC 5652 §6) and AuthEnvelopedData (RFC 5083), written and read as
streams.

:class:`EnvelopeWriter` takes plaintext in pieces. Small contents are written as DER with
definite lengths; once the plaintext passes ``der_limit`` bytes the writer switches to BER
with indefinite lengths and a constructed OCTET STRING (as ``openssl cms -stream`` does), so
memory never grows with the message.

:func:`open_envelope` reads either form from a ``read`` callable: the RecipientInfos (bounded)
first, then the ciphertext streams through the content decryptor. For AuthEnvelopedData no
plaintext is released before the authentication tag has been verified: the ciphertext is
spooled (memory, then disk), checked in a first pass and decrypted to the sink in a second.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Literal, NamedTuple

from cryptography import x509

from mailseal._values import quick_init
from mailseal.asn1 import der
from mailseal.asn1 import oids as O
from mailseal.cms import fastder as F
from mailseal.cms.ber import (
    _expect,
    _Header,
    _read_header,
    _read_value,
    _Src,
    _stream_octets,
)
from mailseal.cms.content import (
    CIPHER_BY_OID,
    ContentCipher,
    ContentDecryptor,
    ContentEncryptor,
    new_key,
)
from mailseal.cms.ids import CertId
from mailseal.cms.recipients import (
    KeyTransportChoice,
    ParsedRecipient,
    encode_recipient,
    parse_recipient_infos,
    unwrap_key,
)
from mailseal.errors import AlgorithmError, DecryptionError, MalformedCMS, NoMatchingRecipient
from mailseal.keys.base import Decrypter
from mailseal.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "EnvelopeHeader",
    "EnvelopeInfo",
    "EnvelopeRecipient",
    "EnvelopeWriter",
    "describe_recipient",
    "open_envelope",
    "open_envelope_bytes",
    "peek_envelope",
]

_CHUNK = 1 << 20
_SPOOL_MEMORY = 8 << 20
_EOC = b"\x00\x00"


@dataclass(frozen=True, slots=True)
class EnvelopeRecipient:
    """A recipient certificate and how to wrap the content key for it."""

    certificate: x509.Certificate
    key_transport: KeyTransportChoice = "oaep"
    use_ski: bool = False


class EnvelopeWriter:
    """Encrypt plaintext written in pieces to ContentInfo(EnvelopedData | AuthEnvelopedData)."""

    def __init__(
        self,
        write: Callable[[bytes], None],
        cipher: ContentCipher,
        recipients: Sequence[EnvelopeRecipient],
        *,
        der_limit: int = 1 << 20,
    ) -> None:
        if not recipients:
            raise ValueError("at least one recipient is needed")
        self._write = write
        self.cipher = cipher
        cek = new_key(cipher)
        infos = [
            encode_recipient(r.certificate, cek, key_transport=r.key_transport, use_ski=r.use_ski)
            for r in recipients
        ]
        self._ri_set = der.set_of(info for info, _ in infos)
        if cipher.aead:
            self._version = 0  # RFC 5083 §2.1
        else:
            # RFC 5652 §6.1: 0 when every RecipientInfo is version 0, else 2 (no pwri/ori here)
            self._version = 0 if all(v == 0 for _, v in infos) else 2
        self._enc = ContentEncryptor(cipher, cek)
        del cek
        self._buffer: list[bytes] | None = []
        self._buffered = 0
        self._der_limit = der_limit
        self._closed = False

    @property
    def _content_type(self) -> str:
        return O.ID_CT_AUTH_ENVELOPED_DATA if self.cipher.aead else O.ID_ENVELOPED_DATA

    def _ber_head(self) -> bytes:
        return (
            b"\x30\x80"
            + der.oid(self._content_type)
            + b"\xa0\x80\x30\x80"
            + der.integer(self._version)
            + self._ri_set
            + b"\x30\x80"
            + der.oid(O.ID_DATA)
            + self._enc.algorithm_der
            + b"\xa0\x80"
        )

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._buffer is not None:
            self._buffer.append(data)
            self._buffered += len(data)
            if self._buffered <= self._der_limit:
                return
            # too large for one DER value in memory: continue as BER, streaming
            pending = b"".join(self._buffer)
            self._buffer = None
            self._write(self._ber_head())
            self._emit(self._enc.update(pending))
            return
        self._emit(self._enc.update(data))

    def _emit(self, ciphertext: bytes) -> None:
        if ciphertext:
            # header and content written apart: no copy of the (large) ciphertext
            self._write(b"\x04" + der.encode_length(len(ciphertext)))
            self._write(ciphertext)

    def abort(self) -> None:
        """Give up on this content (nothing is held that needs releasing)."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._buffer is not None:
            ciphertext = self._enc.seal(b"".join(self._buffer))
            self._buffer = []
            eci = der.sequence(
                der.oid(O.ID_DATA), self._enc.algorithm_der, der.tlv(0x80, ciphertext)
            )
            parts = [der.integer(self._version), self._ri_set, eci]
            if self.cipher.aead:
                parts.append(der.octet_string(self._enc.tag))
            body = der.sequence(*parts)
            self._write(der.sequence(der.oid(self._content_type), der.context(0, body)))
            return
        self._emit(self._enc.finalize())
        tail = _EOC + _EOC  # end of [0] encryptedContent and of EncryptedContentInfo
        if self.cipher.aead:
            tail += der.octet_string(self._enc.tag)
        self._write(tail + _EOC + _EOC + _EOC)


@quick_init
@dataclass(frozen=True, slots=True)
class EnvelopeInfo:
    """What was learnt while opening an envelope."""

    kind: Literal["enveloped-data", "authEnveloped-data"]
    cipher: str
    authenticated: bool
    recipients: tuple[ParsedRecipient, ...]
    #: index into the identities given, of the one that opened the message
    opened_by: int
    #: the RecipientInfo that matched
    recipient_index: int
    content_type: str


def describe_recipient(rid: CertId) -> str:
    """A person-readable name for a recipient identifier (issuer and serial, or SKI)."""
    # remembered only for identifiers of the usual size: they come from hostile messages
    if len(rid.issuer_der or b"") <= 512 and len(rid.ski or b"") <= 64:
        return _describe_remembered(rid)
    return _describe(rid)


@functools.lru_cache(maxsize=1024)
def _describe_remembered(rid: CertId) -> str:
    return _describe(rid)


def _describe(rid: CertId) -> str:
    if rid.ski is not None:
        return f"subjectKeyIdentifier {rid.ski.hex()}"
    issuer = "?"
    if rid.issuer_der is not None:
        try:
            from asn1crypto import x509 as a_x509

            issuer = a_x509.Name.load(rid.issuer_der).human_friendly
        except Exception:  # an undecodable issuer name: show the serial alone
            issuer = "(undecodable issuer)"
    serial = format(rid.serial, "x") if rid.serial is not None else "?"
    return f"serial {serial} from {issuer}"


def _find_key(
    recipients: Sequence[ParsedRecipient],
    identities: Sequence[tuple[x509.Certificate, Decrypter]],
    cek_size: int | None,
) -> tuple[bytes, int, int]:
    failures: list[str] = []
    for recipient in recipients:
        for rid_index, rid in enumerate(recipient.rids):
            for ident_index, (cert, key) in enumerate(identities):
                if not rid.matches(cert):
                    continue
                try:
                    cek = unwrap_key(recipient, rid_index, key, cek_size=cek_size)
                except (DecryptionError, AlgorithmError) as exc:
                    failures.append(str(exc))
                    continue
                return cek, ident_index, recipient.index
    if failures:
        raise DecryptionError(
            "a recipient matched the identity given, but its key did not open the message ("
            + "; ".join(dict.fromkeys(failures))
            + ")"
        )
    to = [describe_recipient(rid) for r in recipients for rid in r.rids]
    others = [r.kind for r in recipients if not r.rids]
    if others:
        to.append(f"{len(others)} recipient(s) of kind {', '.join(sorted(set(others)))}")
    tried = [_describe_cert(c) for c, _ in identities] or ["none"]
    raise NoMatchingRecipient(
        "the message is not encrypted to any identity given. It is encrypted to: "
        + "; ".join(to or ["nobody mailseal can name"])
        + ". Identities tried: "
        + "; ".join(tried)
    )


def _describe_cert(cert: x509.Certificate) -> str:
    try:
        emails: list[str] = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            emails = san.get_values_for_type(x509.RFC822Name)
        except x509.ExtensionNotFound:
            pass
        who = f"{emails[0]}: " if emails else ""
        return f"{who}serial {cert.serial_number:x} from {cert.issuer.rfc4514_string()}"
    except Exception:  # a certificate with undecodable fields
        return "an undecodable certificate"


def _algorithm(
    algorithm_der: bytes, start: int = 0, end: int | None = None
) -> tuple[str, bytes | None]:
    """The OID and the DER parameters of an AlgorithmIdentifier (in
    ``algorithm_der[start:end]``, all of it by default)."""
    if end is None:
        end = len(algorithm_der)
    try:
        tag, cs, ce = F.tlv(algorithm_der, start, end)
        if tag != 0x30 or ce != end:
            raise F.Unusual
        kids = F.children(algorithm_der, cs, ce)
        if not kids or kids[0][0] != 0x06:
            raise F.Unusual
        oid = F.dotted(algorithm_der[kids[0][2] : kids[0][3]])
        params = algorithm_der[kids[1][1] : kids[1][3]] if len(kids) > 1 else None
    except (F.Unusual, IndexError, ValueError):
        raise MalformedCMS("the content encryption algorithm is malformed") from None
    return oid, params


@dataclass(frozen=True, slots=True)
class _Head:
    """Everything before the ciphertext, and where the enclosing values started."""

    kind: Literal["enveloped-data", "authEnveloped-data"]
    ci: _Header
    ctx: _Header
    env: _Header
    env_start: int
    recipients: tuple[ParsedRecipient, ...]
    eci: _Header
    eci_start: int
    ct_der: bytes
    alg_oid: str
    params: bytes | None


def _read_head(src: _Src, budget: list[int], limits: Limits) -> _Head:
    """Read ContentInfo, Enveloped/AuthEnvelopedData up to the encrypted content."""
    ci = _expect(src, 0x30, "a ContentInfo SEQUENCE")
    oid_hdr = _expect(src, 0x06, "the content type")
    oid_der = oid_hdr.raw + src.take(oid_hdr.length or 0)
    if oid_der == der.oid(O.ID_ENVELOPED_DATA):
        kind: Literal["enveloped-data", "authEnveloped-data"] = "enveloped-data"
    elif oid_der == der.oid(O.ID_CT_AUTH_ENVELOPED_DATA):
        kind = "authEnveloped-data"
    else:
        raise MalformedCMS("the CMS content is neither EnvelopedData nor AuthEnvelopedData")
    ctx = _expect(src, 0xA0, "the [0] content")
    env = _expect(src, 0x30, f"the {kind} SEQUENCE")
    env_start = src.pos
    _read_value(src, _expect(src, 0x02, "the version"), budget, 0, limits)
    hdr = _read_header(src)
    if hdr.tag == 0xA0:  # originatorInfo: certificates and CRLs, not needed to decrypt
        _read_value(src, hdr, budget, 0, limits)
        hdr = _read_header(src)
    if hdr.tag != 0x31:
        raise MalformedCMS("the RecipientInfos are missing")
    recipients = parse_recipient_infos(_read_value(src, hdr, budget, 0, limits))
    eci = _expect(src, 0x30, "the EncryptedContentInfo")
    eci_start = src.pos
    ct_hdr = _expect(src, 0x06, "the encrypted content type")
    ct_der = ct_hdr.raw + src.take(ct_hdr.length or 0)
    alg_der = _read_value(src, _expect(src, 0x30, "the algorithm"), budget, 0, limits)
    alg_oid, params = _algorithm(alg_der)
    return _Head(kind, ci, ctx, env, env_start, recipients, eci, eci_start, ct_der, alg_oid, params)


def _content_key(
    kind: Literal["enveloped-data", "authEnveloped-data"],
    recipients: Sequence[ParsedRecipient],
    alg_oid: str,
    identities: Sequence[tuple[x509.Certificate, Decrypter]],
    require_authenticated: bool,
) -> tuple[bytes, int, int]:
    """(content-encryption key, identity index, RecipientInfo index), after the checks that
    come before any decryption."""
    if require_authenticated and kind == "enveloped-data":
        raise DecryptionError(
            "the message is EnvelopedData (CBC), whose encryption does not protect integrity, "
            "and authenticated encryption was required"
        )
    if not recipients:
        raise MalformedCMS("the message has no RecipientInfo")
    known = CIPHER_BY_OID.get(alg_oid)
    return _find_key(recipients, identities, known.key_size if known else None)


def open_envelope(
    read: Callable[[int], bytes],
    identities: Sequence[tuple[x509.Certificate, Decrypter]],
    sink: Callable[[bytes], object],
    *,
    limits: Limits = DEFAULT_LIMITS,
    require_authenticated: bool = False,
) -> EnvelopeInfo:
    """Decrypt a BER/DER ContentInfo holding EnvelopedData or AuthEnvelopedData.

    The plaintext goes to ``sink``; for AuthEnvelopedData only after the tag verified. With
    ``require_authenticated``, EnvelopedData (CBC, no integrity protection) is refused before
    anything is decrypted. Raises
    :class:`~mailseal.errors.NoMatchingRecipient` when no identity is a recipient, and
    :class:`~mailseal.errors.DecryptionError` when the keys or the ciphertext are wrong.
    """
    src = _Src(read)
    budget = [limits.max_signature_bytes]
    head = _read_head(src, budget, limits)
    kind, ci, ctx, env, env_start = head.kind, head.ci, head.ctx, head.env, head.env_start
    eci, eci_start, ct_der = head.eci, head.eci_start, head.ct_der
    alg_oid, params, recipients = head.alg_oid, head.params, head.recipients
    cek, opened_by, rindex = _content_key(
        kind, recipients, alg_oid, identities, require_authenticated
    )
    content_hdr = _read_header(src)
    if content_hdr.tag not in (0x80, 0xA0):
        raise MalformedCMS("the encrypted content is missing (detached content is not supported)")

    if kind == "enveloped-data" and content_hdr.tag == 0x80 and (content_hdr.length or 0) <= _CHUNK:
        # small, definite-length ciphertext: read the whole envelope, then decrypt in one call
        ciphertext = src.take(content_hdr.length or 0)
        _close(src, eci, eci_start, "EncryptedContentInfo")
        _skip_rest(src, env, env_start, budget, limits, allowed=(0xA1,))
        _close_outer(src, ci, ctx)
        dec = ContentDecryptor(alg_oid, params, cek)
        sink(dec.open(ciphertext))
        return EnvelopeInfo(
            kind, dec.cipher.name, False, recipients, opened_by, rindex, _oid_text(ct_der)
        )

    if kind == "enveloped-data":
        dec = ContentDecryptor(alg_oid, params, cek)

        def on_cipher(chunk: bytes) -> None:
            out = dec.update(chunk)
            if out:
                sink(out)

        batch = _Batch(on_cipher)
        _stream_octets(src, content_hdr, batch.add, 0, limits, tags=(0x80, 0xA0))
        batch.flush()
        _close(src, eci, eci_start, "EncryptedContentInfo")
        sink(dec.finalize())
        _skip_rest(src, env, env_start, budget, limits, allowed=(0xA1,))
        info = EnvelopeInfo(
            kind, dec.cipher.name, False, recipients, opened_by, rindex, _oid_text(ct_der)
        )
        _close_outer(src, ci, ctx)
        return info

    if content_hdr.tag == 0x80 and (content_hdr.length or 0) <= _SPOOL_MEMORY:
        # small, definite-length ciphertext: decrypt in memory, release after the tag check
        ciphertext = src.take(content_hdr.length or 0)
        _close(src, eci, eci_start, "EncryptedContentInfo")
        aad, tag = _auth_trailer(src, budget, limits)
        _skip_rest(src, env, env_start, budget, limits, allowed=(0xA2,))
        _close_outer(src, ci, ctx)
        dec = ContentDecryptor(alg_oid, params, cek, aad=aad)
        sink(dec.open(ciphertext, tag))
        return EnvelopeInfo(
            kind, dec.cipher.name, True, recipients, opened_by, rindex, _oid_text(ct_der)
        )

    import tempfile  # here: it loads shutil, bz2 and lzma, which encryption never needs

    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
        spooled = _Batch(spool.write)
        _stream_octets(src, content_hdr, spooled.add, 0, limits, tags=(0x80, 0xA0))
        spooled.flush()
        _close(src, eci, eci_start, "EncryptedContentInfo")
        aad, tag = _auth_trailer(src, budget, limits)
        _skip_rest(src, env, env_start, budget, limits, allowed=(0xA2,))
        _close_outer(src, ci, ctx)
        # first pass: check the tag without releasing anything
        check = ContentDecryptor(alg_oid, params, cek, aad=aad)
        _replay(spool, check.update)
        check.finalize(tag)
        # second pass: the same ciphertext, now known to be authentic, to the sink
        dec = ContentDecryptor(alg_oid, params, cek, aad=aad)

        def to_sink(chunk: bytes) -> None:
            out = dec.update(chunk)
            if out:
                sink(out)

        _replay(spool, to_sink)
        tail = dec.finalize(tag)
        if tail:
            sink(tail)
    return EnvelopeInfo(
        kind, dec.cipher.name, True, recipients, opened_by, rindex, _oid_text(ct_der)
    )


class _Batch:
    """Gathers the small segments of a BER OCTET STRING (OpenSSL writes 4 KiB ones) into
    large pieces before they reach the cipher and the spool."""

    __slots__ = ("parts", "size", "target")

    def __init__(self, target: Callable[[bytes], object]) -> None:
        self.target = target
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.target(b"".join(self.parts))
            self.parts = []
            self.size = 0


def _auth_trailer(src: _Src, budget: list[int], limits: Limits) -> tuple[bytes | None, bytes]:
    """authAttrs (as AAD: their DER with the SET tag, RFC 5083 §2.1) and the mac."""
    hdr = _read_header(src)
    aad = None
    if hdr.tag == 0xA1:
        attrs = _read_value(src, hdr, budget, 0, limits)
        aad = b"\x31" + attrs[1:]
        hdr = _read_header(src)
    if hdr.tag != 0x04 or hdr.length is None:
        raise MalformedCMS("the authentication tag (mac) is missing")
    return aad, src.take(hdr.length)


def _replay(spool: IO[bytes], fn: Callable[[bytes], object]) -> None:
    spool.seek(0)
    while True:
        chunk = spool.read(_CHUNK)
        if not chunk:
            return
        fn(chunk)


def _oid_text(oid_der: bytes) -> str:
    try:
        return F.dotted(oid_der[2:])
    except F.Unusual:
        return "?"


def _close(src: _Src, hdr: _Header, start: int, what: str) -> None:
    if hdr.length is None:
        eoc = _read_header(src)
        if not (eoc.tag == 0 and eoc.length == 0):
            raise MalformedCMS(f"unexpected data at the end of the {what}")
    elif src.pos - start != hdr.length:
        raise MalformedCMS(f"the {what} length does not match its contents")


def _skip_rest(
    src: _Src,
    hdr: _Header,
    start: int,
    budget: list[int],
    limits: Limits,
    *,
    allowed: tuple[int, ...],
) -> None:
    """Read the optional trailing fields (unprotected/unauthenticated attributes)."""
    while True:
        if hdr.length is not None and src.pos - start >= hdr.length:
            if src.pos - start != hdr.length:
                raise MalformedCMS("the envelope length does not match its contents")
            return
        sub = _read_header(src)
        if hdr.length is None and sub.tag == 0 and sub.length == 0:
            return
        if sub.tag not in allowed:
            raise MalformedCMS("unexpected field at the end of the envelope")
        _read_value(src, sub, budget, 0, limits)


def _close_outer(src: _Src, ci: _Header, ctx: _Header) -> None:
    """The end of [0] and of ContentInfo when they were indefinite; nothing may follow."""
    for hdr in (ctx, ci):
        if hdr.length is None:
            eoc = _read_header(src)
            if not (eoc.tag == 0 and eoc.length == 0):
                raise MalformedCMS("trailing data after the envelope")
    if not src.at_eof():
        raise MalformedCMS("trailing data after the envelope")


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """What can be learnt about an envelope without a key."""

    kind: Literal["enveloped-data", "authEnveloped-data"]
    cipher: str
    recipients: tuple[ParsedRecipient, ...]


def peek_envelope(
    read: Callable[[int], bytes], *, limits: Limits = DEFAULT_LIMITS
) -> EnvelopeHeader:
    """The envelope's type, content cipher and recipients; the ciphertext is not read."""
    head = _read_head(_Src(read), [limits.max_signature_bytes], limits)
    known = CIPHER_BY_OID.get(head.alg_oid)
    return EnvelopeHeader(head.kind, known.name if known else head.alg_oid, head.recipients)


_OID_ENVELOPED = der.oid(O.ID_ENVELOPED_DATA)
_OID_AUTH_ENVELOPED = der.oid(O.ID_CT_AUTH_ENVELOPED_DATA)


class _Small(NamedTuple):
    """An envelope read from DER in memory."""

    kind: Literal["enveloped-data", "authEnveloped-data"]
    recipients: tuple[ParsedRecipient, ...]
    ct_der: bytes
    alg_oid: str
    params: bytes | None
    ciphertext: bytes
    aad: bytes | None
    tag: bytes | None


def _read_small(data: bytes, limits: Limits) -> _Small | None:
    """The envelope in ``data`` when it is plain DER of the usual shape: definite lengths,
    no originatorInfo, the ciphertext present and primitive, no unprotected or
    unauthenticated attributes, nothing after it. None for anything else (which is not
    necessarily wrong: :func:`open_envelope` reads every form and explains what is)."""
    children = F.children
    try:
        tag, cs, ce = F.tlv(data, 0, len(data))
        if tag != 0x30 or ce != len(data):
            return None
        ci = children(data, cs, ce)  # contentType, [0] content
        if len(ci) != 2 or ci[0][0] != 0x06 or ci[1][0] != 0xA0:
            return None
        oid_der = data[ci[0][1] : ci[0][3]]
        kind: Literal["enveloped-data", "authEnveloped-data"]
        if oid_der == _OID_ENVELOPED:
            kind = "enveloped-data"
        elif oid_der == _OID_AUTH_ENVELOPED:
            kind = "authEnveloped-data"
        else:
            return None
        env = children(data, ci[1][2], ci[1][3])  # the (Auth)EnvelopedData SEQUENCE
        if len(env) != 1 or env[0][0] != 0x30:
            return None
        # version, recipientInfos, encryptedContentInfo, then what follows the content
        fields = children(data, env[0][2], env[0][3])
        if len(fields) < 3 or fields[0][0] != 0x02 or fields[1][0] != 0x31 or fields[2][0] != 0x30:
            return None
        rset_start, rset_end = fields[1][1], fields[1][3]
        eci = children(data, fields[2][2], fields[2][3])
        if len(eci) != 3 or eci[0][0] != 0x06 or eci[1][0] != 0x30 or eci[2][0] != 0x80:
            return None
        rest = fields[3:]
        aad = tag_value = None
        if kind == "authEnveloped-data":
            if rest and rest[0][0] == 0xA1:  # authAttrs, authenticated as a SET (RFC 5083 §2.1)
                aad = b"\x31" + data[rest[0][1] + 1 : rest[0][3]]
                rest = rest[1:]
            if len(rest) != 1 or rest[0][0] != 0x04:
                return None
            tag_value = data[rest[0][2] : rest[0][3]]
        elif rest:
            return None
        ciphertext_length = eci[2][3] - eci[2][2]
        if ciphertext_length > _SPOOL_MEMORY:
            return None
        if len(data) - ciphertext_length > limits.max_signature_bytes:
            return None
    except F.Unusual:
        return None
    recipients = parse_recipient_infos(data, start=rset_start, end=rset_end)
    alg_oid, params = _algorithm(data, eci[1][1], eci[1][3])
    return _Small(
        kind,
        recipients,
        data[eci[0][1] : eci[0][3]],
        alg_oid,
        params,
        data[eci[2][2] : eci[2][3]],
        aad,
        tag_value,
    )


def open_envelope_bytes(
    data: bytes,
    identities: Sequence[tuple[x509.Certificate, Decrypter]],
    *,
    limits: Limits = DEFAULT_LIMITS,
    require_authenticated: bool = False,
) -> tuple[EnvelopeInfo, bytes]:
    """:func:`open_envelope` for a ContentInfo held in memory: (what was learnt, plaintext).

    The usual shape (DER, see :func:`_read_small`) is read and decrypted in one pass; any
    other form goes through :func:`open_envelope`. The checks, errors and results are the
    same either way.
    """
    small = _read_small(data, limits)
    if small is None:
        out: list[bytes] = []
        info = open_envelope(
            io.BytesIO(data).read,
            identities,
            out.append,
            limits=limits,
            require_authenticated=require_authenticated,
        )
        return info, b"".join(out)
    cek, opened_by, rindex = _content_key(
        small.kind, small.recipients, small.alg_oid, identities, require_authenticated
    )
    dec = ContentDecryptor(small.alg_oid, small.params, cek, aad=small.aad)
    plaintext = dec.open(small.ciphertext, small.tag)
    info = EnvelopeInfo(
        small.kind,
        dec.cipher.name,
        small.kind == "authEnveloped-data",
        small.recipients,
        opened_by,
        rindex,
        _oid_text(small.ct_der),
    )
    return info, plaintext
