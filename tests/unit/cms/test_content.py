"""mailseal.cms.content: AES-CBC (RFC 3565) and AES-GCM (RFC 5084) content encryption.

Every cipher round-trips in any chunking; the AlgorithmIdentifiers are checked with asn1crypto
and the ciphertext with cryptography directly; hostile parameters, keys, padding and tags end in
MailsealError subclasses only, and a bad CBC padding looks exactly like a wrong key.
"""

from __future__ import annotations

import os
import random
import tracemalloc

import pytest
from asn1crypto import algos as a_algos
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mailseal.asn1 import der
from mailseal.cms.content import (
    CIPHER_BY_OID,
    CIPHERS,
    DEFAULT_CIPHER,
    UPDATE_INTO_SLACK,
    ContentCipher,
    ContentDecryptor,
    ContentEncryptor,
    new_key,
)
from mailseal.errors import (
    AlgorithmError,
    DecryptionError,
    MailsealError,
    MalformedCMS,
    UsageError,
)

OIDS = {
    "aes-128-cbc": "2.16.840.1.101.3.4.1.2",
    "aes-192-cbc": "2.16.840.1.101.3.4.1.22",
    "aes-256-cbc": "2.16.840.1.101.3.4.1.42",
    "aes-128-gcm": "2.16.840.1.101.3.4.1.6",
    "aes-192-gcm": "2.16.840.1.101.3.4.1.26",
    "aes-256-gcm": "2.16.840.1.101.3.4.1.46",
}
ALL = sorted(CIPHER_BY_OID.values(), key=lambda c: c.name)
#: RFC 5084 §3.2 GCMParameters has the shape of asn1crypto's CCM parameters (nonce, ICV length)
GcmParameters = a_algos.CcmParams
WRONG_KEY = "the message cannot be decrypted: wrong key or corrupted ciphertext"


def split_alg(algorithm_der: bytes) -> tuple[str, bytes]:
    """(OID, parameters DER) of an AlgorithmIdentifier, via asn1crypto."""
    alg = a_algos.EncryptionAlgorithm.load(algorithm_der)
    return alg["algorithm"].dotted, alg["parameters"].dump()


def encrypt(cipher: ContentCipher, key: bytes, data: bytes, chunk: int, **kw: bytes) -> tuple:
    enc = ContentEncryptor(cipher, key, **kw)
    out = [enc.update(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    out.append(enc.finalize())
    return enc, b"".join(out)


def decrypt(
    enc: ContentEncryptor, key: bytes, ct: bytes, chunk: int, tag: bytes | None = None, **kw: bytes
) -> bytes:
    oid, params = split_alg(enc.algorithm_der)
    dec = ContentDecryptor(oid, params, key, **kw)
    out = [dec.update(ct[i : i + chunk]) for i in range(0, len(ct), chunk)]
    if enc.cipher.aead:
        out.append(dec.finalize(enc.tag if tag is None else tag))
    else:
        out.append(dec.finalize())
    return b"".join(out)


@pytest.mark.parametrize("cipher", ALL, ids=lambda c: c.name)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 70_000])
def test_seal_in_one_call_matches_the_streaming_form(cipher: ContentCipher, size: int) -> None:
    """seal() (one call, no cipher context kept) gives what update + finalize give: the same
    length, the same tag handling, and a ciphertext the decryptor opens."""
    key = new_key(cipher)
    data = os.urandom(size)
    aad = {"aad": b"authenticated attributes"} if cipher.aead else {}
    enc = ContentEncryptor(cipher, key, **aad)
    ct = enc.seal(data)
    assert len(ct) == ContentEncryptor.ciphertext_length(cipher, size)
    assert decrypt(enc, key, ct, 4096, **aad) == data
    if cipher.aead:
        assert len(enc.tag) == 16
        with pytest.raises(DecryptionError):
            decrypt(enc, key, ct, 4096, aad=b"other attributes")
    for again in (lambda: enc.seal(b"x"), lambda: enc.update(b"x"), enc.finalize):
        with pytest.raises(UsageError):
            again()


