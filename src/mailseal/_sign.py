"""The everyday operation behind ``mailseal.sign``: sign a message with one or more identities.

Kept apart from verification so that a program that only signs never loads path validation.
"""

from __future__ import annotations

import datetime as _dt
import io
from collections.abc import Sequence
from typing import BinaryIO

from mailseal.cms.signed import PreparedSigner, SignerOptions
from mailseal.errors import UsageError
from mailseal.keys.base import HashName
from mailseal.keys.identity import Identity
from mailseal.limits import DEFAULT_LIMITS, Limits
from mailseal.mime.sign import sign_small as _sign_small
from mailseal.mime.sign import sign_stream as _sign_stream

__all__ = ["prepare_signers", "sign", "sign_stream"]


def prepare_signers(
    signers: Identity | PreparedSigner | Sequence[Identity | PreparedSigner],
    digest: HashName | None,
    pss: bool,
    ski: bool,
) -> list[PreparedSigner]:
    """``signers`` as prepared signers; identities are prepared with the options given."""
    if isinstance(signers, PreparedSigner):
        return [signers]
    items = [signers] if isinstance(signers, Identity) else list(signers)
    if not items:
        raise UsageError("at least one signer is needed")
    opts = SignerOptions(digest=digest, pss=pss, use_ski=ski)
    return [s if isinstance(s, PreparedSigner) else PreparedSigner(s, opts) for s in items]


def sign_stream(
    source: BinaryIO,
    sink: BinaryIO,
    signers: Identity | PreparedSigner | Sequence[Identity | PreparedSigner],
    *,
    opaque: bool = False,
    digest: HashName | None = None,
    pss: bool = False,
    ski: bool = False,
    when: _dt.datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """Sign the message read from ``source`` and write the S/MIME message to ``sink``.

    ``signers`` are :class:`~mailseal.keys.identity.Identity` objects (or signers prepared
    once with :class:`~mailseal.cms.signed.PreparedSigner` for speed). The default output is a
    detached ``multipart/signed`` message; ``opaque=True`` gives
    ``application/pkcs7-mime; smime-type=signed-data``.
    """
    _sign_stream(
        source,
        sink,
        prepare_signers(signers, digest, pss, ski),
        opaque=opaque,
        when=when,
        limits=limits,
    )


def sign(
    message: bytes,
    signers: Identity | PreparedSigner | Sequence[Identity | PreparedSigner],
    *,
    opaque: bool = False,
    digest: HashName | None = None,
    pss: bool = False,
    ski: bool = False,
    when: _dt.datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """Sign a message (bytes in, bytes out). See :func:`sign_stream`."""
    prepared = prepare_signers(signers, digest, pss, ski)
    small = _sign_small(message, prepared, opaque=opaque, when=when, limits=limits)
    if small is not None:
        return small
    out = io.BytesIO()
    _sign_stream(io.BytesIO(message), out, prepared, opaque=opaque, when=when, limits=limits)
    return out.getvalue()
