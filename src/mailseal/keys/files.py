"""CA keys in files: PKCS#8 PEM encrypted with a passphrase, mode 0600.

The encryption is PKCS#5 PBES2 (what cryptography's best available PKCS#8 encryption writes:
AES-256-CBC with a PBKDF2-HMAC-SHA256 key). A wrong passphrase, a missing file or a file that
is not a key each raise an :class:`~mailseal.errors.IdentityError` saying which.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from mailseal.errors import IdentityError, PasswordError
from mailseal.keys.software import SoftwareKey, check_rsa_key, wrong_password

__all__ = ["load_key_file", "save_key_file"]

#: A passphrase shorter than this is refused when a key file is written.
MIN_PASSPHRASE = 8


def save_key_file(path: Path, key: PrivateKeyTypes, passphrase: bytes) -> None:
    """Write ``key`` encrypted under ``passphrase`` to ``path`` (created 0600, never replaced:
    an existing file is an error, so a CA key is never overwritten by accident)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise PasswordError(f"the CA passphrase must be at least {MIN_PASSPHRASE} characters")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise IdentityError(f"{path} exists already; refusing to overwrite a key") from None
    except OSError as exc:
        raise IdentityError(f"cannot write the key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def load_key_file(path: Path, passphrase: bytes | None) -> SoftwareKey:
    """The key in ``path``, decrypted with ``passphrase``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"the key file {path} does not exist") from None
    except OSError as exc:
        raise IdentityError(f"cannot read the key file {path}: {exc.strerror}") from None
    if b"ENCRYPTED" in data and not passphrase:
        raise PasswordError(f"the key file {path} needs the CA passphrase")
    try:
        # these files were written by mailseal from keys it made or fully checked on import
        # (load_private_key(thorough=True)); check_rsa_key guards against damage since
        key = serialization.load_pem_private_key(
            data, passphrase or None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError) as exc:
        if wrong_password(exc, data, passphrase):
            raise PasswordError(f"wrong CA passphrase for {path}") from None
        raise IdentityError(f"{path} does not hold a usable private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        check_rsa_key(key, f"the key in {path}")
    return SoftwareKey(key)  # type: ignore[arg-type]
