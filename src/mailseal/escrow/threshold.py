"""Threshold ElGamal over the Ed25519 prime-order group: archive keys so that M of N officers can
open a record together, without the escrow private key ever being rebuilt.

The construction (the security argument is in docs/escrow.md):

- **Setting up** (:func:`create_escrow`): a random scalar ``x`` is the escrow private key and
  ``X = x·G`` its public key. ``x`` is split with Shamir's scheme over the group order ``L``
  into N shares ``s_i = f(i)`` of a random polynomial of degree M−1 with ``f(0) = x``; each
  officer's public verification point ``S_i = s_i·G`` is kept with ``X``. Then ``x`` and the
  polynomial are dropped: only the shares (handed to the officers) can act for it.
- **Archiving** (:func:`seal_record`) needs only ``X``: a random point ``M = m·G`` is the
  record's key material; it is ElGamal-encrypted as ``(R, E) = (r·G, M + r·X)`` for a fresh
  ``r``, and AES-256-GCM under HKDF-SHA256(M) encrypts the record, with the record id and ``R``
  bound in.
- **Recovering one record**: officer ``i`` computes the partial ``D_i = s_i·R`` with a
  Chaum-Pedersen proof that ``log_G S_i = log_R D_i`` (:func:`partial_decrypt`), so a wrong or
  malicious partial is caught before it is used. ``D_i`` is only useful for this ``R``: it says
  nothing about other records. Any M partials combine by Lagrange interpolation in the exponent,
  ``Σ λ_i·D_i = x·R`` (:func:`combine`), and ``M = E − x·R`` opens the record
  (:func:`open_record`).
- **Re-sharing** (:func:`reshare`): a quorum's shares give a fresh escrow key ``x' = x + δ``
  for a new set of officers; every record is moved to it with ``E' = E + δ·R``
  (:func:`reshare_record`) without being decrypted. The old shares do not open a moved record:
  ``E' − x·R = M + δ·R``, and ``δ`` is dropped after the move.

Points from outside are checked with libsodium's ``crypto_core_ed25519_is_valid_point``
(canonical, on the curve, in the prime-order subgroup, not of small order).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailseal.errors import EscrowError

__all__ = [
    "EscrowError",
    "EscrowSet",
    "Partial",
    "SealedRecord",
    "Share",
    "combine",
    "create_escrow",
    "open_record",
    "partial_decrypt",
    "reshare",
    "reshare_record",
    "seal_record",
    "verify_partial",
]

#: The order of the Ed25519 prime-order subgroup.
L = 2**252 + 27742317777372353535851937790883648493
_VERSION = b"mailseal-escrow-v2"
MAX_OFFICERS = 64


def _nacl(part: str) -> Any:
    """A PyNaCl module (``bindings``, ``pwhash``), or one clear error without the escrow
    extra."""
    try:
        return importlib.import_module(f"nacl.{part}")
    except ImportError:  # pragma: no cover - the escrow extra is missing
        raise EscrowError("key escrow needs PyNaCl: pip install 'mailseal[escrow]'") from None


def _sodium() -> Any:
    return _nacl("bindings")


# -- scalars and points ---------------------------------------------------------------------------
def _scalar(n: int) -> bytes:
    return (n % L).to_bytes(32, "little")


def _int(s: bytes) -> int:
    return int.from_bytes(s, "little")


def _random_scalar() -> int:
    n = 0
    while n == 0:
        n = int.from_bytes(os.urandom(64), "little") % L
    return n


def _base(n: int) -> bytes:
    return bytes(_sodium().crypto_scalarmult_ed25519_base_noclamp(_scalar(n)))


def _mul(n: int, point: bytes) -> bytes:
    try:
        return bytes(_sodium().crypto_scalarmult_ed25519_noclamp(_scalar(n), point))
    except Exception:  # nacl.exceptions.RuntimeError on an identity result
        raise EscrowError("a group operation gave the identity (bad input)") from None


def _add(p: bytes, q: bytes) -> bytes:
    return bytes(_sodium().crypto_core_ed25519_add(p, q))


def _sub(p: bytes, q: bytes) -> bytes:
    return bytes(_sodium().crypto_core_ed25519_sub(p, q))


def _point(data: bytes, what: str) -> bytes:
    if len(data) != 32 or not _sodium().crypto_core_ed25519_is_valid_point(data):
        raise EscrowError(f"{what} is not a valid group element")
    return bytes(data)


def _hash_scalar(*parts: bytes) -> int:
    h = hashlib.sha512()
    for p in parts:
        h.update(len(p).to_bytes(4, "big"))
        h.update(p)
    return int.from_bytes(h.digest(), "little") % L


# -- setting up -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Share:
    """Officer ``index``'s share of the escrow key of set ``set_id`` (a secret)."""

    set_id: bytes
    index: int
    value: bytes  # 32-byte scalar, little-endian

    def __repr__(self) -> str:  # never print the secret
        return f"Share(set={self.set_id.hex()[:12]}…, index={self.index})"


