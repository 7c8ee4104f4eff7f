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
