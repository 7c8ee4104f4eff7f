"""mailseal: S/MIME for organisations.

The everyday names::

    import mailseal

    alice = mailseal.load_identity(cert_pem, key_pem)
    signed = mailseal.sign(message_bytes, alice)
    result = mailseal.verify(signed, trust=[ca_cert])
    result.status          # Status.VALID, Status.TAMPERED, Status.UNTRUSTED, ...
    result.signers[0].intact, result.signers[0].trusted, result.content

    sealed = mailseal.seal(message_bytes, alice, [bob_cert])       # sign, then encrypt
    opened = mailseal.open_message(sealed, [bob], trust=[ca_cert])  # one verdict per layer

Each name is imported from the module that defines it when it is first used (PEP 562), so a
program that only signs or only encrypts never loads path validation, verification or PKCS#12.
"""

from __future__ import annotations

import importlib

# not ``typing.TYPE_CHECKING``: importing typing would double what ``import mailseal`` costs
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mailseal._encrypt import Recipient, encrypt, encrypt_stream
    from mailseal._open import (
        decrypt,
        decrypt_stream,
        open_message,
        open_stream,
        recipient_from_signed,
        seal,
        seal_stream,
    )
    from mailseal._sign import sign, sign_stream
    from mailseal._verify import verify, verify_stream
    from mailseal.errors import MailsealError
    from mailseal.keys.identity import Identity, load_certificates, load_identity, load_pkcs12
    from mailseal.validation.encryption import EncryptionReport
    from mailseal.validation.trust import Trust
    from mailseal.validation.verdict import (
        Layer,
        OpenResult,
        Problem,
        SignerVerdict,
        Status,
        VerifyResult,
    )

__version__ = "0.1.0"

__all__ = [
    "EncryptionReport",
    "Identity",
    "Layer",
    "MailsealError",
    "OpenResult",
    "Problem",
    "Recipient",
    "SignerVerdict",
    "Status",
    "Trust",
    "VerifyResult",
    "__version__",
    "decrypt",
    "decrypt_stream",
    "encrypt",
    "encrypt_stream",
    "load_certificates",
    "load_identity",
    "load_pkcs12",
    "open_message",
    "open_stream",
    "recipient_from_signed",
    "seal",
    "seal_stream",
    "sign",
    "sign_stream",
    "verify",
    "verify_stream",
]

#: Where each public name is defined (the same modules as the TYPE_CHECKING imports above).
_WHERE: dict[str, str] = {
    "EncryptionReport": "mailseal.validation.encryption",
    "Identity": "mailseal.keys.identity",
    "Layer": "mailseal.validation.verdict",
    "MailsealError": "mailseal.errors",
    "OpenResult": "mailseal.validation.verdict",
    "Problem": "mailseal.validation.verdict",
    "Recipient": "mailseal._encrypt",
    "SignerVerdict": "mailseal.validation.verdict",
    "Status": "mailseal.validation.verdict",
    "Trust": "mailseal.validation.trust",
    "VerifyResult": "mailseal.validation.verdict",
    "decrypt": "mailseal._open",
    "decrypt_stream": "mailseal._open",
    "encrypt": "mailseal._encrypt",
    "encrypt_stream": "mailseal._encrypt",
    "load_certificates": "mailseal.keys.identity",
    "load_identity": "mailseal.keys.identity",
    "load_pkcs12": "mailseal.keys.identity",
    "open_message": "mailseal._open",
    "open_stream": "mailseal._open",
    "recipient_from_signed": "mailseal._open",
    "seal": "mailseal._open",
    "seal_stream": "mailseal._open",
    "sign": "mailseal._sign",
    "sign_stream": "mailseal._sign",
    "verify": "mailseal._verify",
    "verify_stream": "mailseal._verify",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mailseal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
