"""mailseal: S/MIME for organisations.

The everyday names::

    import mailseal

    alice = mailseal.load_identity(cert_pem, key_pem)
    signed = mailseal.sign(message_bytes, alice)
    result = mailseal.verify(signed, trust=[ca_cert])
    result.status          # Status.VALID, Status.TAMPERED, Status.UNTRUSTED, ...
    result.signers[0].intact, result.signers[0].trusted, result.content
"""

from __future__ import annotations

from mailseal._engine import sign, sign_stream, verify, verify_stream
from mailseal.errors import MailsealError
from mailseal.keys.identity import Identity, load_certificates, load_identity, load_pkcs12
from mailseal.validation.trust import Trust
from mailseal.validation.verdict import Problem, SignerVerdict, Status, VerifyResult

__version__ = "0.1.0"

__all__ = [
    "Identity",
    "MailsealError",
    "Problem",
    "SignerVerdict",
    "Status",
    "Trust",
    "VerifyResult",
    "__version__",
    "load_certificates",
    "load_identity",
    "load_pkcs12",
    "sign",
    "sign_stream",
    "verify",
    "verify_stream",
]
