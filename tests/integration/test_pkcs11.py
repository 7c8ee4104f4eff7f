"""CA keys in a real SoftHSM2 token over PKCS#11 (:mod:`mailseal.keys.pkcs11`).

A throwaway SoftHSM2 configuration and token directory are made under pytest's temporary
directory, with tokens initialised by ``softhsm2-util``; nothing touches /var/lib/softhsm.
SoftHSM2 reads its configuration and token list once per process, so every token the tests use
is initialised up front in one session fixture.

Cases: every key type is generated on the token and signs with every scheme it supports, the
signatures verifying with cryptography against :meth:`Pkcs11Key.public_key`; certificates and
CRLs signed by the token keys verify; the private keys are sensitive and non-extractable; a
wrong PIN, an unknown token, an unknown key, a missing or bogus module and a missing
python-pkcs11 each raise :class:`HsmError` without the PIN in the message; a lost session is
reopened; concurrent signing from threads.

Needs SoftHSM2 (Debian package ``softhsm2``): skipped without it, failed when
MAILSEAL_REQUIRE_PEERS=1.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from mailseal.errors import AlgorithmError, HsmError, MailsealError
from mailseal.keys.base import PrivateKey, SignatureScheme
from mailseal.keys.pkcs11 import (
    HSM_KEY_TYPES,
    Pkcs11Key,
    Pkcs11Token,
    find_key,
    generate_key,
    key_uri,
    parse_key_uri,
    pin_from_env,
    pin_from_file,
)
from mailseal.keys.software import hash_algorithm

from ._softhsm import SoftHsm, private_softhsm

PIN = "1234-user"
SO_PIN = "5678-so"
WRONG_PIN = "wrong-4711"
CA_TOKEN = "mailseal-ca"
SPARE_TOKEN = "mailseal-spare"  # never held open: a login on it really checks the PIN


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A private SoftHSM2 configuration with two initialised tokens."""
    hsm = private_softhsm(
        tmp_path_factory.mktemp("softhsm"), (CA_TOKEN, SPARE_TOKEN), pin=PIN, so_pin=SO_PIN
    )
    import pkcs11

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(hsm.conf))
        # The module reads SOFTHSM2_CONF when it initialises: start it afresh in case another
        # test loaded it with another configuration.
        pkcs11.lib(os.path.realpath(hsm.module)).reinitialize()
        yield hsm


@pytest.fixture(scope="session")
def token(softhsm: SoftHsm) -> Iterator[Pkcs11Token]:
    with Pkcs11Token(softhsm.module, CA_TOKEN, PIN) as tok:
        yield tok


@pytest.fixture(scope="session")
def keys(token: Pkcs11Token) -> dict[str, Pkcs11Key]:
    """One key of every type, generated on the CA token (key label = key type)."""
    made: dict[str, Pkcs11Key] = {}
    for key_type in HSM_KEY_TYPES:
        public = generate_key(token, key_type, key_type)
        key = find_key(token, key_type)
        assert _spki(key.public_key()) == _spki(public)
        made[key_type] = key
    return made


def _spki(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _verify(key: Pkcs11Key, sig: bytes, data: bytes, scheme: SignatureScheme) -> None:
    """Verify with cryptography: raises InvalidSignature when the signature is wrong."""
    pub = key.public_key()
    h = hash_algorithm(scheme.hash)
    if isinstance(pub, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if scheme.kind == "rsa-pkcs1"
            else padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        )
        pub.verify(sig, data, pad, h)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, data, ec.ECDSA(h))
    else:
        pub.verify(sig, data)


SIGNING_CASES = [
    ("rsa2048", "rsa-pkcs1", "sha256"),
    ("rsa3072", "rsa-pkcs1", "sha256"),
    ("rsa3072", "rsa-pkcs1", "sha384"),
    ("rsa3072", "rsa-pkcs1", "sha512"),
    ("rsa3072", "rsa-pss", "sha256"),
    ("rsa3072", "rsa-pss", "sha384"),
    ("rsa3072", "rsa-pss", "sha512"),
    ("rsa4096", "rsa-pkcs1", "sha256"),
    ("rsa4096", "rsa-pss", "sha512"),
    ("p256", "ecdsa", "sha256"),
    ("p256", "ecdsa", "sha384"),
    ("p256", "ecdsa", "sha512"),
    ("p384", "ecdsa", "sha384"),
    ("p384", "ecdsa", "sha256"),
    ("p521", "ecdsa", "sha512"),
    ("ed25519", "ed25519", "sha512"),
    ("ed448", "ed448", "sha512"),
]


