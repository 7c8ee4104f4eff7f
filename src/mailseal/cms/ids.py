"""How CMS names a certificate (RFC 5652 §5.3 SignerIdentifier, §6.2 RecipientIdentifier)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from mailseal._memo import per_object
from mailseal._values import quick_init

__all__ = ["CertId", "SignerId"]


@quick_init
@dataclass(frozen=True, slots=True)
class CertId:
    """A certificate named by issuerAndSerialNumber (issuer Name DER + serial) or by
    subjectKeyIdentifier: how SignerInfos and RecipientInfos point at certificates."""

    issuer_der: bytes | None = None
    serial: int | None = None
    ski: bytes | None = None

    def describe(self) -> str:
        if self.ski is not None:
            return f"subjectKeyIdentifier {self.ski.hex()}"
        return f"issuer+serial {self.serial:x}" if self.serial is not None else "unknown"

    def matches(self, cert: x509.Certificate) -> bool:
        if self.ski is not None:
            ski = _ski_of(cert)
            return ski is not None and ski == self.ski
        issuer, serial = _issuer_serial_of(cert)
        return serial is not None and serial == self.serial and issuer == self.issuer_der

    @classmethod
    def of(cls, cert: x509.Certificate, *, use_ski: bool = False) -> CertId:
        """The identifier of ``cert`` (its SKI extension when ``use_ski``)."""
        if use_ski:
            ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return cls(ski=ext.value.digest)
        return cls(issuer_der=cert.issuer.public_bytes(), serial=cert.serial_number)


#: The name used for signers.
SignerId = CertId


# Kept small: certificates may come from hostile messages, and the cache keeps them alive.
@per_object(maxsize=64)
def _issuer_serial_of(cert: x509.Certificate) -> tuple[bytes | None, int | None]:
    """(issuer DER, serial); (None, None) when the issuer cannot be decoded."""
    try:
        return cert.issuer.public_bytes(), cert.serial_number
    except Exception:  # a certificate whose issuer cannot be decoded
        return None, None


@per_object(maxsize=64)
def _ski_of(cert: x509.Certificate) -> bytes | None:
    """The subjectKeyIdentifier; None when absent or when the extensions cannot be decoded."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except Exception:  # no SKI, or undecodable extensions
        return None
    return bytes(ext.value.digest)
