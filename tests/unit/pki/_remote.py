"""A private key that is not a :class:`~mailseal.keys.software.SoftwareKey`, as an HSM key is
to the CA code: signing takes the route for keys that are not held in memory. It counts its
signatures, so tests can show when the hot path signs nothing."""

from __future__ import annotations

from mailseal.keys.base import KeyType, SignatureScheme
from mailseal.keys.software import SoftwareKey


class Remote:
    def __init__(self, key: object) -> None:
        self.inner = SoftwareKey(key)  # type: ignore[arg-type]
        self.calls = 0

    @property
    def key_type(self) -> KeyType:
        return self.inner.key_type

    @property
    def key_size(self) -> int:
        return self.inner.key_size

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        self.calls += 1
        return self.inner.sign(data, scheme)
