"""Building CMS SignedData (RFC 5652 §5) for S/MIME (RFC 8551 §2).

The content is never held here: callers hash it as it streams past and hand over the digests.
Everything that does not change from one message to the next (certificates, identifiers,
static attributes) is encoded once per signer in :class:`PreparedSigner`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailseal._background import BackgroundFeed, fan_out
from mailseal.asn1 import der
from mailseal.asn1 import oids as O
from mailseal.cms.algorithms import (
    DIGESTS,
    SIGNING_DIGESTS,
    default_digest_for,
    scheme_for,
    signature_algorithm_der,
)
from mailseal.errors import AlgorithmError, IdentityError
from mailseal.keys.base import HashName
from mailseal.keys.identity import Identity

__all__ = [
    "DEFAULT_CAPABILITIES",
    "OpaqueSignedWriter",
    "PreparedSigner",
    "SignerOptions",
    "encode_signed_data",
    "issuer_and_serial_der",
    "subject_key_identifier",
]

#: SMIMECapabilities announced by mailseal signers, most preferred first (RFC 8551 §2.5.2):
#: AES-GCM (RFC 5084) before AES-CBC (RFC 3565), and RSAES-OAEP key transport (RFC 8551 §2.3).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    O.AES256_GCM,
    O.AES128_GCM,
    O.AES256_CBC,
    O.AES192_CBC,
    O.AES128_CBC,
    O.RSAES_OAEP,
)


@dataclass(frozen=True, slots=True)
class SignerOptions:
    """Per-signer choices. ``digest=None`` picks the key's natural digest (SHA-256 mostly)."""

    digest: HashName | None = None
    pss: bool = False
    use_ski: bool = False
    include_chain: bool = True
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES


def _cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def issuer_and_serial_der(cert: x509.Certificate) -> bytes:
    """IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }."""
    return der.sequence(cert.issuer.public_bytes(), der.integer(cert.serial_number))