# --- key generation and lookup ----------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(HSM_KEY_TYPES))
def test_generated_key_has_expected_type_and_size(
    keys: dict[str, Pkcs11Key], key_type: str
) -> None:
    key = keys[key_type]
    expected = {
        "rsa2048": ("rsa", 2048, rsa.RSAPublicKey),
        "rsa3072": ("rsa", 3072, rsa.RSAPublicKey),
        "rsa4096": ("rsa", 4096, rsa.RSAPublicKey),
        "p256": ("ec", 256, ec.EllipticCurvePublicKey),
        "p384": ("ec", 384, ec.EllipticCurvePublicKey),
        "p521": ("ec", 521, ec.EllipticCurvePublicKey),
        "ed25519": ("ed25519", 255, ed25519.Ed25519PublicKey),
        "ed448": ("ed448", 448, ed448.Ed448PublicKey),
    }[key_type]
    assert (key.key_type, key.key_size) == expected[:2]
    assert isinstance(key.public_key(), expected[2])
    assert isinstance(key, PrivateKey)
    assert key.label == key_type
    assert key.uri == f"pkcs11:token={CA_TOKEN};object={key_type};type=private"
    assert key.reference == key.uri
    assert PIN not in repr(key) and PIN not in key.uri


def test_find_key_by_uri(token: Pkcs11Token, keys: dict[str, Pkcs11Key]) -> None:
    again = find_key(token, keys["p256"].uri)
    assert _spki(again.public_key()) == _spki(keys["p256"].public_key())


def test_key_labels(token: Pkcs11Token, keys: dict[str, Pkcs11Key]) -> None:
    assert set(HSM_KEY_TYPES) <= set(token.key_labels())


def test_private_key_is_sensitive_and_not_extractable(
    softhsm: SoftHsm, keys: dict[str, Pkcs11Key]
) -> None:
    import pkcs11

    for key in keys.values():
        prot = key.protection()
        assert prot.sensitive and not prot.extractable
        assert prot.always_sensitive and prot.never_extractable
        assert prot.hardware_bound

    # Straight through python-pkcs11: the secret values cannot be read out.
    lib = pkcs11.lib(os.path.realpath(softhsm.module))
    with lib.get_token(token_label=CA_TOKEN).open() as session:  # shares the login
        rsa_key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="rsa3072")
        assert rsa_key[pkcs11.Attribute.EXTRACTABLE] is False
        assert rsa_key[pkcs11.Attribute.SENSITIVE] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            rsa_key[pkcs11.Attribute.PRIVATE_EXPONENT]
        ec_key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="p256")
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            ec_key[pkcs11.Attribute.VALUE]


def test_generate_refuses_a_taken_label(token: Pkcs11Token, keys: dict[str, Pkcs11Key]) -> None:
    with pytest.raises(HsmError, match="already holds an object labelled 'p256'"):
        generate_key(token, "p256", "p256")


def test_generate_refuses_unknown_key_type(token: Pkcs11Token) -> None:
    with pytest.raises(AlgorithmError, match="unknown key type 'dsa2048'"):
        generate_key(token, "x", "dsa2048")


# --- signing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_type", "kind", "hash_name"), SIGNING_CASES)
def test_signature_verifies(
    keys: dict[str, Pkcs11Key], key_type: str, kind: str, hash_name: str
) -> None:
    key = keys[key_type]
    scheme = SignatureScheme(kind, hash_name)  # type: ignore[arg-type]
    data = b"to-be-signed bytes of a certificate, CRL or SignerInfo " * 50
    sig = key.sign(data, scheme)
    _verify(key, sig, data, scheme)
    if kind == "ecdsa":
        decode_dss_signature(sig)  # DER Ecdsa-Sig-Value, not PKCS#11's raw r||s
        assert sig[0] == 0x30
    with pytest.raises(InvalidSignature):
        _verify(key, sig, data + b"!", scheme)


@pytest.mark.parametrize("key_type", list(HSM_KEY_TYPES))
def test_certificate_and_crl_signed_by_the_token_verify(
    keys: dict[str, Pkcs11Key], key_type: str
) -> None:
    from mailseal.pki.signing import sign_certificate, sign_crl

    key = keys[key_type]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"HSM CA {key_type}")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    cert = sign_certificate(builder, key)
    cert.verify_directly_issued_by(cert)
    assert _spki(cert.public_key()) == _spki(key.public_key())

    crl = sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(now)
        .next_update(now + dt.timedelta(days=7)),
        key,
    )
    assert crl.is_signature_valid(key.public_key())


