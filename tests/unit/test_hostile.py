"""Hostile input (DESIGN.md house rules 3 and 7): every one is a clean MailsealError from the
library, and exit code 2 with one line on stderr and no traceback from the CLI, in bounded
time (pytest-timeout) and memory (tracemalloc peaks, checked against the input size).
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import mailseal
from mailseal.cli.main import main
from mailseal.errors import LimitExceeded, MalformedCMS, MalformedMessage, NotSMIME
from mailseal.limits import Limits
from mailseal.pki.testpki import TestPKI

from ._support import MAIL_7BIT, cms_der, join_multipart, replace_cms, split_multipart
from .conftest import Person

MB = 1 << 20
SIG_TYPE = b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256'
SIG_PART_HEAD = (
    b"Content-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n"
)
OID_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")
OID_DATA = bytes.fromhex("06092a864886f70d010701")


def _junk(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


def _nested(depth: int) -> bytes:
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + b"Content-Type: text/plain\r\n\r\nthe bottom\r\n" + tail


def _multipart_signed(first: bytes, sig_body: bytes, *, boundary: bytes = b"b") -> bytes:
    return (
        SIG_TYPE
        + b'; boundary="'
        + boundary
        + b'"\r\n\r\n--'
        + boundary
        + b"\r\n"
        + first
        + b"\r\n--"
        + boundary
        + b"\r\n"
        + SIG_PART_HEAD
        + sig_body
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )


@pytest.fixture(scope="module")
def signed(alice: Person) -> dict[str, bytes]:
    return {
        "detached": mailseal.sign(MAIL_7BIT, alice.ident),
        "opaque": mailseal.sign(MAIL_7BIT, alice.ident, opaque=True),
    }


def _signature_body_replaced(detached: bytes, body: bytes) -> bytes:
    mp = split_multipart(detached)
    sig_head, _, _ = mp.parts[1].partition(b"\r\n\r\n")
    mp.parts[1] = sig_head + b"\r\n\r\n" + body
    return join_multipart(mp)


def _opaque_body_replaced(opaque: bytes, body: bytes) -> bytes:
    head, _, _ = opaque.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n" + body


# name -> (builder, the MailsealError subclass verify must raise)
HOSTILE: dict[str, tuple[Callable[[dict[str, bytes]], bytes], type[Exception]]] = {
    "empty": (lambda s: b"", MalformedMessage),
    "only-newlines": (lambda s: b"\r\n" * 1000, NotSMIME),
    "truncated-der": (
        lambda s: cms_der(s["opaque"])[: len(cms_der(s["opaque"])) // 2],
        MalformedCMS,
    ),
    "truncated-der-header": (lambda s: b"\x30\x84\x7f\xff\xff\xff\x06", MalformedCMS),
    "truncated-opaque": (
        lambda s: s["opaque"][: len(s["opaque"]) * 3 // 5],
        mailseal.MailsealError,
    ),
    "truncated-detached": (
        lambda s: s["detached"][: len(s["detached"]) * 4 // 5],
        mailseal.MailsealError,
    ),
    "corrupt-der": (
        lambda s: (lambda d: d[:40] + b"\xff" * 40 + d[80:])(cms_der(s["opaque"])),
        MalformedCMS,
    ),
    "corrupt-der-in-signature-part": (
        lambda s: replace_cms(s["detached"], b"\x30\x82\x01\x00" + b"\x02\x01\x01" * 60),
        MalformedCMS,
    ),
    "not-signed-data": (
        lambda s: replace_cms(s["detached"], b"\x30\x0d" + OID_DATA + b"\xa0\x00"),
        MalformedCMS,
    ),
    "huge-declared-length": (
        lambda s: replace_cms(s["detached"], b"\x30\x84\xff\xff\xff\xff" + OID_SIGNED_DATA),
        MalformedCMS,
    ),
    "broken-base64-signature": (
        lambda s: _signature_body_replaced(s["detached"], b"AAAAA"),
        MalformedMessage,
    ),
    "broken-base64-opaque": (
        lambda s: _opaque_body_replaced(s["opaque"], b"MIIB!!!\r\nA\r\n"),
        mailseal.MailsealError,
    ),
    "missing-boundary": (
        lambda s: s["detached"].replace(b'; boundary="', b'; x-boundary="'),
        MalformedMessage,
    ),
    "boundary-never-appears": (
        lambda s: s["detached"].replace(b'boundary="----=_mailseal_', b'boundary="other_'),
        MalformedMessage,
    ),
    "boundary-too-long": (
        lambda s: _multipart_signed(b"x", b"AAAA", boundary=b"b" * 300),
        MalformedMessage,
    ),
    "missing-signature-part": (
        lambda s: (
            SIG_TYPE + b"; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"
        ),
        MalformedMessage,
    ),
    "no-parts-at-all": (
        lambda s: SIG_TYPE + b"; boundary=b\r\n\r\npreamble only\r\n--b--\r\n",
        MalformedMessage,
    ),
    "signature-part-not-cms": (
        lambda s: _multipart_signed(b"Content-Type: text/plain\r\n\r\nhi", b"").replace(
            b"application/pkcs7-signature\r\n", b"text/plain\r\n"
        ),
        MalformedMessage,
    ),
    "empty-signature-part": (lambda s: _multipart_signed(b"hi", b""), MalformedCMS),
    "nested-10000-multiparts": (lambda s: _nested(10_000), NotSMIME),
    "header-line-50MB": (
        lambda s: b"Subject: " + b"x" * (50 * MB) + b"\r\n\r\nbody\r\n",
        LimitExceeded,
    ),
    "line-50MB-no-newline": (lambda s: b"X" * (50 * MB), LimitExceeded),
    "too-many-header-fields": (
        lambda s: b"".join(b"X-F%d: v\r\n" % i for i in range(3000)) + b"\r\nbody",
        LimitExceeded,
    ),
    "huge-signature-part": (
        lambda s: _multipart_signed(b"hi", (b"A" * 76 + b"\r\n") * (70 * MB // 78)),
        LimitExceeded,
    ),
    "garbage-after-multipart-headers": (
        lambda s: SIG_TYPE + b"; boundary=b\r\n\r\n" + _junk(64 * 1024),
        MalformedMessage,
    ),
    "garbage-after-opaque-headers": (
        lambda s: _opaque_body_replaced(s["opaque"], _junk(64 * 1024)),
        mailseal.MailsealError,
    ),
    "garbage-raw-der": (lambda s: b"\x30" + _junk(4096), MalformedCMS),
    "binary-junk": (lambda s: _junk(MB, seed=3), mailseal.MailsealError),
    "deep-ber-nesting": (
        lambda s: (
            b"\x30\x80"
            + OID_SIGNED_DATA
            + b"\xa0\x80\x30\x80\x02\x01\x01\x31\x00\x30\x80"
            + OID_DATA
            + b"\x00\x00\xa0\x80"
            + b"\x30\x80" * 100_000
        ),
        LimitExceeded,
    ),
    "deep-octet-string-nesting": (
        lambda s: (
            b"\x30\x80"
            + OID_SIGNED_DATA
            + b"\xa0\x80\x30\x80\x02\x01\x01\x31\x00\x30\x80"
            + OID_DATA
            + b"\xa0\x80"
            + b"\x24\x80" * 100_000
        ),
        LimitExceeded,
    ),
    "pem-garbage": (
        lambda s: b"-----BEGIN PKCS7-----\n%%%%\n-----END PKCS7-----\n",
        mailseal.MailsealError,
    ),
    "enveloped-not-signed": (
        lambda s: b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nAAAA",
        NotSMIME,
    ),
}


@pytest.fixture(scope="module")
def hostile_files(
    tmp_path_factory: pytest.TempPathFactory, signed: dict[str, bytes]
) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    out = {}
    for name, (build, _) in HOSTILE.items():
        out[name] = d / f"{name}.eml"
        out[name].write_bytes(build(signed))
    return out


def _peak(fn: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        try:
            result: object = fn()
        except Exception as exc:  # returned for the caller to judge
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_library_verify(name: str, hostile_files: dict[str, Path]) -> None:
    data = hostile_files[name].read_bytes()
    expected = HOSTILE[name][1]
    outcome, peak = _peak(lambda: mailseal.verify(data))
    assert isinstance(outcome, mailseal.MailsealError), f"{name}: {outcome!r}"
    assert isinstance(outcome, expected), f"{name}: {type(outcome).__name__}: {outcome}"
    assert str(outcome)
    # bounded memory: never a copy of a big input per step, never unbounded growth
    assert peak < 4 * len(data) + 32 * MB, f"{name}: peak {peak / MB:.1f} MiB"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("name", "bound"),
    [
        ("header-line-50MB", 4 * MB),
        ("line-50MB-no-newline", 4 * MB),
        ("nested-10000-multiparts", 8 * MB),
    ],
)
def test_library_verify_reads_only_what_it_needs(
    name: str, bound: int, hostile_files: dict[str, Path]
) -> None:
    data = hostile_files[name].read_bytes()
    outcome, peak = _peak(lambda: mailseal.verify(data))
    assert isinstance(outcome, mailseal.MailsealError)
    assert peak < bound, f"{name}: peak {peak / MB:.1f} MiB for {len(data) / MB:.0f} MiB input"


@pytest.mark.timeout(30)
def test_huge_signature_part_is_bounded_by_the_limit() -> None:
    limits = Limits(max_signature_bytes=MB)
    data = _multipart_signed(b"hi", (b"A" * 76 + b"\r\n") * (40 * MB // 78))
    outcome, peak = _peak(lambda: mailseal.verify(data, limits=limits))
    assert isinstance(outcome, LimitExceeded)
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MiB with a 1 MiB signature limit"


# -- signing hostile input ------------------------------------------------------------------------
SIGN_HOSTILE = {
    "empty": mailseal.MailsealError,
    "nested-10000-multiparts": LimitExceeded,
    "header-line-50MB": LimitExceeded,
    "line-50MB-no-newline": LimitExceeded,
    "too-many-header-fields": LimitExceeded,
    "missing-boundary": MalformedMessage,
    "boundary-never-appears": MalformedMessage,
    "boundary-too-long": MalformedMessage,
    "garbage-after-multipart-headers": MalformedMessage,
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(SIGN_HOSTILE))
def test_library_sign(name: str, hostile_files: dict[str, Path], alice: Person) -> None:
    data = hostile_files[name].read_bytes()
    outcome, peak = _peak(lambda: mailseal.sign(data, alice.ident))
    assert isinstance(outcome, SIGN_HOSTILE[name]), f"{name}: {outcome!r}"
    assert peak < 2 * len(data) + 64 * MB, f"{name}: peak {peak / MB:.1f} MiB"


# -- the CLI: exit 2, one line, no traceback ------------------------------------------------------
def _run_main(argv: list[str], capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, bytes]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    code = exc.value.code
    return (code if isinstance(code, int) else -1), capsysbinary.readouterr().err


def _assert_clean_error(code: int, err: bytes) -> None:
    assert code == 2, (code, err)
    lines = err.decode(errors="replace").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mailseal: error: "), lines[0]
    assert "Traceback" not in lines[0] and "internal error" not in lines[0], lines[0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_cli_verify_in_process(
    name: str, hostile_files: dict[str, Path], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, err = _run_main(["verify", "-i", str(hostile_files[name])], capsysbinary)
    _assert_clean_error(code, err)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_cli_inspect_in_process(
    name: str, hostile_files: dict[str, Path], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """inspect reports input without an S/MIME layer (exit 0); anything else unusable is 2."""
    from mailseal.mime.envelope import classify
    from mailseal.mime.reader import Reader

    data = hostile_files[name].read_bytes()
    try:
        mailseal.verify(data)
    except NotSMIME:
        not_smime = True
    except mailseal.MailsealError:
        not_smime = False
    if not_smime:
        # verify found no signature; inspect also knows encrypted and compressed layers
        try:
            not_smime = classify(Reader.from_stream(io.BytesIO(data))).kind is None
        except mailseal.MailsealError:
            not_smime = True
    with pytest.raises(SystemExit) as exc_info:
        main(["inspect", "-i", str(hostile_files[name])])
    cap = capsysbinary.readouterr()
    if not_smime:
        assert exc_info.value.code == 0
        assert b"no S/MIME layer" in cap.out
    else:
        _assert_clean_error(exc_info.value.code, cap.err)  # type: ignore[arg-type]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(SIGN_HOSTILE))
def test_cli_sign_in_process(
    name: str,
    hostile_files: dict[str, Path],
    tmp_path: Path,
    alice: Person,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    from mailseal.pki.testpki import write_identity

    cert, key = write_identity(tmp_path, "alice", alice.issued)
    out = tmp_path / "out.eml"
    argv = [
        "sign",
        "-i",
        str(hostile_files[name]),
        "-o",
        str(out),
        "--cert",
        str(cert),
        "--key",
        str(key),
    ]
    code, err = _run_main(argv, capsysbinary)
    _assert_clean_error(code, err)
    assert not out.exists()
    assert not list(tmp_path.glob(".*mailseal-tmp"))


SUBPROCESS_CASES = [
    "empty",
    "truncated-der",
    "corrupt-der-in-signature-part",
    "broken-base64-signature",
    "missing-boundary",
    "missing-signature-part",
    "nested-10000-multiparts",
    "header-line-50MB",
    "huge-signature-part",
    "garbage-after-multipart-headers",
    "deep-ber-nesting",
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_cli_subprocess(name: str, hostile_files: dict[str, Path]) -> None:
    """The real entry point, as a process: exit 2, one stderr line, nothing on stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "mailseal", "verify", "-i", str(hostile_files[name])],
        capture_output=True,
        timeout=60,
        check=False,
    )
    _assert_clean_error(proc.returncode, proc.stderr)
    assert proc.stdout == b""


