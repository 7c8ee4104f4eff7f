"""What encrypting chose, reported to the caller: the content cipher and how each recipient's
key was wrapped. Re-exported by :mod:`mailseal.validation.verdict` with the other values the
message engine returns; kept apart so that encrypting does not load the verification verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailseal._values import quick_init

__all__ = ["EncryptionReport"]


@quick_init
@dataclass(frozen=True, slots=True)
class EncryptionReport:
    """What ``encrypt``/``seal`` chose: the content cipher and, per recipient, the key
    transport or agreement used."""

    cipher: str
    smime_type: str
    recipients: tuple[tuple[str, str], ...]  # (who, how)
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "cipher": self.cipher,
            "smime_type": self.smime_type,
            "recipients": [{"recipient": w, "key_management": h} for w, h in self.recipients],
            "reason": self.reason,
        }