@dataclass(frozen=True, slots=True)
class EscrowSet:
    """What the server keeps: the public key, the threshold and each officer's verification
    point. Nothing here opens a record."""

    set_id: bytes
    threshold: int
    public_key: bytes
    verification: tuple[bytes, ...]  # S_i for officer indexes 1..N

    @property
    def officers(self) -> int:
        return len(self.verification)


def create_escrow(threshold: int, officers: int) -> tuple[EscrowSet, list[Share]]:
    """A new escrow key for ``officers`` officers, any ``threshold`` of whom can recover
    (2 ≤ threshold ≤ officers ≤ 64). Returns the public set and one share per officer; the
    private key exists only inside this call."""
    if not 2 <= threshold <= officers <= MAX_OFFICERS:
        raise EscrowError(
            f"need 2 ≤ threshold ≤ officers ≤ {MAX_OFFICERS} (got {threshold} of {officers})"
        )
    return _split(_random_scalar(), threshold, officers)


def _split(secret: int, threshold: int, officers: int) -> tuple[EscrowSet, list[Share]]:
    set_id = os.urandom(16)
    # f(0) = secret is coefficients[0]
    coefficients = [secret] + [_random_scalar() for _ in range(threshold - 1)]

    def f(i: int) -> int:
        acc = 0
        for c in reversed(coefficients):
            acc = (acc * i + c) % L
        return acc

    values = [f(i) for i in range(1, officers + 1)]
    public = _base(coefficients[0])
    escrow = EscrowSet(set_id, threshold, public, tuple(_base(v) for v in values))
    shares = [Share(set_id, i, _scalar(v)) for i, v in enumerate(values, 1)]
    coefficients.clear()
    return escrow, shares


# -- archiving ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SealedRecord:
    """An archived secret: ``R = r·G``, ``E = M + r·X`` and the AES-256-GCM nonce and
    ciphertext under a key derived from ``M``."""

    ephemeral: bytes
    masked: bytes
    nonce: bytes
    ciphertext: bytes


def _record_key(point: bytes, record_id: bytes, ephemeral: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_VERSION,
        info=_VERSION + b"|record|" + record_id + b"|" + ephemeral,
    ).derive(point)


def seal_record(escrow: EscrowSet, record_id: bytes, secret: bytes) -> SealedRecord:
    """Encrypt ``secret`` (e.g. a private key's DER) to the escrow set; ``record_id`` names
    the record (it is authenticated, so a record cannot be swapped for another)."""
    r = _random_scalar()
    point = _base(_random_scalar())
    ephemeral = _base(r)
    masked = _add(point, _mul(r, _point(escrow.public_key, "the escrow public key")))
    key = _record_key(point, record_id, ephemeral)
    nonce = os.urandom(12)
    return SealedRecord(
        ephemeral, masked, nonce, AESGCM(key).encrypt(nonce, secret, _VERSION + record_id)
    )


# -- recovering -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Partial:
    """Officer ``index``'s partial decryption ``D = s_i·R`` of one record, with a
    Chaum-Pedersen proof (commitments ``a = k·G``, ``b = k·R`` and response ``z``)."""

    set_id: bytes
    index: int
    value: bytes
    a: bytes
    b: bytes
    z: bytes


def _challenge(escrow_id: bytes, index: int, s_i: bytes, eph: bytes, d: bytes,
               a: bytes, b: bytes) -> int:  # fmt: skip
    return _hash_scalar(_VERSION, b"dleq", escrow_id, index.to_bytes(2, "big"), s_i, eph, d, a, b)


def partial_decrypt(escrow: EscrowSet, share: Share, record: SealedRecord) -> Partial:
    """Officer ``share.index``'s contribution to opening ``record`` (and to nothing else)."""
    s = _check_share(escrow, share)
    eph = _point(record.ephemeral, "the record's ephemeral key")
    d = _mul(s, eph)
    k = _random_scalar()
    a, b = _base(k), _mul(k, eph)
    c = _challenge(escrow.set_id, share.index, escrow.verification[share.index - 1], eph, d, a, b)
    z = (k + c * s) % L
    return Partial(escrow.set_id, share.index, d, a, b, _scalar(z))


def verify_partial(escrow: EscrowSet, record: SealedRecord, partial: Partial) -> None:
    """Raise :class:`EscrowError` unless ``partial`` is officer ``partial.index``'s correct
    partial decryption of ``record``."""
    if partial.set_id != escrow.set_id:
        raise EscrowError("this partial decryption belongs to another escrow set")
    if not 1 <= partial.index <= escrow.officers:
        raise EscrowError(f"officer {partial.index} is not in this escrow set")
    s_i = escrow.verification[partial.index - 1]
    eph = _point(record.ephemeral, "the record's ephemeral key")
    d = _point(partial.value, "the partial decryption")
    a = _point(partial.a, "the proof commitment")
    b = _point(partial.b, "the proof commitment")
    z = _int(partial.z)
    if z >= L:
        raise EscrowError("the proof response is not reduced")
    c = _challenge(escrow.set_id, partial.index, s_i, eph, d, a, b)
    if _base(z) != _add(a, _mul(c, s_i)) or _mul(z, eph) != _add(b, _mul(c, d)):
        raise EscrowError(f"officer {partial.index}'s partial decryption does not verify")


