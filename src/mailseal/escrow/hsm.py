"""HSM escrow mode: the escrow private key lives in an HSM (PKCS#11), and the M-of-N rule is
enforced by the recovery workflow with officers' signed approvals.

For organisations whose policy demands that the escrow key be held in an HSM. Read what it
guarantees against the default mode before choosing it.

What each mode guarantees
-------------------------

**Threshold mode** (:mod:`mailseal.escrow.threshold`, the default) splits the escrow private
key into the officers' shares and never rebuilds it. Opening a record takes M partial
decryptions made with M shares, so the M-of-N rule is enforced *by cryptography*: nobody with
fewer than M shares — an administrator with the whole server, database and backups included —
can open a record.

**HSM mode** (this module) keeps one escrow key pair in an HSM instead:

- The escrow private key is an EC key (P-384 by default) generated inside the token as
  sensitive and non-extractable, allowed only to derive ECDH secrets (no signing, decryption
  or unwrapping) (:func:`create_hsm_escrow_key`). It cannot be copied out of the token, so a
  stolen database or backup without access to the token opens nothing.
- **Anyone who holds the token's user PIN and can run code against the token can open every
  record.** The token knows nothing about officers. The M-of-N rule is enforced *by the
  workflow*: before mailseal asks the HSM to open a record, the recovery workflow must check M
  valid approvals, each an Ed25519 signature by a distinct officer's approval key over
  :func:`approval_message`, with :func:`verify_approval`. That check is code on the server, not
  cryptography: whoever controls that code, or the PIN and a host that reaches the token, can
  skip it. Protect the PIN and those hosts as you would the records themselves; controls
  inside the HSM (quorum activation cards, key roles) are the vendor's and outside mailseal.
- :func:`open_hsm_record` does not check approvals itself: it is the step the workflow runs
  after the check.
- Per record, the ECDH shared secret leaves the token (a software KDF and cipher finish the
  job, since PKCS#11 tokens such as SoftHSM2 offer no HKDF); it opens that one record only.
  It, the record's data key and the recovered key exist in the memory of the process that
  opens the record, as the recovered key does in threshold mode.
- SoftHSM2, used in tests, is a software token: its "HSM" is a directory of files encrypted
  under the PIN. Production needs a real HSM for the first guarantee to mean anything.

Approvals carry no key material: the records are not encrypted to the officers, and an approval
is evidence that the workflow checks and the audit log keeps. An officer's approval key is an
Ed25519 key pair; the private half is kept in an *approval key file* encrypted under the
officer's passphrase with Argon2id and AES-256-GCM, in the style of the share files of
:mod:`mailseal.escrow.protect` (:func:`create_approval_key`, :func:`open_approval_key`). An
approval names the escrow set, the recovery request, the officer, the exact set of records and
an expiry, after a domain-separation prefix; a signature cannot be replayed for another
request, officer, record set or expiry, and an :class:`ApprovalKey` signs nothing but approval
messages. Checking that ``expires_at`` has not passed, that the officers are distinct and
belong to the escrow set, and that there are M of them, is the workflow's job.

Records
-------

:func:`seal_hsm_record` needs only the escrow public key (no token, no PIN): a fresh ephemeral
key pair on the escrow key's curve, ``Z`` = ECDH(ephemeral, escrow key) (ephemeral-static),
a key-encryption key ``KEK = HKDF-SHA256(Z, salt=version, info=version | "kek" | escrow SPKI |
ephemeral point)``, a random 256-bit data key wrapped under the KEK with AES key wrap
(RFC 3394), and the secret encrypted with AES-256-GCM under the data key, the version and the
record id as associated data. :func:`open_hsm_record` has the token compute ``Z`` from the
stored ephemeral point and undoes the rest in software. A wrong escrow key or an altered
ephemeral point or wrapped key fails the key unwrap; a wrong record id or an altered nonce or
ciphertext fails the GCM tag; either is an :class:`~mailseal.errors.EscrowError`.

SoftHSM2 2.6 (the test token) does RSA-OAEP with SHA-1 only, which is why key transport here is
ECDH rather than RSA-OAEP-SHA256.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from mailseal.errors import EscrowError, PasswordError
from mailseal.escrow.protect import KDF_MODERATE, KdfCost, _aad, _derive, _pwhash
from mailseal.escrow.threshold import _sodium
from mailseal.keys.pkcs11 import find_key, generate_key

if TYPE_CHECKING:
    from mailseal.keys.pkcs11 import Pkcs11Token

__all__ = [
    "APPROVAL_KEY_FORMAT",
    "ApprovalKey",
    "HsmSealedRecord",
    "approval_message",
    "create_approval_key",
    "create_hsm_escrow_key",
    "open_approval_key",
    "open_hsm_record",
    "seal_hsm_record",
    "verify_approval",
]

_VERSION: Final = b"mailseal-escrow-hsm-v1"

#: Largest secret a record holds (an archived private key's DER is a few KiB).
MAX_SECRET: Final = 64 * 1024
#: Longest record id.
MAX_RECORD_ID: Final = 1024

# Curves the escrow key may be on, by cryptography's name, and the key types that make them.
_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
HsmEscrowKeyType = Literal["p256", "p384", "p521"]
_KEY_TYPES: Final[tuple[str, ...]] = ("p256", "p384", "p521")

_NONCE: Final = 12
_WRAPPED: Final = 40  # RFC 3394 wrap of a 32-byte key: 32 + 8
_TAG: Final = 16


def _lp(*parts: bytes) -> bytes:
    """Each part preceded by its length (4 bytes, big-endian): an unambiguous concatenation."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


