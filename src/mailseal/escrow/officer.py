"""Share files encrypted to a recovery officer's certificate, and one opener for every kind of
share file.

An officer who holds an encryption certificate (``mailseal escrow init --officer NAME=CERT.pem``)
gets a share file whose secret part is CMS, not a passphrase-derived key:

- The file is JSON. Its header has the same fields as a passphrase share file
  (:mod:`mailseal.escrow.protect`: format, version, set id, threshold, officers, the escrow
  public key, the officer's index) and says how it is protected: ``"protection":
  "certificate"`` with the certificate's SHA-256 fingerprint and subject, so an officer knows
  which key opens it. A file without ``protection`` is a passphrase file.
- ``envelope`` is a CMS AuthEnvelopedData (RFC 5083, AES-256-GCM) to the officer's
  certificate, in base64: RSAES-OAEP with SHA-256 for an RSA key, ephemeral-static ECDH
  (RFC 5753) for an EC key, RFC 8418 for X25519/X448, all written by :mod:`mailseal.cms`.
- The plaintext inside the CMS is JSON ``{"header": {...}, "share": "<hex>"}``: the header is
  repeated there and must equal the one outside, so a file cannot be relabelled as another
  officer's, another set's or another certificate's.
- ``certificate_pem`` carries the officer's certificate itself, so the file opens with the
  private key alone (its fingerprint must be the one in the header).

Public-key encryption does not say who encrypted: anyone holding the officer's (public)
certificate can make a file that opens. A share read from such a file is therefore trusted only
once it is checked against the escrow set's verification point ``S_i = s_i·G``
(:func:`open_share_with_key` and :func:`open_share_file` do that when given the escrow set;
:func:`~mailseal.escrow.threshold.partial_decrypt` does it again before any use).

Without mailseal, an officer recovers the share with OpenSSL 3::

    jq -r .envelope share-ann.json | base64 -d > share.der
    openssl cms -decrypt -inform DER -in share.der -recip ann.pem -inkey ann.key
    # prints {"header": {...}, "share": "<32-byte scalar, hex, little-endian>"}

:func:`open_share_file` reads either kind of share file and asks for the right secret: a
passphrase for a passphrase file, a private key for a certificate file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import io
import json
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mailseal._encrypt import check_recipient
from mailseal.cms.content import CIPHERS
from mailseal.cms.enveloped import EnvelopeRecipient, EnvelopeWriter, open_envelope
from mailseal.errors import (
    DecryptionError,
    EscrowError,
    IdentityError,
    MailsealError,
    NoMatchingRecipient,
    UsageError,
)
from mailseal.escrow.protect import MAX_FILE, SHARE_FORMAT, _aad, _share_header, open_share
from mailseal.escrow.threshold import MAX_OFFICERS, EscrowSet, L, Share, _base
from mailseal.keys.base import Decrypter, PrivateKey

__all__ = [
    "PROTECTION_CERTIFICATE",
    "PROTECTION_PASSPHRASE",
    "open_share_file",
    "open_share_with_key",
    "seal_share_to_certificate",
    "share_protection",
]

PROTECTION_PASSPHRASE: Final = "passphrase"  # noqa: S105 - a label, not a secret
PROTECTION_CERTIFICATE: Final = "certificate"
#: AES-256-GCM AuthEnvelopedData (DESIGN.md rule 6); every recipient kind mailseal writes
#: (key transport and key agreement) works with it.
_CIPHER: Final = CIPHERS["aes-256-gcm"]
#: The header fields shared with passphrase share files (mailseal.escrow.protect).
_BASE_KEYS: Final = ("format", "version", "set_id", "threshold", "officers", "public_key", "index")


# -- sealing --------------------------------------------------------------------------------------
def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"
    except Exception:  # an undecodable subject
        return f"serial {cert.serial_number:x}"


def _share_value(share: Share, escrow: EscrowSet) -> int:
    """The share as a scalar, refused unless it is officer ``share.index``'s share of
    ``escrow`` (checked against the verification point ``S_i = s_i·G``)."""
    if share.set_id != escrow.set_id:
        raise EscrowError("this share belongs to another escrow set")
    if not 1 <= share.index <= escrow.officers:
        raise EscrowError(f"share index {share.index} is not an officer of this escrow set")
    s = int.from_bytes(share.value, "little") if len(share.value) == 32 else 0
    if not 0 < s < L:
        raise EscrowError(f"share {share.index} is not a valid scalar")
    if _base(s) != escrow.verification[share.index - 1]:
        raise EscrowError(
            f"share {share.index} does not match its verification point in this escrow set"
        )
    return s


def seal_share_to_certificate(
    escrow: EscrowSet,
    share: Share,
    certificate: x509.Certificate,
    *,
    at: _dt.datetime | None = None,
) -> bytes:
    """The share file of ``share``, encrypted to the holder of ``certificate``.

    The certificate must be usable for encryption at ``at`` (default: now) — within its dates,
    with keyEncipherment (RSA) or keyAgreement (EC, X25519, X448) when it has a key usage, and
    emailProtection when it has an extended key usage — or :class:`IdentityError` is raised.
    """
    _share_value(share, escrow)
    check_recipient(certificate, at=at)
    header = {
        **_share_header(escrow, share.index),
        "protection": PROTECTION_CERTIFICATE,
        "certificate": {"sha256": _fingerprint(certificate), "subject": _subject(certificate)},
    }
    inner = json.dumps(
        {"header": header, "share": share.value.hex()}, sort_keys=True, separators=(",", ":")
    ).encode()
    out: list[bytes] = []
    writer = EnvelopeWriter(out.append, _CIPHER, [EnvelopeRecipient(certificate)])
    writer.write(inner)
    writer.close()
    doc = {
        **header,
        "envelope": base64.b64encode(b"".join(out)).decode(),
        "certificate_pem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


# -- reading --------------------------------------------------------------------------------------
def _load(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_FILE:
        raise EscrowError("this is not a share file (too large)")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise EscrowError(f"this is not a share file (not JSON: {type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != SHARE_FORMAT:
        raise EscrowError("this is not a mailseal share file")
    if doc.get("version") != 1 or isinstance(doc.get("version"), bool):
        raise EscrowError(f"unsupported share file version {doc.get('version')!r}")
    return doc


def share_protection(data: bytes) -> str:
    """How a share file is protected: ``"passphrase"`` or ``"certificate"``.

    Raises :class:`EscrowError` when ``data`` is not a share file or names another protection.
    """
    return _protection(_load(data))


def _protection(doc: dict[str, Any]) -> str:
    protection = doc.get("protection", PROTECTION_PASSPHRASE)
    if protection not in (PROTECTION_PASSPHRASE, PROTECTION_CERTIFICATE):
        raise EscrowError(f"this share file has an unknown protection {protection!r}")
    return str(protection)


def _int_field(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EscrowError(f"the share file's {what} is not a number")
    return value


def _hex_field(value: object, size: int, what: str) -> bytes:
    raw = b""
    if isinstance(value, str) and len(value) == 2 * size:
        with contextlib.suppress(ValueError):
            raw = bytes.fromhex(value)
    if len(raw) != size:  # fromhex skips white space: "00 11" is not two bytes here
        raise EscrowError(f"the share file's {what} is not {size} bytes in hex")
    return raw


def _cert_header(doc: dict[str, Any]) -> dict[str, Any]:
    """The header of a certificate share file, every field checked for type and range."""
    header: dict[str, Any] = {}
    for key in (*_BASE_KEYS, "protection", "certificate"):
        if key not in doc:
            raise EscrowError(f"this share file lacks its {key!r} field")
        header[key] = doc[key]
    threshold = _int_field(header["threshold"], "threshold")
    officers = _int_field(header["officers"], "number of officers")
    index = _int_field(header["index"], "officer index")
    if not 2 <= threshold <= officers <= MAX_OFFICERS or not 1 <= index <= officers:
        raise EscrowError(
            f"the share file claims officer {index} with {threshold} of {officers} officers, "
            "which is not a possible escrow set"
        )
    _hex_field(header["set_id"], 16, "set id")
    _hex_field(header["public_key"], 32, "escrow public key")
    cert = header["certificate"]
    if (
        not isinstance(cert, dict)
        or set(cert) != {"sha256", "subject"}
        or not isinstance(cert["subject"], str)
    ):
        raise EscrowError("the share file's certificate field is malformed")
    _hex_field(cert["sha256"], 32, "certificate fingerprint")
    return header


def _named(header: dict[str, Any]) -> str:
    cert = header["certificate"]
    return f"{cert['subject']} (SHA-256 {cert['sha256']})"


def _check_set(header: dict[str, Any], escrow: EscrowSet) -> None:
    if bytes.fromhex(header["set_id"]) != escrow.set_id:
        raise EscrowError("this share file belongs to another escrow set")
    if (
        bytes.fromhex(header["public_key"]) != escrow.public_key
        or header["threshold"] != escrow.threshold
        or header["officers"] != escrow.officers
    ):
        raise EscrowError(
            "this share file names the escrow set's id but not its public key, threshold or "
            "number of officers"
        )


def _recipient_certificate(
    doc: dict[str, Any], header: dict[str, Any], given: x509.Certificate | None
) -> x509.Certificate:
    """The certificate to name the officer's key with: ``given``, else the one in the file;
    either way it must be the certificate the header names."""
    wanted = header["certificate"]["sha256"]
    if given is not None:
        if _fingerprint(given) != wanted:
            raise EscrowError(
                f"this share file is encrypted to {_named(header)}, not to {_subject(given)}"
            )
        return given
    pem = doc.get("certificate_pem")
    if not isinstance(pem, str):
        raise EscrowError(
            f"this share file does not carry its certificate: give the certificate of "
            f"{_named(header)} with its key"
        )
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise EscrowError("the certificate carried in this share file is unreadable") from None
    if _fingerprint(cert) != wanted:
        raise EscrowError("the certificate carried in this share file is not the one it names")
    return cert


def _decrypter(key: PrivateKey | Decrypter) -> Decrypter:
    if not isinstance(key, Decrypter):
        raise IdentityError("this private key cannot decrypt (it offers no key transport)")
    return key


def _open_envelope(
    envelope: bytes, cert: x509.Certificate, key: Decrypter, header: dict[str, Any]
) -> bytes:
    out: list[bytes] = []
    try:
        open_envelope(
            io.BytesIO(envelope).read, [(cert, key)], out.append, require_authenticated=True
        )
    except NoMatchingRecipient:
        raise EscrowError(
            f"this share file's envelope is not encrypted to {_named(header)}, whose "
            "certificate it names (the file was altered)"
        ) from None
    except DecryptionError:
        raise EscrowError(
            f"the private key given does not open this share file: it is encrypted to "
            f"{_named(header)} (or the file was altered)"
        ) from None
    except (MailsealError, ValueError, TypeError, IndexError, OverflowError) as exc:
        # MalformedCMS, LimitExceeded, AlgorithmError, ... and anything a hostile encoding
        # might still provoke below the CMS reader
        raise EscrowError(f"the envelope in this share file is not readable CMS ({exc})") from None
    return b"".join(out)


def _inner_share(plaintext: bytes, header: dict[str, Any]) -> bytes:
    try:
        inner = json.loads(plaintext)
    except (ValueError, RecursionError):
        raise EscrowError("the decrypted share is not readable") from None
    if not isinstance(inner, dict) or set(inner) != {"header", "share"}:
        raise EscrowError("the decrypted share is not readable")
    if not isinstance(inner["header"], dict) or _aad(inner["header"]) != _aad(header):
        raise EscrowError(
            "the share file's header does not match the header sealed with the share: "
            "the file was relabelled"
        )
    return _hex_field(inner["share"], 32, "decrypted share")


def open_share_with_key(
    data: bytes,
    key: PrivateKey | Decrypter,
    certificate: x509.Certificate | None,
    escrow: EscrowSet | None = None,
) -> Share:
    """The share in a certificate share file, decrypted with the officer's private ``key``.

    ``certificate`` is the officer's certificate (when None, the one carried in the file is
    used). With ``escrow``, the share must belong to that set and match its verification
    point — the only check that tells a genuine share from one that someone else encrypted to
    the officer's certificate. Every failure is an :class:`EscrowError` (or
    :class:`IdentityError` for a key that cannot decrypt at all).
    """
    doc = _load(data)
    if _protection(doc) != PROTECTION_CERTIFICATE:
        raise UsageError(
            "this share file is protected by a passphrase, not by a certificate: give the "
            "officer's passphrase"
        )
    header = _cert_header(doc)
    if escrow is not None:
        _check_set(header, escrow)
    cert = _recipient_certificate(doc, header, certificate)
    decrypter = _decrypter(key)
    envelope_b64 = doc.get("envelope")
    if not isinstance(envelope_b64, str):
        raise EscrowError("this share file has no envelope")
    try:
        envelope = base64.b64decode(envelope_b64, validate=True)
    except (binascii.Error, ValueError):
        raise EscrowError("this share file's envelope is not base64") from None
    value = _inner_share(_open_envelope(envelope, cert, decrypter, header), header)
    share = Share(bytes.fromhex(header["set_id"]), header["index"], value)
    if escrow is not None:
        _share_value(share, escrow)
    else:
        s = int.from_bytes(value, "little")
        if not 0 < s < L:
            raise EscrowError(f"share {share.index} is not a valid scalar")
    return share


def open_share_file(
    data: bytes,
    *,
    passphrase: bytes | None = None,
    key: PrivateKey | Decrypter | None = None,
    certificate: x509.Certificate | None = None,
    escrow: EscrowSet | None = None,
) -> Share:
    """The share in a share file of either kind, opened with the secret its protection needs:
    ``passphrase`` for a passphrase file, ``key`` (and optionally ``certificate``) for a
    certificate file. A secret of the other kind is not used.

    Raises :class:`UsageError` when the needed secret is missing, :class:`EscrowError` (or
    :class:`~mailseal.errors.PasswordError` for a wrong passphrase) when the file does not open
    or, with ``escrow``, does not belong to that set.
    """
    doc = _load(data)
    protection = _protection(doc)
    if protection == PROTECTION_CERTIFICATE:
        if key is None:
            named = doc.get("certificate")
            who = ""
            if isinstance(named, dict) and isinstance(named.get("subject"), str):
                who = f" of {named['subject']}"
            raise UsageError(
                f"this share file is encrypted to the certificate{who}: give that "
                "certificate's private key"
                + (", not a passphrase" if passphrase is not None else "")
            )
        return open_share_with_key(data, key, certificate, escrow)
    if passphrase is None:
        raise UsageError(
            "this share file is protected by a passphrase: give the officer's passphrase"
            + (", not a private key" if key is not None else "")
        )
    try:
        share = open_share(data, passphrase, escrow)
    except MailsealError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise EscrowError(f"this is not a readable share file ({type(exc).__name__})") from None
    if escrow is not None:
        _share_value(share, escrow)
    return share
