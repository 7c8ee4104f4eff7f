"""The interface through which validation reaches the network (DESIGN.md rule 4).

Validation never opens a socket itself. To fetch CRLs from distribution points, OCSP
responses from responders and issuer certificates from AIA caIssuers URLs, give
:class:`~mailseal.validation.trust.Trust` a :class:`Fetcher`; the command line injects an
HTTP implementation (``mailseal.cli.fetcher``), tests inject fakes. What was fetched is cached
by ``Trust`` until the CRL's or response's nextUpdate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from mailseal.errors import MailsealError

__all__ = ["FetchError", "FetchRequest", "Fetcher"]

FetchKind = Literal["crl", "ocsp", "certificate"]

#: What each kind of request accepts (RFC 5280 §4.2.1.13 and §4.2.2.1, RFC 6960 Appendix A).
ACCEPT: dict[str, str] = {
    "crl": "application/pkix-crl",
    "ocsp": "application/ocsp-response",
    "certificate": "application/pkix-cert, application/pkcs7-mime",
}


class FetchError(MailsealError):
    """A CRL, OCSP response or certificate could not be fetched (network, HTTP status, size).

    Fetchers raise it; validation turns it into "revocation status unknown", never into an
    exception for the caller.
    """


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One HTTP request: a GET, or a POST when ``body`` is set (OCSP, RFC 6960 A.1)."""

    url: str
    kind: FetchKind
    body: bytes | None = None
    content_type: str | None = None
    timeout: float = 10.0
    max_bytes: int = 16 << 20

    @property
    def accept(self) -> str:
        return ACCEPT[self.kind]


@runtime_checkable
class Fetcher(Protocol):
    """Performs a :class:`FetchRequest` and returns the response body, or raises
    :class:`FetchError`. Implementations must honour ``timeout`` and ``max_bytes`` and should
    refuse URL schemes other than http and https."""

    def fetch(self, request: FetchRequest) -> bytes: ...
