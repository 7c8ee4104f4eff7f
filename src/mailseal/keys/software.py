"""Private keys held in this process, from PEM or PKCS#12 files."""

from __future__ import annotations

from typing import cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    x448,
    x25519,
)

from mailseal.errors import AlgorithmError, IdentityError, PasswordError
from mailseal.keys.base import HashName, KeyTransport, KeyType, SignatureScheme

__all__ = ["SoftwareKey", "check_rsa_key", "load_private_key"]

SoftwarePrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def hash_algorithm(name: HashName | str) -> hashes.HashAlgorithm:
    """The cryptography hash object for a mailseal hash name."""
    try:
        return _HASHES[name]()
    except KeyError:
        raise AlgorithmError(f"unsupported digest algorithm {name!r}") from None


class SoftwareKey:
    """A :class:`~mailseal.keys.base.PrivateKey` backed by a key object in memory."""

    __slots__ = ("_key", "_oaep", "_pkcs1", "_pss", "_type")

    def __init__(self, key: SoftwarePrivateKey) -> None:
        if not isinstance(
            key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey
            | x25519.X25519PrivateKey
            | x448.X448PrivateKey,
        ):
            raise IdentityError(f"unsupported private key type {type(key).__name__}")
        self._key = key
        self._pkcs1 = padding.PKCS1v15()
        self._pss: dict[str, padding.PSS] = {}
        self._oaep: dict[str, padding.OAEP] = {}
        self._type = _key_type(key)

    @property
    def key(self) -> SoftwarePrivateKey:
        return self._key

    @property
    def key_type(self) -> KeyType:
        return self._type

    @property
    def key_size(self) -> int:
        k = self._key
        if isinstance(k, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            return int(k.key_size)
        return 255 if isinstance(k, ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey) else 448

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        k = self._key
        if scheme.kind == "rsa-pkcs1" and self._type == "rsa":
            return cast(rsa.RSAPrivateKey, k).sign(data, self._pkcs1, hash_algorithm(scheme.hash))
        if scheme.kind == "rsa-pss" and isinstance(k, rsa.RSAPrivateKey):
            pss = self._pss.get(scheme.hash)
            if pss is None:
                h = hash_algorithm(scheme.hash)
                pss = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
                self._pss[scheme.hash] = pss
            return k.sign(data, pss, hash_algorithm(scheme.hash))
        if scheme.kind == "ecdsa" and isinstance(k, ec.EllipticCurvePrivateKey):
            return k.sign(data, ec.ECDSA(hash_algorithm(scheme.hash)))
        if scheme.kind == "ed25519" and isinstance(k, ed25519.Ed25519PrivateKey):
            return k.sign(data)
        if scheme.kind == "ed448" and isinstance(k, ed448.Ed448PrivateKey):
            return k.sign(data)
        raise AlgorithmError(f"a {self.key_type} key cannot make a {scheme.kind} signature")

    def decrypt(self, ciphertext: bytes, padding_name: KeyTransport) -> bytes:
        if self._type != "rsa":
            raise AlgorithmError(f"a {self.key_type} key cannot do RSA key transport")
        k = cast(rsa.RSAPrivateKey, self._key)
        pad: padding.AsymmetricPadding
        if padding_name == "pkcs1v15":
            pad = self._pkcs1
        else:
            oaep = self._oaep.get(padding_name)
            if oaep is None:
                h = hash_algorithm(padding_name.split("-", 1)[1])
                oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
                self._oaep[padding_name] = oaep
            pad = oaep
        return k.decrypt(ciphertext, pad)

    def exchange(self, peer_public_key: bytes) -> bytes:
        k = self._key
        try:
            peer = serialization.load_der_public_key(peer_public_key)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise AlgorithmError(f"the originator's public key cannot be read ({exc})") from None
        if isinstance(k, ec.EllipticCurvePrivateKey) and isinstance(
            peer, ec.EllipticCurvePublicKey
        ):
            if peer.curve.name != k.curve.name:
                raise AlgorithmError("the originator's key is on another curve")
            return k.exchange(ec.ECDH(), peer)
        if isinstance(k, x25519.X25519PrivateKey) and isinstance(peer, x25519.X25519PublicKey):
            return k.exchange(peer)
        if isinstance(k, x448.X448PrivateKey) and isinstance(peer, x448.X448PublicKey):
            return k.exchange(peer)
        raise AlgorithmError(f"a {self.key_type} key cannot agree a key with that originator")


def wrong_password(exc: Exception, data: bytes, password: bytes | None) -> bool:
    """Did loading the key in ``data`` with ``password`` fail because the password is wrong?
    cryptography says so when the padding check fails; a wrong password that still ends in
    valid CBC padding (about one time in 256) gives garbage that fails to parse instead, which
    for an encrypted PEM key is the same thing."""
    if not password:
        return False
    text = str(exc).lower()
    return "password" in text or "decrypt" in text or b"ENCRYPTED" in data


#: the largest RSA modulus OpenSSL will compute with (OPENSSL_RSA_MAX_MODULUS_BITS)
RSA_MAX_BITS = 16384
_PROBE = b"mailseal RSA key check"


def _rsa_problem(key: rsa.RSAPrivateKey) -> str | None:
    """What is wrong with the numbers of ``key``, or None. Exact integer arithmetic, with
    every size bounded before any product is formed."""
    nums = key.private_numbers()
    n, e = nums.public_numbers.n, nums.public_numbers.e
    p, q, d = nums.p, nums.q, nums.d
    dp, dq, qinv = nums.dmp1, nums.dmq1, nums.iqmp
    bits = n.bit_length()
    if not 512 <= bits <= RSA_MAX_BITS:
        return f"its modulus has {bits:,} bits"
    if any(not 0 < v < n for v in (e, d, p, q, dp, dq, qinv)):
        return "one of its numbers is zero, negative or larger than its modulus"
    if e < 3 or not e & 1:
        return "its public exponent is not an odd number of at least 3"
    if p < 3 or q < 3 or not p & q & 1 or p == q:
        return "its primes are not two different odd numbers"
    if p * q != n:
        return "its primes do not multiply to its modulus"
    if (dp - d) % (p - 1) or (dq - d) % (q - 1):
        return "its CRT exponents do not match its private exponent"
    if (e * dp) % (p - 1) != 1 or (e * dq) % (q - 1) != 1:
        return "its private exponent does not invert its public exponent"
    if (qinv * q) % p != 1:
        return "its CRT coefficient is not the inverse of q modulo p"
    try:  # the pairwise consistency test: what the key makes, its public half accepts
        sig = key.sign(_PROBE, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(sig, _PROBE, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return "a signature made with it does not verify with its public key"
    return None


def check_rsa_key(key: rsa.RSAPrivateKey, what: str = "the RSA private key") -> None:
    """Raise :class:`~mailseal.errors.IdentityError` unless ``key`` is consistent.

    This stands in for OpenSSL's RSA key check, which tests the primality of p and q (64
    Miller-Rabin rounds each: 36 ms for RSA-2048, 260 ms for RSA-4096, paid by every process
    that loads the key). It takes under 1 ms and checks everything the private-key
    operations rely on: the sizes, p and q odd and distinct with p*q = n, the CRT exponents
    and coefficient, e*d = 1 modulo p-1 and q-1, and a signature round trip. A composite
    "prime" that a faulty generator treated as prime gives a private exponent that fails the
    round trip; one made on purpose is possible only for whoever made the key, who holds it
    anyway. See docs/smime.md, "Private keys".
    """
    problem = _rsa_problem(key)
    if problem is not None:
        raise IdentityError(f"{what} is inconsistent: {problem}")


def load_private_key(
    data: bytes, password: bytes | None = None, *, thorough: bool = False
) -> SoftwareKey:
    """Load a PEM or DER private key, optionally encrypted with ``password``.

    An RSA key is checked by :func:`check_rsa_key`; ``thorough`` runs OpenSSL's full check
    instead, primality tests included (for a key imported once and kept, such as a CA's).
    """
    loaders = (
        (serialization.load_pem_private_key, b"-----BEGIN" in data),
        (serialization.load_der_private_key, True),
    )
    last: Exception | None = None
    for loader, applies in loaders:
        if not applies:
            continue
        try:
            key = loader(data, password=password, unsafe_skip_rsa_key_validation=not thorough)
        except TypeError as exc:
            # cryptography: "Password was not given but private key is encrypted" and the reverse
            if "not given" in str(exc) or "encrypted" in str(exc):
                if password is None:
                    raise PasswordError(
                        "the private key is encrypted: give its password "
                        "(--password-env VAR or --password-file FILE)"
                    ) from None
                raise PasswordError(
                    "a password was given but the private key is not encrypted"
                ) from None
            last = exc
            continue
        except ValueError as exc:
            if wrong_password(exc, data, password):
                raise PasswordError("wrong password for the private key") from None
            last = exc
            continue
        except UnsupportedAlgorithm as exc:
            raise IdentityError(f"unsupported private key: {exc}") from None
        if isinstance(key, rsa.RSAPrivateKey) and not thorough:
            check_rsa_key(key)
        return SoftwareKey(key)  # type: ignore[arg-type]
    raise IdentityError("not a private key in PEM or DER form") from last


def _key_type(k: SoftwarePrivateKey) -> KeyType:
    if isinstance(k, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(k, ec.EllipticCurvePrivateKey):
        return "ec"
    if isinstance(k, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(k, ed448.Ed448PrivateKey):
        return "ed448"
    if isinstance(k, x25519.X25519PrivateKey):
        return "x25519"
    return "x448"
