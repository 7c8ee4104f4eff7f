"""mailseal.pki.profiles: the BR certificate types as data."""

from __future__ import annotations

import pytest

from mailseal.errors import ProfileError, UsageError
from mailseal.pki.profiles import (
    GENERATIONS,
    PROFILE_NAMES,
    PROFILES,
    VALIDATION_TYPES,
    get_profile,
    policy_oid,
)


def test_eight_issuable_profiles_with_their_policy_oids() -> None:
    assert len(PROFILE_NAMES) == 8
    expected = {
        "mailbox-multipurpose": "2.23.140.1.5.1.2",
        "mailbox-strict": "2.23.140.1.5.1.3",
        "organization-multipurpose": "2.23.140.1.5.2.2",
        "organization-strict": "2.23.140.1.5.2.3",
        "sponsor-multipurpose": "2.23.140.1.5.3.2",
        "sponsor-strict": "2.23.140.1.5.3.3",
        "individual-multipurpose": "2.23.140.1.5.4.2",
        "individual-strict": "2.23.140.1.5.4.3",
    }
    assert {n: PROFILES[n].policy_oid for n in PROFILE_NAMES} == expected
    assert policy_oid("sponsor", "legacy") == "2.23.140.1.5.3.1"
    for p in PROFILES.values():
        assert p.max_validity_days == 825
        assert p.default_validity_days == 365
        assert p.ekus_required == {"emailProtection"}
        assert p.uri_schemes == {"http"}


@pytest.mark.parametrize("validation", VALIDATION_TYPES)
def test_legacy_names_are_recognised_and_refused(validation: str) -> None:
    with pytest.raises(ProfileError) as info:
        get_profile(f"{validation}-legacy")
    text = str(info.value)
    assert "2025-07-15" in text
    assert f"{validation}-strict" in text
    assert isinstance(info.value, UsageError)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ProfileError) as info:
        get_profile("mailbox-lenient")
    for name in PROFILE_NAMES:
        assert name in str(info.value)


def test_names_are_forgiving_about_case_and_aliases() -> None:
    assert get_profile(" Mailbox_Strict ").name == "mailbox-strict"
    assert get_profile("sponsored-multipurpose").name == "sponsor-multipurpose"
    p = get_profile("individual-strict")
    assert get_profile(p) is p


def test_subject_tables_follow_the_br() -> None:
    mailbox = get_profile("mailbox-strict")
    assert mailbox.allowed_attributes == {"commonName", "serialNumber", "emailAddress"}
    assert not mailbox.required_attributes
    org = get_profile("organization-strict")
    assert org.required_attributes == {"organizationName", "organizationIdentifier"}
    assert "streetAddress" not in org.allowed_attributes  # Strict: SHALL NOT
    assert "streetAddress" in get_profile("organization-multipurpose").allowed_attributes
    assert "givenName" not in org.allowed_attributes
    sponsor = get_profile("sponsor-multipurpose")
    assert sponsor.one_of == {"givenName", "surname", "pseudonym"}
    assert {"organizationName", "organizationIdentifier"} <= sponsor.required_attributes
    individual = get_profile("individual-strict")
    assert "organizationName" not in individual.allowed_attributes
    assert individual.common_name_sources == ("personalName", "pseudonym", "mailbox")


def test_key_usage_tables() -> None:
    strict = get_profile("mailbox-strict")
    multi = get_profile("mailbox-multipurpose")
    assert strict.key_usage_for("rsa", "signing").required == {"digital_signature"}
    assert "content_commitment" in strict.key_usage_for("rsa", "signing").optional
    assert strict.key_usage_for("rsa", "encryption").allowed == {"key_encipherment"}
    assert "data_encipherment" in multi.key_usage_for("rsa", "encryption").optional
    assert strict.key_usage_for("rsa", "dual").required == {
        "digital_signature",
        "key_encipherment",
    }
    assert strict.key_usage_for("ec", "encryption").required == {"key_agreement"}
    assert strict.key_usage_for("ec", "dual").required == {"digital_signature", "key_agreement"}
    assert strict.key_usage_for("eddsa", "signing").required == {"digital_signature"}


@pytest.mark.parametrize("usage", ["encryption", "dual"])
def test_eddsa_keys_only_sign(usage: str) -> None:
    with pytest.raises(ProfileError, match="'signing'"):
        get_profile("mailbox-strict").key_usage_for("eddsa", usage)


def test_unknown_usage() -> None:
    with pytest.raises(ProfileError, match="signing, encryption, dual"):
        get_profile("mailbox-strict").key_usage_for("rsa", "both")


def test_eku_allowances() -> None:
    assert not get_profile("individual-strict").ekus_optional
    assert "clientAuth" in get_profile("individual-multipurpose").ekus_optional
    for name in PROFILE_NAMES:
        assert {"serverAuth", "codeSigning", "timeStamping", "anyExtendedKeyUsage"} <= (
            get_profile(name).ekus_forbidden
        )
    assert GENERATIONS == ("legacy", "multipurpose", "strict")
