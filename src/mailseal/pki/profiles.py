"""Certificate profiles of mailseal's internal CA, as data.

A profile is one of the CA/Browser Forum S/MIME Baseline Requirements (BR) certificate types:
a *validation type* (what the CA verified about the subject: ``mailbox``, ``organization``,
``sponsor``, ``individual``) in a *generation* (``strict`` or ``multipurpose``). Every rule
below is a table taken from the BR section named next to it; :mod:`mailseal.pki.issue` reads
the tables to build certificates and to check them before they are signed.

The Legacy generation is recognised by name but refused for new issuance: the BR §7.1.6.1 ends
its use for certificates issued on or after 15 July 2025.

::

    profile = get_profile("mailbox-strict")
    profile.policy_oid                       # '2.23.140.1.5.1.3'
    profile.key_usage_for("ec", "dual")      # KeyUsageRule(required={'digital_signature',
                                             #                        'key_agreement'}, ...)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from mailseal.errors import ProfileError

__all__ = [
    "DEFAULT_VALIDITY_DAYS",
    "EKU_OIDS",
    "GENERATIONS",
    "PROFILES",
    "PROFILE_NAMES",
    "SMIME_POLICY_ARC",
    "SUBJECT_ATTRIBUTE_OIDS",
    "USAGES",
    "VALIDATION_TYPES",
    "Generation",
    "KeyFamily",
    "KeyUsageRule",
    "Presence",
    "Profile",
    "Usage",
    "ValidationType",
    "get_profile",
    "policy_oid",
]

ValidationType = Literal["mailbox", "organization", "sponsor", "individual"]
Generation = Literal["legacy", "multipurpose", "strict"]
Usage = Literal["signing", "encryption", "dual"]
#: the public key families of BR §7.1.2.3 (e): rsaEncryption, id-ecPublicKey, id-Ed25519/Ed448
KeyFamily = Literal["rsa", "ec", "eddsa"]
Presence = Literal["required", "allowed", "forbidden"]

VALIDATION_TYPES: Final[tuple[ValidationType, ...]] = (
    "mailbox",
    "organization",
    "sponsor",
    "individual",
)
GENERATIONS: Final[tuple[Generation, ...]] = ("legacy", "multipurpose", "strict")
#: ``signing`` (digital signatures only), ``encryption`` (key management only), ``dual``
USAGES: Final[tuple[Usage, ...]] = ("signing", "encryption", "dual")

#: BR §1.2 / §7.1.6.1: 2.23.140.1.5.<validation type>.<generation>
SMIME_POLICY_ARC: Final = "2.23.140.1.5"
_VALIDATION_ARC: Final[Mapping[ValidationType, int]] = MappingProxyType(
    {"mailbox": 1, "organization": 2, "sponsor": 3, "individual": 4}
)
_GENERATION_ARC: Final[Mapping[Generation, int]] = MappingProxyType(
    {"legacy": 1, "multipurpose": 2, "strict": 3}
)

#: BR §6.3.2: maximum validity period per generation, in days of 86,400 seconds
_MAX_VALIDITY_DAYS: Final[Mapping[Generation, int]] = MappingProxyType(
    {"legacy": 1185, "multipurpose": 825, "strict": 825}
)
#: one year; BR §6.3.2 advises against issuing for the maximum by default
DEFAULT_VALIDITY_DAYS: Final = 365

#: subject attribute names used in the tables, and their OIDs (X.520, PKCS #9 for emailAddress)
SUBJECT_ATTRIBUTE_OIDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "commonName": "2.5.4.3",
        "organizationName": "2.5.4.10",
        "organizationalUnitName": "2.5.4.11",
        "organizationIdentifier": "2.5.4.97",
        "givenName": "2.5.4.42",
        "surname": "2.5.4.4",
        "pseudonym": "2.5.4.65",
        "serialNumber": "2.5.4.5",
        "emailAddress": "1.2.840.113549.1.9.1",
        "title": "2.5.4.12",
        "streetAddress": "2.5.4.9",
        "localityName": "2.5.4.7",
        "stateOrProvinceName": "2.5.4.8",
        "postalCode": "2.5.4.17",
        "countryName": "2.5.4.6",
    }
)

_R: Final = "required"
_A: Final = "allowed"
_F: Final = "forbidden"

# Subject DN attributes per validation type, as (legacy, multipurpose, strict).
# BR §7.1.4.2.3 (mailbox), §7.1.4.2.4 (organization), §7.1.4.2.5 (sponsor),
# §7.1.4.2.6 (individual). Attributes not listed are forbidden ("Other" is SHALL NOT for the
# Multipurpose and Strict generations; mailbox-validated never allows them).
_SUBJECT_TABLES: Final[Mapping[ValidationType, Mapping[str, tuple[str, str, str]]]] = (
    MappingProxyType(
        {
            "mailbox": {
                "commonName": (_A, _A, _A),
                "serialNumber": (_A, _A, _A),
                "emailAddress": (_A, _A, _A),
            },
            "organization": {
                "commonName": (_A, _A, _A),
                "organizationName": (_R, _R, _R),
                "organizationalUnitName": (_A, _A, _A),
                "organizationIdentifier": (_R, _R, _R),
                "serialNumber": (_A, _A, _A),
                "emailAddress": (_A, _A, _A),
                "streetAddress": (_A, _A, _F),
                "localityName": (_A, _A, _A),
                "stateOrProvinceName": (_A, _A, _A),
                "postalCode": (_A, _A, _F),
                "countryName": (_A, _A, _A),
            },
            "sponsor": {
                "commonName": (_A, _A, _A),
                "organizationName": (_R, _R, _R),
                "organizationalUnitName": (_A, _A, _A),
                "organizationIdentifier": (_R, _R, _R),
                "givenName": (_A, _A, _A),
                "surname": (_A, _A, _A),
                "pseudonym": (_A, _A, _A),
                "serialNumber": (_A, _A, _A),
                "emailAddress": (_A, _A, _A),
                "title": (_A, _A, _A),
                "streetAddress": (_A, _A, _F),
                "localityName": (_A, _A, _A),
                "stateOrProvinceName": (_A, _A, _A),
                "postalCode": (_A, _A, _F),
                "countryName": (_A, _A, _A),
            },
            "individual": {
                "commonName": (_A, _A, _A),
                "givenName": (_A, _A, _A),
                "surname": (_A, _A, _A),
                "pseudonym": (_A, _A, _A),
                "serialNumber": (_A, _A, _A),
                "emailAddress": (_A, _A, _A),
                "title": (_A, _A, _A),
                "streetAddress": (_A, _A, _F),
                "localityName": (_A, _A, _A),
                "stateOrProvinceName": (_A, _A, _A),
                "postalCode": (_A, _A, _F),
                "countryName": (_A, _A, _A),
            },
        }
    )
)

# BR §7.1.4.2.5 and §7.1.4.2.6, note 2: Multipurpose and Strict sponsor- and individual-validated
# subjects name the person: givenName and/or surname, or a pseudonym.
_NATURAL_PERSON: Final = frozenset({"givenName", "surname", "pseudonym"})
_ONE_OF: Final[Mapping[tuple[ValidationType, Generation], frozenset[str]]] = MappingProxyType(
    {
        ("sponsor", "multipurpose"): _NATURAL_PERSON,
        ("sponsor", "strict"): _NATURAL_PERSON,
        ("individual", "multipurpose"): _NATURAL_PERSON,
        ("individual", "strict"): _NATURAL_PERSON,
    }
)

# BR §7.1.4.2.2 (a): what subject:commonName may contain, per validation type.
_COMMON_NAME_SOURCES: Final[Mapping[ValidationType, tuple[str, ...]]] = MappingProxyType(
    {
        "mailbox": ("mailbox",),
        "organization": ("organizationName", "mailbox"),
        "sponsor": ("personalName", "pseudonym", "mailbox"),
        "individual": ("personalName", "pseudonym", "mailbox"),
    }
)

#: BR §7.1.4.2.2 (j)-(m): an attribute that needs one of the others to be present too
ATTRIBUTE_DEPENDENCIES: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    ("streetAddress", frozenset({"localityName", "stateOrProvinceName"})),
    ("postalCode", frozenset({"localityName", "stateOrProvinceName"})),
    ("localityName", frozenset({"countryName"})),
    ("stateOrProvinceName", frozenset({"countryName"})),
)

#: extended key usages named in the profiles (RFC 5280 §4.2.1.12, RFC 9336 documentSigning)
EKU_OIDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "emailProtection": "1.3.6.1.5.5.7.3.4",
        "clientAuth": "1.3.6.1.5.5.7.3.2",
        "documentSigning": "1.3.6.1.5.5.7.3.36",
        "serverAuth": "1.3.6.1.5.5.7.3.1",
        "codeSigning": "1.3.6.1.5.5.7.3.3",
        "timeStamping": "1.3.6.1.5.5.7.3.8",
        "OCSPSigning": "1.3.6.1.5.5.7.3.9",
        "anyExtendedKeyUsage": "2.5.29.37.0",
    }
)

# BR §7.1.2.3 (f): emailProtection always; Strict allows nothing else; serverAuth, codeSigning,
# timeStamping and anyExtendedKeyUsage are never allowed. OCSPSigning is refused as well: only a
# CA delegates OCSP signing (RFC 6960 §4.2.2.2).
_EKU_OPTIONAL: Final[Mapping[Generation, frozenset[str]]] = MappingProxyType(
    {
        "legacy": frozenset({"clientAuth", "documentSigning"}),
        "multipurpose": frozenset({"clientAuth", "documentSigning"}),
        "strict": frozenset(),
    }
)
_EKU_FORBIDDEN: Final = frozenset(
    {"serverAuth", "codeSigning", "timeStamping", "OCSPSigning", "anyExtendedKeyUsage"}
)


@dataclass(frozen=True, slots=True)
class KeyUsageRule:
    """The keyUsage bits (cryptography's ``x509.KeyUsage`` argument names) a certificate must
    assert, and those it may assert besides."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


_DS: Final = "digital_signature"
_NR: Final = "content_commitment"  # nonRepudiation
_KE: Final = "key_encipherment"
_DE: Final = "data_encipherment"
_KA: Final = "key_agreement"
_EO: Final = "encipher_only"
_DO: Final = "decipher_only"


def _ku(required: set[str], optional: set[str] | None = None) -> KeyUsageRule:
    return KeyUsageRule(frozenset(required), frozenset(optional or ()))


# BR §7.1.2.3 (e): keyUsage per generation, public key family and use. EdDSA keys only sign;
# "other bit positions SHALL NOT be set". dataEncipherment is allowed for RSA key management
# outside the Strict generation.
_KU_STRICT: Final[Mapping[tuple[KeyFamily, Usage], KeyUsageRule]] = MappingProxyType(
    {
        ("rsa", "signing"): _ku({_DS}, {_NR}),
        ("rsa", "encryption"): _ku({_KE}),
        ("rsa", "dual"): _ku({_DS, _KE}, {_NR}),
        ("ec", "signing"): _ku({_DS}, {_NR}),
        ("ec", "encryption"): _ku({_KA}, {_EO, _DO}),
        ("ec", "dual"): _ku({_DS, _KA}, {_NR, _EO, _DO}),
        ("eddsa", "signing"): _ku({_DS}, {_NR}),
    }
)
_KU_MULTIPURPOSE: Final[Mapping[tuple[KeyFamily, Usage], KeyUsageRule]] = MappingProxyType(
    {
        **_KU_STRICT,
        ("rsa", "encryption"): _ku({_KE}, {_DE}),
        ("rsa", "dual"): _ku({_DS, _KE}, {_NR, _DE}),
    }
)
_KEY_USAGE: Final[Mapping[Generation, Mapping[tuple[KeyFamily, Usage], KeyUsageRule]]] = (
    MappingProxyType(
        {"legacy": _KU_MULTIPURPOSE, "multipurpose": _KU_MULTIPURPOSE, "strict": _KU_STRICT}
    )
)

#: BR §7.1.2.3 (b), (c): URI schemes allowed in cRLDistributionPoints and the AIA
_URI_SCHEMES: Final[Mapping[Generation, frozenset[str]]] = MappingProxyType(
    {
        "legacy": frozenset({"http", "ldap", "ftp"}),
        "multipurpose": frozenset({"http"}),
        "strict": frozenset({"http"}),
    }
)

#: BR §7.1.6.1: no Legacy generation certificate is issued on or after 2025-07-15
_ISSUABLE: Final[Mapping[Generation, bool]] = MappingProxyType(
    {"legacy": False, "multipurpose": True, "strict": True}
)


def policy_oid(validation: ValidationType, generation: Generation) -> str:
    """The reserved BR policy OID of a certificate type (BR §7.1.6.1)."""
    return f"{SMIME_POLICY_ARC}.{_VALIDATION_ARC[validation]}.{_GENERATION_ARC[generation]}"


@dataclass(frozen=True, slots=True)
class Profile:
    """One BR certificate type: everything the issuer and the pre-issuance check need."""

    name: str
    validation: ValidationType
    generation: Generation
    #: the reserved BR policy OID asserted in certificatePolicies (BR §7.1.2.3 (a), §7.1.6.1)
    policy_oid: str
    #: presence of every known subject attribute (BR §7.1.4.2.3-§7.1.4.2.6)
    subject: Mapping[str, Presence] = field(hash=False)
    #: at least one of these subject attributes must be present (empty: no such rule)
    one_of: frozenset[str]
    #: what commonName may repeat: "mailbox", "organizationName", "personalName", "pseudonym"
    common_name_sources: tuple[str, ...]
    #: EKU names (keys of :data:`EKU_OIDS`) always asserted, allowed on request, refused
    ekus_required: frozenset[str]
    ekus_optional: frozenset[str]
    ekus_forbidden: frozenset[str]
    #: keyUsage per (key family, usage) (BR §7.1.2.3 (e)); a missing pair is refused
    key_usage: Mapping[tuple[KeyFamily, Usage], KeyUsageRule] = field(hash=False)
    max_validity_days: int
    default_validity_days: int
    #: URI schemes allowed in the CRL distribution point and the AIA
    uri_schemes: frozenset[str]
    #: False for the Legacy generation: recognised, never issued
    issuable: bool

    @property
    def required_attributes(self) -> frozenset[str]:
        return frozenset(a for a, p in self.subject.items() if p == "required")

    @property
    def allowed_attributes(self) -> frozenset[str]:
        """Required and optional subject attributes."""
        return frozenset(a for a, p in self.subject.items() if p != "forbidden")

    def key_usage_for(self, family: KeyFamily, usage: str) -> KeyUsageRule:
        """The keyUsage rule for a key family and use, or a :class:`ProfileError` saying which
        uses the key family can have."""
        if usage not in USAGES:
            raise ProfileError(f"unknown usage {usage!r}: use one of {', '.join(USAGES)}")
        rule = self.key_usage.get((family, usage))
        if rule is None:
            possible = [u for (f, u) in self.key_usage if f == family]
            raise ProfileError(
                f"a {_FAMILY_LABEL[family]} key cannot be used for {usage} "
                f"(BR §7.1.2.3 (e)): use {' or '.join(repr(u) for u in possible)}"
            )
        return rule


_FAMILY_LABEL: Final[Mapping[KeyFamily, str]] = MappingProxyType(
    {"rsa": "RSA", "ec": "ECDSA/ECDH", "eddsa": "EdDSA (Ed25519/Ed448)"}
)


def _make(validation: ValidationType, generation: Generation) -> Profile:
    column = GENERATIONS.index(generation)
    table = _SUBJECT_TABLES[validation]
    subject: dict[str, Presence] = {}
    for attr in SUBJECT_ATTRIBUTE_OIDS:
        row = table.get(attr)
        subject[attr] = row[column] if row else "forbidden"  # type: ignore[assignment]
    return Profile(
        name=f"{validation}-{generation}",
        validation=validation,
        generation=generation,
        policy_oid=policy_oid(validation, generation),
        subject=MappingProxyType(subject),
        one_of=_ONE_OF.get((validation, generation), frozenset()),
        common_name_sources=_COMMON_NAME_SOURCES[validation],
        ekus_required=frozenset({"emailProtection"}),
        ekus_optional=_EKU_OPTIONAL[generation],
        ekus_forbidden=_EKU_FORBIDDEN,
        key_usage=_KEY_USAGE[generation],
        max_validity_days=_MAX_VALIDITY_DAYS[generation],
        default_validity_days=DEFAULT_VALIDITY_DAYS,
        uri_schemes=_URI_SCHEMES[generation],
        issuable=_ISSUABLE[generation],
    )


_ALL: Final[Mapping[str, Profile]] = MappingProxyType(
    {p.name: p for p in (_make(v, g) for v in VALIDATION_TYPES for g in GENERATIONS)}
)

#: the profiles mailseal issues, by name (``<validation type>-<generation>``)
PROFILES: Final[Mapping[str, Profile]] = MappingProxyType(
    {name: p for name, p in _ALL.items() if p.issuable}
)
PROFILE_NAMES: Final[tuple[str, ...]] = tuple(PROFILES)

_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {"sponsored": "sponsor", "mailbox-validated": "mailbox"}
)


def _normalise(name: str) -> str:
    text = name.strip().lower().replace("_", "-").replace(" ", "-")
    head, sep, tail = text.partition("-")
    return _ALIASES.get(head, head) + sep + tail


def get_profile(name: str | Profile) -> Profile:
    """The issuable profile called ``name`` (``mailbox-strict``, ``sponsor-multipurpose``, ...).

    Legacy generation names are recognised and refused with the reason; any other unknown name
    raises :class:`~mailseal.errors.ProfileError` listing the valid ones.
    """
    if isinstance(name, Profile):
        if not name.issuable:
            return get_profile(name.name)
        return name
    key = _normalise(name)
    found = PROFILES.get(key)
    if found is not None:
        return found
    retired = _ALL.get(key)
    if retired is not None:
        raise ProfileError(
            f"the {retired.name} profile is not issued any more: the S/MIME Baseline "
            "Requirements (§7.1.6.1) end the Legacy generation for certificates issued on or "
            f"after 2025-07-15; use {retired.validation}-multipurpose or "
            f"{retired.validation}-strict"
        )
    raise ProfileError(
        f"unknown certificate profile {name!r}: use one of {', '.join(PROFILE_NAMES)}"
    )