def test_seal_refuses_a_used_encryptor_and_oversized_content() -> None:
    from mailseal.cms.content import SEAL_MAX

    enc = ContentEncryptor(DEFAULT_CIPHER, new_key(DEFAULT_CIPHER))
    enc.update(b"started")
    with pytest.raises(UsageError, match="fresh encryptor"):
        enc.seal(b"more")
    big = ContentEncryptor(DEFAULT_CIPHER, new_key(DEFAULT_CIPHER))
    with pytest.raises(UsageError, match="at most"):
        big.seal(bytes(SEAL_MAX + 1))


@pytest.mark.parametrize("cipher", ALL, ids=lambda c: c.name)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 70_000])
def test_open_in_one_call_matches_the_streaming_form(cipher: ContentCipher, size: int) -> None:
    """open() decrypts what update + finalize decrypt, with the same refusals: a modified
    ciphertext or tag, other AAD, and a second use."""
    key = new_key(cipher)
    data = os.urandom(size)
    aad = {"aad": b"authenticated attributes"} if cipher.aead else {}
    enc, ct = encrypt(cipher, key, data, 4096, **aad)
    oid, params = split_alg(enc.algorithm_der)
    tag = enc.tag if cipher.aead else None

    dec = ContentDecryptor(oid, params, key, **aad)
    assert dec.open(ct, tag) == data
    for again in (lambda: dec.open(ct, tag), lambda: dec.update(b"x"), lambda: dec.finalize(tag)):
        with pytest.raises(UsageError):
            again()
    if cipher.aead:
        assert tag is not None
        bad_tag = tag[:-1] + bytes((tag[-1] ^ 1,))
        with pytest.raises(DecryptionError):
            ContentDecryptor(oid, params, key, **aad).open(ct, bad_tag)
        with pytest.raises(DecryptionError):
            ContentDecryptor(oid, params, key, aad=b"other").open(ct, tag)
        if ct:
            flipped = bytes((ct[0] ^ 1,)) + ct[1:]
            with pytest.raises(DecryptionError):
                ContentDecryptor(oid, params, key, **aad).open(flipped, tag)
        with pytest.raises(UsageError, match="needs the authentication tag"):
            ContentDecryptor(oid, params, key, **aad).open(ct)
    else:
        with pytest.raises(MalformedCMS):
            ContentDecryptor(oid, params, key).open(ct[:-1])
        # a wrong key fails the padding check, except about one time in 256 when the garbage
        # happens to end in valid padding (then it is not the content)
        try:
            wrong = ContentDecryptor(oid, params, new_key(cipher)).open(ct)
        except DecryptionError:
            pass
        else:
            assert wrong != data
        with pytest.raises(UsageError, match="no authentication tag"):
            ContentDecryptor(oid, params, key).open(ct, b"x" * 16)


def test_open_with_a_short_gcm_tag_and_after_streaming() -> None:
    """A 12-byte tag (RFC 5084's default) takes the context path inside open(); a decryptor that
    has started streaming refuses open()."""
    key, nonce = os.urandom(16), os.urandom(12)
    ref = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    ct = ref.update(b"short tag") + ref.finalize()
    params = der.sequence(der.octet_string(nonce))
    assert ContentDecryptor(OIDS["aes-128-gcm"], params, key).open(ct, ref.tag[:12]) == b"short tag"
    with pytest.raises(MalformedCMS, match="tag is 16 bytes"):
        ContentDecryptor(OIDS["aes-128-gcm"], params, key).open(ct, ref.tag)
    dec = ContentDecryptor(OIDS["aes-128-gcm"], params, key)
    dec.update(ct[:4])
    with pytest.raises(UsageError, match="fresh decryptor"):
        dec.open(ct[4:], ref.tag[:12])


# ---- tables -------------------------------------------------------------------------------------


