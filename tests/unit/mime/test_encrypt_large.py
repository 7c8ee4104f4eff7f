"""Encrypting bodies large enough for base64 and writing to run in a second thread: the
result opens, and a failing sink leaves no thread behind."""

from __future__ import annotations

import io

import pytest

import mailseal

from ..conftest import Person
from .test_sign_large import HEAD, _body, _FailingSink, _no_feed_thread_left


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "aes-256-cbc"])
def test_large_body_encrypts_and_decrypts(alice: Person, cipher: str) -> None:
    body = _body(3)
    sink = io.BytesIO()
    mailseal.encrypt_stream(io.BytesIO(HEAD + body), sink, [alice.cert], cipher=cipher)
    assert _no_feed_thread_left()
    res = mailseal.decrypt(sink.getvalue(), [alice.ident])
    assert res.content.endswith(body)


def test_a_failing_sink_stops_the_output_thread(alice: Person) -> None:
    with pytest.raises(OSError, match="No space"):
        mailseal.encrypt_stream(io.BytesIO(HEAD + _body(4)), _FailingSink(2 << 20), [alice.cert])
    assert _no_feed_thread_left()
