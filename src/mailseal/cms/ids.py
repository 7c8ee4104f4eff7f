"""How CMS names a certificate (RFC 5652 §5.3 SignerIdentifier, §6.2 RecipientIdentifier)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

__all__ = ["CertId", "SignerId"]


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
        try:
            if self.ski is not None:
                ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
                return bool(ext.value.digest == self.ski)
            return (
                cert.serial_number == self.serial and cert.issuer.public_bytes() == self.issuer_der
            )
        except Exception:  # no SKI, or a certificate whose fields cannot be decoded
            return False

    @classmethod
    def of(cls, cert: x509.Certificate, *, use_ski: bool = False) -> CertId:
        """The identifier of ``cert`` (its SKI extension when ``use_ski``)."""
        if use_ski:
            ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return cls(ski=ext.value.digest)
        return cls(issuer_der=cert.issuer.public_bytes(), serial=cert.serial_number)


#: The name used for signers.
SignerId = CertId