def _lagrange_at_zero(index: int, indexes: Sequence[int]) -> int:
    num, den = 1, 1
    for j in indexes:
        if j != index:
            num = num * j % L
            den = den * (j - index) % L
    return num * pow(den, -1, L) % L


def combine(escrow: EscrowSet, record: SealedRecord, partials: Sequence[Partial]) -> bytes:
    """``x·R`` from ``threshold`` verified partials of distinct officers (more are ignored)."""
    seen: dict[int, Partial] = {}
    for p in partials:
        if p.index in seen:
            raise EscrowError(f"officer {p.index} contributed twice")
        verify_partial(escrow, record, p)
        seen[p.index] = p
    if len(seen) < escrow.threshold:
        raise EscrowError(
            f"{len(seen)} of the {escrow.threshold} approvals needed are in; wait for more"
        )
    chosen = sorted(seen)[: escrow.threshold]
    total: bytes | None = None
    for i in chosen:
        term = _mul(_lagrange_at_zero(i, chosen), seen[i].value)
        total = term if total is None else _add(total, term)
    assert total is not None
    return total


def open_record(
    escrow: EscrowSet, record_id: bytes, record: SealedRecord, partials: Sequence[Partial]
) -> bytes:
    """The archived secret, from ``threshold`` partial decryptions of ``record``."""
    shared = combine(escrow, record, partials)
    masked = _point(record.masked, "the record's masked key")
    point = _sub(masked, shared)
    key = _record_key(point, record_id, record.ephemeral)
    try:
        return AESGCM(key).decrypt(record.nonce, record.ciphertext, _VERSION + record_id)
    except InvalidTag:
        raise EscrowError("the record does not open (altered, or not this record's id)") from None


# -- re-sharing -----------------------------------------------------------------------------------
class Rekey:
    """The difference ``δ = x' − x`` between an old and a new escrow key (a secret: with it and
    the old shares, the new key follows). Used to move records, then dropped."""

    __slots__ = ("_delta", "new_set_id", "old_set_id")

    def __init__(self, old_set_id: bytes, new_set_id: bytes, delta: int) -> None:
        self.old_set_id = old_set_id
        self.new_set_id = new_set_id
        self._delta = delta

    def __repr__(self) -> str:  # never print the secret
        return f"Rekey({self.old_set_id.hex()[:12]}… → {self.new_set_id.hex()[:12]}…)"


def _check_share(escrow: EscrowSet, share: Share) -> int:
    if share.set_id != escrow.set_id:
        raise EscrowError(f"share {share.index} belongs to another escrow set")
    if not 1 <= share.index <= escrow.officers:
        raise EscrowError(f"share index {share.index} is not an officer of this escrow set")
    s = _int(share.value) % L
    if _base(s) != escrow.verification[share.index - 1]:
        raise EscrowError(f"share {share.index} does not match its verification point")
    return s


def reshare(
    escrow: EscrowSet, shares: Sequence[Share], threshold: int, officers: int
) -> tuple[EscrowSet, list[Share], Rekey]:
    """A new escrow set (``threshold`` of ``officers``) from ``escrow.threshold`` verified shares
    of distinct officers of ``escrow``. The new key is unrelated to the old shares; records move
    to it with :func:`reshare_record` and the returned :class:`Rekey`. The old key is rebuilt
    inside this call only (the old shares are all present anyway) and dropped with the
    polynomial."""
    if not 2 <= threshold <= officers <= MAX_OFFICERS:
        raise EscrowError(
            f"need 2 ≤ threshold ≤ officers ≤ {MAX_OFFICERS} (got {threshold} of {officers})"
        )
    seen: dict[int, int] = {}
    for share in shares:
        if share.index in seen:
            raise EscrowError(f"officer {share.index}'s share was given twice")
        seen[share.index] = _check_share(escrow, share)
    if len(seen) < escrow.threshold:
        raise EscrowError(
            f"re-sharing needs {escrow.threshold} shares of the current set; {len(seen)} given"
        )
    chosen = sorted(seen)[: escrow.threshold]
    old = sum(_lagrange_at_zero(i, chosen) * seen[i] for i in chosen) % L
    if _base(old) != escrow.public_key:
        raise EscrowError("the shares do not rebuild this escrow set's key")
    delta = _random_scalar()
    new_escrow, new_shares = _split((old + delta) % L, threshold, officers)
    seen.clear()
    old = 0
    return new_escrow, new_shares, Rekey(escrow.set_id, new_escrow.set_id, delta)


def reshare_record(record: SealedRecord, rekey: Rekey) -> SealedRecord:
    """``record`` moved to the new key of ``rekey``: ``E' = E + δ·R`` (never decrypted)."""
    eph = _point(record.ephemeral, "the record's ephemeral key")
    masked = _point(record.masked, "the record's masked key")
    return SealedRecord(
        record.ephemeral, _add(masked, _mul(rekey._delta, eph)), record.nonce, record.ciphertext
    )
