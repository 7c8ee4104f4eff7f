"""Fixtures for the unit tests: one throwaway test PKI per session and identities made from it.

Nothing here is committed key material; keys are generated fresh by ``mailseal.pki.testpki``.
The names are distinct from the fixtures of ``tests/conftest.py`` on purpose: the unit suite
owns its PKI and does not depend on fixtures maintained elsewhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import mailseal
from mailseal.pki.testpki import Issued, TestPKI


@dataclass(frozen=True)
class Person:
    """An end-entity certificate, its key, and the mailseal Identity made from them."""

    email: str
    issued: Issued
    ident: mailseal.Identity

    @property
    def cert(self) -> x509.Certificate:
        return self.issued.cert


@pytest.fixture(scope="session")
def ca() -> TestPKI:
    """Root + issuing CA for the unit suite."""
    return TestPKI.create("mailseal Unit")


@pytest.fixture(scope="session")
def other_ca() -> TestPKI:
    """An unrelated CA: trusting it instead of ``ca`` makes every signature untrusted."""
    return TestPKI.create("Unrelated Unit", with_intermediate=False)


@pytest.fixture(scope="session")
def trust(ca: TestPKI) -> mailseal.Trust:
    """A reusable Trust in ``ca`` (its cache keeps repeated verifications cheap)."""
    return mailseal.Trust([ca.root.cert])


@pytest.fixture(scope="session")
def person(ca: TestPKI) -> Callable[..., Person]:
    """Factory: ``person("dave@example.org", key_type="p384", usage="signing", **overrides)``.

    Keyword arguments go to :meth:`TestPKI.user`. Results are cached per argument set, so
    asking twice for the same person costs one key generation.
    """
    cache: dict[str, Person] = {}

    def make(email: str, **kwargs: Any) -> Person:
        key = repr((email, sorted(kwargs.items(), key=lambda kv: kv[0])))
        if key not in cache:
            issued = ca.user(email, **kwargs)
            ident = mailseal.load_identity(issued.cert_pem, issued.key_pem, chain=ca.chain)
            cache[key] = Person(email, issued, ident)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def alice(person: Callable[..., Person]) -> Person:
    """RSA-2048, dual use."""
    return person("alice@example.org")


@pytest.fixture(scope="session")
def bob(person: Callable[..., Person]) -> Person:
    """ECDSA P-256, dual use."""
    return person("bob@example.org", key_type="p256")


@pytest.fixture(scope="session")
def weak_rsa(ca: TestPKI) -> Person:
    """An RSA-1024 S/MIME certificate (TestPKI only makes >= 2048, so it is built here)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "weak"),
                    x509.NameAttribute(NameOID.EMAIL_ADDRESS, "weak@example.org"),
                ]
            )
        )
        .issuer_name(ca.issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=5))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("weak@example.org")]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .sign(ca.issuer.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    issued = Issued.of(cert, key)
    ident = mailseal.load_identity(
        cert.public_bytes(serialization.Encoding.PEM), issued.key_pem, chain=ca.chain
    )
    return Person("weak@example.org", issued, ident)
