"""Fixtures shared by every test: a throwaway test PKI and a few identities written as PEM files.

Nothing here is committed key material: the PKI is generated once per test session with fresh
keys (``mailseal.pki.testpki``) and written under pytest's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import settings

from mailseal.pki.testpki import Issued, TestPKI, write_identity

# Property tests explore new inputs on every local run; in CI they replay a fixed sequence so
# that a run passes or fails for the code, not for the draw.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _own_cert_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets an empty certificate cache: the command line keeps CA certificates of
    validated paths under ``$MAILSEAL_CERT_CACHE``, and one test must not learn from another."""
    monkeypatch.setenv("MAILSEAL_CERT_CACHE", str(tmp_path_factory.mktemp("cert-cache")))


# The binaries each peer needs (NSS is three tools from libnss3-tools).
PEER_BINARIES: dict[str, tuple[str, ...]] = {
    "openssl": ("openssl",),
    "gpgsm": ("gpgsm", "gpgconf"),
    "nss": ("cmsutil", "certutil", "pk12util"),
    "cmsutil": ("cmsutil",),
    "certutil": ("certutil",),
    "pk12util": ("pk12util",),
}


def require_peer(name: str) -> dict[str, str]:
    """Paths of the binaries of peer ``name`` (a key of PEER_BINARIES or a binary name).

    A missing binary skips the test, or fails it when MAILSEAL_REQUIRE_PEERS=1 (``make interop``
    sets it, so CI cannot pass by skipping every interop test).
    """
    found: dict[str, str] = {}
    missing: list[str] = []
    for binary in PEER_BINARIES.get(name, (name,)):
        path = shutil.which(binary)
        if path is None:
            missing.append(binary)
        else:
            found[binary] = path
    if missing:
        msg = f"interop peer {name!r} not installed (missing: {', '.join(missing)})"
        if os.environ.get("MAILSEAL_REQUIRE_PEERS") == "1":
            pytest.fail(msg + " and MAILSEAL_REQUIRE_PEERS=1", pytrace=False)
        pytest.skip(msg)
    return found


@pytest.fixture(name="require_peer", scope="session")
def require_peer_fixture() -> Callable[[str], dict[str, str]]:
    """The :func:`require_peer` helper, for tests that prefer a fixture to an import."""
    return require_peer


@dataclass(frozen=True)
class Ident:
    """An identity on disk: certificate and unencrypted key as PEM files."""

    stem: str
    email: str
    issued: Issued
    cert: Path
    key: Path

    def pkcs12_file(
        self,
        dirpath: Path,
        password: bytes,
        *,
        legacy: bool = False,
        chain: Sequence[x509.Certificate] = (),
    ) -> Path:
        """Write the identity (and ``chain``) as a PKCS#12 file in ``dirpath``."""
        path = dirpath / f"{self.stem}{'-legacy' if legacy else ''}.p12"
        path.write_bytes(self.issued.pkcs12(password, legacy=legacy, chain=chain))
        return path


@pytest.fixture(scope="session")
def pki() -> TestPKI:
    """Root CA + issuing CA (RSA-2048), valid for the session."""
    return TestPKI.create("mailseal Test")


@pytest.fixture(scope="session")
def other_pki() -> TestPKI:
    """An unrelated CA: trusting it instead of ``pki`` must make every signature untrusted."""
    return TestPKI.create("Other Test", with_intermediate=False)


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI, other_pki: TestPKI) -> Path:
    """Directory with ``root.pem`` (trust anchor), ``chain.pem`` (intermediates) and
    ``other-root.pem`` (a wrong trust anchor)."""
    d = tmp_path_factory.mktemp("pki")
    (d / "root.pem").write_bytes(pki.trust_pem())
    (d / "chain.pem").write_bytes(pki.chain_pem())
    (d / "other-root.pem").write_bytes(other_pki.trust_pem())
    return d


@pytest.fixture(scope="session")
def trust_pem(pki_dir: Path) -> Path:
    return pki_dir / "root.pem"


@pytest.fixture(scope="session")
def chain_pem(pki_dir: Path) -> Path:
    return pki_dir / "chain.pem"


@pytest.fixture(scope="session")
def other_trust_pem(pki_dir: Path) -> Path:
    return pki_dir / "other-root.pem"


@pytest.fixture(scope="session")
def make_ident(pki: TestPKI, pki_dir: Path) -> Callable[..., Ident]:
    """Factory: ``make_ident("dave", key_type="p384", usage="signing", ...)`` -> Ident.

    Keyword arguments go to :meth:`TestPKI.user`; the address is ``<stem>@example.org``
    unless ``email=`` is given (a person's second certificate has a different stem).
    """

    def make(stem: str, *, email: str | None = None, **kwargs: object) -> Ident:
        email = email or f"{stem}@example.org"
        issued = pki.user(email, **kwargs)  # type: ignore[arg-type]
        cert, key = write_identity(pki_dir, stem, issued)
        return Ident(stem=stem, email=email, issued=issued, cert=cert, key=key)

    return make


@pytest.fixture(scope="session")
def alice(make_ident: Callable[..., Ident]) -> Ident:
    """RSA-2048, signing + key transport."""
    return make_ident("alice")


@pytest.fixture(scope="session")
def bob(make_ident: Callable[..., Ident]) -> Ident:
    """RSA-2048, signing + key transport."""
    return make_ident("bob")


@pytest.fixture(scope="session")
def carol(make_ident: Callable[..., Ident]) -> Ident:
    """ECDSA P-256, signing + key agreement."""
    return make_ident("carol", key_type="p256")


@pytest.fixture(scope="session")
def erin(make_ident: Callable[..., Ident]) -> Ident:
    """Ed25519, signing only."""
    return make_ident("erin", key_type="ed25519", usage="signing")


@pytest.fixture(scope="session")
def alice_enc(make_ident: Callable[..., Ident]) -> Ident:
    """Alice's separate encryption certificate (RSA, keyEncipherment only), same address."""
    return make_ident("alice-enc", email="alice@example.org", usage="encryption")
