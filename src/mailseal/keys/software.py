"""Private keys held in this process, from PEM or PKCS#12 files."""

from __future__ import annotations

from typing import cast

from cryptography.exceptions import UnsupportedAlgorithm
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

__all__ = ["SoftwareKey", "load_private_key"]

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


def load_private_key(data: bytes, password: bytes | None = None) -> SoftwareKey:
    """Load a PEM or DER private key, optionally encrypted with ``password``."""
    loaders = (
        (serialization.load_pem_private_key, b"-----BEGIN" in data),
        (serialization.load_der_private_key, True),
    )
    last: Exception | None = None
    for loader, applies in loaders:
        if not applies:
            continue
        try:
            key = loader(data, password=password)
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
