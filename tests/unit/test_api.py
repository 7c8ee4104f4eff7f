"""The public surface (DESIGN.md house rules 1 and 3): the everyday names, keyword-only options,
and one exception tree."""

from __future__ import annotations

import inspect

import pytest

import mailseal
from mailseal import errors


def test_all_names_exist() -> None:
    for name in mailseal.__all__:
        assert hasattr(mailseal, name), name
    assert {
        "sign",
        "verify",
        "sign_stream",
        "verify_stream",
        "Trust",
        "Status",
        "VerifyResult",
        "MailsealError",
        "load_identity",
    } <= set(mailseal.__all__)


@pytest.mark.parametrize(
    ("fn", "positional"),
    [
        (mailseal.sign, ["message", "signers"]),
        (mailseal.sign_stream, ["source", "sink", "signers"]),
        (mailseal.verify, ["message"]),
        (mailseal.verify_stream, ["source", "content_sink"]),
    ],
)
def test_options_are_keyword_only(fn, positional: list[str]) -> None:
    params = inspect.signature(fn).parameters.values()
    assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == positional
    assert all(p.kind is p.KEYWORD_ONLY for p in params if p.name not in positional)


def test_one_exception_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.MailsealError), name
    assert issubclass(errors.MalformedMessage, errors.InputError)
    assert issubclass(errors.MalformedCMS, errors.InputError)
    assert issubclass(errors.LimitExceeded, errors.InputError)
    assert issubclass(errors.NotSMIME, errors.InputError)
    assert issubclass(errors.PasswordError, errors.IdentityError)
    assert mailseal.MailsealError is errors.MailsealError


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: mailseal.load_identity(b"not a cert", b"not a key"), errors.IdentityError),
        (lambda: mailseal.load_certificates(b"\x30\x03\x02\x01\x01"), errors.IdentityError),
        (lambda: mailseal.load_pkcs12(b"garbage"), errors.IdentityError),
        (lambda: mailseal.verify(b""), errors.InputError),
        (lambda: mailseal.sign(b"", []), errors.UsageError),
    ],
)
def test_user_errors_are_mailseal_errors(call, error: type[Exception]) -> None:
    with pytest.raises(error) as exc:
        call()
    assert str(exc.value)


def test_identity_errors(alice, bob) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.IdentityError, match="does not belong"):
        mailseal.load_identity(alice.issued.cert_pem, bob.issued.key_pem)
    with pytest.raises(errors.PasswordError):
        mailseal.load_identity(alice.issued.cert_pem, alice.issued.key_pem_encrypted(b"pw"))
    with pytest.raises(errors.PasswordError):
        mailseal.load_identity(
            alice.issued.cert_pem, alice.issued.key_pem_encrypted(b"pw"), password=b"wrong"
        )
    ident = mailseal.load_identity(
        alice.issued.cert_pem, alice.issued.key_pem_encrypted(b"pw"), password=b"pw"
    )
    assert ident.certificate == alice.cert
    with pytest.raises(errors.PasswordError):
        mailseal.load_pkcs12(alice.issued.pkcs12(b"pw"), password=b"nope")
    assert (
        mailseal.load_pkcs12(alice.issued.pkcs12(b"pw"), password=b"pw").certificate == alice.cert
    )
