"""PKCS#12 files with several private keys: mailseal.keys.pkcs12 writes and reads them.

Hand-made files for the hostile cases are built here with a small DER encoder and an
independent PKCS#12 KDF (RFC 7292 B.2), so a test does not lean on the code under test to make
its input. No external tools: reading OpenSSL-made files is in tests/interop.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import keys as a_keys
from asn1crypto import pkcs12 as a_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs12 as c_pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailseal
from mailseal.asn1 import der as D
from mailseal.errors import IdentityError, PasswordError, UsageError
from mailseal.keys import pkcs12 as mod
from mailseal.keys.identity import load_pkcs12, load_pkcs12_identities
from mailseal.keys.pkcs12 import (
    Pkcs12Contents,
    Pkcs12Entry,
    Pkcs12Limits,
    read_pkcs12,
    write_pkcs12,
)
from mailseal.pki.testpki import Issued, TestPKI

from .conftest import Person

PW = b"recovery passphrase"
IT = 2048  # low iteration count for speed; one test uses the default

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED = "1.2.840.113549.1.7.2"
OID_ENVELOPED = "1.2.840.113549.1.7.3"
OID_ENCRYPTED = "1.2.840.113549.1.7.6"
KEY_BAG = "1.2.840.113549.1.12.10.1.1"
SHROUDED_BAG = "1.2.840.113549.1.12.10.1.2"
CERT_BAG = "1.2.840.113549.1.12.10.1.3"
CRL_BAG = "1.2.840.113549.1.12.10.1.4"
SECRET_BAG = "1.2.840.113549.1.12.10.1.5"
SAFE_BAG = "1.2.840.113549.1.12.10.1.6"
X509_CERT = "1.2.840.113549.1.9.22.1"
FRIENDLY_NAME = "1.2.840.113549.1.9.20"
LOCAL_KEY_ID = "1.2.840.113549.1.9.21"
PBES2 = "1.2.840.113549.1.5.13"
PBKDF2 = "1.2.840.113549.1.5.12"
HMAC_SHA256 = "1.2.840.113549.2.9"
AES256_CBC = "2.16.840.1.101.3.4.1.42"
SHA256 = "2.16.840.1.101.3.4.2.1"
MAC_OIDS = {"sha1": "1.3.14.3.2.26", "sha256": SHA256, "md5": "1.2.840.113549.2.5"}


# -- DER building blocks, from mailseal's own encoder ----------------------------------------
tlv = D.tlv
seq = D.sequence
octets = D.octet_string
integer = D.integer
oid = D.oid


def set_of(*parts: bytes) -> bytes:
    return D.set_of(parts)


def explicit0(content: bytes) -> bytes:
    return D.context(0, content)


NULL = b"\x05\x00"


# -- an independent PKCS#12 KDF and hand-made files -------------------------------------------
def bmp(password: bytes) -> bytes:
    return password.decode("utf-8").encode("utf-16-be") + b"\x00\x00"


def p12_kdf(name: str, password: bytes, salt: bytes, ident: int, rounds: int, size: int) -> bytes:
    """RFC 7292 B.2, written out plainly."""
    v = hashlib.new(name).block_size

    def fill(data: bytes) -> bytes:
        if not data:
            return b""
        length = v * ((len(data) + v - 1) // v)
        return (data * (length // len(data) + 1))[:length]

    i_bytes = bytearray(fill(salt) + fill(password))
    out = b""
    while len(out) < size:
        a = hashlib.new(name, bytes([ident]) * v + bytes(i_bytes)).digest()
        for _ in range(rounds - 1):
            a = hashlib.new(name, a).digest()
        out += a
        b = int.from_bytes((a * v)[:v], "big")
        for j in range(0, len(i_bytes), v):
            n = (int.from_bytes(i_bytes[j : j + v], "big") + b + 1) % (1 << (8 * v))
            i_bytes[j : j + v] = n.to_bytes(v, "big")
    return out[:size]


def pfx(
    auth_safe: bytes,
    *,
    password: bytes = PW,
    mac_iterations: int = IT,
    declared_iterations: int | None = None,
    version: int = 3,
    mac: str | None = "sha256",
    outer_type: str = OID_DATA,
) -> bytes:
    """A PFX around ``auth_safe`` (the DER of an AuthenticatedSafe) with a correct MAC
    (``declared_iterations`` puts another count in the file than the MAC was made with)."""
    parts = [integer(version), seq(oid(outer_type), explicit0(octets(auth_safe)))]
    if mac is not None:
        salt = os.urandom(8)
        name = "sha1" if mac == "md5" else mac
        size = hashlib.new(name).digest_size
        key = p12_kdf(name, bmp(password), salt, 3, mac_iterations, size)
        digest = hmac.new(key, auth_safe, name).digest()
        mac_oid = MAC_OIDS[mac]
        parts.append(
            seq(
                seq(seq(oid(mac_oid), NULL), octets(digest)),
                octets(salt),
                integer(declared_iterations or mac_iterations),
            )
        )
    return seq(*parts)


def authsafe(*contents: bytes) -> bytes:
    """An AuthenticatedSafe of ``data`` ContentInfos, one per SafeContents DER given."""
    return seq(*(seq(oid(OID_DATA), explicit0(octets(c))) for c in contents))


def attrs(local_id: bytes | None = None, name: str | None = None) -> bytes:
    out = []
    if local_id is not None:
        out.append(seq(oid(LOCAL_KEY_ID), set_of(octets(local_id))))
    if name is not None:
        out.append(seq(oid(FRIENDLY_NAME), set_of(tlv(0x1E, name.encode("utf-16-be")))))
    return set_of(*out) if out else b""


def bag(bag_id: str, value: bytes, attributes: bytes = b"") -> bytes:
    return seq(oid(bag_id), explicit0(value), attributes)


def pkcs8(key: Any) -> bytes:
    der: bytes = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return der


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def key_bag(key: Any, local_id: bytes | None = None, name: str | None = None) -> bytes:
    return bag(KEY_BAG, pkcs8(key), attrs(local_id, name))


def cert_bag(
    cert: x509.Certificate, local_id: bytes | None = None, name: str | None = None
) -> bytes:
    return bag(CERT_BAG, seq(oid(X509_CERT), explicit0(octets(der(cert)))), attrs(local_id, name))


def pbes2_alg(
    salt: bytes,
    iterations: int,
    iv: bytes,
    *,
    prf: str = HMAC_SHA256,
    cipher: str = AES256_CBC,
    kdf: str = PBKDF2,
) -> bytes:
    return seq(
        oid(PBES2),
        seq(
            seq(oid(kdf), seq(octets(salt), integer(iterations), seq(oid(prf), NULL))),
            seq(oid(cipher), octets(iv)),
        ),
    )


def aes_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    n = 16 - len(data) % 16
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data + bytes([n]) * n) + enc.finalize()


def shrouded_bag(
    key: Any,
    *,
    password: bytes = PW,
    iterations: int = IT,
    salt: bytes | None = None,
    alg: bytes | None = None,
    local_id: bytes | None = None,
) -> bytes:
    """A pkcs8ShroudedKeyBag (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC via hashlib), or any
    ``alg`` AlgorithmIdentifier around the same ciphertext."""
    salt = salt or os.urandom(16)
    iv = os.urandom(16)
    k = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)
    sealed = aes_cbc(k, iv, pkcs8(key))
    alg = alg or pbes2_alg(salt, iterations, iv)
    return bag(SHROUDED_BAG, seq(alg, octets(sealed)), attrs(local_id))


def sc(*bags: bytes) -> bytes:
    return seq(*bags)


def auth_safe_of(data: bytes) -> bytes:
    got: bytes = a_pkcs12.Pfx.load(data)["auth_safe"]["content"].native
    return got


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def people(person: Callable[..., Person]) -> list[Person]:
    """Three historical keys of one person: RSA-2048, P-256, Ed25519."""
    return [
        person("p12-hist@example.org"),
        person("p12-hist@example.org", key_type="p256"),
        person("p12-hist@example.org", key_type="ed25519", usage="signing"),
    ]


@pytest.fixture(scope="module")
def entries(people: list[Person]) -> list[Pkcs12Entry]:
    return [
        Pkcs12Entry(p.issued.key, p.cert, f"Historical key {i} – Jürgen")
        for i, p in enumerate(people, 1)
    ]


@pytest.fixture(scope="module")
def written(entries: list[Pkcs12Entry], ca: TestPKI) -> bytes:
    return write_pkcs12(entries, PW, ca_certificates=[ca.root.cert, *ca.chain], iterations=IT)


def same_key(a: Any, b: Any) -> bool:
    return pkcs8(a) == pkcs8(b)


def assert_pairs_match(contents: Pkcs12Contents) -> None:
    for e in contents.entries:
        pub = e.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert pub == e.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


# -- writing -----------------------------------------------------------------------------------
def test_round_trip_keeps_every_key_certificate_and_name(
    written: bytes, entries: list[Pkcs12Entry], ca: TestPKI
) -> None:
    got = read_pkcs12(written, PW)
    assert got.mac_verified
    assert len(got.entries) == 3
    for want, have in zip(entries, got.entries, strict=True):
        assert same_key(want.key, have.key)
        assert have.certificate == want.certificate
        assert have.friendly_name == want.friendly_name
    assert got.extra_certificates == [ca.root.cert, *ca.chain]
    assert_pairs_match(got)


def test_layout_one_pbes2_derivation_distinct_ivs_and_sha256_mac(
    written: bytes, entries: list[Pkcs12Entry]
) -> None:
    p = a_pkcs12.Pfx.load(written)
    assert p["version"].native == "v3"
    mac = p["mac_data"]
    assert mac["mac"]["digest_algorithm"]["algorithm"].dotted == SHA256
    assert mac["iterations"].native == IT
    safe = a_pkcs12.AuthenticatedSafe.load(p["auth_safe"]["content"].native)
    assert [ci["content_type"].dotted for ci in safe] == [OID_ENCRYPTED, OID_DATA]

    algs: list[Any] = []
    eci = safe[0]["content"]["encrypted_content_info"]
    algs.append(eci["content_encryption_algorithm"])
    key_bags = a_pkcs12.SafeContents.load(safe[1]["content"].native)
    assert [b["bag_id"].dotted for b in key_bags] == [SHROUDED_BAG] * 3
    algs += [b["bag_value"]["encryption_algorithm"] for b in key_bags]
    salts, ivs = set(), set()
    for alg in algs:
        assert alg["algorithm"].dotted == PBES2
        params = alg["parameters"]
        kdf = params["key_derivation_func"]
        assert kdf["algorithm"].dotted == PBKDF2
        assert kdf["parameters"]["prf"]["algorithm"].dotted == HMAC_SHA256
        assert kdf["parameters"]["iteration_count"].native == IT
        salts.add(kdf["parameters"]["salt"].native)
        assert params["encryption_scheme"]["algorithm"].dotted == AES256_CBC
        ivs.add(params["encryption_scheme"]["parameters"].native)
    assert len(salts) == 1, "one salt (one derivation) for the whole file"
    assert len(ivs) == len(algs), "a fresh IV for every encryption"

    # localKeyId = SHA-1 of the certificate on the key bag; friendlyName as BMPString
    for b, e in zip(key_bags, entries, strict=True):
        found = {a["type"].dotted: a["values"][0] for a in b["bag_attributes"]}
        assert found[LOCAL_KEY_ID].native == hashlib.sha1(der(e.certificate)).digest()
        assert found[FRIENDLY_NAME].__class__.__name__ == "BMPString"
        assert found[FRIENDLY_NAME].native == e.friendly_name


def test_pbkdf2_and_the_mac_kdf_run_once_per_file(
    entries: list[Pkcs12Entry], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"pbkdf2": 0, "p12kdf": 0}
    real_pbkdf2, real_kdf = mod.PBKDF2HMAC, mod._pkcs12_kdf  # type: ignore[attr-defined]

    def counting_pbkdf2(*args: Any, **kwargs: Any) -> Any:
        calls["pbkdf2"] += 1  # one PBKDF2 object per derivation, each derives once
        return real_pbkdf2(*args, **kwargs)

    def counting_kdf(*args: Any) -> bytes:
        calls["p12kdf"] += 1
        return real_kdf(*args)

    monkeypatch.setattr(mod, "PBKDF2HMAC", counting_pbkdf2)
    monkeypatch.setattr(mod, "_pkcs12_kdf", counting_kdf)
    data = write_pkcs12(entries * 4, PW, iterations=IT)
    assert calls == {"pbkdf2": 1, "p12kdf": 1}
    calls.update(pbkdf2=0, p12kdf=0)
    assert len(read_pkcs12(data, PW).entries) == 12
    assert calls == {"pbkdf2": 1, "p12kdf": 1}


def test_default_iterations_are_600000(people: list[Person]) -> None:
    data = write_pkcs12([Pkcs12Entry(people[1].issued.key, people[1].cert)], PW)
    p = a_pkcs12.Pfx.load(data)
    assert p["mac_data"]["iterations"].native == 600_000
    safe = a_pkcs12.AuthenticatedSafe.load(p["auth_safe"]["content"].native)
    alg = safe[0]["content"]["encrypted_content_info"]["content_encryption_algorithm"]
    assert alg["parameters"]["key_derivation_func"]["parameters"]["iteration_count"].native == (
        600_000
    )
    got = read_pkcs12(data, PW)
    assert got.entries[0].certificate == people[1].cert
    assert got.entries[0].friendly_name is None


def test_cryptography_reads_our_file(written: bytes, entries: list[Pkcs12Entry]) -> None:
    p = c_pkcs12.load_pkcs12(written, PW)
    assert p.key is not None and p.cert is not None
    assert same_key(p.key, entries[0].key)
    assert p.cert.certificate == entries[0].certificate
    others = {der(c.certificate) for c in p.additional_certs}
    assert {der(e.certificate) for e in entries[1:]} <= others


def test_non_ascii_password_matches_what_cryptography_does(entries: list[Pkcs12Entry]) -> None:
    password = "Pässwörd-€-😀".encode()
    ours = write_pkcs12(entries[:1], password, iterations=IT)
    assert c_pkcs12.load_pkcs12(ours, password).key is not None
    theirs = c_pkcs12.serialize_key_and_certificates(
        b"x",
        entries[0].key,  # type: ignore[arg-type]
        entries[0].certificate,
        None,
        serialization.BestAvailableEncryption(password),
    )
    assert same_key(read_pkcs12(theirs, password).entries[0].key, entries[0].key)
    assert same_key(read_pkcs12(ours, password).entries[0].key, entries[0].key)


def test_ca_certificates_are_not_repeated(entries: list[Pkcs12Entry], ca: TestPKI) -> None:
    data = write_pkcs12(
        entries[:1],
        PW,
        ca_certificates=[ca.root.cert, ca.root.cert, entries[0].certificate],
        iterations=IT,
    )
    got = read_pkcs12(data, PW)
    assert got.extra_certificates == [ca.root.cert]


def _x25519_entry(ca: TestPKI) -> Pkcs12Entry:
    key = x25519.X25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x25519")]))
        .issuer_name(ca.issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca.issuer.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return Pkcs12Entry(key, cert)


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda e, ca: ([], PW, {}), UsageError, "at least one key"),
        (lambda e, ca: (e, b"", {}), UsageError, "non-empty password"),
        (lambda e, ca: (e, "text", {}), UsageError, "must be bytes"),
        (lambda e, ca: (e, b"\xff\xfe", {}), UsageError, "UTF-8"),
        (lambda e, ca: (e, b"a\x00b", {}), UsageError, "NUL"),
        (lambda e, ca: (e, PW, {"iterations": 10}), UsageError, "iteration count"),
        (lambda e, ca: (e, PW, {"iterations": 10**8}), UsageError, "iteration count"),
        (lambda e, ca: (["nope"], PW, {}), UsageError, "Pkcs12Entry"),
        (
            lambda e, ca: ([Pkcs12Entry(e[0].key, e[1].certificate)], PW, {}),
            IdentityError,
            "does not belong to its certificate",
        ),
        (lambda e, ca: ([_x25519_entry(ca)], PW, {}), IdentityError, "X25519PrivateKey"),
        (lambda e, ca: (e, PW, {"ca_certificates": [b"pem"]}), UsageError, "CA certificate 1"),
    ],
)
def test_writer_refuses_with_a_clear_error(
    entries: list[Pkcs12Entry], ca: TestPKI, make: Any, error: type[Exception], words: str
) -> None:
    items, password, kwargs = make(entries, ca)
    kwargs.setdefault("iterations", IT)
    with pytest.raises(error) as info:
        write_pkcs12(items, password, **kwargs)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_writer_refuses_more_bags_than_the_reader_accepts(entries: list[Pkcs12Entry]) -> None:
    with pytest.raises(UsageError, match="at most 1000"):
        write_pkcs12(entries * 200, PW, iterations=IT)


# -- reading files made elsewhere -----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["modern", "legacy", "unprotected"])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_reads_cryptography_made_files(
    people: list[Person], ca: TestPKI, mode: str, which: int
) -> None:
    issued: Issued = people[which].issued
    password = None if mode == "unprotected" else PW
    data = issued.pkcs12(password, legacy=mode == "legacy", chain=ca.chain)
    got = read_pkcs12(data, password)
    assert len(got.entries) == 1
    assert same_key(got.entries[0].key, issued.key)
    assert got.entries[0].certificate == issued.cert
    assert got.entries[0].friendly_name == "p12-hist@example.org"
    assert got.extra_certificates == list(ca.chain)


def test_wrong_and_missing_password(written: bytes, people: list[Person]) -> None:
    with pytest.raises(PasswordError) as info:
        read_pkcs12(written, b"not it")
    assert str(info.value) == "wrong password for the PKCS#12 file"
    for missing in (None, b""):
        with pytest.raises(PasswordError, match="needs a password"):
            read_pkcs12(written, missing)
    legacy = people[0].issued.pkcs12(PW, legacy=True)
    with pytest.raises(PasswordError, match="wrong password"):
        read_pkcs12(legacy, b"not it")


def test_pairing_prefers_local_key_id_then_public_key(ca: TestPKI) -> None:
    # the same key certified twice (a renewal), and a key without localKeyId
    first = ca.user("renewed@example.org", key_type="p256")
    now = dt.datetime.now(dt.UTC)
    renewed = (
        x509.CertificateBuilder()
        .subject_name(first.cert.subject)
        .issuer_name(ca.issuer.cert.subject)
        .public_key(first.key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(ca.issuer.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    other = ca.user("other@example.org", key_type="p256")
    safe = sc(
        cert_bag(first.cert, b"id-1"),
        cert_bag(other.cert),
        cert_bag(renewed, b"id-2"),
        key_bag(first.key, b"id-2", "renewed key"),
        key_bag(other.key),
    )
    got = read_pkcs12(pfx(authsafe(safe)), PW)
    assert [e.certificate for e in got.entries] == [renewed, other.cert]
    assert got.entries[0].friendly_name == "renewed key"
    assert got.extra_certificates == [first.cert]


def test_plain_key_bags_nested_safe_contents_and_unknown_bags(people: list[Person]) -> None:
    p = people[1].issued
    inner = sc(key_bag(p.key, b"k"), bag("1.2.3.4.5.6", octets(b"whatever")))
    safe = sc(
        bag(SECRET_BAG, seq(oid("1.2.3"), explicit0(octets(b"s")))),
        bag(CRL_BAG, seq(oid("1.2.840.113549.1.9.23.1"), explicit0(octets(b"crl")))),
        bag(CERT_BAG, seq(oid("1.2.840.113549.1.9.22.2"), explicit0(octets(b"sdsi")))),
        bag(SAFE_BAG, inner),
        cert_bag(p.cert, b"k", "from the cert"),
    )
    got = read_pkcs12(pfx(authsafe(safe)), PW)
    assert [e.certificate for e in got.entries] == [p.cert]
    assert got.entries[0].friendly_name == "from the cert"


def test_file_without_a_mac(people: list[Person]) -> None:
    p = people[0].issued
    data = pfx(authsafe(sc(shrouded_bag(p.key), cert_bag(p.cert))), mac=None)
    got = read_pkcs12(data, PW)
    assert not got.mac_verified
    assert same_key(got.entries[0].key, p.key)
    with pytest.raises(PasswordError, match="wrong password"):
        read_pkcs12(data, b"not it")
    with pytest.raises(PasswordError, match="needs a password"):
        read_pkcs12(data, None)


def test_rc2_matches_rfc_2268_test_vectors() -> None:
    vectors = [  # RFC 2268 §5: key, effective bits, plaintext, ciphertext
        ("0000000000000000", 63, "0000000000000000", "ebb773f993278eff"),
        ("ffffffffffffffff", 64, "ffffffffffffffff", "278b27e42e2f0d49"),
        ("3000000000000000", 64, "1000000000000001", "30649edf9be7d2c2"),
        ("88", 64, "0000000000000000", "61a8a244adacccf0"),
        ("88bca90e90875a", 64, "0000000000000000", "6ccf4308974c267f"),
        ("88bca90e90875a7f0f79c384627bafb2", 64, "0000000000000000", "1a807d272bbe5db1"),
        ("88bca90e90875a7f0f79c384627bafb2", 128, "0000000000000000", "2269552ab0f85ca6"),
    ]
    for key, bits, plain, ciphertext in vectors:
        k = mod._rc2_expand(bytes.fromhex(key), bits)
        assert mod._rc2_decrypt_block(k, bytes.fromhex(ciphertext)).hex() == plain


def test_rc2_cbc_agrees_with_cryptography() -> None:
    decrepit = pytest.importorskip("cryptography.hazmat.decrepit.ciphers.algorithms")
    key, iv, data = os.urandom(16), os.urandom(8), os.urandom(64)
    try:
        enc = Cipher(decrepit.RC2(key), modes.CBC(iv)).encryptor()
    except Exception as exc:  # RC2 lives in OpenSSL's legacy provider
        pytest.skip(f"cryptography cannot do RC2 here: {exc}")
    sealed = enc.update(data) + enc.finalize()
    assert mod._rc2_cbc_decrypt(key, 128, iv, sealed) == data


# -- hostile input ------------------------------------------------------------------------------
def reject(data: bytes, words: str = "", *, password: bytes | None = PW, **limits: int) -> str:
    with pytest.raises(IdentityError) as info:
        read_pkcs12(data, password, limits=Pkcs12Limits(**limits) if limits else None)
    message = str(info.value)
    assert message and "\n" not in message
    assert words.lower() in message.lower(), message
    return message


def test_empty_junk_and_huge_declared_lengths() -> None:
    reject(b"", "empty")
    reject(b"hello, this is not DER at all")
    reject(os.urandom(300))
    reject(b"\x30\x84\x7f\xff\xff\xff\x02\x01\x03", "length")
    reject(b"\x30\x89\x01\x00\x00\x00\x00\x00\x00\x00\x00", "length")
    reject(b"\x30\x03\x02\x01\x03trailing", "trailing")
    reject(b"\x04\x80\x00\x00", "indefinite")


def test_size_limit() -> None:
    reject(b"\x30" + b"\x00" * (16 * 1024 * 1024), "allowed")
    reject(b"\x30\x00" * 10, "allowed", max_size=16)


@pytest.mark.timeout(20)
def test_deep_der_nesting_is_refused_without_recursion() -> None:
    reject(b"\x30\x80" * 100_000 + b"\x00\x00" * 100_000, "nested")
    deep = b"\x05\x00"
    for _ in range(200):
        deep = seq(deep)
    reject(deep, "nested")
    reject(pfx(deep), "nested")


def test_wrong_version_and_unsupported_modes(people: list[Person]) -> None:
    p = people[1].issued
    good = authsafe(sc(key_bag(p.key), cert_bag(p.cert)))
    reject(pfx(good, version=2), "version")
    reject(pfx(good, outer_type=OID_SIGNED, mac=None), "public-key integrity")
    enveloped = seq(seq(oid(OID_ENVELOPED), explicit0(seq(integer(0)))))
    reject(pfx(enveloped), "public-key privacy")
    reject(pfx(seq(seq(oid("1.2.3.4"), explicit0(octets(b""))))), "unexpected content type")
    reject(pfx(good, mac="md5"), "unsupported MAC")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("count", [10_000_001, 2**31 - 1, 2**64, 10**4000])
def test_absurd_iteration_counts_are_refused_quickly(people: list[Person], count: int) -> None:
    p = people[1].issued
    good = authsafe(sc(key_bag(p.key), cert_bag(p.cert)))
    # in the MAC: refused before any hashing
    reject(pfx(good, mac_iterations=1, declared_iterations=count), "iterations")
    # in a shrouded key bag, behind a valid MAC
    alg = pbes2_alg(os.urandom(16), count, os.urandom(16))
    safe = sc(shrouded_bag(p.key, alg=alg), cert_bag(p.cert))
    reject(pfx(authsafe(safe)), "iterations")


def test_total_key_derivation_work_is_bounded(people: list[Person]) -> None:
    p = people[1].issued
    # ten key bags, each with its own salt: ten derivations
    bags = [shrouded_bag(p.key, iterations=3000) for _ in range(10)]
    data = pfx(authsafe(sc(*bags, cert_bag(p.cert))))
    reject(data, "key-derivation work", max_kdf_work=20_000)
    with pytest.raises(IdentityError, match="certificate with its public key"):
        read_pkcs12(data, PW)  # the default budget is enough; then pairing fails


def test_bag_count_and_safe_contents_nesting_are_bounded(people: list[Person]) -> None:
    p = people[1].issued
    secret = bag(SECRET_BAG, seq(oid("1.2.3"), explicit0(octets(b""))))
    reject(pfx(authsafe(sc(*[secret] * 1001))), "more than 1,000 bags")
    reject(pfx(authsafe(sc(*[secret] * 11))), "more than 10 bags", max_bags=10)
    nested = sc(key_bag(p.key), cert_bag(p.cert))
    for _ in range(5):
        nested = sc(bag(SAFE_BAG, nested))
    reject(pfx(authsafe(nested)), "nests SafeContents deeper")


@pytest.mark.parametrize(
    ("alg", "words"),
    [
        (seq(oid("1.2.3.4.5"), NULL), "unsupported algorithm 1.2.3.4.5"),
        (pbes2_alg(b"s" * 8, IT, b"i" * 16, cipher="2.16.840.1.101.3.4.1.46"), "cipher"),
        (pbes2_alg(b"s" * 8, IT, b"i" * 16, prf="1.2.840.113549.2.5"), "PRF"),
        (pbes2_alg(b"s" * 8, IT, b"i" * 16, kdf="1.3.6.1.4.1.11591.4.11"), "key derivation"),
        (pbes2_alg(b"s" * 2000, IT, b"i" * 16), "salt"),
        (pbes2_alg(b"s" * 8, 0, b"i" * 16), "iteration count"),
    ],
)
def test_unknown_or_bad_encryption_parameters(people: list[Person], alg: bytes, words: str) -> None:
    p = people[1].issued
    safe = sc(shrouded_bag(p.key, alg=alg), cert_bag(p.cert))
    reject(pfx(authsafe(safe)), words)


def test_corrupt_key_bag_behind_a_valid_mac(people: list[Person]) -> None:
    p = people[1].issued
    good = shrouded_bag(p.key)
    # flip a byte of the last ciphertext block (the padding): the MAC is recomputed
    broken = good[:-20] + bytes([good[-20] ^ 0xFF]) + good[-19:]
    reject(pfx(authsafe(sc(broken, cert_bag(p.cert)))), "corrupt")


def test_key_without_certificate_and_unreadable_parts(people: list[Person], ca: TestPKI) -> None:
    p = people[1].issued
    reject(pfx(authsafe(sc(key_bag(p.key)))), "no certificate")
    reject(pfx(authsafe(sc(key_bag(p.key), cert_bag(ca.root.cert)))), "no certificate")
    junk_key = bag(KEY_BAG, seq(integer(0), seq(oid("1.2.3"), NULL), octets(b"x")))
    reject(pfx(authsafe(sc(junk_key, cert_bag(p.cert)))), "private key")
    junk_cert = bag(CERT_BAG, seq(oid(X509_CERT), explicit0(octets(b"\x30\x03\x02\x01\x01"))))
    reject(pfx(authsafe(sc(junk_cert))), "certificate")


def test_inconsistent_rsa_key_is_refused(people: list[Person]) -> None:
    p = people[0].issued
    assert isinstance(p.key, rsa.RSAPrivateKey)
    info = a_keys.PrivateKeyInfo.load(pkcs8(p.key))
    rsa_key = info["private_key"].parsed
    nums = p.key.private_numbers()
    wrong = {
        "version": 0,
        "modulus": nums.public_numbers.n,
        "public_exponent": nums.public_numbers.e,
        "private_exponent": nums.d ^ (1 << 20),
        "prime1": nums.p,
        "prime2": nums.q,
        "exponent1": nums.dmp1 ^ 2,
        "exponent2": nums.dmq1 ^ 2,
        "coefficient": nums.iqmp,
    }
    del rsa_key
    forged = a_keys.PrivateKeyInfo(
        {
            "version": 0,
            "private_key_algorithm": info["private_key_algorithm"],
            "private_key": a_keys.RSAPrivateKey(wrong),
        }
    ).dump()
    safe = sc(bag(KEY_BAG, forged), cert_bag(p.cert))
    reject(pfx(authsafe(safe)), "private key")


def test_unsupported_key_type_in_a_file(ca: TestPKI) -> None:
    entry = _x25519_entry(ca)
    safe = sc(key_bag(entry.key), cert_bag(entry.certificate))
    reject(pfx(authsafe(safe)), "X25519")


def test_truncations_and_bit_flips(written: bytes) -> None:
    n = len(written)
    for cut in [1, 2, 4, 10, 30, 100, n // 2, n - 100, n - 20, n - 2, n - 1]:
        reject(written[:cut])
    for at in range(0, n, max(1, n // 97)):
        for bit in (0, 7):
            flipped = bytearray(written)
            flipped[at] ^= 1 << bit
            try:
                got = read_pkcs12(bytes(flipped), PW)
            except IdentityError as exc:
                assert str(exc)
            else:  # a flip in a part the MAC does not cover and nothing reads
                assert_pairs_match(got)


def test_non_bytes_input_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        read_pkcs12("text", PW)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        read_pkcs12(b"\x30\x00", "pw")  # type: ignore[arg-type]


# -- property: whatever the bytes, IdentityError or a consistent result ---------------------------
_pos = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("insert"), _pos, st.binary(min_size=1, max_size=16)),
    st.tuples(
        st.just("insert"),
        _pos,
        st.sampled_from([b"\x30\x80", b"\x00\x00", b"\x84\xff\xff\xff\xff", b"\x02\x01\x00"]),
    ),
    st.tuples(st.just("delete"), _pos, st.integers(1, 64)),
    st.tuples(st.just("duplicate"), _pos, st.integers(1, 200)),
    st.tuples(st.just("set_byte"), _pos, st.integers(0, 255)),
)


def mutate(data: bytes, op: tuple[Any, ...]) -> bytes:
    kind, where = op[0], op[1]
    n = len(data)
    at = min(int(where * n), max(n - 1, 0))
    if kind == "flip" and n:
        return data[:at] + bytes([data[at] ^ (1 << op[2])]) + data[at + 1 :]
    if kind == "set_byte" and n:
        return data[:at] + bytes([op[2]]) + data[at + 1 :]
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        inserted: bytes = op[2]
        return data[:at] + inserted + data[at:]
    if kind == "delete":
        return data[:at] + data[at + op[2] :]
    if kind == "duplicate":
        return data[:at] + data[at : at + op[2]] + data[at:]
    return data


def check(data: bytes, password: bytes | None) -> None:
    try:
        got = read_pkcs12(data, password)
    except IdentityError as exc:  # PasswordError is one too
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(got, Pkcs12Contents)
    assert_pairs_match(got)


@pytest.fixture(scope="module")
def fuzz_samples(people: list[Person], ca: TestPKI, entries: list[Pkcs12Entry]) -> list[bytes]:
    """Auth-safe contents to mutate and re-MAC: ours, a plain one, a nested legacy-free one."""
    ours = write_pkcs12(entries[:2], PW, ca_certificates=[ca.root.cert], iterations=1000)
    p = people[1].issued
    plain = authsafe(
        sc(key_bag(p.key, b"a", "n"), cert_bag(p.cert, b"a")),
        sc(bag(SAFE_BAG, sc(cert_bag(ca.root.cert))), shrouded_bag(p.key, iterations=1000)),
    )
    return [auth_safe_of(ours), plain]


@pytest.mark.timeout(300)
@given(which=st.integers(0, 1), ops=st.lists(MUTATION, min_size=1, max_size=4))
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_mutated_contents_behind_a_valid_mac_give_identity_errors(
    fuzz_samples: list[bytes], which: int, ops: list[tuple[Any, ...]]
) -> None:
    data = fuzz_samples[which]
    for op in ops:
        data = mutate(data, op)
    check(pfx(data, mac_iterations=1), PW)


@pytest.mark.timeout(300)
@given(ops=st.lists(MUTATION, min_size=1, max_size=4), with_password=st.booleans())
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_mutated_whole_files_give_identity_errors(
    fuzz_samples: list[bytes], ops: list[tuple[Any, ...]], with_password: bool
) -> None:
    data = pfx(fuzz_samples[0], mac_iterations=1)
    for op in ops:
        data = mutate(data, op)
    check(data, PW if with_password else None)


# -- identities for decryption --------------------------------------------------------------------
def test_load_pkcs12_identities_decrypts_with_a_historical_key(
    person: Callable[..., Person], ca: TestPKI
) -> None:
    old = [person(f"enc-{i}@example.org", usage="encryption") for i in range(2)]
    old.append(person("enc-2@example.org", key_type="p256", usage="encryption"))
    data = write_pkcs12(
        [Pkcs12Entry(p.issued.key, p.cert) for p in old],
        PW,
        ca_certificates=ca.chain,
        iterations=IT,
    )
    identities = load_pkcs12_identities(data, password=PW)
    assert [i.certificate for i in identities] == [p.cert for p in old]
    assert all(i.chain == tuple(ca.chain) for i in identities)
    message = b"Subject: old mail\r\nContent-Type: text/plain\r\n\r\nfrom years ago\r\n"
    for p in old[1:]:
        sealed = mailseal.encrypt(message, [p.cert])
        opened = mailseal.decrypt(sealed, identities)
        assert opened.content is not None and b"from years ago" in opened.content
    with pytest.raises(PasswordError):
        load_pkcs12_identities(data, password=b"wrong")


def test_load_pkcs12_identities_needs_a_key(ca: TestPKI) -> None:
    data = pfx(authsafe(sc(cert_bag(ca.root.cert))))
    assert read_pkcs12(data, PW).extra_certificates == [ca.root.cert]
    with pytest.raises(IdentityError, match="no private key"):
        load_pkcs12_identities(data, password=PW)


def test_load_pkcs12_still_takes_the_first_key(written: bytes, entries: list[Pkcs12Entry]) -> None:
    ident = load_pkcs12(written, password=PW)
    assert ident.certificate == entries[0].certificate
