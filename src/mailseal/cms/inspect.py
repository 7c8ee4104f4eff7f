"""Reading CMS SignedData and checking each SignerInfo's signature (RFC 5652 §5.4-§5.6).

:func:`parse_signed_data` turns DER into plain frozen values; :func:`check_signature` says
whether one SignerInfo is intact for given content digests. Trust in the signer's certificate
is not decided here (see :mod:`mailseal.validation`).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailseal._values import quick_init
from mailseal.asn1 import oids as O
from mailseal.asn1.der import oid as der_oid
from mailseal.cms import fastder as F
from mailseal.cms.algorithms import DIGEST_BY_OID, SIGNATURE_OIDS
from mailseal.cms.ids import SignerId
from mailseal.errors import LimitExceeded, MalformedCMS
from mailseal.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from asn1crypto import cms as a_cms
    from asn1crypto import core as a_core

__all__ = [
    "ParsedSignedData",
    "ParsedSignerInfo",
    "SignatureCheck",
    "check_signature",
    "find_signer_certificate",
    "load_certificate",
    "parse_signed_data",
]

_CERT_CACHE: OrderedDict[bytes, x509.Certificate] = OrderedDict()
_CERT_CACHE_MAX = 1024


def _add_certificate(certs: list[x509.Certificate], notes: list[str], der_bytes: bytes) -> None:
    """Keep a carried certificate, or note that it could not be read: one bad certificate
    must not stop the others (and the signatures) from being judged."""
    try:
        certs.append(load_certificate(der_bytes))
    except MalformedCMS as exc:
        notes.append(f"a certificate carried in the message was skipped: {exc}")


def load_certificate(der_bytes: bytes) -> x509.Certificate:
    """Parse a DER certificate, remembering recent ones (messages repeat the same chains)."""
    cert = _CERT_CACHE.get(der_bytes)
    if cert is not None:
        _CERT_CACHE.move_to_end(der_bytes)
        return cert
    try:
        cert = x509.load_der_x509_certificate(der_bytes)
    except Exception as exc:  # ValueError, x509.InvalidVersion, ...
        raise MalformedCMS(f"a certificate in the message is malformed ({exc})") from None
    _CERT_CACHE[der_bytes] = cert
    if len(_CERT_CACHE) > _CERT_CACHE_MAX:
        _CERT_CACHE.popitem(last=False)
    return cert


@quick_init
@dataclass(frozen=True, slots=True)
class ParsedSignerInfo:
    index: int
    version: int
    sid: SignerId
    digest_oid: str
    digest_name: str | None  # None when the digest algorithm is unknown
    signature_oid: str
    signature_kind: str | None
    signature_hash: str | None  # hash fixed by the signature algorithm or PSS parameters
    signature: bytes
    signed_attrs: bytes | None  # DER with the SET tag, exactly as signed
    content_type: str | None
    message_digest: bytes | None
    signing_time: _dt.datetime | None
    capabilities: tuple[str, ...]
    encryption_key_preference: SignerId | None
    has_timestamp: bool
    attribute_problems: tuple[str, ...] = field(default=())
    #: the DER of each RFC 3161 timeStampToken unsigned attribute value (at most
    #: MAX_TIMESTAMP_TOKENS; more make the SignerInfo unusable)
    timestamp_tokens: tuple[bytes, ...] = ()

    @property
    def timestamp_token(self) -> bytes | None:
        """The first timestamp token, if any."""
        return self.timestamp_tokens[0] if self.timestamp_tokens else None


@quick_init
@dataclass(frozen=True, slots=True)
class ParsedSignedData:
    content_type: str
    content: bytes | None
    digest_oids: tuple[str, ...]
    certificates: tuple[x509.Certificate, ...]
    crls: tuple[bytes, ...]
    signer_infos: tuple[ParsedSignerInfo, ...]
    #: what was skipped while reading (a certificate that cannot be parsed, ...)
    notes: tuple[str, ...] = ()


def _hash_name(algo: a_cms.DigestAlgorithm) -> str | None:
    d = DIGEST_BY_OID.get(algo["algorithm"].dotted)
    if d is not None:
        return d.name
    return "md5" if algo["algorithm"].dotted == O.MD5 else None


def _parse_signer_info(index: int, si: a_cms.SignerInfo) -> ParsedSignerInfo:
    from asn1crypto import cms as a_cms
    from asn1crypto import core as a_core

    sid_v = si["sid"]
    if sid_v.name == "subject_key_identifier":
        sid = SignerId(ski=bytes(sid_v.chosen.native))
    else:
        ias = sid_v.chosen
        sid = SignerId(issuer_der=ias["issuer"].dump(), serial=int(ias["serial_number"].native))
    dig = si["digest_algorithm"]
    sig_alg = si["signature_algorithm"]
    sig_oid = sig_alg["algorithm"].dotted
    kind_hash = SIGNATURE_OIDS.get(sig_oid)
    kind = kind_hash[0] if kind_hash else None
    sig_hash = kind_hash[1] if kind_hash else None
    if sig_oid == O.RSASSA_PSS:
        params = sig_alg["parameters"]
        if isinstance(params, a_core.Void) or params.native is None:
            sig_hash = "sha1"  # RFC 4055 defaults
        else:
            h = DIGEST_BY_OID.get(params["hash_algorithm"]["algorithm"].dotted)
            sig_hash = h.name if h else None
    attrs = si["signed_attrs"]
    signed_attrs: bytes | None = None
    ctype = mdig = None
    stime: _dt.datetime | None = None
    caps: list[str] = []
    pref: SignerId | None = None
    problems: list[str] = []
    if not isinstance(attrs, a_core.Void) and attrs.contents is not None:
        body = attrs.contents
        signed_attrs = _set_tlv(body)
        seen: set[str] = set()
        for attr in attrs:
            oid = attr["type"].dotted
            if oid in seen and oid in (O.ID_CONTENT_TYPE, O.ID_MESSAGE_DIGEST, O.ID_SIGNING_TIME):
                problems.append(f"attribute {oid} appears more than once")
            seen.add(oid)
            values = attr["values"]
            if oid == O.ID_CONTENT_TYPE:
                ctype = _single(values, problems, "contentType").dotted
            elif oid == O.ID_MESSAGE_DIGEST:
                mdig = bytes(_single(values, problems, "messageDigest").native)
            elif oid == O.ID_SIGNING_TIME:
                stime = _single(values, problems, "signingTime").native
            elif oid == O.ID_SMIME_CAPABILITIES:
                for cap in _single(values, problems, "SMIMECapabilities"):
                    caps.append(cap["capability_id"].dotted)
            elif oid == O.ID_AA_ENCRYP_KEY_PREF:
                v = _single(values, problems, "encrypKeyPref")
                if v.name == "issuer_and_serial_number":
                    pref = SignerId(
                        issuer_der=v.chosen["issuer"].dump(),
                        serial=int(v.chosen["serial_number"].native),
                    )
                elif v.name == "subjectAltKeyIdentifier":
                    pref = SignerId(ski=bytes(v.chosen.contents or b""))
            elif oid == O.MS_ENCRYPT_KEY_PREF and pref is None:
                raw = _single(values, problems, "msEncryptKeyPref")
                ias = a_cms.IssuerAndSerialNumber.load(raw.dump())
                pref = SignerId(
                    issuer_der=ias["issuer"].dump(), serial=int(ias["serial_number"].native)
                )
    unsigned = si["unsigned_attrs"]
    has_ts = False
    tokens: list[bytes] = []
    if not isinstance(unsigned, a_core.Void):
        for a in unsigned:
            if a["type"].dotted == O.ID_AA_TIMESTAMP_TOKEN:
                has_ts = True
                tokens.extend(v.dump() for v in a["values"])
    return ParsedSignerInfo(
        index=index,
        version=int(si["version"].native[1:]) if isinstance(si["version"].native, str) else 0,
        sid=sid,
        digest_oid=dig["algorithm"].dotted,
        digest_name=_hash_name(dig),
        signature_oid=sig_oid,
        signature_kind=kind,
        signature_hash=sig_hash,
        signature=bytes(si["signature"].native),
        signed_attrs=signed_attrs,
        content_type=ctype,
        message_digest=mdig,
        signing_time=stime,
        capabilities=tuple(caps),
        encryption_key_preference=pref,
        has_timestamp=has_ts,
        attribute_problems=tuple(problems),
        timestamp_tokens=tuple(tokens),
    )


def _set_tlv(body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes((n,))
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes((0x80 | len(b),)) + b
    return b"\x31" + length + body


def _single(values: a_core.Asn1Value, problems: list[str], name: str) -> a_core.Asn1Value:

    if len(values) != 1:
        problems.append(f"the {name} attribute must have exactly one value")
        if len(values) == 0:
            raise MalformedCMS(f"the {name} attribute has no value")
    return values[0]


def parse_signed_data(der_bytes: bytes, *, limits: Limits = DEFAULT_LIMITS) -> ParsedSignedData:
    """Parse a ContentInfo holding SignedData into frozen values."""
    if not der_bytes:
        raise MalformedCMS("the CMS signature is empty")
    try:
        return _parse_fast(der_bytes, limits)
    except F.Unusual:
        pass
    except (UnicodeDecodeError, ValueError, IndexError):
        pass
    from asn1crypto import cms as a_cms
    from asn1crypto import core as a_core

    try:
        ci = a_cms.ContentInfo.load(der_bytes, strict=True)
        if ci["content_type"].dotted != O.ID_SIGNED_DATA:
            raise MalformedCMS(
                f"expected CMS SignedData, found content type {ci['content_type'].dotted}"
            )
        sd = ci["content"]
        encap = sd["encap_content_info"]
        ctype = encap["content_type"].dotted
        econtent = encap["content"]
        content: bytes | None = None
        if not isinstance(econtent, a_core.Void) and econtent.contents is not None:
            parsed = econtent.parsed if hasattr(econtent, "parsed") else econtent
            content = bytes(parsed.native) if parsed is not None else b""
        digest_oids = tuple(a["algorithm"].dotted for a in sd["digest_algorithms"])
        certs: list[x509.Certificate] = []
        notes: list[str] = []
        cert_field = sd["certificates"]
        if not isinstance(cert_field, a_core.Void):
            if len(cert_field) > limits.max_certificates:
                raise LimitExceeded(
                    f"more than {limits.max_certificates} certificates in one signature"
                )
            for choice in cert_field:
                if choice.name == "certificate":
                    _add_certificate(certs, notes, choice.chosen.dump())
        crls: list[bytes] = []
        crl_field = sd["crls"]
        if not isinstance(crl_field, a_core.Void):
            for choice in crl_field:
                if choice.name == "crl":
                    crls.append(choice.chosen.dump())
        sis = sd["signer_infos"]
        if len(sis) > limits.max_signers:
            raise LimitExceeded(f"more than {limits.max_signers} signers in one signature")
        infos = tuple(_parse_signer_info(i, si) for i, si in enumerate(sis))
    except (MalformedCMS, LimitExceeded):
        raise
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError, ...
        raise MalformedCMS(f"the CMS signature is malformed ({exc})") from None
    return ParsedSignedData(
        ctype, content, digest_oids, tuple(certs), tuple(crls), infos, tuple(notes)
    )


def find_signer_certificate(
    si: ParsedSignerInfo, *pools: tuple[x509.Certificate, ...] | list[x509.Certificate]
) -> x509.Certificate | None:
    for pool in pools:
        for cert in pool:
            if si.sid.matches(cert):
                return cert
    return None


@quick_init
@dataclass(frozen=True, slots=True)
class SignatureCheck:
    intact: bool
    problem: str | None = None
    #: the content matched only after restoring CRLF line ends (a stored LF-only copy)
    via_canonical: bool = False


_HASH_CLASSES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _verify_raw(
    cert: x509.Certificate,
    kind: str,
    hash_name: str | None,
    signature: bytes,
    data: bytes | None,
    prehashed: bytes | None,
) -> str | None:
    """None when the signature verifies, else the reason."""
    try:
        pub = cert.public_key()
    except Exception as exc:  # ValueError, UnsupportedAlgorithm, ...
        return f"the signer's public key cannot be used ({exc})"
    h = _HASH_CLASSES.get(hash_name or "")
    try:
        if kind in ("rsa-pkcs1", "rsa-pss"):
            if not isinstance(pub, rsa.RSAPublicKey) or h is None:
                return "signature algorithm does not fit the signer's key"
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if kind == "rsa-pkcs1"
                else padding.PSS(mgf=padding.MGF1(h()), salt_length=padding.PSS.AUTO)
            )
            if data is not None:
                pub.verify(signature, data, pad, h())
            else:
                pub.verify(signature, prehashed or b"", pad, Prehashed(h()))
        elif kind == "ecdsa":
            if not isinstance(pub, ec.EllipticCurvePublicKey) or h is None:
                return "signature algorithm does not fit the signer's key"
            if data is not None:
                pub.verify(signature, data, ec.ECDSA(h()))
            else:
                pub.verify(signature, prehashed or b"", ec.ECDSA(Prehashed(h())))
        elif kind == "ed25519":
            if not isinstance(pub, ed25519.Ed25519PublicKey):
                return "signature algorithm does not fit the signer's key"
            if data is None:
                return "Ed25519 without signed attributes needs the whole content in memory"
            pub.verify(signature, data)
        elif kind == "ed448":
            if not isinstance(pub, ed448.Ed448PublicKey):
                return "signature algorithm does not fit the signer's key"
            if data is None:
                return "Ed448 without signed attributes needs the whole content in memory"
            pub.verify(signature, data)
        else:
            return "unsupported signature algorithm"
    except InvalidSignature:
        return "the signature value does not verify"
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        return f"the signature cannot be checked ({exc})"
    return None


def check_signature(
    si: ParsedSignerInfo,
    cert: x509.Certificate,
    *,
    econtent_type: str,
    digests: Mapping[str, bytes],
    canonical_digests: Mapping[str, bytes] | None = None,
    content: bytes | None = None,
) -> SignatureCheck:
    """Is this SignerInfo intact for content with these digests?

    ``digests`` maps digest names to the content's digest; ``canonical_digests`` are the digests
    of the CRLF-restored content, tried when the first do not match.
    """
    if si.digest_name is None:
        return SignatureCheck(False, f"unknown digest algorithm {si.digest_oid}")
    if si.signature_kind is None:
        return SignatureCheck(False, f"unknown signature algorithm {si.signature_oid}")
    digest = digests.get(si.digest_name)
    if digest is None and si.digest_name == "md5" and content is not None:
        digest = hashlib.md5(content, usedforsecurity=False).digest()
    if digest is None:
        return SignatureCheck(False, f"the content was not hashed with {si.digest_name}")
    if si.signed_attrs is not None:
        if si.content_type is None or si.message_digest is None:
            return SignatureCheck(
                False, "signed attributes lack contentType or messageDigest (RFC 5652 §5.3)"
            )
        if si.content_type != econtent_type:
            return SignatureCheck(False, "the contentType attribute does not match the content")
        via_canonical = False
        if si.message_digest != digest:
            alt = (canonical_digests or {}).get(si.digest_name)
            if alt is None or si.message_digest != alt:
                return SignatureCheck(False, "the content does not match the signed digest")
            via_canonical = True
        sig_hash = si.signature_hash or si.digest_name
        reason = _verify_raw(cert, si.signature_kind, sig_hash, si.signature, si.signed_attrs, None)
        if reason:
            return SignatureCheck(False, reason)
        return SignatureCheck(True, None, via_canonical)
    # no signed attributes: the signature is over the content itself
    sig_hash = si.signature_hash or si.digest_name
    if sig_hash != si.digest_name:
        return SignatureCheck(False, "signature and digest algorithms disagree")
    reason = _verify_raw(cert, si.signature_kind, sig_hash, si.signature, content, digest)
    if reason and canonical_digests and sig_hash in canonical_digests:
        alt_reason = _verify_raw(
            cert, si.signature_kind, sig_hash, si.signature, None, canonical_digests[sig_hash]
        )
        if alt_reason is None:
            return SignatureCheck(True, None, True)
    if reason:
        return SignatureCheck(False, reason)
    return SignatureCheck(True)


_SIGNED_DATA_OID = der_oid(O.ID_SIGNED_DATA)[2:]
_SINGLE_VALUED = {O.ID_CONTENT_TYPE, O.ID_MESSAGE_DIGEST, O.ID_SIGNING_TIME}


@functools.lru_cache(maxsize=256)
def _capabilities(body: bytes) -> tuple[str, ...]:
    """The OIDs of an SMIMECapabilities value (the same few values recur: cached)."""
    out = []
    for ctag, _, ccs, cce in F.children(body, 0, len(body)):
        if ctag != 0x30:
            raise F.Unusual
        out.append(_oid_of(body, ccs, cce))
    return tuple(out)


def _only(buf: bytes, cs: int, ce: int) -> tuple[int, int, int, int]:
    kids = F.children(buf, cs, ce)
    if len(kids) != 1:
        raise F.Unusual
    return kids[0]


def _int(buf: bytes, cs: int, ce: int) -> int:
    if ce == cs:
        raise F.Unusual
    return int.from_bytes(buf[cs:ce], "big", signed=True)


def _oid_of(buf: bytes, cs: int, ce: int) -> str:
    """The OID that starts an AlgorithmIdentifier-like SEQUENCE's content."""
    tag, _, ocs, oce = F.children(buf, cs, ce)[0]
    if tag != 0x06:
        raise F.Unusual
    return F.dotted(buf[ocs:oce])