# -- the escrow key in the HSM --------------------------------------------------------------------
def create_hsm_escrow_key(
    token: Pkcs11Token, label: str, *, key_type: HsmEscrowKeyType = "p384"
) -> bytes:
    """Generate the escrow key pair labelled ``label`` inside ``token`` and return its public
    key (DER SubjectPublicKeyInfo), which is all :func:`seal_hsm_record` needs.

    The private key is sensitive and non-extractable and may only derive ECDH secrets. A label
    already used on the token is refused (:class:`~mailseal.errors.HsmError`)."""
    if key_type not in _KEY_TYPES:
        raise EscrowError(
            f"an HSM escrow key is p256, p384 or p521 (EC key agreement), not {key_type!r}"
        )
    public = generate_key(token, label, key_type, usage="derive")
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _escrow_public_key(public: object, what: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name not in _CURVES:
        raise EscrowError(
            f"{what} is not an HSM escrow key (EC key agreement on P-256, P-384 or P-521)"
        )
    return public


def _spki(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _point(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _kek(shared: bytes, escrow_spki: bytes, ephemeral: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_VERSION,
        info=_lp(_VERSION, b"kek", escrow_spki, ephemeral),
    ).derive(shared)


def _record_aad(record_id: bytes) -> bytes:
    return _lp(_VERSION, b"record", record_id)


def _check_record_id(record_id: bytes) -> bytes:
    if not isinstance(record_id, bytes) or not 1 <= len(record_id) <= MAX_RECORD_ID:
        raise EscrowError(f"a record id is 1 to {MAX_RECORD_ID} bytes")
    return record_id


# -- records --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HsmSealedRecord:
    """An archived secret sealed to an HSM escrow key; every field is stored as is.

    ``ephemeral`` is the uncompressed ephemeral EC point, ``wrapped_key`` the data key wrapped
    under the ECDH-derived key (RFC 3394), ``nonce`` and ``ciphertext`` the AES-256-GCM nonce
    and ciphertext (with its tag) of the secret under the data key."""

    ephemeral: bytes
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes


def seal_hsm_record(public_key_der: bytes, record_id: bytes, secret: bytes) -> HsmSealedRecord:
    """``secret`` (e.g. a private key's DER) sealed to the HSM escrow key ``public_key_der``
    (the SubjectPublicKeyInfo :func:`create_hsm_escrow_key` returned). Needs no token.
    ``record_id`` names the record: it is authenticated, so a record cannot be opened as
    another."""
    _check_record_id(record_id)
    if not isinstance(secret, bytes) or len(secret) > MAX_SECRET:
        raise EscrowError(f"a record holds at most {MAX_SECRET} bytes")
    try:
        loaded = serialization.load_der_public_key(public_key_der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EscrowError("the HSM escrow public key is not a DER SubjectPublicKeyInfo") from None
    escrow = _escrow_public_key(loaded, "the public key given")
    ephemeral_key = ec.generate_private_key(escrow.curve)
    ephemeral = _point(ephemeral_key.public_key())
    kek = _kek(ephemeral_key.exchange(ec.ECDH(), escrow), _spki(escrow), ephemeral)
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE)
    return HsmSealedRecord(
        ephemeral=ephemeral,
        wrapped_key=aes_key_wrap(kek, data_key),
        nonce=nonce,
        ciphertext=AESGCM(data_key).encrypt(nonce, secret, _record_aad(record_id)),
    )


def _open(
    escrow: ec.EllipticCurvePublicKey,
    exchange: Callable[[ec.EllipticCurvePublicKey], bytes],
    record_id: bytes,
    record: HsmSealedRecord,
    key_name: str,
) -> bytes:
    """Open ``record`` with the escrow key whose public half is ``escrow``; ``exchange(peer)``
    is its ECDH with ``peer`` (done by the token)."""
    _check_record_id(record_id)
    size = (escrow.curve.key_size + 7) // 8
    fields = (record.ephemeral, record.wrapped_key, record.nonce, record.ciphertext)
    if not all(isinstance(f, bytes) for f in fields):
        raise EscrowError("the record's fields must be bytes")
    if len(record.ephemeral) != 1 + 2 * size or record.ephemeral[0] != 0x04:
        raise EscrowError(
            f"the record's ephemeral key is not an uncompressed point on {escrow.curve.name} "
            f"(the curve of escrow key {key_name}): it was sealed to another key, or altered"
        )
    if len(record.wrapped_key) != _WRAPPED or len(record.nonce) != _NONCE:
        raise EscrowError("the record's wrapped key or nonce has the wrong size (altered?)")
    if not _TAG <= len(record.ciphertext) <= MAX_SECRET + _TAG:
        raise EscrowError("the record's ciphertext has an impossible size (altered?)")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(escrow.curve, record.ephemeral)
    except ValueError:
        raise EscrowError(
            "the record's ephemeral key is not a point on the curve (altered?)"
        ) from None
    kek = _kek(exchange(peer), _spki(escrow), record.ephemeral)
    try:
        data_key = aes_key_unwrap(kek, record.wrapped_key)
    except InvalidUnwrap:
        raise EscrowError(
            f"the record does not open with escrow key {key_name}: it was sealed to another "
            "escrow key, or its ephemeral key or wrapped key was altered"
        ) from None
    try:
        return AESGCM(data_key).decrypt(record.nonce, record.ciphertext, _record_aad(record_id))
    except InvalidTag:
        raise EscrowError(
            "the record does not open: it is not the record with this id, or its nonce or "
            "ciphertext was altered"
        ) from None


def open_hsm_record(
    token: Pkcs11Token, label: str, record_id: bytes, record: HsmSealedRecord
) -> bytes:
    """The secret in ``record``, opened with the escrow key ``label`` inside ``token``.

    This does **not** check approvals: the recovery workflow must have verified M officers'
    approvals (:func:`verify_approval`) before calling it. A record that does not fit (wrong
    key, wrong record id, altered) raises :class:`~mailseal.errors.EscrowError`; a token
    problem (no such key, PIN, module) raises :class:`~mailseal.errors.HsmError`."""
    _check_record_id(record_id)
    key = find_key(token, label)
    name = f"{label!r} on token {token.label!r}"
    escrow = _escrow_public_key(key.public_key(), f"key {name}")
    return _open(escrow, key.ecdh, record_id, record, name)


# -- officers' approval keys ----------------------------------------------------------------------
#: The ``format`` field of an approval key file.
APPROVAL_KEY_FORMAT: Final = "mailseal-escrow-approval-key"
MAX_APPROVAL_KEY_FILE: Final = 16 * 1024
_APPROVAL_KEY_FIELDS: Final = frozenset(
    {"format", "version", "algorithm", "public_key", "kdf", "nonce", "ciphertext"}
)
_KDF_FIELDS: Final = frozenset({"name", "opslimit", "memlimit", "salt"})

#: Every approval message starts with this: an approval key signs nothing else.
APPROVAL_DOMAIN: Final = b"mailseal escrow recovery approval v1\x00"
MAX_APPROVAL_RECORDS: Final = 10_000
_MAX_NAME: Final = 256
_MAX_SET_ID: Final = 64


class ApprovalKey:
    """An officer's unlocked approval key (Ed25519). Never prints its secret."""

    __slots__ = ("_private", "_public")

    def __init__(self, private: ed25519.Ed25519PrivateKey) -> None:
        self._private = private
        self._public = private.public_key().public_bytes_raw()

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key registered for the officer."""
        return self._public

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``, which must come from :func:`approval_message`
        (an approval key signs approvals only)."""
        if not isinstance(message, bytes) or not message.startswith(APPROVAL_DOMAIN):
            raise EscrowError(
                "an approval key signs approval messages only (made by approval_message)"
            )
        return self._private.sign(message)

    def __repr__(self) -> str:  # never print the secret
        return f"ApprovalKey(public={self._public.hex()[:16]}…)"

    def __reduce__(self) -> Any:  # nor pickle it
        raise TypeError("an ApprovalKey cannot be pickled: keep the approval key file instead")


def create_approval_key(passphrase: bytes, *, cost: KdfCost = KDF_MODERATE) -> tuple[bytes, bytes]:
    """A new approval key for an officer: ``(raw 32-byte Ed25519 public key, approval key
    file)``. The file is JSON holding the private key encrypted under ``passphrase`` (Argon2id
    then AES-256-GCM, every clear field bound in as associated data). Register the public key
    with the officer; hand the file to the officer."""
    if not isinstance(passphrase, bytes) or len(passphrase) < 8:
        raise PasswordError("an officer's passphrase must be at least 8 characters")
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    salt = os.urandom(_pwhash().argon2id.SALTBYTES)
    nonce = os.urandom(_NONCE)
    header: dict[str, Any] = {
        "format": APPROVAL_KEY_FORMAT,
        "version": 1,
        "algorithm": "ed25519",
        "public_key": public.hex(),
        "kdf": {
            "name": "argon2id",
            "opslimit": cost.opslimit,
            "memlimit": cost.memlimit,
            "salt": salt.hex(),
        },
    }
    key = _derive(passphrase, salt, cost)
    body = AESGCM(key).encrypt(nonce, private.private_bytes_raw(), _aad(header))
    doc = {**header, "nonce": nonce.hex(), "ciphertext": body.hex()}
    return public, (json.dumps(doc, indent=2) + "\n").encode()


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EscrowError(f"field {name!r} of the approval key file has the wrong type")
    return value


def _hex(doc: dict[str, Any], name: str, length: int) -> bytes:
    value = bytes.fromhex(_field(doc, name, str))
    if len(value) != length:
        raise EscrowError(f"field {name!r} of the approval key file has the wrong length")
    return value


def open_approval_key(data: bytes, passphrase: bytes) -> ApprovalKey:
    """The approval key in an approval key file. A wrong passphrase (or a file whose clear
    fields were altered) raises :class:`~mailseal.errors.PasswordError`; anything that is not
    an approval key file, or asks for an Argon2id cost beyond the bounds, raises
    :class:`~mailseal.errors.EscrowError`."""
    if not isinstance(data, bytes) or len(data) > MAX_APPROVAL_KEY_FILE:
        raise EscrowError("this is not an approval key file (too large)")
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != APPROVAL_KEY_FORMAT:
            raise EscrowError("this is not a mailseal approval key file")
        if set(doc) != _APPROVAL_KEY_FIELDS:
            raise EscrowError("the approval key file has missing or unexpected fields")
        if _field(doc, "version", int) != 1 or doc["algorithm"] != "ed25519":
            raise EscrowError("unsupported approval key file version or algorithm")
        kdf = _field(doc, "kdf", dict)
        if set(kdf) != _KDF_FIELDS or kdf["name"] != "argon2id":
            raise EscrowError("the approval key file names an unknown KDF")
        cost = KdfCost(_field(kdf, "opslimit", int), _field(kdf, "memlimit", int))
        salt = bytes.fromhex(_field(kdf, "salt", str))
        public = _hex(doc, "public_key", 32)
        nonce = _hex(doc, "nonce", _NONCE)
        body = _hex(doc, "ciphertext", 32 + _TAG)
    except EscrowError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise EscrowError(
            f"this is not a readable approval key file ({type(exc).__name__})"
        ) from None
    header = {k: doc[k] for k in ("format", "version", "algorithm", "public_key", "kdf")}
    key = _derive(passphrase, salt, cost)  # bounds the cost before any work
    try:
        seed = AESGCM(key).decrypt(nonce, body, _aad(header))
    except InvalidTag:
        raise PasswordError(
            "wrong passphrase for this approval key file (or the file was altered)"
        ) from None
    approval_key = ApprovalKey(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    if approval_key.public_key != public:
        raise EscrowError("the approval key file is inconsistent: its key is not its public key")
    return approval_key


# -- approvals ------------------------------------------------------------------------------------
def _text(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_NAME:
        raise EscrowError(f"the {name} of an approval is text of 1 to {_MAX_NAME} characters")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise EscrowError(f"the {name} of an approval is not valid Unicode text") from None


def approval_message(
    *,
    set_id: bytes,
    request_id: str,
    officer: str,
    record_ids: Sequence[bytes],
    expires_at: dt.datetime,
) -> bytes:
    """The exact bytes an officer signs to approve recovery request ``request_id`` of the
    records ``record_ids`` of escrow set ``set_id``, valid until ``expires_at``.

    The encoding is canonical and unambiguous: :data:`APPROVAL_DOMAIN`, then each field as a
    length-prefixed name and length-prefixed value; the record ids are sorted (the order they
    are given in does not matter, a duplicate is refused); the expiry is ISO 8601 in UTC to
    the microsecond (it must carry a time zone). The workflow rebuilds this message from its
    own data to check a signature, never from what an officer sent."""
    if not isinstance(set_id, bytes) or not 1 <= len(set_id) <= _MAX_SET_ID:
        raise EscrowError(f"the escrow set id of an approval is 1 to {_MAX_SET_ID} bytes")
    if isinstance(record_ids, bytes | str):
        raise EscrowError("give the record ids as a sequence of byte strings")
    ids = list(record_ids)
    if not 1 <= len(ids) <= MAX_APPROVAL_RECORDS:
        raise EscrowError(f"an approval names 1 to {MAX_APPROVAL_RECORDS} records")
    for rid in ids:
        _check_record_id(rid)
    ordered = sorted(ids)
    if any(a == b for a, b in itertools.pairwise(ordered)):
        raise EscrowError("an approval names a record twice")
    if not isinstance(expires_at, dt.datetime) or expires_at.utcoffset() is None:
        raise EscrowError("the expiry of an approval must be a datetime with a time zone")
    expiry = expires_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    parts = [
        b"set_id",
        set_id,
        b"request_id",
        _text(request_id, "request id"),
        b"officer",
        _text(officer, "officer"),
        b"records",
        len(ordered).to_bytes(4, "big") + _lp(*ordered),
        b"expires_at",
        expiry.encode("ascii"),
    ]
    return APPROVAL_DOMAIN + _lp(*parts)


def verify_approval(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`~mailseal.errors.EscrowError` unless ``signature`` is the Ed25519
    signature of approval message ``message`` by the officer whose approval public key is
    ``public_key``. Build ``message`` with :func:`approval_message` from the request as the
    workflow knows it."""
    if not isinstance(public_key, bytes) or len(public_key) != 32:
        raise EscrowError("an approval public key is 32 bytes (raw Ed25519)")
    # Canonical, on the curve, in the prime-order subgroup, not of small order: a small-order
    # key could "verify" signatures nobody made.
    if not _sodium().crypto_core_ed25519_is_valid_point(public_key):
        raise EscrowError("the approval public key is not a valid Ed25519 key")
    if not isinstance(message, bytes) or not message.startswith(APPROVAL_DOMAIN):
        raise EscrowError("the signed message is not a mailseal approval message")
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise EscrowError("an approval signature is 64 bytes (Ed25519)")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        raise EscrowError(
            "the approval signature does not verify: it was not made with this officer's "
            "approval key over this escrow set, request, officer, record set and expiry"
        ) from None
