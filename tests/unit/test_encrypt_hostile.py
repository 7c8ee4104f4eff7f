"""Hostile input to decrypt / open / decompress (DESIGN.md house rules 3 and 7).

Wrong keys, strangers, truncated and corrupted envelopes, broken padding, damaged
RecipientInfos, garbage base64, compression bombs, deep nesting and empty input: each is a
MailsealError with a message a person can act on from the library, exit code 2 with one line
on stderr from the CLI, in bounded time (pytest-timeout) and memory (tracemalloc peaks).
A hypothesis property closes: whatever is done to an encrypted or sealed message, the result
is an OpenResult or a MailsealError, and AES-GCM never releases changed plaintext.
"""

from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import cms as a_cms
from asn1crypto import core as a_core
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailseal
from mailseal.cli.main import main
from mailseal.cms.compressed import CompressWriter, decompress_stream
from mailseal.errors import (
    DecryptionError,
    InputError,
    LimitExceeded,
    MalformedCMS,
    NoMatchingRecipient,
)
from mailseal.keys.identity import Identity
from mailseal.keys.software import SoftwareKey
from mailseal.limits import Limits
from mailseal.mime import envelope as E
from mailseal.pki.testpki import write_identity

from ._support import MAIL_7BIT, split_head
from .conftest import Person

MB = 1 << 20
ENTITY = MAIL_7BIT[MAIL_7BIT.index(b"Content-Type:") :]
# a body of many AES blocks
LONG = MAIL_7BIT + b"".join(
    b"filler line %03d of the body of the message\r\n" % i for i in range(40)
)
PKCS7_HEAD = (
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: application/pkcs7-mime; smime-type=%s; name=smime.p7m\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
)


# ---- helpers -----------------------------------------------------------------------------------


def der_of(message: bytes) -> tuple[bytes, bytes]:
    """(header block, DER) of a pkcs7-mime message."""
    head, body = split_head(message)
    return head, base64.b64decode(b"".join(body.split()))


def with_der(head: bytes, der: bytes) -> bytes:
    return head + base64.encodebytes(der).replace(b"\n", b"\r\n")


def pkcs7(der: bytes, smime_type: bytes = b"compressed-data") -> bytes:
    return with_der(PKCS7_HEAD % smime_type, der)


def peak(fn: Callable[[], object]) -> tuple[object, int]:
    """(result or exception, peak traced memory) of ``fn``."""
    tracemalloc.start()
    try:
        try:
            result: object = fn()
        except Exception as exc:  # returned for the caller to judge
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def mailseal_error(
    fn: Callable[[], object], expected: type[Exception] = mailseal.MailsealError
) -> str:
    """Run ``fn``; it must raise ``expected`` (a MailsealError) with a message. Returns it."""
    with pytest.raises(mailseal.MailsealError) as exc:
        fn()
    assert isinstance(exc.value, expected), f"{type(exc.value).__name__}: {exc.value}"
    assert str(exc.value).strip(), "a MailsealError needs a message"
    return str(exc.value)


@pytest.fixture(scope="module")
def mallory(person: Callable[..., Person]) -> Person:
    return person("mallory@example.org")


@pytest.fixture(scope="module")
def samples(alice: Person, bob: Person) -> dict[str, bytes]:
    """alice is RSA, bob P-256."""
    return {
        "gcm": mailseal.encrypt(LONG, [alice.cert, bob.cert]),
        "cbc": mailseal.encrypt(LONG, [alice.cert, bob.cert], cipher="aes-256-cbc"),
        "cbc-pkcs1": mailseal.encrypt(
            LONG, [alice.cert], cipher="aes-128-cbc", key_transport="pkcs1v15"
        ),
        "gcm-pkcs1": mailseal.encrypt(LONG, [alice.cert], key_transport="pkcs1v15"),
        "sealed": mailseal.seal(LONG, alice.ident, [bob.cert]),
        "sealed-cbc": mailseal.seal(
            LONG, bob.ident, [alice.cert], cipher="aes-128-cbc", opaque=True
        ),
    }


# ---- the CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyfiles(
    tmp_path_factory: pytest.TempPathFactory, alice: Person, bob: Person, mallory: Person
) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("keys")
    return {
        p.email.split("@")[0]: write_identity(d, p.email.split("@")[0], p.issued)
        for p in (alice, bob, mallory)
    }