def _ias(buf: bytes, cs: int, ce: int) -> SignerId:
    kids = F.children(buf, cs, ce)
    if len(kids) != 2 or kids[0][0] != 0x30 or kids[1][0] != 0x02:
        raise F.Unusual
    name_hs, name_ce = kids[0][1], kids[0][3]
    return SignerId(issuer_der=buf[name_hs:name_ce], serial=_int(buf, kids[1][2], kids[1][3]))


def _parse_signer_fast(index: int, buf: bytes, cs: int, ce: int) -> ParsedSignerInfo:
    kids = F.children(buf, cs, ce)
    if len(kids) < 5:
        raise F.Unusual
    i = 0
    tag, _, vcs, vce = kids[i]
    if tag != 0x02:
        raise F.Unusual
    version = _int(buf, vcs, vce)
    i += 1
    tag, _, scs, sce = kids[i]
    if tag == 0x30:
        sid = _ias(buf, scs, sce)
    elif tag == 0x80:
        sid = SignerId(ski=buf[scs:sce])
    else:
        raise F.Unusual
    i += 1
    tag, _, dcs, dce = kids[i]
    if tag != 0x30:
        raise F.Unusual
    digest_oid = _oid_of(buf, dcs, dce)
    i += 1
    signed_attrs: bytes | None = None
    ctype = stime = None
    mdig: bytes | None = None
    caps: list[str] = []
    pref: SignerId | None = None
    problems: list[str] = []
    tag, _, acs, ace = kids[i]
    if tag == 0xA0:
        signed_attrs = _set_tlv(buf[acs:ace])
        seen: set[str] = set()
        for atag, _, atcs, atce in F.children(buf, acs, ace):
            if atag != 0x30:
                raise F.Unusual
            parts = F.children(buf, atcs, atce)
            if len(parts) != 2 or parts[0][0] != 0x06 or parts[1][0] != 0x31:
                raise F.Unusual
            oid = F.dotted(buf[parts[0][2] : parts[0][3]])
            if oid in seen and oid in _SINGLE_VALUED:
                problems.append(f"attribute {oid} appears more than once")
            seen.add(oid)
            vcs2, vce2 = parts[1][2], parts[1][3]
            if oid in _SINGLE_VALUED or oid in (
                O.ID_SMIME_CAPABILITIES,
                O.ID_AA_ENCRYP_KEY_PREF,
                O.MS_ENCRYPT_KEY_PREF,
            ):
                vals = F.children(buf, vcs2, vce2)
                if len(vals) != 1:
                    if oid in _SINGLE_VALUED:
                        raise F.Unusual  # let the general parser report it
                    continue
                vtag, _, vcs3, vce3 = vals[0]
                if oid == O.ID_CONTENT_TYPE:
                    if vtag != 0x06:
                        raise F.Unusual
                    ctype = F.dotted(buf[vcs3:vce3])
                elif oid == O.ID_MESSAGE_DIGEST:
                    if vtag != 0x04:
                        raise F.Unusual
                    mdig = buf[vcs3:vce3]
                elif oid == O.ID_SIGNING_TIME:
                    stime = F.parse_time(vtag, buf[vcs3:vce3])
                elif oid == O.ID_SMIME_CAPABILITIES:
                    if vtag != 0x30:
                        raise F.Unusual
                    caps.extend(_capabilities(buf[vcs3:vce3]))
                elif oid == O.ID_AA_ENCRYP_KEY_PREF:
                    if vtag == 0xA0:
                        pref = _ias(buf, vcs3, vce3)
                    elif vtag == 0x82:
                        pref = SignerId(ski=buf[vcs3:vce3])
                elif oid == O.MS_ENCRYPT_KEY_PREF and pref is None and vtag == 0x30:
                    pref = _ias(buf, vcs3, vce3)
        i += 1
    tag, _, gcs, gce = kids[i]
    if tag != 0x30:
        raise F.Unusual
    sig_parts = F.children(buf, gcs, gce)
    if not sig_parts or sig_parts[0][0] != 0x06:
        raise F.Unusual
    sig_oid = F.dotted(buf[sig_parts[0][2] : sig_parts[0][3]])
    kind_hash = SIGNATURE_OIDS.get(sig_oid)
    kind = kind_hash[0] if kind_hash else None
    sig_hash = kind_hash[1] if kind_hash else None
    if sig_oid == O.RSASSA_PSS:
        sig_hash = "sha1"  # RFC 4055 default when hashAlgorithm is absent
        if len(sig_parts) > 1 and sig_parts[1][0] == 0x30:
            for ptag, _, pcs, pce in F.children(buf, sig_parts[1][2], sig_parts[1][3]):
                if ptag == 0xA0:
                    htag, _, hcs, hce = _only(buf, pcs, pce)
                    if htag != 0x30:
                        raise F.Unusual
                    h = DIGEST_BY_OID.get(_oid_of(buf, hcs, hce))
                    sig_hash = h.name if h else None
    i += 1
    tag, _, ocs, oce = kids[i]
    if tag != 0x04:
        raise F.Unusual
    signature = buf[ocs:oce]
    i += 1
    has_ts = False
    tokens: list[bytes] = []
    if i < len(kids):
        tag, _, ucs, uce = kids[i]
        if tag != 0xA1 or i + 1 != len(kids):
            raise F.Unusual
        ts_oid = der_oid(O.ID_AA_TIMESTAMP_TOKEN)[2:]
        for atag, _, acs2, ace2 in F.children(buf, ucs, uce):
            if atag != 0x30:
                raise F.Unusual
            parts = F.children(buf, acs2, ace2)
            if len(parts) != 2 or parts[0][0] != 0x06 or parts[1][0] != 0x31:
                raise F.Unusual
            if buf[parts[0][2] : parts[0][3]] == ts_oid:
                has_ts = True
                values = F.children(buf, parts[1][2], parts[1][3])
                tokens.extend(buf[v[1] : v[3]] for v in values)
    digest = DIGEST_BY_OID.get(digest_oid)
    return ParsedSignerInfo(
        index=index,
        version=version,
        sid=sid,
        digest_oid=digest_oid,
        digest_name=digest.name if digest else ("md5" if digest_oid == O.MD5 else None),
        signature_oid=sig_oid,
        signature_kind=kind,
        signature_hash=sig_hash,
        signature=signature,
        signed_attrs=signed_attrs,
        content_type=ctype,
        message_digest=mdig,
        signing_time=stime,
        capabilities=tuple(caps),
        encryption_key_preference=pref,
        has_timestamp=has_ts,
        attribute_problems=tuple(problems),
        timestamp_tokens=tuple(tokens),
    )


