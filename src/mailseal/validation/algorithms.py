"""Algorithm policy for certificates and signatures on input, as data (DESIGN.md rule 5).

mailseal flags these as ``weak-algorithm`` and, unless ``Trust(allow_weak=True)``, refuses
them: a certificate or a message signed with a weak digest, or a public key below the
minimum size for its family.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

__all__ = ["MIN_KEY_BITS", "WEAK_DIGESTS", "key_weakness"]

#: Digest algorithms refused in signatures, with the reason.
WEAK_DIGESTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "md2": "MD2 is broken (RFC 6149)",
        "md5": "MD5 collisions are practical (RFC 6151)",
        # RFC 8551 §2.1 no longer requires SHA-1; the CA/Browser Forum S/MIME Baseline
        # Requirements §7.1.3.2 forbid it for signatures; chosen-prefix collisions are public.
        "sha1": "SHA-1 collisions are practical (RFC 8551 §2.1, S/MIME BR §7.1.3.2)",
    }
)

#: Minimum public key size per key family, in bits; ``None`` refuses the family outright.
#: RSA: S/MIME BR §6.1.5.1 and NIST SP 800-131A Rev. 2 (2048 bits). ECC: the BR curves are
#: P-256 and up. DSA: not among the signature algorithms of RFC 8551 §2.2 nor allowed by the
#: S/MIME BR §6.1.5; FIPS 186-5 no longer approves it for new signatures.
MIN_KEY_BITS: Final[Mapping[str, int | None]] = MappingProxyType(
    {"rsa": 2048, "ec": 256, "dsa": None}
)


def key_weakness(public_key: object) -> str | None:
    """Why this public key is weak by :data:`MIN_KEY_BITS`, or None."""
    if isinstance(public_key, rsa.RSAPublicKey):
        family, bits = "rsa", public_key.key_size
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        family, bits = "ec", public_key.curve.key_size
    elif isinstance(public_key, dsa.DSAPublicKey):
        family, bits = "dsa", public_key.key_size
    else:
        return None
    return bits_weakness(family, bits)


def bits_weakness(family: str, bits: int) -> str | None:
    """Why a ``family`` key (``rsa``, ``ec``, ``dsa``) of ``bits`` bits is weak, or None."""
    if family not in MIN_KEY_BITS:
        return None
    minimum = MIN_KEY_BITS[family]
    name = {"rsa": "RSA", "ec": "EC", "dsa": "DSA"}[family]
    if minimum is None:
        return f"a {name} key ({bits} bits): {name} is not accepted for S/MIME"
    if bits < minimum:
        return f"a {bits}-bit {name} key (at least {minimum} bits are required)"
    return None
