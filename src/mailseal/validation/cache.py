"""A local cache of CA certificates for path building.

Mail often arrives without the intermediate CA certificates its signer's chain needs (clients
are told to include them, and many do not). A mail client remembers every intermediate it has
seen; so does mailseal: give :class:`~mailseal.validation.trust.Trust` a
:class:`CertificateCache` and

- before building a path, the issuers of the certificate (and their issuers, up to a bounded
  depth) are looked up in the cache by subject name and offered as candidates;
- after a path has been built **to one of the trust anchors**, the CA certificates on it that
  were not already known (from the message, from ``--intermediate`` files or fetched from AIA)
  are added.

Only certificates on a path that reached an anchor are stored, so hostile mail cannot fill the
cache with junk, and a cached certificate is only ever a candidate: the anchors decide what is
trusted, and every path is validated in full whatever its certificates' origin.

:class:`DirectoryCertificateCache` keeps the cache in a directory, one DER file per
certificate named after the SHA-256 of its subject and of itself (written atomically, mode
0600 in a 0700 directory). The command line uses one under ``$XDG_CACHE_HOME/mailseal`` (see
docs/trust.md).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["CertificateCache", "DirectoryCertificateCache", "MemoryCertificateCache"]

#: Certificates larger than this are not cached (a CA certificate is a few KiB).
MAX_CERT_BYTES = 64 * 1024
#: At most this many certificates share one subject name in the cache.
MAX_PER_SUBJECT = 16
#: Issuers are looked up this many levels above the certificate.
MAX_DEPTH = 8


@runtime_checkable
class CertificateCache(Protocol):
    """Where CA certificates seen on validated paths are kept for later path building."""

    def by_subject(self, subject: bytes) -> list[bytes]:
        """DER certificates whose subject name is the DER-encoded Name ``subject``."""
        ...

    def add(self, certificates: Iterable[bytes]) -> int:
        """Store DER CA certificates; returns how many were new."""
        ...


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bool(bc.ca)


def _subject_key(subject: bytes) -> str:
    return hashlib.sha256(subject).hexdigest()[:40]


class MemoryCertificateCache:
    """A cache for one process (the default of a long-running service without a directory)."""

    def __init__(self) -> None:
        self._by_subject: dict[bytes, dict[bytes, None]] = {}

    def by_subject(self, subject: bytes) -> list[bytes]:
        return list(self._by_subject.get(subject, {}))

    def add(self, certificates: Iterable[bytes]) -> int:
        new = 0
        for der, cert in _cacheable(certificates):
            bucket = self._by_subject.setdefault(cert.subject.public_bytes(), {})
            if der not in bucket and len(bucket) < MAX_PER_SUBJECT:
                bucket[der] = None
                new += 1
        return new


class DirectoryCertificateCache:
    """A cache kept in a directory, shared by every process of the user (created 0700)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _ensure(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def by_subject(self, subject: bytes) -> list[bytes]:
        prefix = _subject_key(subject) + "."
        out: list[bytes] = []
        try:
            names = sorted(p for p in os.listdir(self.directory) if p.startswith(prefix))
        except OSError:
            return out
        for name in names[:MAX_PER_SUBJECT]:
            try:
                with open(self.directory / name, "rb") as fh:
                    data = fh.read(MAX_CERT_BYTES + 1)
            except OSError:
                continue
            if len(data) <= MAX_CERT_BYTES:
                out.append(data)
        return out

    def add(self, certificates: Iterable[bytes]) -> int:
        new = 0
        for der, cert in _cacheable(certificates):
            subject = _subject_key(cert.subject.public_bytes())
            name = f"{subject}.{hashlib.sha256(der).hexdigest()[:40]}.der"
            target = self.directory / name
            if target.exists():
                continue
            try:
                self._ensure()
                if len(self.by_subject(cert.subject.public_bytes())) >= MAX_PER_SUBJECT:
                    continue
                fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(der)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            except OSError:
                # a cache that cannot be written is not an error: the next run fetches again
                continue
            new += 1
        return new


def _cacheable(certificates: Iterable[bytes]) -> Iterator[tuple[bytes, x509.Certificate]]:
    """The DER and parsed form of each cacheable CA certificate among ``certificates``."""
    for der in certificates:
        if len(der) > MAX_CERT_BYTES:
            continue
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        if _is_ca(cert):
            yield der, cert


def candidates(cache: CertificateCache, cert: x509.Certificate) -> list[bytes]:
    """Cached certificates that may lie above ``cert``: its issuers, their issuers, ...
    (by subject name, up to :data:`MAX_DEPTH` levels; self-issued ones end the walk)."""
    out: dict[bytes, None] = {}
    wanted = [cert.issuer.public_bytes()]
    seen: set[bytes] = set()
    for _ in range(MAX_DEPTH):
        nxt: list[bytes] = []
        for subject in wanted:
            if subject in seen:
                continue
            seen.add(subject)
            for der in cache.by_subject(subject):
                if der in out:
                    continue
                out[der] = None
                try:
                    c = x509.load_der_x509_certificate(der)
                except ValueError:
                    continue
                if c.issuer != c.subject:
                    nxt.append(c.issuer.public_bytes())
        if not nxt:
            break
        wanted = nxt
    return list(out)


def to_der(certs: Sequence[x509.Certificate]) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]