def test_tables() -> None:
    assert set(CIPHERS) == {
        "aes-128-cbc",
        "aes-192-cbc",
        "aes-256-cbc",
        "aes-128-gcm",
        "aes-256-gcm",
    }
    assert {c.name: c.oid for c in CIPHER_BY_OID.values()} == OIDS
    for c in CIPHER_BY_OID.values():
        assert c.key_size == int(c.name[4:7]) // 8
        assert c.aead == c.name.endswith("gcm")
    assert DEFAULT_CIPHER.name == "aes-256-gcm"
    assert len(new_key(CIPHERS["aes-128-gcm"])) == 16
    assert new_key(DEFAULT_CIPHER) != new_key(DEFAULT_CIPHER)


# ---- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("cipher", ALL, ids=lambda c: c.name)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 31, 32, 1000, 70_000])
@pytest.mark.parametrize("chunk", [3, 16, 4096, 1 << 20])
def test_round_trip(cipher: ContentCipher, size: int, chunk: int) -> None:
    key = new_key(cipher)
    data = os.urandom(size)
    enc, ct = encrypt(cipher, key, data, chunk)
    assert len(ct) == ContentEncryptor.ciphertext_length(cipher, size)
    assert decrypt(enc, key, ct, chunk) == data
    # and cryptography agrees on the ciphertext
    _, params = split_alg(enc.algorithm_der)
    if cipher.aead:
        nonce = GcmParameters.load(params)["aes_nonce"].native
        ref = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
        assert ref.update(data) + ref.finalize() == ct
        assert ref.tag == enc.tag and len(enc.tag) == 16
    else:
        iv = a_algos.OctetString.load(params).native
        padder = sym_padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        ref = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        assert ref.update(padded) + ref.finalize() == ct


@pytest.mark.parametrize("cipher", ALL, ids=lambda c: c.name)
def test_byte_by_byte(cipher: ContentCipher) -> None:
    key = new_key(cipher)
    data = os.urandom(100)
    enc, ct = encrypt(cipher, key, data, 1)
    assert decrypt(enc, key, ct, 1) == data


@pytest.mark.parametrize("cipher", ALL, ids=lambda c: c.name)
def test_update_into_matches_update(cipher: ContentCipher) -> None:
    key = new_key(cipher)
    data = os.urandom(100_003)
    enc = ContentEncryptor(cipher, key)
    buf = bytearray(40_000 + UPDATE_INTO_SLACK)
    out = bytearray()
    for i in range(0, len(data), 40_000):
        n = enc.update_into(data[i : i + 40_000], buf)
        out += buf[:n]
    out += enc.finalize()
    ct = bytes(out)
    assert decrypt(enc, key, ct, 4096) == data

    oid, params = split_alg(enc.algorithm_der)
    dec = ContentDecryptor(oid, params, key)
    plain = bytearray()
    for i in range(0, len(ct), 40_000):
        n = dec.update_into(ct[i : i + 40_000], buf)
        plain += buf[:n]
    plain += dec.finalize(enc.tag if cipher.aead else None)
    assert bytes(plain) == data


def test_fresh_iv_per_encryptor() -> None:
    key = new_key(CIPHERS["aes-256-cbc"])
    a = ContentEncryptor(CIPHERS["aes-256-cbc"], key)
    b = ContentEncryptor(CIPHERS["aes-256-cbc"], key)
    assert a.iv != b.iv and a.algorithm_der != b.algorithm_der


def test_algorithm_identifiers() -> None:
    # RFC 3565 §4.1: CBC parameters are the 16-byte IV
    enc = ContentEncryptor(CIPHERS["aes-128-cbc"], bytes(16))
    assert enc.algorithm_der == der.sequence(der.oid(OIDS["aes-128-cbc"]), der.octet_string(enc.iv))
    assert len(enc.iv) == 16
    # RFC 5084 §3.2: GCMParameters { aes-nonce (12 octets), aes-ICVlen 16 (stated, since the
    # default is 12) }
    enc = ContentEncryptor(CIPHERS["aes-256-gcm"], bytes(32))
    alg = a_algos.EncryptionAlgorithm.load(enc.algorithm_der)
    assert alg["algorithm"].dotted == OIDS["aes-256-gcm"]
    params = GcmParameters.load(alg["parameters"].dump())
    assert params["aes_nonce"].native == enc.iv and len(enc.iv) == 12
    assert params["aes_icvlen"].native == 16
    assert enc.algorithm_der.endswith(b"\x02\x01\x10")