@pytest.mark.parametrize(
    ("key_type", "kind", "hash_name", "message"),
    [
        ("rsa3072", "ecdsa", "sha256", "cannot make a ecdsa signature"),
        ("p256", "rsa-pkcs1", "sha256", "cannot make a rsa-pkcs1 signature"),
        ("p256", "ed25519", "sha512", "cannot make a ed25519 signature"),
        ("rsa3072", "rsa-pkcs1", "sha1", "SHA-1 is refused"),
        ("p256", "ecdsa", "sha1", "SHA-1 is refused"),
    ],
)
def test_unsupported_schemes_are_refused(
    keys: dict[str, Pkcs11Key], key_type: str, kind: str, hash_name: str, message: str
) -> None:
    scheme = SignatureScheme(kind, hash_name)  # type: ignore[arg-type]
    with pytest.raises(AlgorithmError, match=message):
        keys[key_type].sign(b"data", scheme)


def test_concurrent_signing_from_threads(keys: dict[str, Pkcs11Key]) -> None:
    key = keys["p256"]
    scheme = SignatureScheme("ecdsa", "sha256")
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                data = f"thread {n} message {i}".encode()
                _verify(key, key.sign(data, scheme), data, scheme)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_lost_session_is_reopened(token: Pkcs11Token, keys: dict[str, Pkcs11Key]) -> None:
    key = keys["rsa2048"]
    scheme = SignatureScheme("rsa-pkcs1", "sha256")
    _verify(key, key.sign(b"before", scheme), b"before", scheme)
    # Simulate a module that dropped the session: close it (and log out) behind mailseal's back.
    login = token._login
    assert login.session is not None
    login.session.close()
    _verify(key, key.sign(b"after", scheme), b"after", scheme)
    assert key.protection().hardware_bound


def test_second_opening_shares_the_login(softhsm: SoftHsm, keys: dict[str, Pkcs11Key]) -> None:
    key = keys["p384"]
    scheme = SignatureScheme("ecdsa", "sha384")
    with Pkcs11Token(softhsm.module, CA_TOKEN, PIN) as second:
        other = find_key(second, "p384")
        _verify(other, other.sign(b"x", scheme), b"x", scheme)
    # closing the second connection did not log the first one out
    _verify(key, key.sign(b"y", scheme), b"y", scheme)
    with pytest.raises(HsmError, match="is closed"):
        other.sign(b"z", scheme)


# --- errors ----------------------------------------------------------------------------------


def _no_pin(exc: pytest.ExceptionInfo[MailsealError]) -> str:
    text = str(exc.value)
    assert PIN not in text and WRONG_PIN not in text
    assert exc.value.__cause__ is None or isinstance(exc.value.__cause__, MailsealError)
    return text


def test_wrong_pin(softhsm: SoftHsm) -> None:
    with pytest.raises(HsmError) as exc:
        Pkcs11Token(softhsm.module, SPARE_TOKEN, WRONG_PIN)
    assert _no_pin(exc) == f"wrong PIN for token {SPARE_TOKEN!r}"
    # the right PIN still works afterwards
    with Pkcs11Token(softhsm.module, SPARE_TOKEN, PIN) as tok:
        assert tok.key_labels() == []


def test_wrong_pin_while_the_token_is_open(softhsm: SoftHsm, token: Pkcs11Token) -> None:
    # The module would accept any PIN while logged in; mailseal still refuses a wrong one.
    with pytest.raises(HsmError) as exc:
        Pkcs11Token(softhsm.module, CA_TOKEN, WRONG_PIN)
    assert _no_pin(exc) == f"wrong PIN for token {CA_TOKEN!r}"


def test_unknown_token(softhsm: SoftHsm) -> None:
    with pytest.raises(HsmError) as exc:
        Pkcs11Token(softhsm.module, "no-such-token", PIN)
    text = _no_pin(exc)
    assert "no token labelled 'no-such-token'" in text
    assert repr(CA_TOKEN) in text and "softhsm2-util --init-token" in text


def test_unknown_key(token: Pkcs11Token, keys: dict[str, Pkcs11Key]) -> None:
    with pytest.raises(HsmError) as exc:
        find_key(token, "no-such-key")
    text = _no_pin(exc)
    assert f"no private key labelled 'no-such-key' on token {CA_TOKEN!r}" in text
    assert "'p256'" in text  # the labels present are listed