def run_cli(argv: list[str | Path], capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    code = exc.value.code
    return (code if isinstance(code, int) else -1), capsysbinary.readouterr().err.decode(
        "utf-8", "replace"
    )


def assert_clean_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mailseal: error: "), lines[0]
    assert "Traceback" not in err and "internal error" not in err, err
    for f in fragments:
        assert f in lines[0], lines[0]


def cli_decrypt_and_open(
    data: bytes,
    who: str,
    tmp_path: Path,
    keyfiles: dict[str, tuple[Path, Path]],
    capsysbinary: pytest.CaptureFixture[bytes],
    *fragments: str,
) -> None:
    """``decrypt`` and ``open`` both exit 2 with one clean line, and write no output file."""
    src = tmp_path / "in.eml"
    src.write_bytes(data)
    cert, key = keyfiles[who]
    for cmd in ("decrypt", "open"):
        out = tmp_path / f"{cmd}.out"
        code, err = run_cli([cmd, "-i", src, "-o", out, "--cert", cert, "--key", key], capsysbinary)
        assert_clean_error(code, err, *fragments)
        assert not out.exists(), f"{cmd} left an output file behind"


# ---- wrong key, stranger -----------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("sample", "who"),
    [
        ("gcm", "alice"),
        ("cbc", "alice"),
        ("cbc-pkcs1", "alice"),
        ("gcm-pkcs1", "alice"),
        ("gcm", "bob"),
        ("cbc", "bob"),
    ],
)
def test_wrong_private_key(
    samples: dict[str, bytes], alice: Person, bob: Person, sample: str, who: str
) -> None:
    """The recipient's certificate with another key (a mix-up, a token with the wrong key):
    a DecryptionError, not "no matching recipient". PKCS#1 v1.5 continues with a random key
    (RFC 3218), so it fails later, at the padding or the tag, with the same kind of error."""
    person = {"alice": alice, "bob": bob}[who]
    other = (
        rsa.generate_private_key(65537, 2048)
        if who == "alice"
        else ec.generate_private_key(ec.SECP256R1())
    )
    wrong = Identity(person.cert, SoftwareKey(other))
    with pytest.raises(DecryptionError) as exc:
        mailseal.decrypt(samples[sample], [wrong])
    assert not isinstance(exc.value, NoMatchingRecipient), exc.value
    assert str(exc.value)
    with pytest.raises(DecryptionError) as exc:
        mailseal.open_message(samples[sample], [wrong])
    assert not isinstance(exc.value, NoMatchingRecipient), exc.value