@pytest.mark.parametrize("cipher", ["aes-128-gcm", "aes-256-gcm"])
def test_gcm_aad(cipher: str) -> None:
    c = CIPHERS[cipher]
    key = new_key(c)
    aad = der.set_of([b"\x30\x00"])
    enc, ct = encrypt(c, key, b"authenticated", 5, aad=aad)
    assert decrypt(enc, key, ct, 5, aad=aad) == b"authenticated"
    with pytest.raises(DecryptionError):
        decrypt(enc, key, ct, 5, aad=aad + b"x")
    with pytest.raises(DecryptionError):
        decrypt(enc, key, ct, 5)


def test_aes192_gcm_is_read_but_not_offered() -> None:
    assert "aes-192-gcm" not in CIPHERS
    key, nonce = os.urandom(24), os.urandom(12)
    ref = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    ct = ref.update(b"old mail") + ref.finalize()
    params = der.sequence(der.octet_string(nonce), der.integer(16))
    dec = ContentDecryptor(OIDS["aes-192-gcm"], params, key)
    assert dec.cipher.name == "aes-192-gcm" and dec.cipher.aead
    assert dec.update(ct) + dec.finalize(ref.tag) == b"old mail"


def test_gcm_default_tag_length_is_12() -> None:
    # RFC 5084 §3.2: aes-ICVlen DEFAULT 12
    key, nonce = os.urandom(16), os.urandom(12)
    ref = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    ct = ref.update(b"short tag") + ref.finalize()
    dec = ContentDecryptor(OIDS["aes-128-gcm"], der.sequence(der.octet_string(nonce)), key)
    assert dec.tag_length == 12
    assert dec.update(ct) + dec.finalize(ref.tag[:12]) == b"short tag"
    dec = ContentDecryptor(OIDS["aes-128-gcm"], der.sequence(der.octet_string(nonce)), key)
    dec.update(ct)
    with pytest.raises(MalformedCMS, match="tag is 16 bytes"):
        dec.finalize(ref.tag)


def test_streaming_memory_is_bounded() -> None:
    c = CIPHERS["aes-256-cbc"]
    key = new_key(c)
    enc = ContentEncryptor(c, key)
    oid, params = split_alg(enc.algorithm_der)
    dec = ContentDecryptor(oid, params, key)
    chunk = os.urandom(1 << 20)
    tracemalloc.start()
    try:
        for _ in range(32):
            dec.update(enc.update(chunk))
        dec.update(enc.finalize())
        assert dec.finalize() == b""  # the last chunk came out already, the padding stayed
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # 32 MiB went through


# ---- misuse -------------------------------------------------------------------------------------


def test_encryptor_misuse() -> None:
    with pytest.raises(UsageError, match="32-byte key"):
        ContentEncryptor(CIPHERS["aes-256-gcm"], bytes(16))
    with pytest.raises(UsageError, match="additional data"):
        ContentEncryptor(CIPHERS["aes-256-cbc"], bytes(32), aad=b"x")
    enc = ContentEncryptor(CIPHERS["aes-256-gcm"], bytes(32))
    with pytest.raises(UsageError, match="after finalize"):
        _ = enc.tag
    enc.finalize()
    assert len(enc.tag) == 16
    for call in (lambda: enc.update(b"x"), enc.finalize):
        with pytest.raises(UsageError, match="already finalized"):
            call()
    with pytest.raises(UsageError, match="no authentication tag"):
        _ = ContentEncryptor(CIPHERS["aes-128-cbc"], bytes(16)).tag


