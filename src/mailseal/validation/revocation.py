"""The revocation modes :class:`~mailseal.validation.trust.Trust` accepts (``soft``, ``hard``,
``off``; described there), apart from it so that the command line can offer them as choices
without loading path validation."""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["REVOCATION_MODES", "RevocationMode"]

RevocationMode = Literal["soft", "hard", "off"]
REVOCATION_MODES: Final[tuple[str, ...]] = ("soft", "hard", "off")
