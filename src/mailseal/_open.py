"""The everyday operations behind ``mailseal.decrypt``, ``seal`` and ``open`` (``encrypt`` is
in :mod:`mailseal._encrypt`; its names are here too)."""

from __future__ import annotations

import functools
import io
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, BinaryIO, cast

from cryptography import x509

from mailseal._encrypt import (
    Recipient,
    _recipients,
    _who,
    check_recipient,
    choose_algorithms,
    encrypt,
    encrypt_stream,
    validate_recipients,
)
from mailseal._sign import prepare_signers
from mailseal._verify import verify_stream
from mailseal.cms.enveloped import EnvelopeInfo, describe_recipient
from mailseal.cms.recipients import KeyTransportChoice
from mailseal.cms.signed import PreparedSigner
from mailseal.errors import (
    IdentityError,
    InputError,
    LimitExceeded,
    MailsealError,
    NotSMIME,
    UsageError,
)
from mailseal.keys.base import Decrypter, HashName
from mailseal.keys.identity import Identity
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime import envelope as E
from mailseal.mime import headers as H
from mailseal.mime.reader import CHUNK, PartReader, Reader, read_header_block
from mailseal.mime.sign import sign_stream as _sign_stream
from mailseal.mime.sign import transport_bytes
from mailseal.mime.verify import _ensure_seekable
from mailseal.validation.trust import Trust
from mailseal.validation.verdict import (
    EncryptionReport,
    Layer,
    OpenResult,
    Status,
    VerifyResult,
    worst,
)

__all__ = [
    "Recipient",
    "check_recipient",
    "choose_algorithms",
    "decrypt",
    "decrypt_stream",
    "encrypt",
    "encrypt_stream",
    "open_message",
    "open_stream",
    "recipient_from_signed",
    "seal",
    "seal_stream",
    "validate_recipients",
]


