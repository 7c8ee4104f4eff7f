"""A small cache keyed by object identity, for facts derived from certificates.

``functools.lru_cache`` hashes its argument on every call. A ``cryptography``
``x509.Certificate`` hashes (and compares) its whole encoding: about 2 µs per lookup, more than
some of the facts cached. The hot paths pass the same certificate object again and again (a
recipient's certificate, a sender's certificate from a message parsed through the certificate
cache), so :func:`per_object` looks the argument up by ``id()`` and checks that it is the very
object it saw; an equal but distinct object is a miss and is computed again. The cache holds a
reference to every argument it keeps, so an ``id()`` it holds is never reused by another
object.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerObject", "per_object"]

_A = TypeVar("_A")
_R = TypeVar("_R")


class PerObject(Generic[_A, _R]):
    """``fn(obj)`` remembered for the last ``maxsize`` distinct objects (the oldest goes
    first). Exceptions are not remembered."""

    __slots__ = ("__dict__", "_entries", "_fn", "_maxsize")

    def __init__(self, fn: Callable[[_A], _R], maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._fn = fn
        self._maxsize = maxsize
        self._entries: dict[int, tuple[_A, _R]] = {}
        functools.update_wrapper(self, fn)

    def __call__(self, obj: _A) -> _R:
        hit = self._entries.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = self._fn(obj)
        entries = self._entries
        while len(entries) >= self._maxsize:
            try:
                del entries[next(iter(entries))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                break
        entries[id(obj)] = (obj, value)
        return value

    def cache_clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def per_object(maxsize: int = 1024) -> Callable[[Callable[[_A], _R]], PerObject[_A, _R]]:
    """Decorator: remember ``fn(obj)`` per object identity (see the module docstring)."""

    def wrap(fn: Callable[[_A], _R]) -> PerObject[_A, _R]:
        return PerObject(fn, maxsize)

    return wrap
