"""The one exception tree of mailseal.

Every failure a user can cause is a :class:`MailsealError` with a message a person can act on.
Third-party exceptions are translated where they are caught (``raise ... from``).

::

    MailsealError
    ├── InputError                  the input cannot be used
    │   ├── MalformedMessage        MIME structure is broken (missing boundary, bad headers, ...)
    │   ├── MalformedCMS            CMS/DER structure is broken (truncated, corrupt, wrong type)
    │   ├── LimitExceeded           a safety limit was hit (nesting depth, line length, size, ...)
    │   └── NotSMIME                the message carries no S/MIME layer the operation can use
    ├── IdentityError               a certificate, key, PKCS#12 file or password cannot be used
    │   └── PasswordError           a password is missing or wrong
    ├── AlgorithmError              an algorithm is unknown, unsupported or refused by policy
    ├── DecryptionError             the message cannot be decrypted with the keys given
    │   └── NoMatchingRecipient     none of the keys given is a recipient of the message
    └── UsageError                  options that do not fit together

A verification that *can* be evaluated never raises: it returns a verdict that says what is
wrong (tampered, untrusted, ...). Only input that cannot be evaluated at all raises.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmError",
    "DecryptionError",
    "IdentityError",
    "InputError",
    "LimitExceeded",
    "MailsealError",
    "MalformedCMS",
    "MalformedMessage",
    "NoMatchingRecipient",
    "NotSMIME",
    "PasswordError",
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