def test_decryptor_misuse() -> None:
    enc, ct = encrypt(CIPHERS["aes-128-gcm"], bytes(16), b"data", 4)
    oid, params = split_alg(enc.algorithm_der)
    dec = ContentDecryptor(oid, params, bytes(16))
    dec.update(ct)
    with pytest.raises(UsageError, match="needs the authentication tag"):
        dec.finalize()
    enc, ct = encrypt(CIPHERS["aes-128-cbc"], bytes(16), b"data", 4)
    oid, params = split_alg(enc.algorithm_der)
    with pytest.raises(UsageError, match="additional data"):
        ContentDecryptor(oid, params, bytes(16), aad=b"x")
    dec = ContentDecryptor(oid, params, bytes(16))
    dec.update(ct)
    with pytest.raises(UsageError, match="no authentication tag"):
        dec.finalize(b"\x00" * 16)
    with pytest.raises(UsageError, match="already finalized"):
        dec.update(b"")


# ---- hostile input ------------------------------------------------------------------------------


def _cbc_raw(key: bytes, iv: bytes, plaintext_blocks: bytes) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return ctx.update(plaintext_blocks) + ctx.finalize()


@pytest.mark.parametrize(
    "last_block",
    [
        b"A" * 15 + b"\x00",  # pad 0
        b"A" * 15 + b"\x11",  # pad 17
        b"A" * 14 + b"\x01\x02",  # pad 2 with a wrong byte
        b"\x10" * 15 + b"\x0f",  # pad 15 with a wrong byte
    ],
)
def test_cbc_bad_padding_looks_like_a_wrong_key(last_block: bytes) -> None:
    key, iv = os.urandom(32), os.urandom(16)
    ct = _cbc_raw(key, iv, b"B" * 32 + last_block)
    dec = ContentDecryptor(OIDS["aes-256-cbc"], der.octet_string(iv), key)
    dec.update(ct)
    with pytest.raises(DecryptionError) as bad_padding:
        dec.finalize()
    # a wrong key: deterministic inputs whose last block does not unpad
    wrong = bytes(32)
    good = _cbc_raw(key, iv, b"B" * 32 + b"\x10" * 16)
    dec = ContentDecryptor(OIDS["aes-256-cbc"], der.octet_string(iv), wrong)
    dec.update(good)
    try:
        dec.finalize()
    except DecryptionError as wrong_key:
        assert str(wrong_key) == str(bad_padding.value) == WRONG_KEY
    else:  # 1 in ~256: the garbage happens to unpad; the message is then wrong, not an error
        pass


def test_cbc_wrong_key_usually_fails() -> None:
    c = CIPHERS["aes-128-cbc"]
    failures = 0
    for _ in range(20):
        key = new_key(c)
        enc, ct = encrypt(c, key, b"secret text", 64)
        try:
            out = decrypt(enc, new_key(c), ct, 64)
        except DecryptionError as exc:
            assert str(exc) == WRONG_KEY
            failures += 1
        else:
            assert out != b"secret text"
    assert failures >= 15


@pytest.mark.parametrize("cipher", ["aes-128-gcm", "aes-256-gcm"])
@pytest.mark.parametrize("what", ["tag", "ciphertext", "key", "params-nonce"])
def test_gcm_tampering(cipher: str, what: str) -> None:
    c = CIPHERS[cipher]
    key = new_key(c)
    enc, ct = encrypt(c, key, b"x" * 100, 100)
    tag = enc.tag
    oid, params = split_alg(enc.algorithm_der)
    if what == "tag":
        tag = tag[:-1] + bytes([tag[-1] ^ 1])
    elif what == "ciphertext":
        ct = ct[:10] + bytes([ct[10] ^ 0x80]) + ct[11:]
    elif what == "key":
        key = new_key(c)
    else:
        params = params[:6] + bytes([params[6] ^ 1]) + params[7:]
    dec = ContentDecryptor(oid, params, key)
    dec.update(ct)
    with pytest.raises(DecryptionError, match="authentication tag was modified"):
        dec.finalize(tag)


