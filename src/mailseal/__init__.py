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
"""

from __future__ import annotations

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
