"""CA key files (mailseal.keys.files): written 0600 and never replaced, read back with the
passphrase, and every way of failing is a clear MailsealError."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailseal.errors import IdentityError, PasswordError
from mailseal.keys.files import load_key_file, save_key_file

PASSPHRASE = b"the right CA passphrase"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "issuing.key.pem"
    save_key_file(path, ec.generate_private_key(ec.SECP256R1()), PASSPHRASE)
    return path


def test_round_trip_private_and_never_replaced(key_file: Path) -> None:
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_key_file(key_file, PASSPHRASE).key_type == "ec"
    with pytest.raises(IdentityError, match="exists already"):
        save_key_file(key_file, ec.generate_private_key(ec.SECP256R1()), PASSPHRASE)


def test_missing_passphrase_and_missing_or_garbage_file(key_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PasswordError, match="needs the CA passphrase"):
        load_key_file(key_file, None)
    with pytest.raises(IdentityError, match="does not exist"):
        load_key_file(tmp_path / "nothing.pem", PASSPHRASE)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(IdentityError, match="does not hold a usable private key"):
        load_key_file(garbage, None)


def test_every_wrong_passphrase_is_reported_as_one(key_file: Path) -> None:
    """A wrong passphrase usually fails the CBC padding check, but about one in 256 decrypts
    to well-padded garbage that then fails to parse: both are a wrong passphrase."""
    data = key_file.read_bytes()
    garbage_one = next(
        (c for c in (b"wrong %d" % i for i in range(5000)) if _fails_to_parse(data, c)), None
    )
    assert garbage_one is not None, "no wrong passphrase with valid padding among 5000"
    for wrong in (b"wrong 0", garbage_one):
        with pytest.raises(PasswordError, match="wrong CA passphrase") as err:
            load_key_file(key_file, wrong)
        assert wrong.decode() not in str(err.value)


def test_user_keys_wrong_password_with_valid_padding(tmp_path: Path) -> None:
    """The same for keys given to sign and decrypt (load_private_key)."""
    from mailseal.keys.software import load_private_key

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )
    garbage_one = next(
        (c for c in (b"wrong %d" % i for i in range(5000)) if _fails_to_parse(pem, c)),
        None,
    )
    assert garbage_one is not None
    for wrong in (b"wrong password", garbage_one):
        with pytest.raises(PasswordError, match="wrong password"):
            load_private_key(pem, wrong)
    assert load_private_key(pem, PASSPHRASE).key_type == "ec"


def _fails_to_parse(pem: bytes, password: bytes) -> bool:
    """True when ``password`` decrypts ``pem`` to well-padded garbage (not a padding error)."""
    try:
        serialization.load_pem_private_key(pem, password)
    except ValueError as exc:
        return "password" not in str(exc).lower() and "decrypt" not in str(exc).lower()
    return False
