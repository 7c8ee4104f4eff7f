"""PKCS#12 files (RFC 7292) that hold several private keys, each with its certificate.

A key-escrow recovery hands a person *one* file with every historical encryption key and its
certificate, plus the CA certificates. ``cryptography`` writes a PKCS#12 file with one key only,
so :func:`write_pkcs12` builds the PFX itself (asn1crypto structures, cryptography primitives)
and :func:`read_pkcs12` reads files with any number of keys.

Format written
--------------
::

    PFX v3
      authSafe = data: AuthenticatedSafe
        [0] encryptedData (PBES2)  SafeContents: one certBag per entry, then the CA certificates
        [1] data                   SafeContents: one pkcs8ShroudedKeyBag (PBES2) per entry
      macData = HMAC-SHA256, key from the PKCS#12 KDF (RFC 7292 B.2, ID 3)

This is the layout and the algorithm set OpenSSL 3 writes by default, so ``openssl pkcs12``
reads the file:

* **PBES2** (RFC 8018 §6.2) with PBKDF2-HMAC-SHA256 and AES-256-CBC protects every key bag and
  the certificates. PBKDF2 gets the password's bytes as given (UTF-8): that is what OpenSSL 3
  and cryptography do for PBES2 inside PKCS#12 (checked against ``openssl pkcs12`` with a
  non-ASCII password). RFC 7292's BMPString encoding applies to the MAC and to the old
  PKCS#12 PBEs only.
* **One derivation for the whole file.** PBKDF2 at 600,000 iterations costs a tenth of a second
  or more; deriving it per key would make a 50-key recovery file take many seconds. All PBES2
  structures therefore share one salt and one iteration count (so one key), and each
  encryption has its own random IV: CBC under one key with distinct random IVs is sound. A
  reader that caches derivations by their parameters (as :func:`read_pkcs12` does) pays once.
* **The MAC** is HMAC-SHA256 keyed by the PKCS#12 KDF (SHA-256, ID 3) over the BMPString
  password with its two trailing zero bytes (RFC 7292 B.1), at the same iteration count. That
  is a second derivation (pure Python: the KDF is not exposed by cryptography).
* **localKeyId** (PKCS#9) is the SHA-1 of the certificate's DER, on the key bag and on its
  certificate bag (an identifier, not a security function); **friendlyName** is a BMPString on
  both when the entry has one. CA certificates carry no attributes.

Reading
-------
:func:`read_pkcs12` reads this writer's files, OpenSSL 3 files (PBES2, and ``-legacy`` files
with pbeWithSHAAnd3-KeyTripleDES-CBC / pbeWithSHAAnd40BitRC2-CBC and an HMAC-SHA1 MAC) and
``cryptography``'s. It checks the MAC before it decrypts anything, pairs keys with certificates
by localKeyId and falls back to comparing public keys; certificates without a key are returned
as ``extra_certificates``. RC2 has no usable implementation in cryptography for 40-bit keys,
so a small RC2 decryptor (RFC 2268) is included for legacy files.

Peers
-----
OpenSSL 3 (``openssl pkcs12``) and cryptography read every key of these files. GnuPG's gpgsm
2.2 does not: it refuses PBES2 with AES-256-CBC or hmacWithSHA256 outright, and even in the
legacy encoding it reads it keeps only the first private key of a multi-key file. For gpgsm,
hand out one file per key in the legacy encoding (pbeWithSHAAnd3-KeyTripleDES-CBC, SHA-1
MAC), as ``cryptography``'s serializer writes it; tests/interop/test_pkcs12_openssl.py records
the details.

A PKCS#12 file is hostile input: its size, the number of bags, the nesting of SafeContents, the
DER nesting and element count, each iteration count and the total key-derivation work are
bounded (:class:`Pkcs12Limits`). Whatever the input, the reader raises only
:class:`~mailseal.errors.IdentityError` (or its subclass :class:`~mailseal.errors.PasswordError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, NamedTuple

from asn1crypto import algos, cms, core
from asn1crypto import keys as asn1_keys
from asn1crypto import pkcs12 as asn1_pkcs12
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from mailseal.errors import IdentityError, MailsealError, PasswordError, UsageError
from mailseal.keys.software import check_rsa_key

__all__ = [
    "DEFAULT_PKCS12_LIMITS",
    "Pkcs12Contents",
    "Pkcs12Entry",
    "Pkcs12Limits",
    "read_pkcs12",
    "write_pkcs12",
]


# --------------------------------------------------------------------------------------------
# public types


@dataclass(frozen=True)
class Pkcs12Entry:
    """One private key with its certificate (and the friendlyName shown by key managers)."""

    key: PrivateKeyTypes
    certificate: x509.Certificate
    friendly_name: str | None = None


@dataclass(frozen=True)
class Pkcs12Contents:
    """What a PKCS#12 file holds.

    ``entries`` pairs every private key with its certificate, in the order of the key bags;
    ``extra_certificates`` are the certificates no key belongs to (CA certificates, usually).
    ``mac_verified`` is false only for a file without a MAC (no integrity protection at all).
    """

    entries: list[Pkcs12Entry] = field(default_factory=list)
    extra_certificates: list[x509.Certificate] = field(default_factory=list)
    mac_verified: bool = True


@dataclass(frozen=True, slots=True)
class Pkcs12Limits:
    """Bounds on the work :func:`read_pkcs12` does for one file (DESIGN.md rule 7)."""

    #: Largest file accepted, in bytes.
    max_size: int = 16 * 1024 * 1024
    #: Most bags (keys, certificates, CRLs, secrets, nested SafeContents) plus ContentInfos.
    max_bags: int = 1000
    #: Largest iteration count of one PBKDF2 or PKCS#12-KDF derivation. OpenSSL writes 2048 by
    #: default and this module 600,000; anything above ten million is refused.
    max_iterations: int = 10_000_000
    #: Most key-derivation work for the whole file: the sum over distinct derivations of
    #: iterations x hash chains. Bounds a file that repeats large counts with fresh salts.
    max_kdf_work: int = 25_000_000
    #: Deepest nesting of SafeContents (safeContentsBag inside SafeContents).
    max_nesting: int = 4
    #: Most RC2-encrypted bytes (the RC2 decryptor is pure Python; legacy files hold a few KiB).
    max_rc2_bytes: int = 1024 * 1024


DEFAULT_PKCS12_LIMITS: Final = Pkcs12Limits()

#: Iteration counts :func:`write_pkcs12` accepts (RFC 8018 §4.2 asks for at least 1,000).
MIN_WRITE_ITERATIONS: Final = 1000


# --------------------------------------------------------------------------------------------
# object identifiers and algorithm tables (RFC 7292, RFC 8018, RFC 2985)

_ID_DATA: Final = "1.2.840.113549.1.7.1"
_ID_SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
_ID_ENVELOPED_DATA: Final = "1.2.840.113549.1.7.3"
_ID_ENCRYPTED_DATA: Final = "1.2.840.113549.1.7.6"

_KEY_BAG: Final = "1.2.840.113549.1.12.10.1.1"
_SHROUDED_KEY_BAG: Final = "1.2.840.113549.1.12.10.1.2"
_CERT_BAG: Final = "1.2.840.113549.1.12.10.1.3"
_SAFE_CONTENTS_BAG: Final = "1.2.840.113549.1.12.10.1.6"
_X509_CERTIFICATE: Final = "1.2.840.113549.1.9.22.1"

_FRIENDLY_NAME: Final = "1.2.840.113549.1.9.20"
_LOCAL_KEY_ID: Final = "1.2.840.113549.1.9.21"

_PBES2: Final = "1.2.840.113549.1.5.13"
_PBKDF2: Final = "1.2.840.113549.1.5.12"
_PBMAC1: Final = "1.2.840.113549.1.5.14"
_HMAC_SHA256: Final = "1.2.840.113549.2.9"
_AES256_CBC: Final = "2.16.840.1.101.3.4.1.42"
_SHA256: Final = "2.16.840.1.101.3.4.2.1"

# PBKDF2 pseudo-random functions (RFC 8018 B.1.2): OID -> (name, hash)
_PRFS: Final[dict[str, tuple[str, Callable[[], hashes.HashAlgorithm]]]] = {
    "1.2.840.113549.2.7": ("hmacWithSHA1", hashes.SHA1),
    "1.2.840.113549.2.8": ("hmacWithSHA224", hashes.SHA224),
    "1.2.840.113549.2.9": ("hmacWithSHA256", hashes.SHA256),
    "1.2.840.113549.2.10": ("hmacWithSHA384", hashes.SHA384),
    "1.2.840.113549.2.11": ("hmacWithSHA512", hashes.SHA512),
    "1.2.840.113549.2.12": ("hmacWithSHA512-224", hashes.SHA512_224),
    "1.2.840.113549.2.13": ("hmacWithSHA512-256", hashes.SHA512_256),
}


class _CbcCipher(NamedTuple):
    name: str
    key_len: int
    make: Callable[[bytes], BlockCipherAlgorithm]


# PBES2 encryption schemes (RFC 8018 B.2, NIST AES OIDs): OID -> cipher in CBC mode
_PBES2_CIPHERS: Final[dict[str, _CbcCipher]] = {
    "2.16.840.1.101.3.4.1.2": _CbcCipher("AES-128-CBC", 16, algorithms.AES),
    "2.16.840.1.101.3.4.1.22": _CbcCipher("AES-192-CBC", 24, algorithms.AES),
    "2.16.840.1.101.3.4.1.42": _CbcCipher("AES-256-CBC", 32, algorithms.AES),
    "1.2.840.113549.3.7": _CbcCipher("DES-EDE3-CBC", 24, TripleDES),
}


class _Pkcs12Pbe(NamedTuple):
    name: str
    cipher: str  # "3des", "rc2" or "rc4"
    key_len: int
    iv_len: int
    rc2_bits: int = 0


# The PBEs of RFC 7292 Appendix C: key and IV from the PKCS#12 KDF with SHA-1.
_PKCS12_PBES: Final[dict[str, _Pkcs12Pbe]] = {
    "1.2.840.113549.1.12.1.1": _Pkcs12Pbe("pbeWithSHAAnd128BitRC4", "rc4", 16, 0),
    "1.2.840.113549.1.12.1.2": _Pkcs12Pbe("pbeWithSHAAnd40BitRC4", "rc4", 5, 0),
    "1.2.840.113549.1.12.1.3": _Pkcs12Pbe("pbeWithSHAAnd3-KeyTripleDES-CBC", "3des", 24, 8),
    "1.2.840.113549.1.12.1.4": _Pkcs12Pbe("pbeWithSHAAnd2-KeyTripleDES-CBC", "3des", 16, 8),
    "1.2.840.113549.1.12.1.5": _Pkcs12Pbe("pbeWithSHAAnd128BitRC2-CBC", "rc2", 16, 8, 128),
    "1.2.840.113549.1.12.1.6": _Pkcs12Pbe("pbewithSHAAnd40BitRC2-CBC", "rc2", 5, 8, 40),
}

# MAC digest algorithms (hashlib names), for the PKCS#12 KDF and the HMAC
_MAC_HASHES: Final[dict[str, str]] = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.5": "sha512_224",
    "2.16.840.1.101.3.4.2.6": "sha512_256",
}

# The key types a PKCS#12 file written or read here may hold.
_KEY_TYPES: Final = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_KEY_TYPE_NAMES: Final = "RSA, EC, Ed25519 and Ed448"

# Salts longer than this are not from any real producer (OpenSSL uses 8 bytes, we use 16).
_MAX_SALT: Final = 1024
# DER walking bounds: nesting of TLVs, and TLVs per allowed bag.
_MAX_DER_DEPTH: Final = 32
_DER_NODES_PER_BAG: Final = 64

_SALT_LEN: Final = 16


# --------------------------------------------------------------------------------------------
# passwords and key derivation


def _bmp_password(text: str) -> bytes:
    """RFC 7292 B.1: the password as a BMPString (UTF-16 big-endian) with two zero bytes."""
    return text.encode("utf-16-be") + b"\x00\x00"


def _pkcs12_kdf(
    hash_name: str, password: bytes, salt: bytes, purpose: int, iterations: int, size: int
) -> bytes:
    """The PKCS#12 key derivation function (RFC 7292 Appendix B.2).

    ``password`` is already BMP-encoded (with its trailing zeros); ``purpose`` is the ID byte:
    1 for a key, 2 for an IV, 3 for a MAC key.
    """
    empty = hashlib.new(hash_name)
    u = empty.digest_size
    v = empty.block_size

    def stretch(data: bytes) -> bytes:
        if not data:
            return b""
        n = v * (-(-len(data) // v))
        return (data * (n // len(data) + 1))[:n]

    d = bytes((purpose,)) * v
    i_buf = bytearray(stretch(salt) + stretch(password))
    out = bytearray()
    chains = -(-size // u)
    for chain in range(chains):
        h = empty.copy()
        h.update(d + i_buf)
        a = h.digest()
        for _ in range(iterations - 1):
            # copy() of an empty state is the fastest way to hash many short inputs
            h = empty.copy()
            h.update(a)
            a = h.digest()
        out += a
        if chain == chains - 1 or not i_buf:
            continue
        b = int.from_bytes((a * (v // u + 1))[:v], "big") + 1
        mask = (1 << (8 * v)) - 1
        for j in range(0, len(i_buf), v):
            block = (int.from_bytes(i_buf[j : j + v], "big") + b) & mask
            i_buf[j : j + v] = block.to_bytes(v, "big")
    return bytes(out[:size])


def _pkcs12_chains(hash_name: str, size: int) -> int:
    return -(-size // hashlib.new(hash_name).digest_size)


# --------------------------------------------------------------------------------------------
# RC2 decryption (RFC 2268), for the pbeWithSHAAnd40BitRC2-CBC of legacy files

# RFC 2268 §2: PITABLE, a permutation of 0..255 derived from the digits of pi.
_PITABLE: Final = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2"
    "179a59f587b34f1361456d8d09817d32bd8f40eb86b77b0bf09521225c6b4e82"
    "54d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed7"
    "08e8eade8052eef784aa72ac354d6a2a961ad2715a1549744b9fd05e0418a4ec"
    "c2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a9"
    "0d38341bab33ffb0bb480c5fb9b1cd2ec5f3db47e5a59c770aa62068fe7fc1ad"
)


def _rc2_expand(key: bytes, bits: int) -> list[int]:
    """RFC 2268 §2: the 64 16-bit words of the expanded key for effective key length ``bits``."""
    t = len(key)
    t8 = (bits + 7) // 8
    tm = 255 % (1 << (8 + bits - 8 * t8))
    buf = bytearray(128)
    buf[:t] = key
    for i in range(t, 128):
        buf[i] = _PITABLE[(buf[i - 1] + buf[i - t]) & 0xFF]
    buf[128 - t8] = _PITABLE[buf[128 - t8] & tm]
    for i in range(127 - t8, -1, -1):
        buf[i] = _PITABLE[buf[i + 1] ^ buf[i + t8]]
    return [buf[2 * i] | (buf[2 * i + 1] << 8) for i in range(64)]


_RC2_SHIFTS: Final = (1, 2, 3, 5)


def _rc2_decrypt_block(k: list[int], block: bytes) -> bytes:
    """RFC 2268 §4: decrypt one 8-byte block (five r-mixing rounds, an r-mashing round, six
    r-mixing rounds, an r-mashing round, five r-mixing rounds)."""
    r = list(struct.unpack("<4H", block))
    j = 63

    def r_mix() -> None:
        nonlocal j
        for i in (3, 2, 1, 0):
            s = _RC2_SHIFTS[i]
            x = ((r[i] >> s) | (r[i] << (16 - s))) & 0xFFFF
            # r[i - 1] etc.: negative indexes wrap around as the RFC's "i-1 mod 4" does
            x -= k[j] + (r[i - 1] & r[i - 2]) + (~r[i - 1] & r[i - 3])
            r[i] = x & 0xFFFF
            j -= 1

    def r_mash() -> None:
        for i in (3, 2, 1, 0):
            r[i] = (r[i] - k[r[i - 1] & 63]) & 0xFFFF

    for rounds in (5, 0, 6, 0, 5):
        if rounds:
            for _ in range(rounds):
                r_mix()
        else:
            r_mash()
    return struct.pack("<4H", *r)


def _rc2_cbc_decrypt(key: bytes, bits: int, iv: bytes, data: bytes) -> bytes:
    k = _rc2_expand(key, bits)
    out = bytearray()
    prev = iv
    for pos in range(0, len(data), 8):
        block = data[pos : pos + 8]
        plain = _rc2_decrypt_block(k, block)
        out += bytes(a ^ b for a, b in zip(plain, prev, strict=True))
        prev = block
    return bytes(out)


# --------------------------------------------------------------------------------------------
# block cipher helpers


def _unpad(data: bytes, block: int) -> bytes | None:
    """PKCS#7 padding removed, or None when it is not valid (wrong key or corrupt data)."""
    if not data or len(data) % block:
        return None
    n = data[-1]
    if not 1 <= n <= block or data[-n:] != bytes((n,)) * n:
        return None
    return data[:-n]


