"""mailseal.validation.cache: the local cache of CA certificates used for path building."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import mailseal
from mailseal.errors import UsageError
from mailseal.pki.testpki import Issued
from mailseal.validation.cache import (
    MAX_PER_SUBJECT,
    CertificateCache,
    DirectoryCertificateCache,
    MemoryCertificateCache,
    candidates,
)

from ._revpki import CA

Status = mailseal.Status


def _der(cert: object) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def root() -> CA:
    return CA.root("Cache Test Root")


@pytest.fixture(scope="module")
def issuing(root: CA) -> CA:
    return root.sub_ca("Cache Test Issuing CA")


@pytest.fixture(scope="module")
def erin(issuing: CA) -> Issued:
    return issuing.user("erin@example.org")


def _bare_signed(who: Issued) -> bytes:
    """Mail whose signature carries only the signer's certificate (no intermediate)."""
    mail = (
        b"From: erin@example.org\r\nTo: x@example.org\r\nSubject: c\r\n"
        b"Content-Type: text/plain\r\n\r\nhi\r\n"
    )
    return mailseal.sign(mail, mailseal.load_identity(who.cert_pem, who.key_pem))


@pytest.mark.parametrize("kind", ["memory", "directory"])
def test_learns_the_intermediate_of_a_validated_path(
    kind: str, root: CA, issuing: CA, erin: Issued, tmp_path: Path
) -> None:
    cache: CertificateCache = (
        MemoryCertificateCache() if kind == "memory" else DirectoryCertificateCache(tmp_path / "c")
    )
    bare = _bare_signed(erin)
    first = mailseal.Trust([root.cert], cache=cache)
    assert mailseal.verify(bare, trust=first).signers[0].status is Status.UNTRUSTED
    assert cache.by_subject(issuing.cert.subject.public_bytes()) == []
    # a validation that reaches the anchor with the intermediate in hand fills the cache
    taught = mailseal.Trust([root.cert], intermediates=[issuing.cert], cache=cache)
    assert mailseal.verify(bare, trust=taught).valid
    assert cache.by_subject(issuing.cert.subject.public_bytes()) == [_der(issuing.cert)]
    # a later validation (another Trust, as in another process) finds it there
    later = mailseal.Trust([root.cert], cache=cache)
    assert mailseal.verify(bare, trust=later).valid
    # the leaf and the anchor themselves are not cached
    assert cache.by_subject(root.cert.subject.public_bytes()) == []
    if kind == "directory":
        assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700


def test_a_path_to_no_anchor_teaches_nothing(
    root: CA, issuing: CA, erin: Issued, tmp_path: Path
) -> None:
    """Hostile mail cannot fill the cache: only paths that reach a trust anchor are stored."""
    cache = DirectoryCertificateCache(tmp_path)
    stranger = CA.root("Cache Stranger")
    trust = mailseal.Trust([stranger.cert], intermediates=[issuing.cert], cache=cache)
    signed = mailseal.sign(
        b"From: erin@example.org\r\n\r\nhi\r\n",
        mailseal.load_identity(erin.cert_pem, erin.key_pem, chain=[issuing.cert]),
    )
    assert mailseal.verify(signed, trust=trust).signers[0].status is Status.UNTRUSTED
    assert os.listdir(tmp_path) == []


def test_a_cached_certificate_is_only_a_candidate(
    root: CA, issuing: CA, erin: Issued, tmp_path: Path
) -> None:
    """A certificate in the cache does not make anything trusted: the anchors decide."""
    cache = MemoryCertificateCache()
    cache.add([_der(issuing.cert)])
    stranger = CA.root("Cache Stranger 2")
    verdict = mailseal.verify(
        _bare_signed(erin), trust=mailseal.Trust([stranger.cert], cache=cache)
    )
    assert verdict.signers[0].status is Status.UNTRUSTED


def test_only_ca_certificates_are_stored(erin: Issued, issuing: CA, tmp_path: Path) -> None:
    for cache in (MemoryCertificateCache(), DirectoryCertificateCache(tmp_path)):
        assert cache.add([_der(erin.cert), b"garbage", b"\x30\x03\x02\x01\x01"]) == 0
        assert cache.add([_der(issuing.cert), _der(issuing.cert)]) == 1
        assert cache.add([_der(issuing.cert)]) == 0


def test_hostile_cache_directory(issuing: CA, erin: Issued, tmp_path: Path) -> None:
    """Junk, oversized and unreadable files in the directory are skipped, not fatal."""
    cache = DirectoryCertificateCache(tmp_path)
    cache.add([_der(issuing.cert)])
    (name,) = os.listdir(tmp_path)
    prefix = name.split(".")[0]
    (tmp_path / f"{prefix}.junk.der").write_bytes(b"not a certificate")
    (tmp_path / f"{prefix}.huge.der").write_bytes(b"\x30" * (1 << 20))
    (tmp_path / f"{prefix}.dir.der").mkdir()
    found = candidates(cache, erin.cert)
    assert _der(issuing.cert) in found
    assert all(len(d) <= 64 * 1024 for d in found)


def test_missing_or_unwritable_directory(issuing: CA, tmp_path: Path) -> None:
    assert DirectoryCertificateCache(tmp_path / "absent").by_subject(b"x") == []
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    cache = DirectoryCertificateCache(blocked / "below")
    assert cache.add([_der(issuing.cert)]) == 0  # not an error: nothing is cached


def test_subject_bucket_is_bounded(root: CA, tmp_path: Path) -> None:
    cache = DirectoryCertificateCache(tmp_path)
    many = [root.sub_ca("Same Name").cert for _ in range(MAX_PER_SUBJECT + 3)]
    assert cache.add([_der(c) for c in many]) == MAX_PER_SUBJECT
    assert len(cache.by_subject(many[0].subject.public_bytes())) == MAX_PER_SUBJECT


def test_cache_must_be_a_cache() -> None:
    with pytest.raises(UsageError, match="cache"):
        mailseal.Trust([], cache=object())  # type: ignore[arg-type]