def test_missing_module(tmp_path: Path) -> None:
    pytest.importorskip("pkcs11")
    with pytest.raises(HsmError) as exc:
        Pkcs11Token(tmp_path / "libnothing.so", CA_TOKEN, PIN)
    assert "PKCS#11 module" in _no_pin(exc) and "not found" in str(exc.value)


def test_module_that_is_not_pkcs11(tmp_path: Path) -> None:
    pytest.importorskip("pkcs11")
    bogus = tmp_path / "bogus.so"
    bogus.write_bytes(b"not a shared library")
    with pytest.raises(HsmError) as exc:
        Pkcs11Token(bogus, CA_TOKEN, PIN)
    assert "cannot be loaded as a PKCS#11 module" in _no_pin(exc)


def test_missing_python_pkcs11(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # makes `import pkcs11` fail
    with pytest.raises(HsmError, match=r"pip install 'mailseal\[hsm\]'"):
        Pkcs11Token(tmp_path / "lib.so", CA_TOKEN, PIN)


def test_empty_pin_and_label(tmp_path: Path) -> None:
    with pytest.raises(HsmError, match="user PIN"):
        Pkcs11Token(tmp_path / "lib.so", CA_TOKEN, "")
    with pytest.raises(HsmError, match="label of the token"):
        Pkcs11Token(tmp_path / "lib.so", "", PIN)


def test_closed_token(softhsm: SoftHsm) -> None:
    tok = Pkcs11Token(softhsm.module, SPARE_TOKEN, PIN)
    tok.close()
    tok.close()  # idempotent
    with pytest.raises(HsmError, match="is closed"):
        tok.key_labels()
    assert PIN not in repr(tok)


def test_uri_for_another_token(token: Pkcs11Token, keys: dict[str, Pkcs11Key]) -> None:
    with pytest.raises(HsmError, match="names token 'elsewhere'"):
        find_key(token, "pkcs11:token=elsewhere;object=p256;type=private")


# --- key references and PINs (no token needed) -------------------------------------------------


def test_key_uri_round_trip() -> None:
    uri = key_uri("CA token; 2025", "root/key=1")
    assert uri == "pkcs11:token=CA%20token%3B%202025;object=root%2Fkey%3D1;type=private"
    assert parse_key_uri(uri) == ("CA token; 2025", "root/key=1")
    assert parse_key_uri("pkcs11:object=k") == (None, "k")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("pkcs11:token=t;object=k?pin-value=1234", "carries a PIN"),
        ("pkcs11:token=t;object=k;pin-value=1234", "carries a PIN"),
        ("pkcs11:token=t;object=k?module-path=/x.so&pin-source=file:/p", "carries a PIN"),
        ("pkcs11:token=t;type=cert;object=k", "not a private key"),
        ("pkcs11:token=t", "names no key"),
        ("file:///k", "not a pkcs11: URI"),
        ("pkcs11:token", "malformed"),
    ],
)
def test_bad_key_uris(uri: str, message: str) -> None:
    with pytest.raises(HsmError, match=message) as exc:
        parse_key_uri(uri)
    assert "1234" not in str(exc.value)


def test_pin_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSEAL_TEST_PIN", PIN)
    assert pin_from_env("MAILSEAL_TEST_PIN") == PIN
    monkeypatch.setenv("MAILSEAL_TEST_PIN", "")
    with pytest.raises(HsmError, match="MAILSEAL_TEST_PIN is empty"):
        pin_from_env("MAILSEAL_TEST_PIN")
    monkeypatch.delenv("MAILSEAL_TEST_PIN")
    with pytest.raises(HsmError, match="MAILSEAL_TEST_PIN is not set"):
        pin_from_env("MAILSEAL_TEST_PIN")


@pytest.mark.parametrize(
    ("content", "expected"),
    [(f"{PIN}\n", PIN), (f"{PIN}\r\n", PIN), (PIN, PIN), ("  spaced pin  \n", "  spaced pin  ")],
)
def test_pin_from_file(tmp_path: Path, content: str, expected: str) -> None:
    f = tmp_path / "pin"
    f.write_text(content, newline="")
    assert pin_from_file(f) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("", "is empty"), ("\n", "is empty"), ("a\nb\n", "more than one")],
)
def test_bad_pin_files(tmp_path: Path, content: str | None, message: str) -> None:
    f = tmp_path / "pin"
    if content is not None:
        f.write_text(content)
    with pytest.raises(HsmError, match=message) as exc:
        pin_from_file(f)
    assert "a\nb" not in str(exc.value)