@pytest.mark.timeout(60)
def test_cli_subprocess_stdin(hostile_files: dict[str, Path]) -> None:
    data = hostile_files["truncated-detached"].read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "mailseal", "verify"],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    _assert_clean_error(proc.returncode, proc.stderr)


# -- evaluable but strange: a verdict, not an error -----------------------------------------------
@pytest.mark.timeout(30)
def test_deep_nesting_inside_signed_content_is_just_content(
    signed: dict[str, bytes], trust: mailseal.Trust
) -> None:
    mp = split_multipart(signed["detached"])
    mp.parts[0] = _nested(10_000)
    result = mailseal.verify(join_multipart(mp), trust=trust)
    assert (
        result.status is mailseal.Status.TAMPERED
    )  # evaluated: the content is not what was signed


# -- known escapes from the exception tree --------------------------------------------------------
def _once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and old in data
    i = data.index(old)
    return data[:i] + new + data[i + len(old) :]


# (which certificate, bytes to find, replacement of the same length): all load lazily with
# cryptography and fail only when a field is used
CERT_CORRUPTIONS = {
    "leaf-issuer-string-tag": ("leaf", b"\x55\x04\x0a\x0c\x0d", b"\x55\x04\x0a\x0d\x0d"),
    "leaf-unknown-key-algorithm": (
        "leaf",
        bytes.fromhex("06092a864886f70d010101"),
        bytes.fromhex("06092a864886f70d010163"),
    ),
    "leaf-duplicate-extension": ("leaf", b"\x06\x03\x55\x1d\x25", b"\x06\x03\x55\x1d\x11"),
    "leaf-invalid-version": ("leaf", b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x12"),
    "leaf-eku-wrong-tag": ("leaf", b"\x55\x1d\x25\x04\x0c\x30", b"\x55\x1d\x25\x04\x0c\x31"),
    "intermediate-aki-wrong-tag": (
        "intermediate",
        b"\x55\x1d\x23\x04\x18\x30\x16",
        b"\x55\x1d\x23\x04\x18\x31\x16",
    ),
    "intermediate-issuer-string-tag": (
        "intermediate",
        b"\x55\x04\x0a\x0c\x0d",
        b"\x55\x04\x0a\x0d\x0d",
    ),
}


@pytest.mark.parametrize(
    "case",
    list(CERT_CORRUPTIONS),
)
@pytest.mark.parametrize("form", ["detached", "opaque"])
def test_malformed_certificate_in_the_message(
    case: str,
    form: str,
    signed: dict[str, bytes],
    alice: Person,
    ca: TestPKI,
    trust: mailseal.Trust,
) -> None:
    """A certificate carried in the message is attacker-controlled: a broken one must give a
    verdict (not valid) or a MailsealError, and the verdict must serialise."""
    which, old, new = CERT_CORRUPTIONS[case]
    cert = (alice.cert if which == "leaf" else ca.chain[0]).public_bytes(Encoding.DER)
    der = cms_der(signed[form])
    assert der.count(cert) == 1
    message = replace_cms(signed[form], der.replace(cert, _once(cert, old, new)))
    try:
        result = mailseal.verify(message, trust=trust)
    except mailseal.MailsealError:
        return
    assert not result.valid
    result.to_json()
    for s in result.signers:
        s.describe()


@pytest.mark.parametrize("operation", ["verify", "sign"])
def test_non_ascii_content_type_token(operation: str, alice: Person) -> None:
    data = b"Content-Type: text/pl\xc3\xa9\xff\r\n\r\nbody\r\n"
    try:
        if operation == "verify":
            mailseal.verify(data)
        else:
            mailseal.sign(data, alice.ident)
    except mailseal.MailsealError:
        pass


@pytest.mark.parametrize("from_value", [b"(" * 5000, b"a:" * 5000])
def test_hostile_from_header_on_a_signed_message(
    from_value: bytes, signed: dict[str, bytes], trust: mailseal.Trust
) -> None:
    message = signed["detached"].replace(b"Alice <alice@example.org>", from_value, 1)
    try:
        result = mailseal.verify(message, trust=trust)
    except mailseal.MailsealError:
        return
    assert result.signers[0].intact


@pytest.mark.parametrize("case", ["from-recursion", "content-type-token", "certificate-json"])
def test_cli_on_known_escapes(
    case: str,
    signed: dict[str, bytes],
    ca: TestPKI,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    if case == "from-recursion":
        data = signed["detached"].replace(b"Alice <alice@example.org>", b"(" * 5000, 1)
    elif case == "content-type-token":
        data = b"Content-Type: text/pl\xc3\xa9\xff\r\n\r\nbody\r\n"
    else:
        cert = ca.chain[0].public_bytes(Encoding.DER)
        der = cms_der(signed["opaque"])
        broken = _once(cert, b"\x55\x04\x0a\x0c\x0d", b"\x55\x04\x0a\x0d\x0d")
        data = replace_cms(signed["opaque"], der.replace(cert, broken))
    path = tmp_path / "in.eml"
    path.write_bytes(data)
    code, err = _run_main(["verify", "--json", "-i", str(path)], capsysbinary)
    assert code in (1, 2)
    if code == 2:
        _assert_clean_error(code, err)