def _parse_fast(buf: bytes, limits: Limits) -> ParsedSignedData:
    n = len(buf)
    tag, cs, ce = F.tlv(buf, 0, n)
    if tag != 0x30 or ce != n:
        raise F.Unusual
    kids = F.children(buf, cs, ce)
    if len(kids) != 2 or kids[0][0] != 0x06 or kids[1][0] != 0xA0:
        raise F.Unusual
    if buf[kids[0][2] : kids[0][3]] != _SIGNED_DATA_OID:
        raise F.Unusual
    stag, _, scs, sce = _only(buf, kids[1][2], kids[1][3])
    if stag != 0x30:
        raise F.Unusual
    sd = F.children(buf, scs, sce)
    if len(sd) < 4 or sd[0][0] != 0x02 or sd[1][0] != 0x31 or sd[2][0] != 0x30:
        raise F.Unusual
    digest_oids = tuple(
        _oid_of(buf, c[2], c[3]) for c in F.children(buf, sd[1][2], sd[1][3]) if c[0] == 0x30
    )
    enc = F.children(buf, sd[2][2], sd[2][3])
    if not enc or enc[0][0] != 0x06 or len(enc) > 2:
        raise F.Unusual
    ctype = F.dotted(buf[enc[0][2] : enc[0][3]])
    content: bytes | None = None
    if len(enc) == 2:
        if enc[1][0] != 0xA0:
            raise F.Unusual
        otag, _, ocs, oce = _only(buf, enc[1][2], enc[1][3])
        if otag != 0x04:
            raise F.Unusual
        content = buf[ocs:oce]
    certs: list[x509.Certificate] = []
    notes: list[str] = []
    crls: list[bytes] = []
    rest = sd[3:]
    if rest and rest[0][0] == 0xA0:
        entries = F.children(buf, rest[0][2], rest[0][3])
        if len(entries) > limits.max_certificates:
            raise LimitExceeded(
                f"more than {limits.max_certificates} certificates in one signature"
            )
        for ctag, chs, _, cce in entries:
            if ctag == 0x30:
                _add_certificate(certs, notes, buf[chs:cce])
        rest = rest[1:]
    if rest and rest[0][0] == 0xA1:
        for ctag, chs, _, cce in F.children(buf, rest[0][2], rest[0][3]):
            if ctag == 0x30:
                crls.append(buf[chs:cce])
        rest = rest[1:]
    if len(rest) != 1 or rest[0][0] != 0x31:
        raise F.Unusual
    sis = F.children(buf, rest[0][2], rest[0][3])
    if len(sis) > limits.max_signers:
        raise LimitExceeded(f"more than {limits.max_signers} signers in one signature")
    infos = []
    for idx, (itag, _, ics, ice) in enumerate(sis):
        if itag != 0x30:
            raise F.Unusual
        infos.append(_parse_signer_fast(idx, buf, ics, ice))
    return ParsedSignedData(
        ctype, content, digest_oids, tuple(certs), tuple(crls), tuple(infos), tuple(notes)
    )
