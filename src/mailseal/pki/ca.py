"""Creating the CA hierarchy: a root CA and the issuing CAs below it.

::

    root_key = SoftwareKey(ec.generate_private_key(ec.SECP384R1()))
    root = create_root(root_key, root_key.key.public_key(),
                       organization="Example Org", common_name="Example S/MIME Root")
    issuing = create_issuing(root, root_key, issuing_public_key,
                             organization="Example Org", common_name="Example S/MIME CA",
                             permitted_domains=("example.org",),
                             crl_url="http://pki.example.org/root.crl",
                             ca_issuers_url="http://pki.example.org/root.cer")

The CA keys are :class:`~mailseal.keys.base.PrivateKey` objects: a file or an HSM. The protocol
has no ``public_key()`` (an HSM key exposes only what it is asked for), so the public key is
passed explicitly and checked against the key's type and size. Each certificate is signed
through :func:`~mailseal.pki.signing.preview_certificate` and
:func:`~mailseal.pki.signing.resign_certificate`, then its signature is verified with the issuer's
public key, which catches a key and a certificate that do not belong together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import (
    ExtendedKeyUsageOID,
    NameOID,
    ObjectIdentifier,
)

from mailseal.errors import AlgorithmError, IssuanceError, UsageError
from mailseal.keys.base import PrivateKey
from mailseal.pki.issue import (
    _check_http_url,
    authority_information_access,
    authority_key_identifier,
    crl_distribution_points,
    key_usage,
    new_serial,
    normalise_domain,
)
from mailseal.pki.profiles import PROFILES
from mailseal.pki.signing import preview_certificate, resign_certificate

__all__ = [
    "CA_KEY_TYPES",
    "DEFAULT_ISSUING_VALIDITY_DAYS",
    "DEFAULT_ROOT_VALIDITY_DAYS",
    "create_issuing",
    "create_root",
]

#: CA key types mailseal creates CAs with: (key_type of the PrivateKey protocol, size) -> label.
#: BR §6.1.5 allows RSA from 2048 bits for CAs, but Ballot SMC017 raises new CA keys to 4096
#: bits from 2026-09-15 and ends issuance from CAs under 3072 bits in 2027; mailseal starts at
#: 3072. Ed25519 per BR §7.1.3.1.3.
CA_KEY_TYPES: Final[Mapping[tuple[str, int], str]] = MappingProxyType(
    {
        ("ec", 256): "P-256",
        ("ec", 384): "P-384",
        ("rsa", 3072): "RSA-3072",
        ("rsa", 4096): "RSA-4096",
        ("ed25519", 255): "Ed25519",
    }
)
#: 20 years for a root, 5 for an issuing CA (the BR set no maximum for CA certificates)
DEFAULT_ROOT_VALIDITY_DAYS: Final = 20 * 365 + 5
DEFAULT_ISSUING_VALIDITY_DAYS: Final = 5 * 365 + 1

_SECOND: Final = dt.timedelta(seconds=1)


def _check_ca_key(key: PrivateKey, public_key: CertificatePublicKeyTypes) -> None:
    spec = (key.key_type, key.key_size)
    if spec not in CA_KEY_TYPES:
        raise AlgorithmError(
            f"a {key.key_type} key of {key.key_size} bits cannot be a CA key here: use "
            f"{', '.join(CA_KEY_TYPES.values())}"
        )
    matches = (
        (key.key_type == "rsa" and isinstance(public_key, rsa.RSAPublicKey))
        or (key.key_type == "ec" and isinstance(public_key, ec.EllipticCurvePublicKey))
        or (key.key_type == "ed25519" and isinstance(public_key, ed25519.Ed25519PublicKey))
    )
    size = getattr(public_key, "key_size", 255)
    if not matches or size != key.key_size:
        raise UsageError(
            f"the public key given ({type(public_key).__name__}) is not the public half of the "
            f"{CA_KEY_TYPES[spec]} CA key"
        )


def _name(organization: str, common_name: str, country: str | None) -> x509.Name:
    if not organization.strip() or not common_name.strip():
        raise UsageError("a CA needs an organization and a common name (S/MIME BR §7.1.4.3)")
    attrs: list[x509.NameAttribute[str]] = []
    if country is not None:
        if len(country) != 2 or not country.isalpha() or not country.isupper():
            raise UsageError(f"country {country!r} must be a two-letter ISO 3166-1 code")
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization.strip()))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name.strip()))
    return x509.Name(attrs)


def _period(not_before: dt.datetime | None, days: int) -> tuple[dt.datetime, dt.datetime]:
    if days < 1:
        raise UsageError("a CA certificate must be valid for at least one day")
    start = (not_before or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    return start, start + dt.timedelta(days=days) - _SECOND


def create_root(
    key: PrivateKey,
    public_key: CertificatePublicKeyTypes,
    *,
    organization: str,
    common_name: str,
    country: str | None = None,
    validity_days: int = DEFAULT_ROOT_VALIDITY_DAYS,
    not_before: dt.datetime | None = None,
    ocsp_signing: bool = False,
    serial: int | None = None,
) -> x509.Certificate:
    """A self-signed S/MIME root CA certificate (BR §7.1.2.1): basicConstraints cA (critical,
    no pathLenConstraint), keyUsage keyCertSign and cRLSign (critical; digitalSignature too with
    ``ocsp_signing``), subjectKeyIdentifier; no extKeyUsage and no certificatePolicies."""
    _check_ca_key(key, public_key)
    name = _name(organization, common_name, country)
    start, end = _period(not_before, validity_days)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(new_serial() if serial is None else serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(ocsp_signing), critical=True)
        .add_extension(ski, critical=False)
    )
    cert = resign_certificate(preview_certificate(builder, key), key)
    _verify(cert, cert, "root")
    return cert


def create_issuing(
    root_cert: x509.Certificate,
    root_key: PrivateKey,
    public_key: CertificatePublicKeyTypes,
    *,
    organization: str,
    common_name: str,
    crl_url: str,
    ca_issuers_url: str = "",
    ocsp_url: str = "",
    permitted_domains: Iterable[str] = (),
    country: str | None = None,
    policy_oids: Iterable[str] | None = None,
    validity_days: int = DEFAULT_ISSUING_VALIDITY_DAYS,
    not_before: dt.datetime | None = None,
    ocsp_signing: bool = True,
    serial: int | None = None,
    issuing_key: PrivateKey | None = None,
    name_constraints_critical: bool = True,
) -> x509.Certificate:
    """An issuing (subordinate) CA certificate signed by the root (BR §7.1.2.2).

    basicConstraints cA with pathLenConstraint 0 and keyUsage keyCertSign, cRLSign (and
    digitalSignature, for signing its own OCSP responses, with ``ocsp_signing``), both
    critical; extKeyUsage emailProtection (§7.1.2.2 g); nameConstraints permitting each of
    ``permitted_domains`` and its subdomains as rfc822Name (critical, §7.1.2.2 f);
    cRLDistributionPoints (``crl_url``: the root's CRL); authorityInformationAccess (the root's
    certificate at ``ca_issuers_url``, an OCSP responder at ``ocsp_url``);
    authority and subject key identifiers; certificatePolicies holding the reserved S/MIME
    policy OIDs the CA issues under (§7.1.6.3; by default every issuable profile's).

    ``issuing_key`` may be the issuing CA's own :class:`~mailseal.keys.base.PrivateKey`: its type is
    then checked against ``public_key`` and the CA key allow-list.
    """
    if issuing_key is not None:
        _check_ca_key(issuing_key, public_key)
    else:
        _check_public_ca_key(public_key)
    root_public = root_cert.public_key()
    _check_ca_key(root_key, root_public)
    try:
        root_ski = root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        raise UsageError("the root certificate has no subjectKeyIdentifier") from None
    _check_http_url("CRL distribution point URL", crl_url, required=True)
    _check_http_url("CA issuers URL", ca_issuers_url, required=False)
    _check_http_url("OCSP responder URL", ocsp_url, required=False)
    domains = tuple(dict.fromkeys(normalise_domain(d) for d in permitted_domains))
    oids = tuple(policy_oids) if policy_oids is not None else _default_policy_oids()
    if not oids:
        raise UsageError("an issuing CA needs at least one certificate policy (BR §7.1.2.2 a)")
    name = _name(organization, common_name, country)
    if name == root_cert.subject:
        raise UsageError("the issuing CA needs a name different from the root's")
    start, end = _period(not_before, validity_days)
    if end > root_cert.not_valid_after_utc:
        raise IssuanceError(
            "the issuing CA certificate would outlive the root (which expires "
            f"{root_cert.not_valid_after_utc:%Y-%m-%d}): ask for fewer days"
        )
    if start < root_cert.not_valid_before_utc:
        raise IssuanceError("the issuing CA certificate would start before the root")

    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_cert.subject)
        .public_key(public_key)
        .serial_number(new_serial() if serial is None else serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(ocsp_signing), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(ObjectIdentifier(o), None) for o in oids]
            ),
            critical=False,
        )
        .add_extension(crl_distribution_points(crl_url), critical=False)
        .add_extension(authority_key_identifier(root_ski.value.digest), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    access = authority_information_access(ocsp_url, ca_issuers_url)
    if access is not None:
        builder = builder.add_extension(access, critical=False)
    if domains:
        subtrees: list[x509.GeneralName] = []
        for d in domains:
            # RFC 5280 §4.2.1.10: "example.org" is the host's mailboxes, ".example.org" any
            # subdomain's
            subtrees += [x509.RFC822Name(d), x509.RFC822Name("." + d)]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None),
            # RFC 5280 §4.2.1.10: critical. Relying parties that cannot process name
            # constraints then refuse the CA (gpgsm 2.2 does); name_constraints_critical=False
            # trades that for acceptance by them (S/MIME BR §7.1.2.2 permits either)
            critical=name_constraints_critical,
        )
    cert = resign_certificate(preview_certificate(builder, root_key), root_key)
    _verify(cert, root_cert, "issuing CA")
    return cert


def _check_public_ca_key(public_key: CertificatePublicKeyTypes) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        spec: tuple[str, int] = ("rsa", public_key.key_size)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        spec = ("ec", public_key.key_size)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        spec = ("ed25519", 255)
    else:
        spec = (type(public_key).__name__, 0)
    if spec not in CA_KEY_TYPES:
        raise AlgorithmError(
            f"this public key cannot belong to a CA here: use {', '.join(CA_KEY_TYPES.values())}"
        )


def _default_policy_oids() -> tuple[str, ...]:
    return tuple(sorted({p.policy_oid for p in PROFILES.values()}))


def _ca_key_usage(digital_signature: bool) -> x509.KeyUsage:
    bits = {"key_cert_sign", "crl_sign"}
    return key_usage((bits | {"digital_signature"}) if digital_signature else bits)


def _verify(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise IssuanceError(
            f"the new {what} certificate does not verify under the issuer's public key: the "
            "signing key and the public key given do not belong together"
        ) from exc