def test_cbc_bad_lengths() -> None:
    key, iv = os.urandom(16), os.urandom(16)
    for ct in (b"", os.urandom(15), os.urandom(33)):
        dec = ContentDecryptor(OIDS["aes-128-cbc"], der.octet_string(iv), key)
        dec.update(ct)
        with pytest.raises(MalformedCMS):
            dec.finalize()


def test_wrong_key_length_is_a_decryption_error() -> None:
    enc, _ = encrypt(CIPHERS["aes-256-gcm"], bytes(32), b"", 1)
    oid, params = split_alg(enc.algorithm_der)
    with pytest.raises(DecryptionError, match="16 bytes, aes-256-gcm needs 32"):
        ContentDecryptor(oid, params, bytes(16))


@pytest.mark.parametrize(
    ("oid", "params", "match"),
    [
        ("1.2.840.113549.3.7", der.octet_string(bytes(8)), "3DES"),
        ("1.2.840.113549.3.2", None, "RC2"),
        ("1.2.3.4", None, "unknown content encryption algorithm 1.2.3.4"),
        (OIDS["aes-128-cbc"], None, "missing"),
        (OIDS["aes-128-cbc"], der.octet_string(bytes(8)), "16-byte IV"),
        (OIDS["aes-128-cbc"], der.octet_string(bytes(16)) + b"\x00", "16-byte IV"),
        (OIDS["aes-128-cbc"], der.null(), "16-byte IV"),
        (OIDS["aes-128-cbc"], b"\x04\x80", "cannot be read"),
        (OIDS["aes-128-gcm"], None, "missing"),
        (OIDS["aes-128-gcm"], der.octet_string(bytes(12)), "GCMParameters"),
        (OIDS["aes-128-gcm"], der.sequence(), "nonce and a tag length"),
        (OIDS["aes-128-gcm"], der.sequence(der.octet_string(bytes(16))), "12-byte nonces"),
        (OIDS["aes-128-gcm"], der.sequence(der.octet_string(bytes(8))), "12-byte nonces"),
        (
            OIDS["aes-128-gcm"],
            der.sequence(der.octet_string(bytes(12)), der.integer(8)),
            "12 to 16",
        ),
        (
            OIDS["aes-128-gcm"],
            der.sequence(der.octet_string(bytes(12)), der.integer(17)),
            "12 to 16",
        ),
        (
            OIDS["aes-128-gcm"],
            der.sequence(der.octet_string(bytes(12)), der.integer(1 << 40)),
            "malformed tag length",
        ),
        (
            OIDS["aes-128-gcm"],
            der.sequence(der.octet_string(bytes(12)), der.null()),
            "malformed tag length",
        ),
        (
            OIDS["aes-128-gcm"],
            der.sequence(der.octet_string(bytes(12)), der.integer(16), der.integer(16)),
            "nonce and a tag length",
        ),
    ],
)
def test_bad_algorithm_parameters(oid: str, params: bytes | None, match: str) -> None:
    with pytest.raises(AlgorithmError, match=match):
        ContentDecryptor(oid, params, bytes(16))


def test_random_parameters_only_raise_mailseal_errors() -> None:
    rng = random.Random(5084)
    good_cbc = der.octet_string(bytes(16))
    good_gcm = der.sequence(der.octet_string(bytes(12)), der.integer(16))
    for _ in range(3000):
        base = rng.choice([good_cbc, good_gcm])
        blob = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            if op == 0 and blob:
                blob[rng.randrange(len(blob))] = rng.randrange(256)
            elif op == 1 and blob:
                del blob[rng.randrange(len(blob)) :]
            else:
                blob.insert(rng.randrange(len(blob) + 1), rng.randrange(256))
        oid = rng.choice(list(OIDS.values()))
        key = bytes(CIPHER_BY_OID[oid].key_size)
        try:
            dec = ContentDecryptor(oid, bytes(blob), key)
            dec.update(os.urandom(rng.choice([0, 16, 32])))
            dec.finalize(bytes(dec.tag_length) if dec.cipher.aead else None)
        except MailsealError:
            pass