def subject_key_identifier(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.digest


def _attribute(oid: str, *values: bytes) -> bytes:
    return der.sequence(der.oid(oid), der.set_of(values))


def _capabilities_attr(capabilities: Sequence[str]) -> bytes:
    # SMIMECapabilities ::= SEQUENCE OF SMIMECapability; order is preference, so not a SET
    caps = []
    for oid in capabilities:
        if oid == O.RSAES_OAEP:
            # RFC 8551 §2.5.2 / RFC 4055: OAEP with SHA-256, MGF1-SHA-256 parameters
            sha256 = DIGESTS["sha256"].der
            params = der.sequence(
                der.context(0, sha256), der.context(1, der.sequence(der.oid(O.MGF1), sha256))
            )
            caps.append(der.sequence(der.oid(oid), params))
        else:
            caps.append(der.sequence(der.oid(oid)))
    return _attribute(O.ID_SMIME_CAPABILITIES, der.sequence(*caps))


class PreparedSigner:
    """One signer with every per-message-constant piece already encoded."""

    __slots__ = (
        "_frame",
        "_info_head",
        "_last_time",
        "_md_prefix",
        "_single",
        "_st_prefix",
        "cert_ders",
        "digest",
        "digest_der",
        "identity",
        "scheme",
        "sid",
        "sig_alg_der",
        "static_attrs",
        "version",
    )

    def __init__(self, identity: Identity, options: SignerOptions | None = None) -> None:
        opts = options or SignerOptions()
        key = identity.key
        digest: HashName = opts.digest or default_digest_for(key.key_type, key.key_size)
        if digest not in SIGNING_DIGESTS:
            raise AlgorithmError(
                f"{digest} is refused for new signatures; use sha256, sha384 or sha512"
            )
        if key.key_type == "ed25519" and digest != "sha512":
            # RFC 8419 §3.1: with Ed25519, the message digest is SHA-512
            digest = "sha512"
        if key.key_type == "rsa" and key.key_size < 2048:
            raise AlgorithmError(
                f"RSA keys under 2048 bits are refused for new signatures ({key.key_size} bits)"
            )
        self.identity = identity
        self.digest: HashName = digest
        self.scheme = scheme_for(key.key_type, digest, pss=opts.pss)
        self.digest_der = DIGESTS[digest].der
        self.sig_alg_der = signature_algorithm_der(self.scheme)
        cert = identity.certificate
        if opts.use_ski:
            ski = subject_key_identifier(cert)
            if ski is None:
                raise IdentityError(
                    "the signer certificate has no subjectKeyIdentifier; sign without --ski"
                )
            self.sid = der.context(0, ski, constructed=False)
            self.version = 3
        else:
            self.sid = issuer_and_serial_der(cert)
            self.version = 1
        certs = [cert, *identity.chain] if opts.include_chain else [cert]
        self.cert_ders = tuple(_cert_der(c) for c in certs)
        static = [
            _attribute(O.ID_CONTENT_TYPE, der.oid(O.ID_DATA)),
            _capabilities_attr(opts.capabilities),
        ]
        enc = identity.encryption_certificate
        if enc is not None and enc != cert:
            ias = issuer_and_serial_der(enc)
            # RFC 8551 §2.5.3: SMIMEEncryptionKeyPreference, issuerAndSerialNumber [0] IMPLICIT
            static.append(_attribute(O.ID_AA_ENCRYP_KEY_PREF, b"\xa0" + ias[1:]))
            # Microsoft's attribute carries the bare IssuerAndSerialNumber
            static.append(_attribute(O.MS_ENCRYPT_KEY_PREF, ias))
            enc_der = _cert_der(enc)
            if enc_der not in self.cert_ders:
                self.cert_ders = (*self.cert_ders, enc_der)
        self.static_attrs = tuple(static)
        size = DIGESTS[digest].size
        md = _attribute(O.ID_MESSAGE_DIGEST, der.octet_string(bytes(size)))
        self._md_prefix = md[:-size]
        st = _attribute(O.ID_SIGNING_TIME, der.signing_time(_dt.datetime(2000, 1, 1)))
        self._st_prefix = st[:-13]
        self._single: tuple[bytes, bytes] | None = None
        self._frame: tuple[int, bytes] | None = None
        self._info_head: bytes | None = None
        self._last_time: tuple[_dt.datetime, bytes] | None = None

    def _time_attr(self, when: _dt.datetime) -> bytes:
        last = self._last_time
        if last is not None and last[0] == when:
            return last[1]
        t = der.signing_time(when)
        attr = self._st_prefix + t[2:] if t[0] == 0x17 else _attribute(O.ID_SIGNING_TIME, t)
        self._last_time = (when, attr)
        return attr

    def single_frame(self) -> tuple[bytes, bytes]:
        """(version + digestAlgorithms, certificates) when this is the only signer."""
        if self._single is None:
            head = der.integer(self.version) + der.set_of([self.digest_der])
            certs = der.context(0, b"".join(sorted(dict.fromkeys(self.cert_ders))))
            self._single = (head, certs)
        return self._single

    def detached_frame(self, info_length: int) -> bytes:
        """A detached ContentInfo/SignedData with this signer alone, up to its SignerInfo of
        ``info_length`` bytes (which follows it to the end). The same for every signature of
        the same length, so the last one is kept."""
        last = self._frame
        if last is not None and last[0] == info_length:
            return last[1]
        head, certs = self.single_frame()
        si_hdr = _header(0x31, info_length)
        sd_len = len(head) + len(_DETACHED_ENCAP) + len(certs) + len(si_hdr) + info_length
        sd_hdr = _header(0x30, sd_len)
        ctx_hdr = _header(0xA0, len(sd_hdr) + sd_len)
        ci_hdr = _header(0x30, len(_OID_SIGNED_DATA) + len(ctx_hdr) + len(sd_hdr) + sd_len)
        frame = b"".join(
            (ci_hdr, _OID_SIGNED_DATA, ctx_hdr, sd_hdr, head, _DETACHED_ENCAP, certs, si_hdr)
        )
        self._frame = (info_length, frame)
        return frame

    def signer_info(self, message_digest: bytes, when: _dt.datetime) -> bytes:
        attrs = [
            *self.static_attrs,
            self._md_prefix + message_digest,
            self._time_attr(when),
        ]
        attrs.sort()
        body = b"".join(attrs)
        to_sign = b"\x31" + der.encode_length(len(body)) + body
        signature = self.identity.key.sign(to_sign, self.scheme)
        if self._info_head is None:
            self._info_head = der.integer(self.version) + self.sid + self.digest_der
        return der.tlv(
            0x30,
            b"".join(
                (
                    self._info_head,
                    b"\xa0",
                    to_sign[1:],
                    self.sig_alg_der,
                    der.octet_string(signature),
                )
            ),
        )


_OID_SIGNED_DATA = der.oid(O.ID_SIGNED_DATA)
#: EncapsulatedContentInfo of a detached signature: id-data, no content
_DETACHED_ENCAP = der.sequence(der.oid(O.ID_DATA))


@functools.lru_cache(maxsize=2)
def _utc_second(seconds: int) -> _dt.datetime:
    """The signing time: now, to the second (the same object for every signature made within
    one second)."""
    return _dt.datetime.fromtimestamp(seconds, _dt.UTC)


def _header(tag: int, length: int) -> bytes:
    return bytes((tag,)) + der.encode_length(length)


def encode_signed_data(
    signers: Sequence[PreparedSigner],
    digests: Mapping[str, bytes],
    *,
    when: _dt.datetime | None = None,
    content_length: int | None = None,
) -> tuple[bytes, bytes]:
    """A DER ContentInfo/SignedData split around the encapsulated content.

    With ``content_length=None`` the signature is detached and the second element is empty.
    Otherwise the caller writes ``prefix``, then exactly ``content_length`` content bytes, then
    ``suffix``.
    """
    if not signers:
        raise IdentityError("at least one signer is needed")
    when = when or _utc_second(int(time.time()))
    infos = [s.signer_info(digests[s.digest], when) for s in signers]
    if content_length is None and len(signers) == 1:
        return signers[0].detached_frame(len(infos[0])) + infos[0], b""
    if len(signers) == 1:
        head, certs = signers[0].single_frame()
    else:
        version = 3 if any(s.version == 3 for s in signers) else 1
        digest_algs = der.set_of({s.digest_der for s in signers})
        seen: dict[bytes, None] = {}
        for s in signers:
            for c in s.cert_ders:
                seen.setdefault(c, None)
        certs = der.context(0, b"".join(sorted(seen)))
        head = der.integer(version) + digest_algs
    signer_infos = der.tlv(0x31, infos[0]) if len(infos) == 1 else der.set_of(infos)
    tail = certs + signer_infos
    ctype = der.oid(O.ID_DATA)
    if content_length is None:
        sd = der.tlv(0x30, b"".join((head, _DETACHED_ENCAP, tail)))
        return der.tlv(0x30, _OID_SIGNED_DATA + der.tlv(0xA0, sd)), b""
    octets_hdr = _header(0x04, content_length)
    explicit_len = len(octets_hdr) + content_length
    explicit_hdr = _header(0xA0, explicit_len)
    encap_len = len(ctype) + len(explicit_hdr) + explicit_len
    encap_hdr = _header(0x30, encap_len)
    sd_len = len(head) + len(encap_hdr) + encap_len + len(tail)
    sd_hdr = _header(0x30, sd_len)
    ci_inner = len(sd_hdr) + sd_len
    ci_ctx = _header(0xA0, ci_inner)
    ci_hdr = _header(0x30, len(_OID_SIGNED_DATA) + len(ci_ctx) + ci_inner)
    prefix = b"".join(
        (ci_hdr, _OID_SIGNED_DATA, ci_ctx, sd_hdr, head, encap_hdr, ctype, explicit_hdr, octets_hdr)
    )
    return prefix, tail


#: Encapsulated content up to this size is written as DER (definite lengths); beyond, as BER.
DER_LIMIT = 1 << 20


class OpaqueSignedWriter:
    """Encapsulating SignedData written as the content streams past.

    Up to ``der_limit`` bytes of content are buffered and written as DER; past that the
    writer switches to BER with indefinite lengths and a constructed OCTET STRING (as
    ``openssl cms -stream`` does): the SignerInfos follow the content, so nothing needs to be
    held back.
    """

    def __init__(
        self,
        write: Callable[[bytes], None],
        signers: Sequence[PreparedSigner],
        *,
        when: _dt.datetime | None = None,
        der_limit: int = DER_LIMIT,
    ) -> None:
        if not signers:
            raise IdentityError("at least one signer is needed")
        self._write = write
        self._signers = signers
        self._when = when
        self._hashers: dict[str, hashlib._Hash] = {s.digest: hashlib.new(s.digest) for s in signers}
        # a large content is hashed in a second thread while it is encoded and written
        self._hash = BackgroundFeed(fan_out([h.update for h in self._hashers.values()]))
        self._buffer: list[bytes] | None = []
        self._buffered = 0
        self._der_limit = der_limit

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._hash(data)
        if self._buffer is not None:
            self._buffer.append(data)
            self._buffered += len(data)
            if self._buffered <= self._der_limit:
                return
            pending = b"".join(self._buffer)
            self._buffer = None
            head = self._head()
            self._write(head + der.tlv(0x04, pending))
            return
        # the header on its own: the content is handed on without being copied
        self._write(bytes((0x04,)) + der.encode_length(len(data)))
        self._write(data)

    def _head(self) -> bytes:
        if len(self._signers) == 1:
            head, _ = self._signers[0].single_frame()
        else:
            version = 3 if any(s.version == 3 for s in self._signers) else 1
            head = der.integer(version) + der.set_of({s.digest_der for s in self._signers})
        return (
            b"\x30\x80"
            + _OID_SIGNED_DATA
            + b"\xa0\x80\x30\x80"
            + head
            + b"\x30\x80"
            + der.oid(O.ID_DATA)
            + b"\xa0\x80\x24\x80"
        )

    def abort(self) -> None:
        """Give up on this content (stops the hashing thread, if one was started)."""
        self._hash.abort()

    def close(self) -> None:
        self._hash.close()
        digests = {name: h.digest() for name, h in self._hashers.items()}
        if self._buffer is not None:
            content = b"".join(self._buffer)
            prefix, suffix = encode_signed_data(
                self._signers, digests, when=self._when, content_length=len(content)
            )
            self._write(prefix + content + suffix)
            return
        detached, _ = encode_signed_data(self._signers, digests, when=self._when)
        # reuse the detached encoding for the certificates and SignerInfos that follow
        tail = _after_encap(detached)
        # end of the OCTET STRING, [0] and EncapsulatedContentInfo, then certs + SignerInfos,
        # then the end of SignedData, [0] and ContentInfo
        self._write(b"\x00\x00" * 3 + tail + b"\x00\x00" * 3)


def _after_encap(detached: bytes) -> bytes:
    """The certificates and SignerInfos of a DER ContentInfo(SignedData) we just encoded."""
    from mailseal.cms import fastder as F

    _, cs, ce = F.tlv(detached, 0, len(detached))
    kids = F.children(detached, cs, ce)
    _, sd_cs, sd_ce = F.tlv(detached, kids[1][2], kids[1][3])
    sd = F.children(detached, sd_cs, sd_ce)
    # version, digestAlgorithms, encapContentInfo, then the rest
    return detached[sd[3][1] : sd_ce]
