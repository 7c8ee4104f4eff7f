"""Digest and signature algorithms as data (DESIGN.md rule 5).

Each table row names the document that defines the identifier. Weak algorithms stay readable so
that old mail can be evaluated, and are flagged; they are never chosen for new output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailseal.asn1 import der
from mailseal.asn1 import oids as O
from mailseal.errors import AlgorithmError
from mailseal.keys.base import HashName, KeyType, SignatureScheme

__all__ = [
    "CAPABILITY_NAMES",
    "DIGESTS",
    "DIGEST_BY_OID",
    "DigestAlgorithm",
    "SignatureKind",
    "default_digest_for",
    "digest_for_micalg",
    "scheme_for",
    "signature_algorithm_der",
]


@dataclass(frozen=True, slots=True)
class DigestAlgorithm:
    name: HashName
    oid: str
    micalg: str  # RFC 5751 §3.4.3.2 / RFC 8551 §3.5.3.2
    size: int
    weak: bool
    #: AlgorithmIdentifier DER; RFC 5754 §2: parameters absent for SHA-2
    der: bytes


def _digest(name: HashName, oid: str, micalg: str, size: int, weak: bool) -> DigestAlgorithm:
    return DigestAlgorithm(name, oid, micalg, size, weak, der.sequence(der.oid(oid)))


DIGESTS: dict[str, DigestAlgorithm] = {
    d.name: d
    for d in (
        _digest("sha1", O.SHA1, "sha-1", 20, True),  # RFC 3370 §2.1; weak (SHAttered)
        _digest("sha224", O.SHA224, "sha-224", 28, False),  # RFC 5754 §2.1
        _digest("sha256", O.SHA256, "sha-256", 32, False),  # RFC 5754 §2.2
        _digest("sha384", O.SHA384, "sha-384", 48, False),  # RFC 5754 §2.3
        _digest("sha512", O.SHA512, "sha-512", 64, False),  # RFC 5754 §2.4
    )
}
DIGEST_BY_OID: dict[str, DigestAlgorithm] = {d.oid: d for d in DIGESTS.values()}
#: Digests allowed for new signatures (RFC 8551 §2.1: SHA-256 MUST, SHA-512 SHOULD).
SIGNING_DIGESTS: tuple[HashName, ...] = ("sha256", "sha384", "sha512")

_MICALG_ALIASES = {
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha224": "sha224",
    "sha-224": "sha224",
    "sha256": "sha256",
    "sha-256": "sha256",
    "sha384": "sha384",
    "sha-384": "sha384",
    "sha512": "sha512",
    "sha-512": "sha512",
}


def digest_for_micalg(value: str) -> list[str]:
    """Digest names named by a ``micalg`` parameter (any spelling; unknown names dropped)."""
    out = []
    for item in value.split(","):
        name = _MICALG_ALIASES.get(item.strip().strip('"').lower())
        if name and name not in out:
            out.append(name)
    return out


SignatureKind = Literal["rsa-pkcs1", "rsa-pss", "ecdsa", "ed25519", "ed448"]

#: signature OID -> (kind, hash fixed by the OID or None when the digestAlgorithm decides)
SIGNATURE_OIDS: dict[str, tuple[SignatureKind, str | None]] = {
    O.RSA_ENCRYPTION: ("rsa-pkcs1", None),  # RFC 3370 §3.2
    O.MD5_WITH_RSA: ("rsa-pkcs1", "md5"),
    O.SHA1_WITH_RSA: ("rsa-pkcs1", "sha1"),
    O.SHA224_WITH_RSA: ("rsa-pkcs1", "sha224"),
    O.SHA256_WITH_RSA: ("rsa-pkcs1", "sha256"),  # RFC 5754 §3.2
    O.SHA384_WITH_RSA: ("rsa-pkcs1", "sha384"),
    O.SHA512_WITH_RSA: ("rsa-pkcs1", "sha512"),
    O.RSASSA_PSS: ("rsa-pss", None),  # RFC 4056; the hash is in the parameters
    O.EC_PUBLIC_KEY: ("ecdsa", None),  # seen in the wild; the digestAlgorithm decides
    O.ECDSA_WITH_SHA1: ("ecdsa", "sha1"),
    O.ECDSA_WITH_SHA224: ("ecdsa", "sha224"),
    O.ECDSA_WITH_SHA256: ("ecdsa", "sha256"),  # RFC 5753 §7.1.3 / RFC 5754 §3.3
    O.ECDSA_WITH_SHA384: ("ecdsa", "sha384"),
    O.ECDSA_WITH_SHA512: ("ecdsa", "sha512"),
    O.ED25519: ("ed25519", None),  # RFC 8419
    O.ED448: ("ed448", None),
}

_ECDSA_OID = {
    "sha256": O.ECDSA_WITH_SHA256,
    "sha384": O.ECDSA_WITH_SHA384,
    "sha512": O.ECDSA_WITH_SHA512,
}


def default_digest_for(key_type: KeyType, key_size: int) -> HashName:
    """The digest to pair with a key when the caller did not choose one.

    SHA-256 (RFC 8551 §2.1) except where the key calls for more: Ed25519 requires SHA-512
    (RFC 8419 §3.1), Ed448 SHAKE256 (unsupported here), and P-384/P-521 pair best with
    SHA-384/SHA-512 (RFC 5753 §7.1.3 / NIST SP 800-57).
    """
    if key_type == "ed25519":
        return "sha512"
    if key_type == "ec" and key_size >= 521:
        return "sha512"
    if key_type == "ec" and key_size >= 384:
        return "sha384"
    return "sha256"


def scheme_for(key_type: KeyType, digest: HashName, *, pss: bool) -> SignatureScheme:
    if key_type == "rsa":
        return SignatureScheme("rsa-pss" if pss else "rsa-pkcs1", digest)
    if pss:
        raise AlgorithmError("RSASSA-PSS needs an RSA key")
    if key_type == "ec":
        return SignatureScheme("ecdsa", digest)
    if key_type == "ed25519":
        if digest != "sha512":
            raise AlgorithmError("Ed25519 signatures use SHA-512 (RFC 8419 §3.1)")
        return SignatureScheme("ed25519", digest)
    raise AlgorithmError(
        "Ed448 signatures need SHAKE256 message digests (RFC 8419), which mailseal does not make"
    )


def _pss_params(digest: HashName) -> bytes:
    d = DIGESTS[digest]
    # RFC 4055 §3.1: hashAlgorithm [0], maskGenAlgorithm [1], saltLength [2]; trailerField default
    return der.sequence(
        der.context(0, d.der),
        der.context(1, der.sequence(der.oid(O.MGF1), d.der)),
        der.context(2, der.integer(d.size)),
    )


def signature_algorithm_der(scheme: SignatureScheme) -> bytes:
    """The SignerInfo signatureAlgorithm for a scheme.

    RSA PKCS#1 v1.5 is written as rsaEncryption with NULL parameters (RFC 3370 §3.2), which
    every client accepts; PSS carries its parameters (RFC 4056 §2); ECDSA names the hash in the
    OID with absent parameters (RFC 5753); EdDSA has absent parameters (RFC 8419 §2.3).
    """
    if scheme.kind == "rsa-pkcs1":
        return der.sequence(der.oid(O.RSA_ENCRYPTION), der.null())
    if scheme.kind == "rsa-pss":
        return der.sequence(der.oid(O.RSASSA_PSS), _pss_params(scheme.hash))
    if scheme.kind == "ecdsa":
        oid = _ECDSA_OID.get(scheme.hash)
        if oid is None:
            raise AlgorithmError(f"ECDSA with {scheme.hash} is not offered for new signatures")
        return der.sequence(der.oid(oid))
    if scheme.kind == "ed25519":
        return der.sequence(der.oid(O.ED25519))
    return der.sequence(der.oid(O.ED448))


#: Names for the SMIMECapabilities mailseal recognises (RFC 8551 §2.5.2)
CAPABILITY_NAMES: dict[str, str] = {
    O.AES256_GCM: "aes256-gcm",
    O.AES128_GCM: "aes128-gcm",
    O.AES256_CBC: "aes256-cbc",
    O.AES192_CBC: "aes192-cbc",
    O.AES128_CBC: "aes128-cbc",
    O.RSAES_OAEP: "rsaes-oaep",
    "1.2.840.113549.3.7": "des-ede3-cbc",
    "1.2.840.113549.3.2": "rc2-cbc",
}
