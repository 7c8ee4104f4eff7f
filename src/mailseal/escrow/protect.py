"""Protecting what leaves the server: officers' share files and the partial decryptions on
their way to the requester.

- A **share file** is JSON: the escrow set's public data (set id, threshold, public key, the
  officer's index) in clear, and the share encrypted with AES-256-GCM under a key derived from
  the officer's passphrase with Argon2id (libsodium ``crypto_pwhash``, memory-hard), the clear
  fields bound in as associated data so that nobody can relabel a share as another officer's or
  another set's. :func:`seal_share` / :func:`open_share`.
- A **delivery key** belongs to one recovery request: an X25519 key pair derived from the
  requester's password and a per-request salt with Argon2id. Only its public half is stored;
  officers seal their partial decryptions to it (libsodium sealed boxes), so that a database
  copy taken after the quorum is in still opens nothing without the requester's password.
  :class:`DeliveryKey`, :func:`seal_partial`, :func:`open_partial`.

Argon2id costs are recorded with what they protect and bounded when read back (a hostile file
cannot make a reader allocate more than :data:`MAX_MEMLIMIT`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailseal.errors import EscrowError, PasswordError
from mailseal.escrow.threshold import EscrowSet, Partial, Share, _nacl

__all__ = [
    "KDF_MODERATE",
    "DeliveryKey",
    "KdfCost",
    "open_partial",
    "open_share",
    "seal_partial",
    "seal_share",
]

SHARE_FORMAT = "mailseal-escrow-share"
MAX_MEMLIMIT = 1 << 30
MAX_OPSLIMIT = 16
MAX_FILE = 64 * 1024


@dataclass(frozen=True, slots=True)
class KdfCost:
    """Argon2id cost: passes and memory in bytes."""

    opslimit: int
    memlimit: int


#: libsodium's "moderate" Argon2id cost (3 passes, 256 MiB): about a second per guess here.
KDF_MODERATE = KdfCost(3, 256 << 20)


def _pwhash() -> Any:
    return _nacl("pwhash")


def _derive(password: bytes, salt: bytes, cost: KdfCost) -> bytes:
    if not 1 <= cost.opslimit <= MAX_OPSLIMIT or not 8192 <= cost.memlimit <= MAX_MEMLIMIT:
        raise EscrowError("the Argon2id cost recorded with this data is out of bounds")
    ph = _pwhash()
    if len(salt) != ph.argon2id.SALTBYTES:
        raise EscrowError("the Argon2id salt has the wrong length")
    return bytes(
        ph.argon2id.kdf(32, password, salt, opslimit=cost.opslimit, memlimit=cost.memlimit)
    )


# -- share files ----------------------------------------------------------------------------------
def _share_header(escrow: EscrowSet, index: int) -> dict[str, Any]:
    return {
        "format": SHARE_FORMAT,
        "version": 1,
        "set_id": escrow.set_id.hex(),
        "threshold": escrow.threshold,
        "officers": escrow.officers,
        "public_key": escrow.public_key.hex(),
        "index": index,
    }


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal_share(
    escrow: EscrowSet, share: Share, passphrase: bytes, *, cost: KdfCost = KDF_MODERATE
) -> bytes:
    """The share file of ``share``, encrypted under ``passphrase``."""
    if len(passphrase) < 8:
        raise PasswordError("an officer's passphrase must be at least 8 characters")
    if share.set_id != escrow.set_id:
        raise EscrowError("this share belongs to another escrow set")
    header = _share_header(escrow, share.index)
    salt = os.urandom(_pwhash().argon2id.SALTBYTES)
    nonce = os.urandom(12)
    key = _derive(passphrase, salt, cost)
    body = AESGCM(key).encrypt(nonce, share.value, _aad(header))
    doc = {
        **header,
        "kdf": {
            "name": "argon2id",
            "opslimit": cost.opslimit,
            "memlimit": cost.memlimit,
            "salt": salt.hex(),
        },
        "nonce": nonce.hex(),
        "ciphertext": body.hex(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def open_share(data: bytes, passphrase: bytes, escrow: EscrowSet | None = None) -> Share:
    """The share in a share file; with ``escrow``, it must belong to that set."""
    if len(data) > MAX_FILE:
        raise EscrowError("this is not a share file (too large)")
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise EscrowError("this is not a mailseal share file")
        if doc.get("protection", "passphrase") != "passphrase":
            raise EscrowError(
                "this share file is encrypted to an officer's certificate: open it with the"
                " officer's private key, not a passphrase"
            )
        header = {k: doc[k] for k in _share_header_keys()}
        if header["format"] != SHARE_FORMAT or header["version"] != 1:
            raise EscrowError("this is not a mailseal share file")
        kdf = doc["kdf"]
        if kdf["name"] != "argon2id":
            raise EscrowError(f"unknown KDF {kdf['name']!r} in the share file")
        cost = KdfCost(int(kdf["opslimit"]), int(kdf["memlimit"]))
        salt = bytes.fromhex(kdf["salt"])
        nonce = bytes.fromhex(doc["nonce"])
        body = bytes.fromhex(doc["ciphertext"])
        set_id = bytes.fromhex(header["set_id"])
        index = int(header["index"])
    except EscrowError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise EscrowError(f"this is not a readable share file ({type(exc).__name__})") from None
    if escrow is not None and set_id != escrow.set_id:
        raise EscrowError("this share file belongs to another escrow set")
    key = _derive(passphrase, salt, cost)
    try:
        value = AESGCM(key).decrypt(nonce, body, _aad(header))
    except (InvalidTag, ValueError):
        raise PasswordError(
            "wrong passphrase for this share file (or the file was altered)"
        ) from None
    return Share(set_id, index, value)


def _share_header_keys() -> tuple[str, ...]:
    return ("format", "version", "set_id", "threshold", "officers", "public_key", "index")


# -- delivery of partial decryptions --------------------------------------------------------------
@dataclass(frozen=True)
class DeliveryKey:
    """A recovery request's delivery key: X25519, derived from the requester's password."""

    salt: bytes
    cost: KdfCost
    public_key: bytes
    _private: Any = None

    @classmethod
    def create(cls, password: bytes, *, cost: KdfCost = KDF_MODERATE) -> DeliveryKey:
        if len(password) < 8:
            raise PasswordError("the delivery password must be at least 8 characters")
        salt = os.urandom(_pwhash().argon2id.SALTBYTES)
        return cls.unlock(salt, cost, password)

    @classmethod
    def unlock(cls, salt: bytes, cost: KdfCost, password: bytes) -> DeliveryKey:
        from nacl.public import PrivateKey

        private = PrivateKey(_derive(password, salt, cost))
        return cls(salt, cost, bytes(private.public_key), private)

    def check(self, password: bytes) -> DeliveryKey:
        """This key unlocked with ``password`` (refused when it is not the right one)."""
        unlocked = DeliveryKey.unlock(self.salt, self.cost, password)
        if unlocked.public_key != self.public_key:
            raise PasswordError("wrong password for this recovery request")
        return unlocked


def _partial_bytes(p: Partial) -> bytes:
    return p.set_id + p.index.to_bytes(2, "big") + p.value + p.a + p.b + p.z


def seal_partial(partial: Partial, delivery_public_key: bytes) -> bytes:
    """``partial`` sealed to the request's delivery key (only the requester opens it)."""
    from nacl.public import PublicKey, SealedBox

    return bytes(SealedBox(PublicKey(delivery_public_key)).encrypt(_partial_bytes(partial)))


def open_partial(sealed: bytes, key: DeliveryKey) -> Partial:
    from nacl.exceptions import CryptoError
    from nacl.public import SealedBox

    if key._private is None:
        raise EscrowError("the delivery key is locked: unlock it with the requester's password")
    try:
        raw = bytes(SealedBox(key._private).decrypt(sealed))
    except CryptoError:
        raise EscrowError(
            "a sealed partial decryption does not open with this request's key"
        ) from None
    if len(raw) != 16 + 2 + 32 * 4:
        raise EscrowError("a sealed partial decryption has the wrong size")
    return Partial(
        raw[:16],
        int.from_bytes(raw[16:18], "big"),
        raw[18:50],
        raw[50:82],
        raw[82:114],
        raw[114:146],
    )