def recipient_from_signed(message: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Recipient:
    """Harvest a recipient from a signed message they sent: the certificate their
    SMIMEEncryptionKeyPreference names (when it is carried), else their signing certificate,
    with the SMIMECapabilities they announced. The signature must be intact; whether the
    certificate can be used is checked when encrypting."""
    from mailseal.cms.inspect import check_signature, find_signer_certificate
    from mailseal.mime.verify import read_signed

    msg = read_signed(io.BytesIO(message), None, limits=limits)
    sd = msg.signed_data
    for si in sd.signer_infos:
        cert = find_signer_certificate(si, sd.certificates)
        if cert is None:
            continue
        check = check_signature(
            si,
            cert,
            econtent_type=sd.content_type,
            digests=msg.digests,
            canonical_digests=msg.canonical_digests,
            content=msg.content,
        )
        if not check.intact:
            continue
        target = cert
        pref = si.encryption_key_preference
        if pref is not None:
            for c in sd.certificates:
                if pref.matches(c):
                    target = c
                    break
        return Recipient(target, si.capabilities or None)
    raise NotSMIME("the signed message has no intact signature to take a recipient from")


def _decrypters(identities: Sequence[Identity]) -> list[tuple[x509.Certificate, Decrypter]]:
    out = []
    for ident in identities:
        if not (hasattr(ident.key, "decrypt") and hasattr(ident.key, "exchange")):
            raise IdentityError("this key cannot decrypt")
        out.append((ident.certificate, cast(Decrypter, ident.key)))
    if not out:
        raise UsageError("give at least one identity (certificate and key) to decrypt with")
    return out


def _encrypted_layer(
    info: EnvelopeInfo, identities: Sequence[tuple[x509.Certificate, Decrypter]]
) -> Layer:
    recipients = tuple([describe_recipient(rid) for r in info.recipients for rid in r.rids])
    opener = _who(identities[info.opened_by][0])
    if len(recipients) <= 8 and sum(map(len, recipients)) <= 2048:
        # the usual few recipients, as in the last messages: that layer is already built (what
        # a hostile message makes large is not kept)
        return _layer_cached(info.cipher, info.authenticated, recipients, opener)
    return _layer(info.cipher, info.authenticated, recipients, opener)


def _layer(cipher: str, authenticated: bool, recipients: tuple[str, ...], opener: str) -> Layer:
    if authenticated:
        summary = f"encrypted with {cipher} (authenticated), opened with the key of {opener}"
        notes: tuple[str, ...] = ()
    else:
        summary = (
            f"encrypted with {cipher}, opened with the key of {opener}; "
            "the encryption does not protect integrity (CBC)"
        )
        notes = (
            "CBC content can be altered without detection (EFAIL); trust it only under a valid "
            "signature",
        )
    return Layer(
        kind="encrypted",
        status=Status.VALID,
        summary=summary,
        authenticated=authenticated,
        cipher=cipher,
        recipients=recipients,
        opened_by=opener,
        notes=notes,
    )


_layer_cached = functools.lru_cache(maxsize=256)(_layer)


def decrypt_stream(
    source: BinaryIO,
    sink: BinaryIO,
    identities: Sequence[Identity],
    *,
    require_authenticated: bool = False,
    with_headers: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> OpenResult:
    """Decrypt one encryption layer; the decrypted entity goes to ``sink`` (after the message's
    transport headers when ``with_headers``).

    AES-GCM content reaches ``sink`` only after its tag verified. CBC content streams as it is
    decrypted: if decryption fails at the end (a wrong key shows up as bad padding), discard
    what was written; ``require_authenticated`` refuses CBC before decrypting anything.
    """
    ids = _decrypters(identities)
    info, headers = E.decrypt_stream(
        source,
        sink,
        ids,
        limits=limits,
        write_transport=with_headers,
        require_authenticated=require_authenticated,
    )
    layer = _encrypted_layer(info, ids)
    return OpenResult(Status.VALID, (layer,), None, transport_bytes(headers))


def decrypt(
    message: bytes,
    identities: Sequence[Identity],
    *,
    require_authenticated: bool = False,
    with_headers: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> OpenResult:
    """Decrypt a message held in memory. Options as for :func:`decrypt_stream`; the decrypted
    entity is the result's ``content``."""
    ids = _decrypters(identities)
    small = E.decrypt_bytes(
        message, ids, limits=limits, require_authenticated=require_authenticated
    )
    if small is None:
        out = io.BytesIO()
        res = decrypt_stream(
            io.BytesIO(message),
            out,
            identities,
            require_authenticated=require_authenticated,
            with_headers=with_headers,
            limits=limits,
        )
        return OpenResult(res.status, res.layers, out.getvalue(), res.transport_headers)
    info, transport, plaintext = small
    if with_headers:
        plaintext = transport + plaintext
    return OpenResult(Status.VALID, (_encrypted_layer(info, ids),), plaintext, transport)


def _copy(src: IO[bytes], dst: BinaryIO) -> None:
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            return
        dst.write(chunk)


def seal_stream(
    source: BinaryIO,
    sink: BinaryIO,
    signers: Identity | PreparedSigner | Sequence[Identity | PreparedSigner],
    recipients: Sequence[x509.Certificate | Recipient],
    *,
    include_self: bool = True,
    opaque: bool = False,
    digest: HashName | None = None,
    pss: bool = False,
    cipher: str | None = None,
    key_transport: KeyTransportChoice | None = None,
    compatible: bool = False,
    ski: bool = False,
    trust: Trust | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> EncryptionReport:
    """Sign, then encrypt (RFC 8551 §3.7): what a mail client sends. With ``trust``, every
    recipient (the sender included) is validated for encryption first.

    The signer's encryption certificate (or, failing that, a signing certificate that can
    also encrypt) is added as a recipient unless ``include_self=False``.
    """
    prepared = prepare_signers(signers, digest, pss, ski)
    sender: x509.Certificate | None = None
    if include_self:
        ident = prepared[0].identity
        for cand in (ident.encryption_certificate, ident.certificate):
            if cand is None:
                continue
            try:
                check_recipient(cand)
            except IdentityError:
                continue
            sender = cand
            break
    recs = _recipients(recipients, sender)
    for rec in recs:
        check_recipient(rec.certificate)
    if trust is not None:
        validate_recipients(trust, [rec.certificate for rec in recs])
    chosen, env, report = choose_algorithms(
        recs, cipher=cipher, key_transport=key_transport, compatible=compatible, use_ski=ski
    )
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
        _sign_stream(source, cast(BinaryIO, spool), prepared, opaque=opaque, limits=limits)
        spool.seek(0)
        # the transport headers stay outside both layers; the signed entity is encrypted as
        # it is, byte for byte
        E.encrypt_stream(cast(BinaryIO, spool), sink, env, chosen, limits=limits, raw=True)
    return report


def seal(
    message: bytes,
    signers: Identity | PreparedSigner | Sequence[Identity | PreparedSigner],
    recipients: Sequence[x509.Certificate | Recipient],
    **options: object,
) -> bytes:
    out = io.BytesIO()
    seal_stream(io.BytesIO(message), out, signers, recipients, **options)  # type: ignore[arg-type]
    return out.getvalue()


def _partial_layer(
    r: Reader,
    ct: H.ContentType,
    limits: Limits,
    check: Callable[[BinaryIO], VerifyResult] | None = None,
) -> Layer | None:
    """A multipart that is not S/MIME itself: does it hold S/MIME parts? Signed parts are
    verified with ``check`` so the verdict says what they are worth."""
    boundary = ct.boundary()
    pre = PartReader(r, boundary, at_line_start=True)
    for _ in pre.chunks():
        pass
    closing = pre.closing or not pre.found
    protected: list[str] = []
    notes: list[str] = []
    count = 0
    while not closing and count < limits.max_parts:
        count += 1
        part = PartReader(r, boundary)
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            for chunk in part.chunks():
                spool.write(chunk)
            spool.seek(0)
            sub = Reader.from_stream(cast(BinaryIO, spool))
            fields, _ = read_header_block(sub, limits)
            pct = H.content_type(fields)
            kind = None
            if pct.value == "multipart/signed":
                kind = "signed"
            elif pct.value in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
                kind = (pct.param("smime-type") or "pkcs7-mime").lower()
            if kind is not None:
                protected.append(kind)
                if check is not None and kind in ("signed", "signed-data"):
                    spool.seek(0)
                    try:
                        result = check(cast(BinaryIO, spool))
                        who = ", ".join(
                            s.addresses[0] if s.addresses else s.signer_id for s in result.signers
                        )
                        notes.append(f"part {count} is signed by {who}: {result.status.value}")
                    except MailsealError as exc:
                        notes.append(f"part {count} cannot be verified: {exc}")
        closing = part.closing or not part.found
    if not protected:
        return None
    return Layer(
        kind="unprotected",
        status=Status.PARTIAL,
        summary=(
            f"a {ct.value} wrapper that is not itself signed or encrypted holds {len(protected)} "
            f"S/MIME part(s) ({', '.join(protected)}) among {count}: they protect only part of "
            "what is displayed"
        ),
        notes=tuple(notes),
    )


def _reader_over(part: PartReader) -> Reader:
    from mailseal.mime.canon import reader_over

    return reader_over(part)


def open_stream(
    source: BinaryIO,
    sink: BinaryIO,
    identities: Sequence[Identity] = (),
    *,
    trust: Trust | Sequence[x509.Certificate] | None = None,
    certificates: Sequence[x509.Certificate] = (),
    require_authenticated: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> OpenResult:
    """Peel every S/MIME layer (encrypted, signed, compressed, in any order and nesting) and
    write the innermost content to ``sink``, with one :class:`Layer` verdict per layer."""
    ids = _decrypters(identities) if identities else []
    t = trust if isinstance(trust, Trust) else Trust(tuple(trust or ()))
    current: BinaryIO = _ensure_seekable(source)
    layers: list[Layer] = []
    spools: list[IO[bytes]] = []
    transport = b""
    from_addresses: tuple[str, ...] = ()
    try:
        for depth in range(limits.max_layers + 1):
            pos = current.tell()
            r = Reader.from_stream(current)
            try:
                top = E.classify(r, limits)
            except (NotSMIME, InputError):
                if depth == 0:
                    raise
                break  # the innermost content is not MIME (or is empty): nothing more to peel
            if depth == 0:
                transport = transport_bytes(top.headers)
                from_addresses = H.addresses(list(top.headers), "from")
            if top.kind is None:
                ct = H.content_type(list(top.headers))
                if ct.maintype == "multipart":

                    def check(
                        part: BinaryIO, sender: tuple[str, ...] = from_addresses
                    ) -> VerifyResult:
                        return verify_stream(
                            part,
                            None,
                            trust=t,
                            certificates=certificates,
                            limits=limits,
                            from_addresses=sender,
                        )

                    partial = _partial_layer(r, ct, limits, check)
                    if partial is not None:
                        layers.append(partial)
                break
            if depth == limits.max_layers:
                raise LimitExceeded(f"more than {limits.max_layers} S/MIME layers")
            nxt = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - closed below
            spools.append(nxt)
            if top.kind in ("enveloped-data", "authEnveloped-data"):
                if not ids:
                    raise UsageError("the message is encrypted: give an identity to decrypt with")
                from mailseal.cms.enveloped import open_envelope

                assert top.read is not None
                info = open_envelope(
                    top.read,
                    ids,
                    nxt.write,
                    limits=limits,
                    require_authenticated=require_authenticated,
                )
                layers.append(_encrypted_layer(info, ids))
            elif top.kind == "compressed-data":
                from mailseal.cms.compressed import decompress_stream

                assert top.read is not None
                size = decompress_stream(top.read, nxt.write, limits=limits)
                layers.append(
                    Layer(
                        kind="compressed", status=Status.VALID, summary=f"compressed ({size} bytes)"
                    )
                )
            else:
                current.seek(pos)
                result = verify_stream(
                    current,
                    cast(BinaryIO, nxt),
                    trust=t,
                    certificates=certificates,
                    limits=limits,
                    from_addresses=from_addresses,
                )
                who = ", ".join(
                    s.addresses[0] if s.addresses else s.signer_id for s in result.signers
                )
                summary = (
                    f"signed by {who}: {result.status.value}"
                    if result.signers
                    else "signed-data without signers"
                )
                layers.append(
                    Layer(kind="signed", status=result.status, summary=summary, verification=result)
                )
            nxt.seek(0)
            current = cast(BinaryIO, nxt)
        else:  # pragma: no cover - the loop always breaks or raises
            pass
        if not layers:
            raise NotSMIME("the message has no S/MIME layer (not signed, encrypted or compressed)")
        current.seek(pos)
        _copy(cast(IO[bytes], current), sink)
    finally:
        for s in spools:
            s.close()
    status = worst([layer.status for layer in layers])
    return OpenResult(status, tuple(layers), None, transport)


def open_message(
    message: bytes, identities: Sequence[Identity] = (), **options: object
) -> OpenResult:
    out = io.BytesIO()
    res = open_stream(io.BytesIO(message), out, identities, **options)  # type: ignore[arg-type]
    return OpenResult(res.status, res.layers, out.getvalue(), res.transport_headers)
