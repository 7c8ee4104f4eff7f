"""Signing certificates, CRLs and OCSP responses with any :class:`~mailseal.keys.base.PrivateKey`.

cryptography's builders sign only with key objects held in memory. A CA key in an HSM never
leaves it, so for any other key the structure is first signed with a throwaway key of the same
algorithm (which fixes the to-be-signed bytes, signature AlgorithmIdentifier included), and the
signature is then replaced by one the real key makes over exactly those bytes. Software keys
take the direct route.

The same throwaway signature gives :func:`preview_certificate`: the complete certificate as it
will be issued, for the pre-issuance lint, before the CA key signs anything.

Signature algorithms follow the S/MIME Baseline Requirements §7.1.3.2: RSASSA-PKCS1-v1_5 with
SHA-256 (SHA-384/512 on request), ECDSA P-256 with SHA-256, P-384 with SHA-384, P-521 with
SHA-512, and Ed25519.
"""

from __future__ import annotations

import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import ocsp

from mailseal.errors import AlgorithmError
from mailseal.keys.base import HashName, PrivateKey, SignatureScheme
from mailseal.keys.software import SoftwareKey, hash_algorithm

__all__ = [
    "default_hash",
    "preview_certificate",
    "scheme_for",
    "sign_certificate",
    "sign_crl",
    "sign_ocsp_response",
]

_EC_HASH: dict[int, HashName] = {256: "sha256", 384: "sha384", 521: "sha512"}
_CURVES: dict[int, ec.EllipticCurve] = {
    256: ec.SECP256R1(),
    384: ec.SECP384R1(),
    521: ec.SECP521R1(),
}

_throwaway_lock = threading.Lock()
_throwaway: dict[tuple[str, int], Any] = {}


def default_hash(key: PrivateKey) -> HashName | None:
    """The BR §7.1.3.2 hash for ``key`` (None for EdDSA, which hashes internally)."""
    if key.key_type == "rsa":
        return "sha256"
    if key.key_type == "ec":
        try:
            return _EC_HASH[key.key_size]
        except KeyError:
            raise AlgorithmError(f"unsupported EC key size {key.key_size}") from None
    if key.key_type in ("ed25519", "ed448"):
        return None
    raise AlgorithmError(f"a {key.key_type} key cannot sign certificates")


def scheme_for(key: PrivateKey, hash_name: HashName | None = None) -> SignatureScheme:
    """How ``key`` signs certificates, CRLs and OCSP responses."""
    h = hash_name or default_hash(key) or "sha512"
    kinds = {"rsa": "rsa-pkcs1", "ec": "ecdsa", "ed25519": "ed25519", "ed448": "ed448"}
    kind = kinds.get(key.key_type)
    if kind is None:
        raise AlgorithmError(f"a {key.key_type} key cannot sign certificates")
    return SignatureScheme(kind, h)  # type: ignore[arg-type]


def _algorithm(key: PrivateKey, hash_name: HashName | None) -> Any:
    if key.key_type in ("ed25519", "ed448"):
        return None
    return hash_algorithm(hash_name or default_hash(key) or "sha256")


def _stand_in(key: PrivateKey) -> Any:
    """A throwaway in-memory key whose signatures carry the same AlgorithmIdentifier."""
    # An ECDSA AlgorithmIdentifier names the hash, not the curve: a P-256 stand-in (the
    # cheapest to sign with) fixes the same to-be-signed bytes for a P-384 or P-521 key.
    spec = (key.key_type, 256 if key.key_type == "ec" else 0)
    with _throwaway_lock:
        found = _throwaway.get(spec)
        if found is None:
            if key.key_type == "rsa":
                found = rsa.generate_private_key(65537, 2048)
            elif key.key_type == "ec":
                if key.key_size not in _CURVES:
                    raise AlgorithmError(f"unsupported EC key size {key.key_size}")
                found = ec.generate_private_key(_CURVES[256])
            elif key.key_type == "ed25519":
                found = ed25519.Ed25519PrivateKey.generate()
            elif key.key_type == "ed448":
                found = ed448.Ed448PrivateKey.generate()
            else:
                raise AlgorithmError(f"a {key.key_type} key cannot sign certificates")
            _throwaway[spec] = found
    return found


def _der_children(der: bytes) -> list[bytes]:
    """The DER elements inside the outer SEQUENCE of ``der``."""
    from mailseal.cms import fastder as F

    _, cs, ce = F.tlv(der, 0, len(der))
    return [der[start:end] for (_, start, _, end) in F.children(der, cs, ce)]


def _bit_string(sig: bytes) -> bytes:
    from mailseal.asn1.der import tlv

    return tlv(0x03, b"\x00" + sig)


