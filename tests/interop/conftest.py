"""Interop fixtures: the mailseal CLI as a subprocess, each real peer set up the way the recipes
in /work/shared/interop do it, and byte-level MIME helpers.

The peers work on raw CMS (gpgsm, NSS cmsutil) or on S/MIME (openssl). Mailseal-made messages are
taken apart here with bytes operations only: the signed entity is cut out of the file exactly as
it sits between the boundaries (re-serialising it with ``email`` would change bytes).

Test modules reach the helpers through fixtures (``mailseal``, ``smime``, ``openssl``, ``gpgsm``,
``nss``...), never by importing this file, so the suite works whatever pytest's import mode.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any, Protocol

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mailseal.pki.testpki import Issued, TestPKI

# A canonical MIME entity (CRLF line ends), as in the recipes.
MSG = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello from the interop test.\r\n"
    b"Second line.\r\n"
)
# A whole RFC 5322 message around it.
MAIL = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: interop test\r\n"
    b"Date: Mon, 24 Nov 2025 08:00:00 +0000\r\n"
    b"Message-ID: <interop-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n" + MSG
)

TIMEOUT = 60


class HasIdentity(Protocol):
    """What the helpers need from an identity fixture (tests/conftest.py ``Ident``)."""

    @property
    def stem(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def cert(self) -> Path: ...
    @property
    def key(self) -> Path: ...
    @property
    def issued(self) -> Issued: ...


def run(
    cmd: Sequence[str | Path],
    *,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command, capture stdout/stderr as bytes; never raises on a non-zero exit."""
    return subprocess.run(
        [str(c) for c in cmd],
        input=input,
        capture_output=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess[bytes]) -> str:
    """A failure message with everything needed to reproduce: command, exit code, output."""
    args = proc.args if isinstance(proc.args, list) else [proc.args]
    return (
        f"\n$ {' '.join(str(a) for a in args)}\n"
        f"exit code {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-4000:].decode('utf-8', 'replace')}\n"
        f"--- stderr ---\n{proc.stderr[-4000:].decode('utf-8', 'replace')}"
    )


# ---------------------------------------------------------------------------------------------
# MIME helpers (bytes in, bytes out)


class SMime:
    """Byte-exact S/MIME helpers used by the interop tests."""

    MSG = MSG
    MAIL = MAIL

    @staticmethod
    def split_headers(data: bytes) -> tuple[bytes, bytes]:
        """(header block incl. the blank line, body) of a message or entity."""
        m = re.search(rb"\r?\n\r?\n", data)
        if m is None:
            return data, b""
        return data[: m.end()], data[m.end() :]

    @staticmethod
    def headers(data: bytes) -> Any:
        """The top-level headers, parsed (read-only use)."""
        return BytesHeaderParser(policy=compat32).parsebytes(SMime.split_headers(data)[0])

    @staticmethod
    def content_type(data: bytes) -> str:
        return str(SMime.headers(data).get_content_type())

    @staticmethod
    def parts(data: bytes) -> list[bytes]:
        """The body parts of a multipart entity, byte-exact.

        RFC 2046 §5.1.1: the line break before a delimiter belongs to the delimiter, so a part is
        everything after its delimiter line up to (not including) the CRLF before the next one.
        """
        msg = SMime.headers(data)
        boundary = msg.get_param("boundary")
        assert boundary, f"no boundary parameter in {msg.get('Content-Type')!r}"
        b = re.escape(str(boundary).encode())
        _, body = SMime.split_headers(data)
        # delimiter lines: "--boundary" (or "--boundary--"), optional trailing white space
        delim = re.compile(rb"(?:^|\r?\n)--" + b + rb"(--)?[ \t]*(?:\r?\n|$)")
        out: list[bytes] = []
        start: int | None = None
        for m in delim.finditer(body):
            if start is not None:
                out.append(body[start : m.start()])
            if m.group(1):  # close delimiter
                break
            start = m.end()
        return out

    @staticmethod
    def b64_body(entity: bytes) -> bytes:
        _, body = SMime.split_headers(entity)
        return base64.b64decode(b"".join(body.split()), validate=True)

    @staticmethod
    def split_detached(data: bytes) -> tuple[bytes, bytes]:
        """(signed entity bytes, DER signature) of a multipart/signed message."""
        assert SMime.content_type(data) == "multipart/signed", SMime.split_headers(data)[0]
        parts = SMime.parts(data)
        assert len(parts) == 2, f"multipart/signed has {len(parts)} parts"
        sig_part = parts[1]
        ctype = SMime.content_type(sig_part)
        assert ctype in ("application/pkcs7-signature", "application/x-pkcs7-signature"), ctype
        return parts[0], SMime.b64_body(sig_part)

    @staticmethod
    def opaque_der(data: bytes) -> bytes:
        """The DER CMS of an application/pkcs7-mime message."""
        ctype = SMime.content_type(data)
        assert ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"), ctype
        return SMime.b64_body(data)

    @staticmethod
    def wrap_detached(content: bytes, sig_der: bytes, *, micalg: str = "sha-256") -> bytes:
        """A multipart/signed message around peer-made content + detached DER signature."""
        boundary = b"----=_interop_boundary_42"
        b64 = base64.encodebytes(sig_der).replace(b"\n", b"\r\n")
        return (
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
            b"micalg=" + micalg.encode() + b'; boundary="' + boundary + b'"\r\n'
            b"\r\n"
            b"This is an S/MIME signed message\r\n"
            b"\r\n"
            b"--" + boundary + b"\r\n" + content + b"\r\n"
            b"--" + boundary + b"\r\n"
            b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
            b"\r\n" + b64 + b"\r\n"
            b"--" + boundary + b"--\r\n"
        )

    @staticmethod
    def wrap_opaque(der: bytes) -> bytes:
        """An application/pkcs7-mime; smime-type=signed-data message around DER CMS."""
        b64 = base64.encodebytes(der).replace(b"\n", b"\r\n")
        return (
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="smime.p7m"\r\n'
            b"\r\n" + b64
        )

    @staticmethod
    def wrap_pkcs7(der: bytes, smime_type: str, *, headers: bytes = b"") -> bytes:
        """An application/pkcs7-mime message around peer-made DER CMS, after ``headers``
        (CRLF-terminated transport header fields such as From/To/Subject)."""
        b64 = base64.encodebytes(der).replace(b"\n", b"\r\n")
        return (
            headers + b"MIME-Version: 1.0\r\n"
            b"Content-Type: application/pkcs7-mime; smime-type=" + smime_type.encode() + b"; "
            b'name="smime.p7m"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="smime.p7m"\r\n'
            b"\r\n" + b64
        )

    @staticmethod
    def signer_infos(der: bytes) -> list[Any]:
        """The asn1crypto SignerInfo objects of a DER SignedData ContentInfo."""
        ci = cms.ContentInfo.load(der)
        assert ci["content_type"].native == "signed_data", ci["content_type"].native
        return list(ci["content"]["signer_infos"])

    @staticmethod
    def signed_attr(signer_info: Any, name: str) -> Any | None:
        """The first value of signed attribute ``name`` (asn1crypto name or dotted OID)."""
        attrs = signer_info["signed_attrs"]
        if not attrs:
            return None
        for attr in attrs:
            if name in (attr["type"].native, attr["type"].dotted):
                return attr["values"][0]
        return None

    @staticmethod
    def tamper(data: bytes, old: bytes = b"Hello from", new: bytes = b"Hallo from") -> bytes:
        """Change signed content in place (same length, so structure stays intact)."""
        assert old in data, f"{old!r} not in the data to tamper with"
        return data.replace(old, new, 1)

    @staticmethod
    def tamper_base64(data: bytes) -> bytes:
        """Change opaque signed content inside a base64 application/pkcs7-mime body."""
        head, _ = SMime.split_headers(data)
        der = SMime.opaque_der(data)
        assert b"Hello from" in der, "content not found in the DER (not opaque?)"
        der = der.replace(b"Hello from", b"Hallo from", 1)
        return head + base64.encodebytes(der).replace(b"\n", b"\r\n")


