"""mailseal._values.quick_init: the fast constructor builds the same frozen values."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass, field

import pytest

from mailseal._values import quick_init

#: every value type that uses the fast constructor
_USERS = {
    "mailseal.cms.ids": ["CertId"],
    "mailseal.cms.inspect": ["ParsedSignerInfo", "ParsedSignedData", "SignatureCheck"],
    "mailseal.cms.recipients": ["ParsedRecipient"],
    "mailseal.cms.enveloped": ["EnvelopeInfo"],
    "mailseal.validation.verdict": [
        "Problem",
        "RevocationEvidence",
        "ValidationReport",
        "SignerVerdict",
        "CertificateVerdict",
        "VerifyResult",
        "EncryptionReport",
        "Layer",
        "OpenResult",
    ],
    "mailseal.validation.trust": ["TrustOutcome"],
    "mailseal.mime.verify": ["SignedMessage"],
    "mailseal.mime.envelope": ["Classified"],
    "mailseal.mime.headers": ["ContentType"],
}


def _reference(cls: type) -> type:
    """The same class as the dataclass decorator alone makes it."""
    ns = {
        "__annotations__": dict(cls.__annotations__),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
    }
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            ns[f.name] = field(default=f.default, kw_only=f.kw_only)
        elif f.kw_only:
            ns[f.name] = field(kw_only=True)
    return dataclass(frozen=True, slots=True)(type(cls.__name__, (), ns))


@pytest.mark.parametrize(
    "cls", [getattr(importlib.import_module(m), n) for m, names in _USERS.items() for n in names]
)
def test_same_signature_and_values_as_the_dataclass_constructor(cls: type) -> None:
    ref = _reference(cls)
    ours = inspect.signature(cls.__init__)
    theirs = inspect.signature(ref.__init__)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]
    args = {f.name: object() for f in dataclasses.fields(cls)}
    ours_obj = cls(**args)
    ref_obj = ref(**args)
    assert [getattr(ours_obj, k) for k in args] == [getattr(ref_obj, k) for k in args]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ours_obj.__setattr__(next(iter(args)), 1)


def test_defaults_positional_and_keyword_only() -> None:
    @quick_init
    @dataclass(frozen=True, slots=True)
    class V:
        a: int
        b: str = "b"
        c: tuple[int, ...] = ()
        d: int = field(default=4, kw_only=True)

    v = V(1)
    assert (v.a, v.b, v.c, v.d) == (1, "b", (), 4)
    assert V(1, "x", (2,), d=5) == V(a=1, b="x", c=(2,), d=5)
    assert (
        repr(V(1)) == "test_defaults_positional_and_keyword_only.<locals>.V(a=1, b='b', c=(), d=4)"
    )
    assert hash(V(1)) == hash(V(1))
    with pytest.raises(TypeError):
        V()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        V(1, "x", (), 4)  # type: ignore[misc]
    with pytest.raises(TypeError):
        V(1, e=2)  # type: ignore[call-arg]
    assert dataclasses.replace(v, b="y") == V(1, "y")


def test_refuses_what_it_cannot_do_faithfully() -> None:
    with pytest.raises(TypeError, match="frozen dataclass with slots"):

        @quick_init
        @dataclass(frozen=True)
        class NoSlots:
            a: int

    with pytest.raises(TypeError, match="frozen dataclass with slots"):

        @quick_init
        @dataclass(slots=True)
        class NotFrozen:
            a: int

    with pytest.raises(TypeError, match="plain fields only"):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class Factory:
            a: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="__post_init__"):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class Post:
            a: int

            def __post_init__(self) -> None:
                pass