def _resign(signed_der: bytes, tbs: bytes, key: PrivateKey, hash_name: HashName | None) -> bytes:
    """``signed_der`` (tbs, algorithm, signature) with the signature made by ``key``."""
    from mailseal.asn1.der import sequence

    parts = _der_children(signed_der)
    if len(parts) != 3 or parts[0] != tbs:
        raise AlgorithmError("unexpected structure while signing")  # pragma: no cover
    sig = key.sign(tbs, scheme_for(key, hash_name))
    return sequence(parts[0], parts[1], _bit_string(sig))


def preview_certificate(
    builder: x509.CertificateBuilder, key: PrivateKey, *, hash_name: HashName | None = None
) -> x509.Certificate:
    """The certificate ``builder`` describes, signed by a throwaway key of ``key``'s algorithm:
    every byte but the signature is what :func:`sign_certificate` will issue."""
    stand_in = _stand_in(key)
    return builder.sign(stand_in, _algorithm(key, hash_name))


def sign_certificate(
    builder: x509.CertificateBuilder, key: PrivateKey, *, hash_name: HashName | None = None
) -> x509.Certificate:
    """Sign ``builder`` with ``key`` (a software key directly, any other through
    :func:`preview_certificate` and a signature over its to-be-signed bytes)."""
    if isinstance(key, SoftwareKey):
        return builder.sign(key.key, _algorithm(key, hash_name))
    preview = preview_certificate(builder, key, hash_name=hash_name)
    return resign_certificate(preview, key, hash_name=hash_name)


def resign_certificate(
    preview: x509.Certificate, key: PrivateKey, *, hash_name: HashName | None = None
) -> x509.Certificate:
    """The certificate ``preview`` (from :func:`preview_certificate`) signed by ``key``."""
    der = preview.public_bytes(serialization.Encoding.DER)
    out = _resign(der, preview.tbs_certificate_bytes, key, hash_name)
    return x509.load_der_x509_certificate(out)


def sign_crl(
    builder: x509.CertificateRevocationListBuilder,
    key: PrivateKey,
    *,
    hash_name: HashName | None = None,
) -> x509.CertificateRevocationList:
    """Sign a CRL with ``key``."""
    if isinstance(key, SoftwareKey):
        return builder.sign(key.key, _algorithm(key, hash_name))
    draft = builder.sign(_stand_in(key), _algorithm(key, hash_name))
    der = draft.public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_crl(_resign(der, draft.tbs_certlist_bytes, key, hash_name))


def sign_ocsp_response(
    builder: ocsp.OCSPResponseBuilder,
    key: PrivateKey,
    responder: x509.Certificate,
    *,
    by_key: bool = True,
    include_responder: bool = False,
    hash_name: HashName | None = None,
) -> ocsp.OCSPResponse:
    """Sign a successful OCSP response with ``key``, the key of ``responder`` (the CA itself
    or a delegated responder). ``builder`` holds the single responses and extensions; the
    ResponderID (by key hash, RFC 5019 §2.2.3, or by name) and, with ``include_responder``, the
    responder's certificate are added here."""
    encoding = ocsp.OCSPResponderEncoding.HASH if by_key else ocsp.OCSPResponderEncoding.NAME
    if isinstance(key, SoftwareKey):
        b = builder.responder_id(encoding, responder)
        if include_responder:
            b = b.certificates([responder])
        return b.sign(key.key, _algorithm(key, hash_name))
    from asn1crypto import ocsp as a_ocsp
    from asn1crypto import x509 as a_x509

    stand_in = _stand_in(key)
    stand_in_cert = (
        x509.CertificateBuilder()
        .subject_name(responder.subject)
        .issuer_name(responder.subject)
        .public_key(stand_in.public_key())
        .serial_number(1)
        .not_valid_before(responder.not_valid_before_utc)
        .not_valid_after(responder.not_valid_after_utc)
        .sign(stand_in, _algorithm(key, hash_name))
    )
    draft = builder.responder_id(encoding, stand_in_cert).sign(stand_in, _algorithm(key, hash_name))
    resp = a_ocsp.OCSPResponse.load(draft.public_bytes(serialization.Encoding.DER))
    basic = resp["response_bytes"]["response"].parsed
    real = a_x509.Certificate.load(responder.public_bytes(serialization.Encoding.DER))
    tbs = basic["tbs_response_data"]
    if by_key:
        tbs["responder_id"] = a_ocsp.ResponderId(name="by_key", value=real.public_key.sha1)
    else:
        tbs["responder_id"] = a_ocsp.ResponderId(name="by_name", value=real.subject)
    tbs_der = tbs.dump()
    basic["signature"] = key.sign(tbs_der, scheme_for(key, hash_name))
    if include_responder:
        basic["certs"] = [real]
    resp["response_bytes"]["response"] = basic
    return ocsp.load_der_ocsp_response(resp.dump())