@pytest.fixture(scope="session")
def smime() -> type[SMime]:
    return SMime


# ---------------------------------------------------------------------------------------------
# mailseal CLI


@dataclass
class Verdict:
    """What ``mailseal verify --json`` said."""

    proc: subprocess.CompletedProcess[bytes]
    report: dict[str, Any] | None
    content: bytes | None

    @property
    def rc(self) -> int:
        return self.proc.returncode

    @property
    def status(self) -> str | None:
        return None if self.report is None else self.report.get("status")

    @property
    def signers(self) -> list[dict[str, Any]]:
        if self.report is None:
            return []
        return list(self.report.get("signers") or [])

    def explain(self) -> str:
        return describe(self.proc)


@dataclass
class Opened:
    """What ``mailseal decrypt`` or ``mailseal open --json`` did."""

    proc: subprocess.CompletedProcess[bytes]
    report: dict[str, Any] | None
    content: bytes | None
    out_path: Path | None

    @property
    def rc(self) -> int:
        return self.proc.returncode

    @property
    def err(self) -> str:
        return self.proc.stderr.decode("utf-8", "replace")

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list((self.report or {}).get("layers") or [])

    @property
    def kinds(self) -> list[str]:
        return [layer.get("kind", "?") for layer in self.layers]

    def explain(self) -> str:
        return describe(self.proc)

    def assert_clean_error(self) -> None:
        """Exit 2, one line on stderr naming the problem, no traceback, no output file."""
        assert self.rc == 2, "expected exit 2" + self.explain()
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, "expected one line on stderr" + self.explain()
        assert lines[0].startswith("mailseal: error: "), self.explain()
        assert "Traceback" not in self.err and "internal error" not in self.err, self.explain()
        if self.out_path is not None:
            assert not self.out_path.exists(), "a failed run left an output file" + self.explain()


def _ident_args(identities: Sequence[HasIdentity]) -> list[str | Path]:
    args: list[str | Path] = []
    for ident in identities:
        args += ["--cert", ident.cert, "--key", ident.key]
    return args