def _cbc_decrypt(algorithm: BlockCipherAlgorithm, iv: bytes, data: bytes) -> bytes | None:
    block = algorithm.block_size // 8
    if not data or len(data) % block or len(iv) != block:
        return None
    dec = Cipher(algorithm, modes.CBC(iv)).decryptor()
    return _unpad(dec.update(data) + dec.finalize(), block)


def _cbc_encrypt(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    """AES-CBC with a fresh random IV and PKCS#7 padding: (iv, ciphertext)."""
    iv = os.urandom(16)
    n = 16 - len(data) % 16
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv, enc.update(data + bytes((n,)) * n) + enc.finalize()


# --------------------------------------------------------------------------------------------
# DER walking: checks lengths, nesting and size before asn1crypto builds objects


def _check_der(data: bytes, what: str, *, max_nodes: int) -> None:
    """Walk every TLV of ``data`` once, without recursion.

    Each declared length must fit in its container, nesting must stay under the limit, the
    number of TLVs must stay under ``max_nodes``, and ``data`` must be exactly one element.
    BER indefinite lengths (used by some PKCS#12 producers) are accepted.
    """
    n = len(data)
    # open constructed elements: (end offset or None for indefinite length, enclosing end)
    stack: list[tuple[int | None, int]] = []
    pos = 0
    nodes = 0
    while True:
        limit = stack[-1][1] if stack else n
        if stack:
            end = stack[-1][0]
            if end is not None and pos == end:
                stack.pop()
                if not stack:
                    break
                continue
            if end is None and pos + 1 < limit and data[pos] == 0 and data[pos + 1] == 0:
                pos += 2  # end-of-contents
                stack.pop()
                if not stack:
                    break
                continue
        elif nodes:
            break
        if pos >= limit:
            raise IdentityError(f"{what} is truncated")
        first = data[pos]
        pos += 1
        if first & 0x1F == 0x1F:  # high tag number form
            for _ in range(4):
                if pos >= limit:
                    raise IdentityError(f"{what} is truncated")
                pos += 1
                if not data[pos - 1] & 0x80:
                    break
            else:
                raise IdentityError(f"{what} has a malformed tag")
        if pos >= limit:
            raise IdentityError(f"{what} is truncated")
        length_byte = data[pos]
        pos += 1
        length: int | None
        if length_byte < 0x80:
            length = length_byte
        elif length_byte == 0x80:
            length = None
        else:
            count = length_byte & 0x7F
            if count > 4 or pos + count > limit:
                raise IdentityError(f"{what} declares a length larger than the data")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        nodes += 1
        if nodes > max_nodes:
            raise IdentityError(f"{what} has more than {max_nodes:,} ASN.1 elements")
        constructed = bool(first & 0x20)
        if length is None:
            if not constructed:
                raise IdentityError(f"{what} has an indefinite length on a primitive element")
            stack.append((None, limit))
        else:
            if pos + length > limit:
                raise IdentityError(
                    f"{what} declares a length of {length:,} bytes but only {limit - pos:,} remain"
                )
            if constructed:
                stack.append((pos + length, pos + length))
            else:
                pos += length
        if len(stack) > _MAX_DER_DEPTH:
            raise IdentityError(f"{what} is nested deeper than {_MAX_DER_DEPTH} levels")
    if pos != n:
        raise IdentityError(f"{what} has {n - pos:,} bytes of trailing data")


# --------------------------------------------------------------------------------------------
# writing


def _public_der(obj: Any) -> bytes:
    der: bytes = obj.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _describe_cert(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"
    except ValueError:
        return f"serial {cert.serial_number:x}"


def _check_entry(index: int, entry: object) -> Pkcs12Entry:
    if not isinstance(entry, Pkcs12Entry):
        raise UsageError(f"entry {index}: expected a Pkcs12Entry, got {type(entry).__name__}")
    if not isinstance(entry.certificate, x509.Certificate):
        raise UsageError(f"entry {index}: the certificate is not an x509.Certificate")
    if entry.friendly_name is not None and not isinstance(entry.friendly_name, str):
        raise UsageError(f"entry {index}: the friendly name must be a str")
    if not isinstance(entry.key, _KEY_TYPES):
        raise IdentityError(
            f"entry {index}: a {type(entry.key).__name__} cannot go into the PKCS#12 file "
            f"(supported: {_KEY_TYPE_NAMES} keys)"
        )
    try:
        cert_pub = _public_der(entry.certificate.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise IdentityError(
            f"entry {index}: the certificate's public key cannot be read ({exc})"
        ) from None
    if cert_pub != _public_der(entry.key.public_key()):
        raise IdentityError(
            f"entry {index}: the private key does not belong to its certificate "
            f"({_describe_cert(entry.certificate)})"
        )
    return entry


def _pbes2_algorithm(salt: bytes, iterations: int, iv: bytes) -> algos.EncryptionAlgorithm:
    """PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC (RFC 8018 A.4, B.2.5)."""
    return algos.EncryptionAlgorithm(
        {
            "algorithm": _PBES2,
            "parameters": algos.Pbes2Params(
                {
                    "key_derivation_func": {
                        "algorithm": _PBKDF2,
                        "parameters": {
                            "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                            "iteration_count": iterations,
                            "prf": {"algorithm": _HMAC_SHA256, "parameters": core.Null()},
                        },
                    },
                    "encryption_scheme": {
                        "algorithm": _AES256_CBC,
                        "parameters": core.OctetString(iv),
                    },
                }
            ),
        }
    )


def _bag_attributes(
    local_key_id: bytes | None, friendly_name: str | None
) -> asn1_pkcs12.Attributes | None:
    attrs: list[dict[str, object]] = []
    if friendly_name is not None:
        attrs.append({"type": _FRIENDLY_NAME, "values": [core.BMPString(friendly_name)]})
    if local_key_id is not None:
        attrs.append({"type": _LOCAL_KEY_ID, "values": [core.OctetString(local_key_id)]})
    return asn1_pkcs12.Attributes(attrs) if attrs else None


def _safe_bag(bag_id: str, value: object, attrs: asn1_pkcs12.Attributes | None) -> Any:
    fields: dict[str, object] = {"bag_id": bag_id, "bag_value": value}
    if attrs is not None:
        fields["bag_attributes"] = attrs
    return asn1_pkcs12.SafeBag(fields)


def _cert_bag(der: bytes, attrs: asn1_pkcs12.Attributes | None) -> Any:
    bag = asn1_pkcs12.CertBag(
        {"cert_id": _X509_CERTIFICATE, "cert_value": asn1_x509.Certificate.load(der)}
    )
    return _safe_bag(_CERT_BAG, bag, attrs)


def _check_password(password: object) -> str:
    if not isinstance(password, bytes):
        raise UsageError("the PKCS#12 password must be bytes")
    if not password:
        raise UsageError("a PKCS#12 file needs a non-empty password")
    try:
        text = password.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the PKCS#12 password must be UTF-8 text") from None
    if "\x00" in text:
        raise UsageError("the PKCS#12 password must not contain a NUL character")
    return text


def write_pkcs12(
    entries: Sequence[Pkcs12Entry],
    password: bytes,
    *,
    ca_certificates: Sequence[x509.Certificate] = (),
    iterations: int = 600_000,
) -> bytes:
    """A PKCS#12 file (DER) holding every entry's key and certificate, then ``ca_certificates``.

    Keys and certificates are encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) under
    ``password`` and the file carries an HMAC-SHA256 MAC; both use ``iterations``. See the
    module documentation for the layout. Raises :class:`~mailseal.errors.UsageError` for
    arguments that do not fit and :class:`~mailseal.errors.IdentityError` for a key that is
    not supported or does not belong to its certificate.
    """
    text = _check_password(password)
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise UsageError("the iteration count must be an integer")
    limit = DEFAULT_PKCS12_LIMITS.max_iterations
    if not MIN_WRITE_ITERATIONS <= iterations <= limit:
        raise UsageError(
            f"the iteration count must be between {MIN_WRITE_ITERATIONS:,} and {limit:,}"
        )
    items = list(entries)
    if not items:
        raise UsageError("a PKCS#12 file needs at least one key with its certificate")
    checked = [_check_entry(i, e) for i, e in enumerate(items, 1)]
    cas: list[bytes] = []
    seen = {e.certificate.public_bytes(serialization.Encoding.DER) for e in checked}
    for i, ca in enumerate(ca_certificates, 1):
        if not isinstance(ca, x509.Certificate):
            raise UsageError(f"CA certificate {i} is not an x509.Certificate")
        der = ca.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            cas.append(der)
    bags = 2 * len(checked) + len(cas) + 2
    if bags > DEFAULT_PKCS12_LIMITS.max_bags:
        raise UsageError(
            f"{len(checked)} keys and {len(cas)} CA certificates make {bags} bags; a PKCS#12 "
            f"file read by mailseal holds at most {DEFAULT_PKCS12_LIMITS.max_bags}"
        )

    # one PBES2 key for the whole file; every encryption gets its own IV
    salt = os.urandom(_SALT_LEN)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password)

    cert_bags = []
    key_bags = []
    for entry in checked:
        der = entry.certificate.public_bytes(serialization.Encoding.DER)
        # localKeyId: an identifier shared by a key and its certificate, not a security use
        local_id = hashlib.sha1(der, usedforsecurity=False).digest()
        attrs = _bag_attributes(local_id, entry.friendly_name)
        cert_bags.append(_cert_bag(der, attrs))
        pkcs8 = entry.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        iv, sealed = _cbc_encrypt(key, pkcs8)
        epki = asn1_keys.EncryptedPrivateKeyInfo(
            {
                "encryption_algorithm": _pbes2_algorithm(salt, iterations, iv),
                "encrypted_data": sealed,
            }
        )
        key_bags.append(_safe_bag(_SHROUDED_KEY_BAG, epki, attrs))
    cert_bags.extend(_cert_bag(der, None) for der in cas)

    iv, sealed_certs = _cbc_encrypt(key, asn1_pkcs12.SafeContents(cert_bags).dump())
    encrypted = cms.EncryptedData(
        {
            "version": "v0",
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": _pbes2_algorithm(salt, iterations, iv),
                "encrypted_content": sealed_certs,
            },
        }
    )
    auth_safe = asn1_pkcs12.AuthenticatedSafe(
        [
            {"content_type": "encrypted_data", "content": encrypted},
            {
                "content_type": "data",
                "content": asn1_pkcs12.SafeContents(key_bags).dump(),
            },
        ]
    ).dump()

    mac_salt = os.urandom(_SALT_LEN)
    mac_key = _pkcs12_kdf("sha256", _bmp_password(text), mac_salt, 3, iterations, 32)
    mac = hmac.new(mac_key, auth_safe, "sha256").digest()
    pfx = asn1_pkcs12.Pfx(
        {
            "version": "v3",
            "auth_safe": {"content_type": "data", "content": auth_safe},
            "mac_data": {
                "mac": {
                    "digest_algorithm": {"algorithm": _SHA256, "parameters": core.Null()},
                    "digest": mac,
                },
                "mac_salt": mac_salt,
                "iterations": iterations,
            },
        }
    )
    out: bytes = pfx.dump()
    return out


# --------------------------------------------------------------------------------------------
# reading


class _KeyItem(NamedTuple):
    key: PrivateKeyTypes
    spki: bytes
    local_key_id: bytes | None
    friendly_name: str | None


class _CertItem(NamedTuple):
    cert: x509.Certificate
    der: bytes
    spki: bytes | None
    local_key_id: bytes | None
    friendly_name: str | None


_MSG_NEEDED: Final = (
    "the PKCS#12 file needs a password (--password-env VAR or --password-file FILE)"
)
_MSG_WRONG: Final = "wrong password for the PKCS#12 file"


class _Reader:
    """One read of one file: password forms, derivation cache and work budget, bag count."""

    def __init__(self, password: bytes | None, limits: Pkcs12Limits) -> None:
        self.password = password
        self.limits = limits
        self.work = 0
        self.bags = 0
        self.mac_verified = False
        # the BMPString password form that opened the file (MAC or first PKCS#12 PBE)
        self.bmp: bytes | None = None
        self.derived: dict[tuple[object, ...], bytes] = {}
        self.keys: list[_KeyItem] = []
        self.certs: list[_CertItem] = []
        self.max_nodes = _DER_NODES_PER_BAG * (limits.max_bags + 1)

    # -- bounds -------------------------------------------------------------------------------

    def count_bag(self) -> None:
        self.bags += 1
        if self.bags > self.limits.max_bags:
            raise IdentityError(
                f"the PKCS#12 file has more than {self.limits.max_bags:,} bags; refusing it"
            )

    def check_iterations(self, value: object, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise IdentityError(f"the PKCS#12 file has an invalid iteration count for {what}")
        if value > self.limits.max_iterations:
            raise IdentityError(
                f"the PKCS#12 file asks for {_number(value)} iterations for {what}, more than the "
                f"{self.limits.max_iterations:,} allowed; refusing it"
            )
        return value

    @staticmethod
    def check_salt(value: object, what: str) -> bytes:
        if not isinstance(value, bytes) or len(value) > _MAX_SALT:
            raise IdentityError(f"the PKCS#12 file has an invalid salt for {what}")
        return value

    def derive(self, cache_key: tuple[object, ...], work: int, run: Callable[[], bytes]) -> bytes:
        """A derived key, computed once per distinct parameter set within the total budget."""
        found = self.derived.get(cache_key)
        if found is not None:
            return found
        self.work += work
        if self.work > self.limits.max_kdf_work:
            raise IdentityError(
                "the PKCS#12 file asks for more key-derivation work than the "
                f"{self.limits.max_kdf_work:,} iterations allowed in total; refusing it"
            )
        value = run()
        self.derived[cache_key] = value
        return value

    # -- passwords ----------------------------------------------------------------------------

    def bmp_candidates(self) -> list[bytes]:
        """BMPString forms of the password to try, most likely first.

        No password (or an empty one): the empty BMPString with its terminator, then the
        absent password (OpenSSL tries both). Otherwise the UTF-8 reading of the bytes, then,
        for non-ASCII passwords, each byte as one character (older OpenSSL, non-UTF-8 locales).
        """
        if not self.password:
            return [b"\x00\x00", b""]
        forms: list[bytes] = []
        with contextlib.suppress(UnicodeDecodeError):
            forms.append(_bmp_password(self.password.decode("utf-8")))
        latin = _bmp_password(self.password.decode("latin-1"))
        if latin not in forms:
            forms.append(latin)
        return forms

    def decrypt_failed(self, what: str) -> MailsealError:
        if self.mac_verified:
            return IdentityError(
                f"{what} in the PKCS#12 file cannot be decrypted although the password opened "
                "the file: the file is corrupt or uses a second password"
            )
        if not self.password:
            return PasswordError(_MSG_NEEDED)
        return PasswordError(_MSG_WRONG)

    # -- structure ----------------------------------------------------------------------------

    def read(self, data: bytes) -> Pkcs12Contents:
        _check_der(data, "the PKCS#12 file", max_nodes=self.max_nodes)
        pfx = asn1_pkcs12.Pfx.load(data, strict=True)
        version = pfx["version"].native
        if version != "v3":
            raise IdentityError(f"unsupported PKCS#12 version ({_number(version)}; expected 3)")
        auth = pfx["auth_safe"]
        ctype = auth["content_type"].dotted
        if ctype == _ID_SIGNED_DATA:
            raise IdentityError(
                "the PKCS#12 file uses public-key integrity mode (signed), which is not supported"
            )
        if ctype != _ID_DATA:
            raise IdentityError(f"the PKCS#12 file has an unexpected content type {ctype}")
        auth_bytes = auth["content"].native
        if not isinstance(auth_bytes, bytes):
            raise IdentityError("the PKCS#12 file has no contents")
        mac_data = pfx["mac_data"]
        if not isinstance(mac_data, core.Void):
            self.verify_mac(mac_data, auth_bytes)
        _check_der(auth_bytes, "the PKCS#12 contents", max_nodes=self.max_nodes)
        for ci in asn1_pkcs12.AuthenticatedSafe.load(auth_bytes, strict=True):
            self.count_bag()
            self.content_info(ci)
        return self.pair()

    def verify_mac(self, mac_data: Any, auth_bytes: bytes) -> None:
        """RFC 7292 §5.1: check the MAC (before anything is decrypted)."""
        alg = mac_data["mac"]["digest_algorithm"]["algorithm"].dotted
        if alg == _PBMAC1:
            raise IdentityError("the PKCS#12 file uses a PBMAC1 MAC, which is not supported")
        hash_name = _MAC_HASHES.get(alg)
        if hash_name is None:
            raise IdentityError(f"the PKCS#12 file uses an unsupported MAC algorithm {alg}")
        digest = mac_data["mac"]["digest"].native
        salt = self.check_salt(mac_data["mac_salt"].native, "the MAC")
        iterations = self.check_iterations(mac_data["iterations"].native, "the MAC")
        size = hashlib.new(hash_name).digest_size
        if not isinstance(digest, bytes) or len(digest) != size:
            raise IdentityError("the MAC of the PKCS#12 file has the wrong length")
        chains = _pkcs12_chains(hash_name, size)
        for bmp in self.bmp_candidates():
            mac_key = self.derive(
                ("mac", hash_name, salt, iterations, bmp),
                iterations * chains,
                partial(_pkcs12_kdf, hash_name, bmp, salt, 3, iterations, size),
            )
            if hmac.compare_digest(hmac.new(mac_key, auth_bytes, hash_name).digest(), digest):
                self.bmp = bmp
                self.mac_verified = True
                return
        raise PasswordError(_MSG_WRONG if self.password else _MSG_NEEDED)

    def content_info(self, ci: Any) -> None:
        ctype = ci["content_type"].dotted
        if ctype == _ID_DATA:
            payload = ci["content"].native
            if not isinstance(payload, bytes):
                raise IdentityError("a SafeContents of the PKCS#12 file is missing")
            self.safe_contents(payload, 1)
        elif ctype == _ID_ENCRYPTED_DATA:
            eci = ci["content"]["encrypted_content_info"]
            if eci["content_type"].dotted != _ID_DATA:
                raise IdentityError("encrypted data of the PKCS#12 file holds no SafeContents")
            sealed = eci["encrypted_content"].native
            if not isinstance(sealed, bytes):
                raise IdentityError("encrypted data of the PKCS#12 file has no content")
            what = "the certificate section"
            plain = self.decrypt(eci["content_encryption_algorithm"], sealed, what)
            self.safe_contents(plain, 1)
        elif ctype == _ID_ENVELOPED_DATA:
            raise IdentityError(
                "the PKCS#12 file uses public-key privacy mode (envelopedData), "
                "which is not supported"
            )
        else:
            raise IdentityError(f"the PKCS#12 file has an unexpected content type {ctype}")

    def safe_contents(self, payload: bytes, depth: int) -> None:
        _check_der(payload, "a SafeContents of the PKCS#12 file", max_nodes=self.max_nodes)
        self.bags_in(asn1_pkcs12.SafeContents.load(payload, strict=True), depth)

    def bags_in(self, contents: Any, depth: int) -> None:
        if depth > self.limits.max_nesting:
            raise IdentityError(
                f"the PKCS#12 file nests SafeContents deeper than {self.limits.max_nesting}"
            )
        for bag in contents:
            self.count_bag()
            bag_id = bag["bag_id"].dotted
            if bag_id == _SHROUDED_KEY_BAG:
                epki = bag["bag_value"]
                sealed = epki["encrypted_data"].native
                if not isinstance(sealed, bytes):
                    raise IdentityError("a key bag of the PKCS#12 file has no content")
                plain = self.decrypt(epki["encryption_algorithm"], sealed, "a private key")
                try:
                    self.add_key(plain, bag)
                except IdentityError:
                    if self.mac_verified:
                        raise
                    # no MAC vouches for the password: a wrong one can still leave valid CBC
                    # padding (one time in 256) and garbage that is no key
                    raise self.decrypt_failed("a private key") from None
            elif bag_id == _KEY_BAG:
                # untag: the DER of the PrivateKeyInfo without the [0] EXPLICIT around it
                self.add_key(bag["bag_value"].untag().dump(), bag)
            elif bag_id == _CERT_BAG:
                cert_bag = bag["bag_value"]
                if cert_bag["cert_id"].dotted == _X509_CERTIFICATE:
                    self.add_cert(bytes(cert_bag["cert_value"]), bag)
                # other certificate types (SDSI) are not for us
            elif bag_id == _SAFE_CONTENTS_BAG:
                self.bags_in(bag["bag_value"], depth + 1)
            # CRL, secret and unknown bags are ignored

    @staticmethod
    def attributes(bag: Any) -> tuple[bytes | None, str | None]:
        local_id: bytes | None = None
        name: str | None = None
        attrs = bag["bag_attributes"]
        if isinstance(attrs, core.Void):
            return None, None
        for attr in attrs:
            kind = attr["type"].dotted
            if kind not in (_LOCAL_KEY_ID, _FRIENDLY_NAME):
                continue
            values = attr["values"]
            if len(values) == 0:
                continue
            value = values[0].native
            if kind == _LOCAL_KEY_ID and isinstance(value, bytes) and local_id is None:
                local_id = value
            elif kind == _FRIENDLY_NAME and isinstance(value, str) and name is None:
                name = value
        return local_id, name

    def add_key(self, pkcs8: bytes, bag: Any) -> None:
        try:
            # OpenSSL's full RSA key check costs ~0.1 s per 3072-bit key (primality tests), and
            # a recovery file may hold fifty: check_rsa_key below checks what the private-key
            # operations rely on in under a millisecond.
            key = serialization.load_der_private_key(
                pkcs8, password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise IdentityError("a private key in the PKCS#12 file cannot be read") from None
        if not isinstance(key, _KEY_TYPES):
            raise IdentityError(
                f"the PKCS#12 file holds a {type(key).__name__}, which mailseal cannot use "
                f"(supported: {_KEY_TYPE_NAMES} keys)"
            )
        if isinstance(key, rsa.RSAPrivateKey):
            check_rsa_key(key, "an RSA private key in the PKCS#12 file")
        local_id, name = self.attributes(bag)
        self.keys.append(_KeyItem(key, _public_der(key.public_key()), local_id, name))

    def add_cert(self, der: bytes, bag: Any) -> None:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise IdentityError("a certificate in the PKCS#12 file cannot be read") from None
        try:
            spki: bytes | None = _public_der(cert.public_key())
        except (ValueError, UnsupportedAlgorithm):
            spki = None  # a key type cryptography does not know: it cannot pair with a key
        local_id, name = self.attributes(bag)
        self.certs.append(_CertItem(cert, der, spki, local_id, name))

    def pair(self) -> Pkcs12Contents:
        """Keys with their certificates: by localKeyId where it leads to the certificate with
        the same public key, else by public key alone."""
        by_spki: dict[bytes, list[int]] = {}
        for i, c in enumerate(self.certs):
            if c.spki is not None:
                by_spki.setdefault(c.spki, []).append(i)
        used: set[int] = set()
        entries: list[Pkcs12Entry] = []
        for n, k in enumerate(self.keys, 1):
            candidates = [i for i in by_spki.get(k.spki, []) if i not in used]
            if not candidates:
                raise IdentityError(
                    f"private key {n} of the PKCS#12 file has no certificate with its public key"
                )
            linked = [i for i in candidates if self.certs[i].local_key_id == k.local_key_id]
            chosen = linked[0] if (k.local_key_id is not None and linked) else candidates[0]
            used.add(chosen)
            cert = self.certs[chosen]
            entries.append(Pkcs12Entry(k.key, cert.cert, k.friendly_name or cert.friendly_name))
        extra: list[x509.Certificate] = []
        seen: set[bytes] = {self.certs[i].der for i in used}
        for i, c in enumerate(self.certs):
            if i not in used and c.der not in seen:
                seen.add(c.der)
                extra.append(c.cert)
        return Pkcs12Contents(entries, extra, self.mac_verified)

    # -- decryption ---------------------------------------------------------------------------

    def decrypt(self, alg: Any, sealed: bytes, what: str) -> bytes:
        oid = alg["algorithm"].dotted
        if oid == _PBES2:
            return self.pbes2(alg["parameters"], sealed, what)
        pbe = _PKCS12_PBES.get(oid)
        if pbe is not None:
            return self.pkcs12_pbe(pbe, alg["parameters"], sealed, what)
        raise IdentityError(
            f"{what} in the PKCS#12 file is encrypted with an unsupported algorithm {oid} "
            "(supported: PBES2 with PBKDF2 and AES-CBC or 3DES, and the PKCS#12 PBEs)"
        )

    def pbes2(self, params: Any, sealed: bytes, what: str) -> bytes:
        """RFC 8018 §6.2.2: PBES2 decryption with PBKDF2."""
        kdf = params["key_derivation_func"]
        kdf_oid = kdf["algorithm"].dotted
        if kdf_oid != _PBKDF2:
            raise IdentityError(
                f"{what} in the PKCS#12 file uses an unsupported key derivation {kdf_oid}"
            )
        kdf_params = kdf["parameters"]
        salt_choice = kdf_params["salt"]
        if salt_choice.name != "specified":
            raise IdentityError(f"{what} in the PKCS#12 file names its PBKDF2 salt indirectly")
        salt = self.check_salt(salt_choice.chosen.native, what)
        iterations = self.check_iterations(kdf_params["iteration_count"].native, what)
        prf_oid = kdf_params["prf"]["algorithm"].dotted
        prf = _PRFS.get(prf_oid)
        if prf is None:
            raise IdentityError(f"{what} in the PKCS#12 file uses an unsupported PRF {prf_oid}")
        scheme = params["encryption_scheme"]
        cipher_oid = scheme["algorithm"].dotted
        cipher = _PBES2_CIPHERS.get(cipher_oid)
        if cipher is None:
            raise IdentityError(
                f"{what} in the PKCS#12 file is encrypted with an unsupported cipher {cipher_oid}"
            )
        key_length = kdf_params["key_length"].native
        if key_length is not None and key_length != cipher.key_len:
            raise IdentityError(f"{what} in the PKCS#12 file has a wrong PBKDF2 key length")
        iv = scheme["parameters"].native
        if not isinstance(iv, bytes):
            raise IdentityError(f"{what} in the PKCS#12 file has no IV")
        password = self.password or b""
        hash_algorithm = prf[1]()
        blocks = -(-cipher.key_len // hash_algorithm.digest_size)
        key = self.derive(
            ("pbkdf2", prf_oid, salt, iterations, cipher.key_len),
            iterations * blocks,
            lambda: PBKDF2HMAC(hash_algorithm, cipher.key_len, salt, iterations).derive(password),
        )
        plain = _cbc_decrypt(cipher.make(key), iv, sealed)
        if plain is None:
            raise self.decrypt_failed(what)
        return plain

    def pkcs12_pbe(self, pbe: _Pkcs12Pbe, params: Any, sealed: bytes, what: str) -> bytes:
        """RFC 7292 Appendix C: the PKCS#12 PBEs (key and IV from the PKCS#12 KDF, SHA-1)."""
        salt = self.check_salt(params["salt"].native, what)
        iterations = self.check_iterations(params["iterations"].native, what)
        if pbe.cipher == "rc2" and len(sealed) > self.limits.max_rc2_bytes:
            raise IdentityError(
                f"{what} in the PKCS#12 file is {len(sealed):,} bytes of RC2, more than the "
                f"{self.limits.max_rc2_bytes:,} allowed; refusing it"
            )
        forms = [self.bmp] if self.bmp is not None else self.bmp_candidates()
        for bmp in forms:
            key = self.derive(
                ("pkcs12", 1, salt, iterations, pbe.key_len, bmp),
                iterations * _pkcs12_chains("sha1", pbe.key_len),
                partial(_pkcs12_kdf, "sha1", bmp, salt, 1, iterations, pbe.key_len),
            )
            iv = b""
            if pbe.iv_len:
                iv = self.derive(
                    ("pkcs12", 2, salt, iterations, pbe.iv_len, bmp),
                    iterations * _pkcs12_chains("sha1", pbe.iv_len),
                    partial(_pkcs12_kdf, "sha1", bmp, salt, 2, iterations, pbe.iv_len),
                )
            plain: bytes | None
            if pbe.cipher == "3des":
                plain = _cbc_decrypt(TripleDES(key), iv, sealed)
            elif pbe.cipher == "rc2":
                plain = (
                    _unpad(_rc2_cbc_decrypt(key, pbe.rc2_bits, iv, sealed), 8)
                    if sealed and len(sealed) % 8 == 0
                    else None
                )
            else:  # RC4: a stream cipher, no padding to check
                dec = Cipher(ARC4(key), mode=None).decryptor()
                plain = dec.update(sealed) + dec.finalize()
            if plain is not None:
                self.bmp = bmp
                return plain
        raise self.decrypt_failed(what)


def _number(value: object) -> str:
    """An integer from the file for a message (a hostile one may have thousands of digits)."""
    if isinstance(value, int) and abs(value) < 10**15:
        return f"{value:,}"
    return "over 10^15" if isinstance(value, int) else repr(value)[:40]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def read_pkcs12(
    data: bytes, password: bytes | None, *, limits: Pkcs12Limits | None = None
) -> Pkcs12Contents:
    """Every private key of a PKCS#12 file with its certificate, and the other certificates.

    The MAC is checked first: a wrong password raises :class:`~mailseal.errors.PasswordError`
    ("wrong password for the PKCS#12 file"), and so does a missing one when the file needs it.
    Anything else wrong with the file raises :class:`~mailseal.errors.IdentityError`.
    """
    limits = limits or DEFAULT_PKCS12_LIMITS
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UsageError("the PKCS#12 file must be given as bytes")
    if password is not None and not isinstance(password, bytes):
        raise UsageError("the PKCS#12 password must be bytes or None")
    data = bytes(data)
    if not data:
        raise IdentityError("the PKCS#12 file is empty")
    if len(data) > limits.max_size:
        raise IdentityError(
            f"the PKCS#12 file is {len(data):,} bytes, more than the {limits.max_size:,} allowed"
        )
    try:
        return _Reader(password, limits).read(data)
    except MailsealError:
        raise
    except Exception as exc:
        # the seam for asn1crypto and cryptography: a malformed structure surfaces as
        # ValueError, TypeError, KeyError, ... depending on where it breaks
        raise IdentityError(f"malformed PKCS#12 file ({_short(exc)})") from None