@pytest.mark.timeout(30)
def test_cli_key_of_someone_else(
    samples: dict[str, bytes],
    tmp_path: Path,
    keyfiles: dict[str, tuple[Path, Path]],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    src = tmp_path / "in.eml"
    src.write_bytes(samples["gcm"])
    code, err = run_cli(
        ["decrypt", "-i", src, "--cert", keyfiles["alice"][0], "--key", keyfiles["mallory"][1]],
        capsysbinary,
    )
    assert_clean_error(code, err, "does not belong")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("ski", [False, True], ids=["issuer-serial", "ski"])
def test_no_matching_recipient_names_recipients_and_identities(
    alice: Person,
    bob: Person,
    mallory: Person,
    ski: bool,
    tmp_path: Path,
    keyfiles: dict[str, tuple[Path, Path]],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    data = mailseal.encrypt(MAIL_7BIT, [alice.cert, bob.cert], ski=ski)
    msg = mailseal_error(lambda: mailseal.decrypt(data, [mallory.ident]), NoMatchingRecipient)
    for p in (alice, bob):
        if ski:
            from cryptography import x509

            digest = p.cert.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value.digest
            assert digest.hex() in msg, msg
        else:
            assert format(p.cert.serial_number, "x") in msg, msg
    assert mallory.email in msg and format(mallory.cert.serial_number, "x") in msg, msg
    mailseal_error(lambda: mailseal.open_message(data, [mallory.ident]), NoMatchingRecipient)
    cli_decrypt_and_open(data, "mallory", tmp_path, keyfiles, capsysbinary, "mallory@example.org")


# ---- truncated, corrupted, garbage -------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sample", ["gcm", "cbc", "sealed"])
@pytest.mark.parametrize("cut", [0.02, 0.1, 0.3, 0.5, 0.9, 0.99, -2, -1])
@pytest.mark.parametrize("form", ["mime", "der"])
def test_truncated(
    samples: dict[str, bytes], alice: Person, sample: str, cut: float, form: str
) -> None:
    head, der = der_of(samples[sample])
    n = int(len(der) * cut) if cut > 0 else len(der) + int(cut)
    data = with_der(head, der[:n]) if form == "mime" else der[:n]
    mailseal_error(lambda: mailseal.decrypt(data, [alice.ident]))
    mailseal_error(lambda: mailseal.open_message(data, [alice.ident]))


@pytest.mark.timeout(30)
def test_truncated_cli(
    samples: dict[str, bytes],
    tmp_path: Path,
    keyfiles: dict[str, tuple[Path, Path]],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    head, der = der_of(samples["gcm"])
    cli_decrypt_and_open(
        with_der(head, der[: len(der) // 2]), "alice", tmp_path, keyfiles, capsysbinary
    )


def _cbc_with_padding(message: bytes, alice: Person, plaintext_padded: bytes) -> bytes:
    """Re-encrypt ``plaintext_padded`` (already padded, any padding) under the content key of a
    CBC message to alice, recovered with alice's RSA-OAEP key."""
    head, der = der_of(message)
    ci = a_cms.ContentInfo.load(der)
    env = ci["content"]
    ktri = env["recipient_infos"][0].chosen
    assert ktri["key_encryption_algorithm"]["algorithm"].native == "rsaes_oaep"
    key = alice.issued.key
    assert isinstance(key, rsa.RSAPrivateKey)
    cek = key.decrypt(
        ktri["encrypted_key"].native,
        padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
    )
    eci = env["encrypted_content_info"]
    iv = eci["content_encryption_algorithm"]["parameters"].native
    enc = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    eci["encrypted_content"] = enc.update(plaintext_padded) + enc.finalize()
    return with_der(head, ci.dump(force=True))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("bad", ["zero", "too-long", "inconsistent", "no-padding-block"])
def test_bad_cbc_padding(
    bad: str,
    alice: Person,
    tmp_path: Path,
    keyfiles: dict[str, tuple[Path, Path]],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    message = mailseal.encrypt(MAIL_7BIT, [alice.cert], cipher="aes-256-cbc")
    k = 16 - len(ENTITY) % 16
    good = _cbc_with_padding(message, alice, ENTITY + bytes([k]) * k)
    assert mailseal.decrypt(good, [alice.ident]).content == ENTITY, "the crafting is sound"
    padded = {
        "zero": ENTITY + b"\x00" * k,
        "too-long": ENTITY + b"\x11" * k,
        "inconsistent": ENTITY + b"\x07" * (k - 1) + bytes([k]) if k > 1 else ENTITY + b"\x00",
        "no-padding-block": (ENTITY + b"x" * k),
    }[bad]
    data = _cbc_with_padding(message, alice, padded)
    msg = mailseal_error(lambda: mailseal.decrypt(data, [alice.ident]), DecryptionError)
    assert "corrupted" in msg or "wrong key" in msg, msg
    cli_decrypt_and_open(data, "alice", tmp_path, keyfiles, capsysbinary)


def _mutate_recipient_infos(der: bytes, case: str) -> bytes:
    ci = a_cms.ContentInfo.load(der)
    env = ci["content"]
    ris = env["recipient_infos"]
    if case == "set-garbage":
        raw = ris.dump()
        junk = bytes(random.Random(5).randbytes(len(raw) - 4))
        return der.replace(raw, raw[:4] + junk, 1)
    if case == "unknown-choice-tag":
        first = ris[0].dump()
        return der.replace(first, b"\xa9" + first[1:], 1)
    if case == "empty-set":
        env["recipient_infos"] = a_cms.RecipientInfos([])
        return ci.dump(force=True)
    ktri = next(r.chosen for r in ris if r.name == "ktri")
    kari = next(r.chosen for r in ris if r.name == "kari")
    if case == "ktri-serial-changed":
        ktri["rid"].chosen["serial_number"] = 12345
    elif case == "ktri-unknown-algorithm":
        ktri["key_encryption_algorithm"]["algorithm"] = "1.2.3.4.5.6"
    elif case == "ktri-key-truncated":
        ktri["encrypted_key"] = ktri["encrypted_key"].native[:100]
    elif case == "ktri-key-empty":
        ktri["encrypted_key"] = b""
    elif case == "kari-point-off-curve":
        orig = kari["originator"].chosen
        point = bytearray(orig["public_key"].native)
        point[-1] ^= 1
        orig["public_key"] = bytes(point)
    elif case == "kari-wrapped-key-short":
        rek = kari["recipient_encrypted_keys"][0]
        rek["encrypted_key"] = rek["encrypted_key"].native[:8]
    elif case == "kari-unknown-wrap":
        raw = kari["key_encryption_algorithm"]["parameters"].dump()
        changed = raw
        for wrap in ("2.16.840.1.101.3.4.1.5", "2.16.840.1.101.3.4.1.45"):  # aes128/256-wrap
            oid = a_core.ObjectIdentifier(wrap).dump()
            changed = changed.replace(oid, oid[:-1] + b"\x63")  # 2.16.840.1.101.3.4.1.99
        assert changed != raw
        return der.replace(raw, changed, 1)
    else:
        raise AssertionError(case)
    return ci.dump(force=True)


# case -> (error for alice (RSA ktri), error for bob (P-256 kari)); None = that one still opens
RI_CASES: dict[str, tuple[type[Exception] | None, type[Exception] | None]] = {
    "set-garbage": (MalformedCMS, MalformedCMS),
    "unknown-choice-tag": (mailseal.MailsealError, mailseal.MailsealError),
    "empty-set": (MalformedCMS, MalformedCMS),
    "ktri-serial-changed": (NoMatchingRecipient, None),
    "ktri-unknown-algorithm": (mailseal.MailsealError, None),
    "ktri-key-truncated": (DecryptionError, None),
    "ktri-key-empty": (DecryptionError, None),
    "kari-point-off-curve": (None, mailseal.MailsealError),
    "kari-wrapped-key-short": (None, mailseal.MailsealError),
    "kari-unknown-wrap": (None, mailseal.MailsealError),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cipher", ["aes-256-gcm", "aes-256-cbc"])
@pytest.mark.parametrize("case", list(RI_CASES))
def test_corrupted_recipient_infos(case: str, cipher: str, alice: Person, bob: Person) -> None:
    """A damaged entry fails for its recipient with a MailsealError; the other entry still
    opens the message."""
    message = mailseal.encrypt(MAIL_7BIT, [alice.cert, bob.cert], cipher=cipher)
    head, der = der_of(message)
    data = with_der(head, _mutate_recipient_infos(der, case))
    for person, expected in zip((alice, bob), RI_CASES[case], strict=True):
        if expected is None:
            assert mailseal.decrypt(data, [person.ident]).content == ENTITY
        else:
            mailseal_error(lambda p=person: mailseal.decrypt(data, [p.ident]), expected)
            mailseal_error(lambda p=person: mailseal.open_message(data, [p.ident]), expected)


GARBAGE_BODIES = {
    "not-base64": b"!!!! this is not base64 at all $$$\r\n",
    "truncated-base64": b"MIIB\r\nA\r\n",
    "base64-of-junk": base64.encodebytes(random.Random(1).randbytes(3000)).replace(b"\n", b"\r\n"),
    "base64-of-sequence-junk": base64.encodebytes(
        b"\x30\x82\x0b\xb8" + random.Random(2).randbytes(3000)
    ),
    "binary-junk": random.Random(3).randbytes(4000),
    "empty-body": b"",
    "huge-length": base64.encodebytes(
        b"\x30\x84\xff\xff\xff\xff\x06\x09" + bytes.fromhex("2a864886f70d010703")
    ),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(GARBAGE_BODIES))
@pytest.mark.parametrize("smime_type", [b"enveloped-data", b"authEnveloped-data"])
def test_garbage_body(
    case: str,
    smime_type: bytes,
    alice: Person,
    tmp_path: Path,
    keyfiles: dict[str, tuple[Path, Path]],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    data = (PKCS7_HEAD % smime_type) + GARBAGE_BODIES[case]
    mailseal_error(lambda: mailseal.decrypt(data, [alice.ident]))
    mailseal_error(lambda: mailseal.open_message(data, [alice.ident]))
    if smime_type == b"enveloped-data":
        cli_decrypt_and_open(data, "alice", tmp_path, keyfiles, capsysbinary)


# ---- compression bombs -------------------------------------------------------------------------


def _oid(dotted: str) -> bytes:
    return bytes(a_core.ObjectIdentifier(dotted).dump())


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def zeros_bomb(total: int, *, piece: int = 4 * MB) -> bytes:
    """ContentInfo(CompressedData, RFC 3274) of ``total`` zero bytes in BER, one OCTET STRING
    per compressor output (as a streaming writer makes it). Cheap at any size: after a full
    flush zlib emits the same bytes for every further piece of zeros, so they are repeated."""
    z = zlib.compressobj(9)
    first = z.compress(b"\x00" * piece) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(b"\x00" * piece) + z.flush(zlib.Z_FULL_FLUSH)
    last = z.flush()  # the adler32 trailer is only right for two pieces: never reached
    chunks = [first] + [again] * (total // piece - 1) + [last]
    head = (
        b"\x30\x80"
        + _oid("1.2.840.113549.1.9.16.1.9")  # id-ct-compressedData
        + b"\xa0\x80\x30\x80\x02\x01\x00"
        + b"\x30\x0d"
        + _oid("1.2.840.113549.1.9.16.3.8")  # id-alg-zlibCompress
        + b"\x30\x80"
        + _oid("1.2.840.113549.1.7.1")
        + b"\xa0\x80\x24\x80"
    )
    body = b"".join(b"\x04" + _len(len(c)) + c for c in chunks)
    return head + body + b"\x00\x00" * 6


def single_octet_string_bomb(total: int) -> bytes:
    """CompressedData in DER, the compressed bytes in one OCTET STRING (as most other writers,
    OpenSSL's ``cms -compress`` included, produce it). Built with asn1crypto."""
    data = zlib.compress(b"\x00" * total, 9)
    return a_cms.ContentInfo(
        {
            "content_type": "compressed_data",
            "content": a_cms.CompressedData(
                {
                    "version": "v0",
                    "compression_algorithm": {"algorithm": "zlib"},
                    "encap_content_info": {"content_type": "data", "content": data},
                }
            ),
        }
    ).dump()


@pytest.mark.timeout(30)
def test_bomb_beyond_one_gibibyte() -> None:
    """1.5 GiB of zeros in 1.5 MB: refused early on the expansion ratio, in little memory."""
    der = zeros_bomb(1536 * MB)
    assert len(der) < 2 * MB
    message = pkcs7(der)
    outcome, mem = peak(lambda: mailseal.open_message(message))
    assert isinstance(outcome, LimitExceeded), outcome
    assert "1000" in str(outcome) or "bomb" in str(outcome), outcome
    assert mem < 32 * MB, f"peak {mem / MB:.1f} MiB"
    sunk = [0]

    def count(b: bytes) -> None:
        sunk[0] += len(b)

    with pytest.raises(LimitExceeded):
        decompress_stream(io.BytesIO(der).read, count)
    assert sunk[0] < 16 * MB, f"{sunk[0] / MB:.0f} MiB written before the limit stopped it"


@pytest.mark.timeout(30)
def test_bomb_written_by_mailseals_own_writer() -> None:
    parts: list[bytes] = []
    w = CompressWriter(parts.append, level=9)
    block = b"\x00" * MB
    for _ in range(64):
        w.write(block)
    w.close()
    message = pkcs7(b"".join(parts))
    outcome, mem = peak(lambda: mailseal.open_message(message))
    assert isinstance(outcome, LimitExceeded), outcome
    assert mem < 32 * MB, f"peak {mem / MB:.1f} MiB"


@pytest.mark.timeout(30)
def test_bomb_in_one_octet_string_is_stopped_early() -> None:
    der = single_octet_string_bomb(64 * MB)  # 64 KiB of zlib
    sunk = [0]

    def count(b: bytes) -> None:
        sunk[0] += len(b)

    with pytest.raises(LimitExceeded):
        decompress_stream(io.BytesIO(der).read, count)
    # docs/encryption.md: stops at 1000:1 "once past 1 MiB of output"
    assert sunk[0] < 8 * MB, f"{sunk[0] / MB:.0f} MiB decompressed before the limit stopped it"


@pytest.mark.timeout(30)
def test_size_limit_below_the_ratio() -> None:
    """Content that compresses ~300:1 passes the ratio check; the size limit still holds."""
    text = b"Content-Type: application/octet-stream\r\n\r\n" + b"\x00" * (4 * MB)
    out = io.BytesIO()
    E.compress_stream(io.BytesIO(text), out)  # base64-encoded first: ~290:1
    message = out.getvalue()
    res = mailseal.open_message(message)  # not a false positive with the default limits
    assert res.layers[0].kind == "compressed" and len(res.content or b"") > 4 * MB
    msg = mailseal_error(
        lambda: mailseal.open_message(message, limits=Limits(max_decompressed=MB)), LimitExceeded
    )
    assert str(MB) in msg, msg
    with pytest.raises(LimitExceeded):
        E.decompress_stream(io.BytesIO(message), io.BytesIO(), limits=Limits(max_decompressed=MB))


@pytest.mark.timeout(30)
def test_bomb_inside_an_encrypted_layer(alice: Person) -> None:
    message = mailseal.encrypt(pkcs7(zeros_bomb(256 * MB)), [alice.cert])
    outcome, mem = peak(lambda: mailseal.open_message(message, [alice.ident]))
    assert isinstance(outcome, LimitExceeded), outcome
    assert mem < 32 * MB, f"peak {mem / MB:.1f} MiB"


@pytest.mark.timeout(30)
def test_bomb_cli(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    src = tmp_path / "bomb.eml"
    src.write_bytes(pkcs7(zeros_bomb(1536 * MB)))
    for argv in (
        ["compress", "-d", "-i", src, "-o", tmp_path / "x"],
        ["open", "-i", src, "-o", tmp_path / "y"],
    ):
        code, err = run_cli(argv, capsysbinary)
        assert_clean_error(code, err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# ---- deep nesting ------------------------------------------------------------------------------


def nested_compress(n: int, message: bytes = MAIL_7BIT) -> bytes:
    for _ in range(n):
        out = io.BytesIO()
        E.compress_stream(io.BytesIO(message), out)
        message = out.getvalue()
    return message


@pytest.mark.timeout(30)
def test_twenty_nested_layers(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    data = nested_compress(20)
    msg = mailseal_error(lambda: mailseal.open_message(data), LimitExceeded)
    assert str(Limits().max_layers) in msg, msg
    src = tmp_path / "deep.eml"
    src.write_bytes(data)
    code, err = run_cli(["open", "-i", src], capsysbinary)
    assert_clean_error(code, err, "layers")


@pytest.mark.timeout(30)
def test_layer_limit_is_exact() -> None:
    limit = Limits().max_layers
    res = mailseal.open_message(nested_compress(limit))
    assert [layer.kind for layer in res.layers] == ["compressed"] * limit
    assert res.content == ENTITY
    mailseal_error(lambda: mailseal.open_message(nested_compress(limit + 1)), LimitExceeded)
    mailseal_error(
        lambda: mailseal.open_message(nested_compress(3), limits=Limits(max_layers=2)),
        LimitExceeded,
    )


@pytest.mark.timeout(30)
def test_nested_encryption_and_compression(alice: Person, bob: Person) -> None:
    data = MAIL_7BIT
    for i in range(12):
        data = mailseal.encrypt(data, [bob.cert]) if i % 2 else nested_compress(1, data)
    mailseal_error(lambda: mailseal.open_message(data, [bob.ident]), LimitExceeded)


# ---- empty input -------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("data", [b"", b"\r\n", b"\r\n\r\n", b"MIME-Version: 1.0\r\n\r\n"])
def test_empty_input(
    data: bytes,
    alice: Person,
    tmp_path: Path,
    keyfiles: dict[str, tuple[Path, Path]],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    mailseal_error(lambda: mailseal.decrypt(data, [alice.ident]), InputError)
    mailseal_error(lambda: mailseal.open_message(data, [alice.ident]), InputError)
    with pytest.raises(InputError):
        E.decompress_stream(io.BytesIO(data), io.BytesIO())
    cli_decrypt_and_open(data, "alice", tmp_path, keyfiles, capsysbinary)
    src = tmp_path / "in.eml"
    code, err = run_cli(["compress", "-d", "-i", src, "-o", tmp_path / "z"], capsysbinary)
    assert_clean_error(code, err)


# ---- property: an OpenResult or a MailsealError, and GCM never releases changed plaintext -------

_pos = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
DER_MUTATION = st.one_of(
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("insert"), _pos, st.binary(min_size=1, max_size=16)),
    st.tuples(
        st.just("insert"),
        _pos,
        st.sampled_from([b"\x00\x00", b"\x30\x80", b"\x04\x81", b"\xa0\x80", b"\x31\x00"]),
    ),
    st.tuples(st.just("delete"), _pos, st.integers(1, 64)),
    st.tuples(st.just("duplicate"), _pos, st.integers(1, 64)),
)


def mutate(data: bytes, op: tuple) -> bytes:  # type: ignore[type-arg]
    kind, n = op[0], len(data)
    at = min(int(op[1] * n), max(n - 1, 0))
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (1 << op[2])]) + data[at + 1 :] if n else data
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + op[2] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + op[2] :]
    return data[:at] + data[at : at + op[2]] + data[at:]


SAMPLE_NAMES = ["gcm", "cbc", "cbc-pkcs1", "gcm-pkcs1", "sealed", "sealed-cbc"]


@pytest.mark.timeout(120)
@given(
    which=st.sampled_from(SAMPLE_NAMES),
    layer=st.sampled_from(["der", "mime"]),
    ops=st.lists(DER_MUTATION, min_size=1, max_size=3),
    op_open=st.booleans(),
)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_mutated_envelopes(
    samples: dict[str, bytes],
    alice: Person,
    bob: Person,
    trust: mailseal.Trust,
    which: str,
    layer: str,
    ops: list[tuple],  # type: ignore[type-arg]
    op_open: bool,
) -> None:
    original = samples[which]
    head, der = der_of(original)
    if layer == "der":
        for op in ops:
            der = mutate(der, op)
        data = with_der(head, der)
    else:
        data = original
        for op in ops:
            data = mutate(data, op)
    identities = [alice.ident, bob.ident]
    try:
        if op_open:
            res = mailseal.open_message(data, identities, trust=trust)
        else:
            res = mailseal.decrypt(data, identities)
    except mailseal.MailsealError as exc:
        assert str(exc), "a MailsealError needs a message"
        return
    assert isinstance(res, mailseal.OpenResult)
    json.dumps(res.to_json())
    if res.layers and res.layers[0].kind == "encrypted" and res.layers[0].authenticated:
        # AES-GCM: whatever decrypted is exactly what was encrypted
        expected = (
            mailseal.decrypt(original, identities).content
            if not op_open
            else mailseal.open_message(original, identities, trust=trust).content
        )
        assert res.content == expected, "AES-GCM released changed plaintext"


def test_samples_open(
    samples: dict[str, bytes], alice: Person, bob: Person, trust: mailseal.Trust
) -> None:
    for name, data in samples.items():
        res = mailseal.open_message(data, [alice.ident, bob.ident], trust=trust)
        assert res.status in (mailseal.Status.VALID, mailseal.Status.ADDRESS_MISMATCH), (
            name,
            res.to_json(),
        )
        assert mailseal.decrypt(data, [alice.ident, bob.ident]).layers[0].kind == "encrypted"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["truncated", "bomb", "deep"])
def test_cli_subprocess(
    case: str,
    samples: dict[str, bytes],
    tmp_path: Path,
    keyfiles: dict[str, tuple[Path, Path]],
) -> None:
    """The real entry point, as a process: exit 2, one stderr line, nothing on stdout."""
    if case == "truncated":
        head, der = der_of(samples["sealed"])
        data = with_der(head, der[: len(der) * 2 // 3])
    elif case == "bomb":
        data = pkcs7(zeros_bomb(1536 * MB))
    else:
        data = nested_compress(20)
    src = tmp_path / "in.eml"
    src.write_bytes(data)
    cert, key = keyfiles["bob"]
    proc = subprocess.run(
        [sys.executable, "-m", "mailseal", "open", "-i", src, "--cert", cert, "--key", key],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert_clean_error(proc.returncode, proc.stderr.decode("utf-8", "replace"))
    assert proc.stdout == b""
