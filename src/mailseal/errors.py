"""The one exception tree of mailseal.

Every failure a user can cause is a :class:`MailsealError` with a message a person can act on.
Third-party exceptions are translated where they are caught (``raise ... from``).

::

    MailsealError
    ├── InputError                  the input cannot be used
    │   ├── MalformedMessage        MIME structure is broken (missing boundary, bad headers, ...)
    │   ├── MalformedCMS            CMS/DER structure is broken (truncated, corrupt, wrong type)
    │   ├── LimitExceeded           a safety limit was hit (nesting depth, line length, size, ...)
    │   ├── NotSMIME                the message carries no S/MIME layer the operation can use
    │   ├── CsrError                a CSR is malformed, badly signed or asks for too much
    │   └── OcspRequestError        an OCSP request is malformed, oversized or asks too much
    ├── IdentityError               a certificate, key, PKCS#12 file or password cannot be used
    │   └── PasswordError           a password is missing or wrong
    ├── AlgorithmError              an algorithm is unknown, unsupported or refused by policy
    ├── DecryptionError             the message cannot be decrypted with the keys given
    │   └── NoMatchingRecipient     none of the keys given is a recipient of the message
    ├── UsageError                  options that do not fit together
    │   └── ProfileError            a certificate profile is unknown, retired or does not fit
    ├── IssuanceError               the CA refused to issue: out of its scope, or not conforming
    ├── HsmError                    an HSM cannot be used: module, token, PIN or key
    ├── EscrowError                 a share, partial decryption or escrow record does not fit
    └── StoreError                  the database cannot be used or refused an operation
        ├── StoreUnavailable        cannot connect, or the database stayed locked (retry later)
        └── DuplicateError          a row that must be unique exists already (serial, revocation)

A verification that *can* be evaluated never raises: it returns a verdict that says what is
wrong (tampered, untrusted, ...). Only input that cannot be evaluated at all raises.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmError",
    "CsrError",
    "DecryptionError",
    "DuplicateError",
    "EscrowError",
    "HsmError",
    "IdentityError",
    "InputError",
    "IssuanceError",
    "LimitExceeded",
    "MailsealError",
    "MalformedCMS",
    "MalformedMessage",
    "NoMatchingRecipient",
    "NotSMIME",
    "OcspRequestError",
    "PasswordError",
    "ProfileError",
    "StoreError",
    "StoreUnavailable",
    "UsageError",
]


class MailsealError(Exception):
    """Root of every error mailseal raises on purpose."""


class InputError(MailsealError):
    """The input cannot be used."""


class MalformedMessage(InputError):
    """The MIME structure of a message is broken."""


class MalformedCMS(InputError):
    """A CMS (PKCS#7) structure is truncated, corrupt or not what was expected."""


class LimitExceeded(InputError):
    """A safety limit was reached while reading hostile or unusual input."""


class NotSMIME(InputError):
    """The message has no S/MIME layer that the operation can work on."""


class IdentityError(MailsealError):
    """A certificate, private key or PKCS#12 file cannot be used."""


class PasswordError(IdentityError):
    """A password is needed and missing, or it is wrong."""


class AlgorithmError(MailsealError):
    """An algorithm is unknown, unsupported, or refused by policy."""


class DecryptionError(MailsealError):
    """The message cannot be decrypted with the keys given (wrong key, corrupted ciphertext)."""


class NoMatchingRecipient(DecryptionError):
    """None of the keys given is a recipient of the message."""


class UsageError(MailsealError):
    """Options or arguments that do not fit together."""


class StoreError(MailsealError):
    """The database cannot be used, or it refused an operation (constraint, schema, URL)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or stayed locked: retrying later may succeed."""


class DuplicateError(StoreError):
    """A row that must be unique exists already: an issued serial, a revocation, a CRL number."""


class CsrError(InputError):
    """A certificate signing request (PKCS#10) is malformed, badly signed, uses a key or
    algorithm the CA refuses, or asks for extensions an end-entity certificate must not have."""


class ProfileError(UsageError):
    """A certificate profile is unknown or retired, or the request does not fit it (a missing
    subject attribute, a usage the key type cannot have, a validity period that is too long)."""


class IssuanceError(MailsealError):
    """The CA refused to issue: the mailbox is outside the CA's permitted domains, or the
    pre-issuance check found that the certificate would not conform to its profile.

    ``findings`` lists every problem the check found (empty for other refusals)."""

    def __init__(self, message: str, findings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.findings = findings


class EscrowError(MailsealError):
    """A share, partial decryption or archived record does not fit, or a quorum is missing."""


class HsmError(MailsealError):
    """A hardware security module cannot be used over PKCS#11: the module file is missing or
    not a PKCS#11 library, no token has the label given, the PIN is wrong, missing or locked,
    no key has the label given, or the token refused an operation. Messages never carry the
    PIN."""


class OcspRequestError(InputError):
    """An OCSP request (RFC 6960 §4.1) cannot be answered: it is not DER, is truncated,
    larger than the responder accepts, asks about too many certificates, or carries a critical
    extension the responder does not know. An HTTP front end answers it with an unsigned
    ``malformedRequest`` response."""
