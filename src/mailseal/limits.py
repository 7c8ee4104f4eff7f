"""Bounds on the work done for one input (DESIGN.md rule 7).

Every parser takes a :class:`Limits`; exceeding one raises :class:`~mailseal.errors.LimitExceeded`
with a message that names the limit, never a hang or an unbounded allocation.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Safety limits for parsing messages and CMS structures."""

    #: Longest header line (folded lines counted separately) in bytes.
    max_header_line: int = 64 * 1024
    #: Largest header block of one entity in bytes.
    max_header_block: int = 1024 * 1024
    #: Most header fields in one entity.
    max_header_fields: int = 2000
    #: Deepest MIME or CMS nesting.
    max_depth: int = 32
    #: Most MIME parts in one message.
    max_parts: int = 10_000
    #: Largest body line inside a part we must scan line by line (boundaries, base64).
    max_body_line: int = 16 * 1024 * 1024
    #: Largest CMS signature structure (certificates and SignerInfos) kept in memory.
    max_signature_bytes: int = 32 * 1024 * 1024
    #: Most signers in one SignedData.
    max_signers: int = 64
    #: Most certificates carried in one SignedData.
    max_certificates: int = 256
    #: Largest output of one decompression (RFC 3274 CompressedData).
    max_decompressed: int = 1 << 30
    #: Largest ratio of decompressed to compressed size, once past 1 MiB of output.
    max_compression_ratio: int = 1000
    #: Most S/MIME layers peeled from one message (encrypted, signed, compressed, ...).
    max_layers: int = 8


DEFAULT_LIMITS = Limits()