@dataclass
class Mailseal:
    """Runs the mailseal CLI as a subprocess, like a user would."""

    workdir: Path
    trust: Path
    chain: Path
    cmd: list[str]
    _n: Iterator[int] = field(default_factory=itertools.count)
    _cache: dict[tuple[Any, ...], bytes] = field(default_factory=dict)

    def path(self, suffix: str) -> Path:
        return self.workdir / f"m{next(self._n):03d}{suffix}"

    def run(
        self,
        *args: str | Path,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """The CLI with ``args``; ``env`` entries are added to this process's environment."""
        full_env = {**os.environ, **env} if env else None
        return run([*self.cmd, *args], input=input, cwd=self.workdir, env=full_env)

    def sign(
        self,
        signers: HasIdentity | Sequence[HasIdentity],
        content: bytes = MSG,
        *extra: str | Path,
        chain: bool = True,
    ) -> bytes:
        """Sign ``content`` with one or more identities; returns the S/MIME output bytes.

        Results are cached per (signers, content, options) for the session: RSA/ECDSA
        signatures are randomised or deterministic either way, and no test mutates them.
        """
        idents = [signers] if not isinstance(signers, Sequence) else list(signers)
        key = (tuple(i.stem for i in idents), content, tuple(str(e) for e in extra), chain)
        if key in self._cache:
            return self._cache[key]
        src, out = self.path(".in"), self.path(".eml")
        src.write_bytes(content)
        args: list[str | Path] = ["sign", "-i", src, "-o", out]
        for ident in idents:
            args += ["--cert", ident.cert, "--key", ident.key]
        if chain:
            args += ["--chain", self.chain]
        args += list(extra)
        proc = self.run(*args)
        assert proc.returncode == 0, "mailseal sign failed:" + describe(proc)
        assert out.exists(), "mailseal sign wrote no output file:" + describe(proc)
        data = out.read_bytes()
        self._cache[key] = data
        return data

    def verify(
        self,
        data: bytes,
        *extra: str | Path,
        trust: Path | None = None,
        want_content: bool = True,
    ) -> Verdict:
        """``mailseal verify --json`` on ``data`` (MIME or raw DER CMS), trusting ``trust``
        (default: the session root)."""
        src = self.path(".msg")
        src.write_bytes(data)
        args: list[str | Path] = ["verify", "-i", src, "--json", "--trust", trust or self.trust]
        content_out = self.path(".content") if want_content else None
        if content_out is not None:
            args += ["-o", content_out]
        args += list(extra)
        proc = self.run(*args)
        report: dict[str, Any] | None
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            report = None
        content = (
            content_out.read_bytes() if content_out is not None and content_out.exists() else None
        )
        return Verdict(proc=proc, report=report, content=content)

    def encrypt(
        self, recipients: Sequence[HasIdentity], content: bytes = MAIL, *extra: str | Path
    ) -> bytes:
        """``mailseal encrypt -q --to ...``; returns the S/MIME output."""
        src, out = self.path(".in"), self.path(".eml")
        src.write_bytes(content)
        args: list[str | Path] = ["encrypt", "-q", "-i", src, "-o", out]
        for r in recipients:
            args += ["--to", r.cert]
        proc = self.run(*args, *extra)
        assert proc.returncode == 0 and out.exists(), "mailseal encrypt failed:" + describe(proc)
        return out.read_bytes()

    def seal(
        self,
        signer: HasIdentity,
        recipients: Sequence[HasIdentity],
        content: bytes = MAIL,
        *extra: str | Path,
    ) -> bytes:
        """``mailseal seal -q`` by ``signer`` (with the session chain) to ``recipients``."""
        src, out = self.path(".in"), self.path(".eml")
        src.write_bytes(content)
        args: list[str | Path] = ["seal", "-q", "-i", src, "-o", out, "--chain", self.chain]
        args += _ident_args([signer])
        for r in recipients:
            args += ["--to", r.cert]
        proc = self.run(*args, *extra)
        assert proc.returncode == 0 and out.exists(), "mailseal seal failed:" + describe(proc)
        return out.read_bytes()

    def decrypt(self, data: bytes, identities: Sequence[HasIdentity], *extra: str | Path) -> Opened:
        """``mailseal decrypt -o FILE`` with the given identities (the report goes to stderr)."""
        src, out = self.path(".msg"), self.path(".dec")
        src.write_bytes(data)
        proc = self.run("decrypt", "-i", src, "-o", out, *_ident_args(identities), *extra)
        content = out.read_bytes() if out.exists() else None
        return Opened(proc=proc, report=None, content=content, out_path=out)

    def open(
        self,
        data: bytes,
        identities: Sequence[HasIdentity] = (),
        *extra: str | Path,
        trust: Path | None = None,
    ) -> Opened:
        """``mailseal open --json -o FILE`` trusting ``trust`` (default: the session root)."""
        src, out = self.path(".msg"), self.path(".open")
        src.write_bytes(data)
        args: list[str | Path] = [
            "open",
            "--json",
            "-i",
            src,
            "-o",
            out,
            "--trust",
            trust or self.trust,
        ]
        proc = self.run(*args, *_ident_args(identities), *extra)
        report: dict[str, Any] | None
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            report = None
        content = out.read_bytes() if out.exists() else None
        return Opened(proc=proc, report=report, content=content, out_path=out)

    def assert_valid(self, v: Verdict, *, signers: int = 1) -> None:
        assert v.rc == 0, "mailseal verify: expected exit 0 (valid)" + v.explain()
        assert v.report is not None, "mailseal verify --json printed no JSON" + v.explain()
        assert v.status == "valid", v.explain()
        assert len(v.signers) == signers, v.explain()
        for s in v.signers:
            assert s.get("status") == "valid", v.explain()
            assert s.get("intact") is True, v.explain()
            assert s.get("trusted") is True, v.explain()

    def assert_status(self, v: Verdict, status: str, *, rc: int = 1) -> None:
        assert v.report is not None, "mailseal verify --json printed no JSON" + v.explain()
        assert v.rc == rc, f"mailseal verify: expected exit {rc}" + v.explain()
        assert v.status == status, f"expected status {status!r}" + v.explain()


def _mailseal_cmd() -> list[str]:
    if importlib.util.find_spec("mailseal.__main__") is not None:
        return [sys.executable, "-m", "mailseal"]
    # no __main__ yet: call the console-script entry point (pyproject: mailseal.cli.main:main)
    return [
        sys.executable,
        "-c",
        "import sys; from mailseal.cli.main import main; sys.exit(main())",
    ]


@pytest.fixture(scope="session")
def mailseal(
    tmp_path_factory: pytest.TempPathFactory, trust_pem: Path, chain_pem: Path
) -> Mailseal:
    """The mailseal CLI, with the session PKI's root as default trust anchor."""
    if importlib.util.find_spec("mailseal.cli") is None or (
        importlib.util.find_spec("mailseal.cli.main") is None
    ):
        pytest.fail("mailseal CLI not importable: mailseal.cli.main is missing", pytrace=False)
    return Mailseal(
        workdir=tmp_path_factory.mktemp("mailseal"),
        trust=trust_pem,
        chain=chain_pem,
        cmd=_mailseal_cmd(),
    )


# ---------------------------------------------------------------------------------------------
# peers


@dataclass
class Peer:
    """A peer tool set up in its own directory, with a per-call file name generator."""

    workdir: Path
    bins: dict[str, str]
    env: dict[str, str] | None = None
    _n: Iterator[int] = field(default_factory=itertools.count)

    def path(self, suffix: str) -> Path:
        return self.workdir / f"p{next(self._n):03d}{suffix}"

    def write(self, data: bytes, suffix: str) -> Path:
        p = self.path(suffix)
        p.write_bytes(data)
        return p

    def run(
        self, *args: str | Path, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        tool = str(args[0])
        return run(
            [self.bins.get(tool, tool), *args[1:]], input=input, env=self.env, cwd=self.workdir
        )


@pytest.fixture(scope="session")
def openssl(tmp_path_factory: pytest.TempPathFactory, require_peer: Any) -> Peer:
    bins = require_peer("openssl")
    return Peer(workdir=tmp_path_factory.mktemp("openssl"), bins=bins)


GPGSM_PASS = b"test"


@dataclass
class Gpgsm(Peer):
    """gpgsm with a throwaway GNUPGHOME (see gpgsm.sh)."""

    def batch(
        self, *args: str | Path, passphrase: bool = False
    ) -> subprocess.CompletedProcess[bytes]:
        if passphrase:
            return self.run(
                "gpgsm",
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                "0",
                *args,
                input=GPGSM_PASS + b"\n",
            )
        return self.run("gpgsm", "--batch", *args)

    def verify(self, sig: Path, content: Path | None = None) -> GpgsmResult:
        args: list[str | Path] = ["--status-fd", "1"]
        out: Path | None = None
        if content is None:
            out = self.path(".out")
            args += ["--output", out, "--verify", sig]
        else:
            args += ["--verify", sig, content]
        proc = self.batch(*args)
        return GpgsmResult(proc, out.read_bytes() if out is not None and out.exists() else None)


@dataclass
class GpgsmResult:
    proc: subprocess.CompletedProcess[bytes]
    content: bytes | None

    def count(self, keyword: str) -> int:
        return len(re.findall(rb"^\[GNUPG:\] " + keyword.encode() + rb"\b", self.proc.stdout, re.M))

    @property
    def good(self) -> int:
        return self.count("GOODSIG")

    @property
    def bad(self) -> int:
        return self.count("BADSIG")

    @property
    def trusted(self) -> int:
        return self.count("TRUST_FULLY")

    def explain(self) -> str:
        return describe(self.proc)


def _sha1_colon_fingerprint(pem: bytes) -> str:
    fp = x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA1())
    return ":".join(f"{b:02X}" for b in fp)


@pytest.fixture(scope="session")
def gpgsm(
    tmp_path_factory: pytest.TempPathFactory,
    require_peer: Any,
    pki: TestPKI,
    pki_dir: Path,
    bob: HasIdentity,
) -> Iterator[Gpgsm]:
    """gpgsm with the session root in trustlist.txt, CRL checks off, bob's key imported.

    gpgsm 2.2 reads only the legacy PKCS#12 encryption (3DES + SHA-1 MAC), hence legacy=True.
    The agent of this GNUPGHOME is killed at teardown.
    """
    bins = require_peer("gpgsm")
    work = tmp_path_factory.mktemp("gpgsm")
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    (home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-policy-checks\n")
    (home / "trustlist.txt").write_text(f"{_sha1_colon_fingerprint(pki.root.cert_pem)} S\n")
    env = {**os.environ, "GNUPGHOME": str(home)}
    g = Gpgsm(workdir=work, bins=bins, env=env)
    try:
        proc = g.batch("--import", pki_dir / "root.pem", pki_dir / "chain.pem")
        assert proc.returncode == 0, describe(proc)
        p12 = work / "bob.p12"
        p12.write_bytes(bob.issued.pkcs12(GPGSM_PASS, legacy=True, chain=pki.chain))
        proc = g.batch("--import", p12, passphrase=True)
        assert proc.returncode == 0, "gpgsm could not import bob's PKCS#12" + describe(proc)
        yield g
    finally:
        run([bins["gpgconf"], "--kill", "all"], env=env)


@dataclass
class Nss(Peer):
    """An NSS database (sql:) driven by certutil / cmsutil / pk12util (see nss-cmsutil.sh)."""

    db: str = ""

    def decode(self, cms: Path, content: Path | None = None) -> NssResult:
        """``cmsutil -D -n -h 2``: the verdict is in ``signerN.status=`` (the exit code is 0 even
        for a bad signature). For opaque input a second ``cmsutil -D -o`` recovers the content
        (with ``-o`` the ``-h`` report would go into the output file)."""
        args: list[str | Path] = ["cmsutil", "-D", "-d", self.db, "-i", cms, "-n", "-h", "2"]
        if content is not None:
            args += ["-c", content]
        proc = self.run(*args)
        recovered: bytes | None = None
        if content is None:
            out = self.path(".out")
            self.run("cmsutil", "-D", "-d", self.db, "-i", cms, "-o", out)
            recovered = out.read_bytes() if out.exists() else None
        return NssResult(proc, recovered)


@dataclass
class NssResult:
    proc: subprocess.CompletedProcess[bytes]
    content: bytes | None

    @property
    def statuses(self) -> list[str]:
        found = re.findall(rb"signer(\d+)\.status=([A-Za-z]+)", self.proc.stdout)
        return [s.decode() for _, s in sorted(found, key=lambda t: int(t[0]))]

    def explain(self) -> str:
        return describe(self.proc)


NSS_P12_PASS = b"test"


def _nss_db(work: Path, bins: dict[str, str], *, trust: Sequence[tuple[str, Path]]) -> Nss:
    work.mkdir(parents=True, exist_ok=True)
    (work / "db").mkdir()
    n = Nss(workdir=work, bins=bins, db=f"sql:{work / 'db'}")
    proc = n.run("certutil", "-N", "-d", n.db, "--empty-password")
    assert proc.returncode == 0, describe(proc)
    for nick, pem in trust:
        proc = n.run("certutil", "-A", "-d", n.db, "-n", nick, "-t", "C,C,C", "-i", pem)
        assert proc.returncode == 0, describe(proc)
    return n


@pytest.fixture(scope="session")
def nss(
    tmp_path_factory: pytest.TempPathFactory,
    require_peer: Any,
    pki: TestPKI,
    pki_dir: Path,
    bob: HasIdentity,
    carol: HasIdentity,
) -> Nss:
    """NSS database trusting the session root, with bob (RSA) and carol (P-256) as own keys."""
    bins = require_peer("nss")
    n = _nss_db(
        tmp_path_factory.mktemp("nss"), bins, trust=[("mailseal Test Root", pki_dir / "root.pem")]
    )
    for ident in (bob, carol):
        p12 = n.path(".p12")
        p12.write_bytes(ident.issued.pkcs12(NSS_P12_PASS, chain=pki.chain))
        proc = n.run("pk12util", "-i", p12, "-d", n.db, "-W", NSS_P12_PASS.decode(), "-K", "")
        assert proc.returncode == 0, f"pk12util could not import {ident.stem}" + describe(proc)
    return n


@pytest.fixture(scope="session")
def nss_other(tmp_path_factory: pytest.TempPathFactory, require_peer: Any, pki_dir: Path) -> Nss:
    """NSS database that trusts only an unrelated root (the wrong trust anchor)."""
    bins = require_peer("nss")
    return _nss_db(
        tmp_path_factory.mktemp("nss-other"),
        bins,
        trust=[("Other Test Root", pki_dir / "other-root.pem")],
    )


# ---------------------------------------------------------------------------------------------
# encryption: helpers for the encrypt/decrypt/seal/open interop tests (test_encrypt_*.py)

# dotted OIDs the encryption tests look for in CMS structures
OID_ENVELOPED = "1.2.840.113549.1.7.3"
OID_AUTH_ENVELOPED = "1.2.840.113549.1.9.16.1.23"
OID_CIPHER = {
    "aes-128-cbc": "2.16.840.1.101.3.4.1.2",
    "aes-192-cbc": "2.16.840.1.101.3.4.1.22",
    "aes-256-cbc": "2.16.840.1.101.3.4.1.42",
    "aes-128-gcm": "2.16.840.1.101.3.4.1.6",
    "aes-192-gcm": "2.16.840.1.101.3.4.1.26",
    "aes-256-gcm": "2.16.840.1.101.3.4.1.46",
}
OID_RSA_PKCS1 = "1.2.840.113549.1.1.1"
OID_RSA_OAEP = "1.2.840.113549.1.1.7"
# RFC 5753 §7.1.4 (SEC 1): dhSinglePass-stdDH-sha*kdf-scheme, cofactor variants, SHA-1 (X9.63)
OID_ECDH = {
    "sha1": "1.3.133.16.840.63.0.2",
    "sha224": "1.3.132.1.11.0",
    "sha256": "1.3.132.1.11.1",
    "sha384": "1.3.132.1.11.2",
    "sha512": "1.3.132.1.11.3",
    "cofactor-sha256": "1.3.132.1.14.1",
}
OID_WRAP = {
    16: "2.16.840.1.101.3.4.1.5",
    24: "2.16.840.1.101.3.4.1.25",
    32: "2.16.840.1.101.3.4.1.45",
}


@dataclass(frozen=True)
class RecipientView:
    """One RecipientInfo, as the tests see it."""

    kind: str  # "ktri" or "kari"
    algorithm: str  # keyEncryptionAlgorithm, dotted
    rids: tuple[str, ...]  # "issuer_and_serial_number" / "subject_key_identifier" / ...
    serials: tuple[int, ...]  # serial numbers named by issuerAndSerialNumber
    wrap: str | None = None  # kari: the key wrap algorithm, dotted


@dataclass(frozen=True)
class EnvelopeView:
    """The outside of an EnvelopedData / AuthEnvelopedData (read with asn1crypto)."""

    content_type: str  # dotted
    cipher: str  # content encryption algorithm, dotted
    recipients: tuple[RecipientView, ...]
    ber: bool  # indefinite-length outer encoding (the streaming form)

    @property
    def authenticated(self) -> bool:
        return self.content_type == OID_AUTH_ENVELOPED


class Envelopes:
    """Reading and damaging encrypted CMS, independent of the mailseal code under test."""

    OID_ENVELOPED = OID_ENVELOPED
    OID_AUTH_ENVELOPED = OID_AUTH_ENVELOPED
    OID_CIPHER = OID_CIPHER
    OID_RSA_PKCS1 = OID_RSA_PKCS1
    OID_RSA_OAEP = OID_RSA_OAEP
    OID_ECDH = OID_ECDH
    OID_WRAP = OID_WRAP

    @staticmethod
    def der(data: bytes) -> bytes:
        """The DER/BER of a pkcs7-mime message, or ``data`` itself when it is raw CMS."""
        if data[:1] == b"\x30":
            return data
        return SMime.b64_body(data)

    @staticmethod
    def view(data: bytes) -> EnvelopeView:
        der = Envelopes.der(data)
        ci = cms.ContentInfo.load(der)
        ctype = ci["content_type"].dotted
        env = ci["content"]
        eci_name = (
            "auth_encrypted_content_info"
            if ctype == OID_AUTH_ENVELOPED
            else "encrypted_content_info"
        )
        cipher = env[eci_name]["content_encryption_algorithm"]["algorithm"].dotted
        recips: list[RecipientView] = []
        for ri in env["recipient_infos"]:
            chosen = ri.chosen
            alg = chosen["key_encryption_algorithm"]["algorithm"].dotted
            if ri.name == "ktri":
                rid = chosen["rid"]
                serials = (
                    (rid.chosen["serial_number"].native,)
                    if rid.name == "issuer_and_serial_number"
                    else ()
                )
                recips.append(RecipientView("ktri", alg, (rid.name,), serials))
            elif ri.name == "kari":
                rids: list[str] = []
                kari_serials: list[int] = []
                for rek in chosen["recipient_encrypted_keys"]:
                    rid = rek["rid"]
                    rids.append(rid.name)
                    if rid.name == "issuer_and_serial_number":
                        kari_serials.append(rid.chosen["serial_number"].native)
                params = chosen["key_encryption_algorithm"]["parameters"]
                wrap = (
                    params.parse(cms.KeyEncryptionAlgorithm)["algorithm"].dotted
                    if params.contents
                    else None
                )
                recips.append(RecipientView("kari", alg, tuple(rids), tuple(kari_serials), wrap))
            else:
                recips.append(RecipientView(ri.name, alg, (), ()))
        return EnvelopeView(ctype, cipher, tuple(recips), ber=der[1:2] == b"\x80")

    @staticmethod
    def _rewrap(original: bytes, der: bytes) -> bytes:
        if original[:1] == b"\x30":
            return der
        head, _ = SMime.split_headers(original)
        return head + base64.encodebytes(der).replace(b"\n", b"\r\n")

    @staticmethod
    def ciphertext(data: bytes) -> bytes:
        """The encrypted content (constructed OCTET STRINGs joined)."""
        ci = cms.ContentInfo.load(Envelopes.der(data))
        env = ci["content"]
        eci = env[
            "auth_encrypted_content_info"
            if ci["content_type"].dotted == OID_AUTH_ENVELOPED
            else "encrypted_content_info"
        ]
        return bytes(eci["encrypted_content"].native)

    @staticmethod
    def flip(data: bytes, where: str, *, block: int = 1, bit: int = 0, byte: int = 0) -> bytes:
        """Flip one bit of an encrypted message (MIME or raw CMS; the result has the same form).

        ``where="ciphertext"``: bit ``bit`` of byte ``byte`` of ciphertext block ``block``
        (16-byte AES blocks, negative counts from the end); ``where="tag"``: of the GCM tag.
        The bytes are located in the encoding by search, so the result keeps its structure.
        """
        der = bytearray(Envelopes.der(data))
        if where == "tag":
            ci = cms.ContentInfo.load(bytes(der))
            assert ci["content_type"].dotted == OID_AUTH_ENVELOPED, "no tag outside GCM"
            needle = bytes(ci["content"]["mac"].native)
        else:
            ct = Envelopes.ciphertext(bytes(der))
            k = block % (len(ct) // 16)
            needle = ct[k * 16 : k * 16 + 16]
        assert der.count(needle) == 1, "the bytes to flip are not unique in the encoding"
        at = der.find(needle) + byte
        der[at] ^= 1 << bit
        return Envelopes._rewrap(data, bytes(der))


@pytest.fixture(scope="session")
def envelopes() -> type[Envelopes]:
    return Envelopes


@pytest.fixture(scope="session")
def dave(make_ident: Any) -> HasIdentity:
    """ECDSA P-384, signing + key agreement (ECDH with the SHA-384 KDF)."""
    return make_ident("dave-p384", email="dave@example.org", key_type="p384")  # type: ignore[no-any-return]


@dataclass
class GpgsmHome(Gpgsm):
    """A gpgsm home of its own holding one person's key (``key_import`` says how that went)."""

    owner: str = ""
    key_import: subprocess.CompletedProcess[bytes] | None = None

    @property
    def has_key(self) -> bool:
        return self.key_import is not None and self.key_import.returncode == 0

    def decrypt(self, der: bytes) -> tuple[subprocess.CompletedProcess[bytes], bytes | None]:
        """``gpgsm --decrypt``: (process, plaintext or None).

        Success is gpgsm's ``DECRYPTION_OKAY`` status line, not its exit code: gpgsm 2.2 exits 2
        after decrypting correctly when an earlier RecipientInfo named a certificate it knows
        without the key (NO_SECKEY), as in any message to several people it knows."""
        src, out = self.write(der, ".p7m"), self.path(".dec")
        proc = self.batch("--status-fd", "1", "--output", out, "--decrypt", src, passphrase=True)
        ok = b"[GNUPG:] DECRYPTION_OKAY" in proc.stdout and out.exists()
        return proc, (out.read_bytes() if ok else None)

    def encrypt(
        self, content: bytes, recipients: Sequence[str], *opts: str
    ) -> tuple[subprocess.CompletedProcess[bytes], bytes | None]:
        """``gpgsm --encrypt`` (DER output) to the addresses given."""
        src, out = self.write(content, ".txt"), self.path(".p7m")
        args: list[str | Path] = [*opts]
        for r in recipients:
            args += ["-r", r]
        proc = self.run("gpgsm", "--batch", *args, "--output", out, "--encrypt", src, input=b"")
        return proc, (out.read_bytes() if proc.returncode == 0 and out.exists() else None)

    def sign(self, content: bytes, *, opaque: bool) -> bytes:
        src, out = self.write(content, ".txt"), self.path(".p7m" if opaque else ".p7s")
        mode = "--sign" if opaque else "--detach-sign"
        proc = self.batch(
            "-u", self.owner, "--include-certs", "-1", mode, "--output", out, src, passphrase=True
        )
        assert proc.returncode == 0 and out.exists(), describe(proc)
        return out.read_bytes()


@pytest.fixture(scope="session")
def gpgsm_keys(
    tmp_path_factory: pytest.TempPathFactory,
    require_peer: Any,
    pki: TestPKI,
    pki_dir: Path,
    alice: HasIdentity,
    bob: HasIdentity,
    carol: HasIdentity,
    dave: HasIdentity,
) -> Iterator[Any]:
    """Factory: ``gpgsm_keys(bob)`` -> a GpgsmHome of its own (root in trustlist.txt, CRL checks
    off, the certificates of alice/bob/carol/dave imported) holding ``owner``'s key from a legacy
    PKCS#12 (gpgsm 2.2 reads no other). Cached per owner; every agent is killed at teardown."""
    bins = require_peer("gpgsm")
    people = {i.stem: i for i in (alice, bob, carol, dave)}
    homes: dict[str, GpgsmHome] = {}

    def make(owner: HasIdentity) -> GpgsmHome:
        if owner.stem in homes:
            return homes[owner.stem]
        work = tmp_path_factory.mktemp(f"gpgsm-{owner.stem}")
        home = work / "gnupg"
        home.mkdir(mode=0o700)
        # s2k-count: the agent's default calibration costs ~0.5 s per key use (throwaway keys)
        (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\ns2k-count 65536\n")
        (home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-policy-checks\n")
        (home / "trustlist.txt").write_text(f"{_sha1_colon_fingerprint(pki.root.cert_pem)} S\n")
        env = {**os.environ, "GNUPGHOME": str(home)}
        g = GpgsmHome(workdir=work, bins=bins, env=env, owner=owner.email)
        homes[owner.stem] = g
        certs = [pki_dir / "root.pem", pki_dir / "chain.pem"]
        certs += [p.cert for p in people.values()]
        proc = g.batch("--import", *certs)
        assert proc.returncode == 0, describe(proc)
        p12 = work / f"{owner.stem}.p12"
        p12.write_bytes(owner.issued.pkcs12(GPGSM_PASS, legacy=True, chain=pki.chain))
        g.key_import = g.batch("--import", p12, passphrase=True)
        return g

    try:
        yield make
    finally:
        for g in homes.values():
            run([bins["gpgconf"], "--kill", "all"], env=g.env)


@dataclass
class NssDb(Nss):
    """An NSS database holding some people's keys and the others' certificates."""

    def decrypt(self, der: bytes) -> tuple[subprocess.CompletedProcess[bytes], bytes | None]:
        """``cmsutil -D -o``: the decrypted content, or None (NSS exits 1 on failure)."""
        src, out = self.write(der, ".p7m"), self.path(".dec")
        proc = self.run("cmsutil", "-D", "-d", self.db, "-i", src, "-o", out)
        return proc, (out.read_bytes() if proc.returncode == 0 and out.exists() else None)

    def envelope(
        self, content: bytes, recipients: Sequence[str]
    ) -> tuple[subprocess.CompletedProcess[bytes], bytes | None]:
        """``cmsutil -E -r a,b``: EnvelopedData (DER) to the addresses given."""
        src, out = self.write(content, ".txt"), self.path(".p7m")
        proc = self.run(
            "cmsutil", "-E", "-d", self.db, "-r", ",".join(recipients), "-i", src, "-o", out
        )
        return proc, (out.read_bytes() if proc.returncode == 0 and out.exists() else None)

    def sign(self, content: bytes, signer: str, *, opaque: bool) -> bytes:
        """``cmsutil -S`` (-G signingTime, -P SMIMECapabilities, -T detached)."""
        src, out = self.write(content, ".txt"), self.path(".p7m" if opaque else ".p7s")
        args: list[str | Path] = ["cmsutil", "-S", "-d", self.db, "-N", signer, "-G", "-P"]
        args += ["-H", "SHA256", "-i", src, "-o", out]
        if not opaque:
            args.append("-T")
        proc = self.run(*args)
        assert proc.returncode == 0 and out.exists(), describe(proc)
        return out.read_bytes()


@pytest.fixture(scope="session")
def nss_keys(
    tmp_path_factory: pytest.TempPathFactory,
    require_peer: Any,
    pki: TestPKI,
    pki_dir: Path,
    alice: HasIdentity,
    bob: HasIdentity,
    carol: HasIdentity,
    dave: HasIdentity,
) -> Any:
    """Factory: ``nss_keys(alice, bob)`` -> an NssDb trusting the session root, holding the keys
    of the people given and the certificates of the rest of alice/bob/carol/dave. Cached."""
    bins = require_peer("nss")
    people = [alice, bob, carol, dave]
    dbs: dict[tuple[str, ...], NssDb] = {}

    def make(*owners: HasIdentity) -> NssDb:
        key = tuple(sorted(o.stem for o in owners))
        if key in dbs:
            return dbs[key]
        work = tmp_path_factory.mktemp("nss-" + "-".join(key))
        (work / "db").mkdir()
        n = NssDb(workdir=work, bins=bins, db=f"sql:{work / 'db'}")
        proc = n.run("certutil", "-N", "-d", n.db, "--empty-password")
        assert proc.returncode == 0, describe(proc)
        proc = n.run(
            "certutil",
            "-A",
            "-d",
            n.db,
            "-n",
            "mailseal Test Root",
            "-t",
            "C,C,C",
            "-i",
            pki_dir / "root.pem",
        )
        assert proc.returncode == 0, describe(proc)
        for person in people:
            if person.stem in key:
                p12 = n.path(".p12")
                p12.write_bytes(person.issued.pkcs12(NSS_P12_PASS, chain=pki.chain))
                proc = n.run(
                    "pk12util", "-i", p12, "-d", n.db, "-W", NSS_P12_PASS.decode(), "-K", ""
                )
            else:
                proc = n.run(
                    "certutil", "-A", "-d", n.db, "-n", person.stem, "-t", ",,", "-i", person.cert
                )
            assert proc.returncode == 0, f"NSS import of {person.stem} failed" + describe(proc)
        dbs[key] = n
        return n

    return make


@pytest.fixture(scope="session")
def openssl_envelope(openssl: Peer) -> Any:
    """``openssl_envelope(content, [idents], "aes-256-gcm", *keyopts, keyid=False)`` -> DER
    EnvelopedData/AuthEnvelopedData made by OpenSSL: the reference a peer is also given when it
    fails on mailseal's output, to tell a peer limit from a mailseal bug."""

    def make(
        content: bytes,
        recipients: Sequence[HasIdentity],
        cipher: str,
        *keyopts: str,
        keyid: bool = False,
    ) -> bytes:
        src, out = openssl.write(content, ".txt"), openssl.path(".p7m")
        args: list[str | Path] = ["openssl", "cms", "-encrypt", "-binary", f"-{cipher}"]
        args += ["-in", src, "-outform", "DER", "-out", out]
        if keyid:
            args.append("-keyid")
        for r in recipients:
            args += ["-recip", r.cert, *keyopts]
        proc = openssl.run(*args)
        assert proc.returncode == 0 and out.exists(), describe(proc)
        return out.read_bytes()

    return make
