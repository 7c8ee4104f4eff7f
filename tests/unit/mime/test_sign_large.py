"""Signing entities large enough to be hashed in a second thread (mailseal._background):
the signature is right, a late switch to the careful pass starts over cleanly, several
digests are fed, and a failing sink leaves no thread behind."""

from __future__ import annotations

import io
import threading
import time

import pytest

import mailseal
from mailseal.cms.signed import PreparedSigner, SignerOptions

from ..conftest import Person

HEAD = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: large\r\n"
HEAD += b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"


def _body(mib: int) -> bytes:
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    return line * ((mib << 20) // len(line))


def _no_feed_thread_left() -> bool:
    for _ in range(200):
        if not any(t.name == "mailseal-feed" for t in threading.enumerate()):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_large_entity_signs_and_verifies(
    alice: Person, trust: mailseal.Trust, opaque: bool
) -> None:
    body = _body(3)
    sink = io.BytesIO()
    mailseal.sign_stream(io.BytesIO(HEAD + body), sink, alice.ident, opaque=opaque)
    res = mailseal.verify(sink.getvalue(), trust=trust)
    assert res.valid, res
    assert res.content.endswith(body)
    assert _no_feed_thread_left()


@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_a_long_line_late_in_the_body_starts_over_with_the_careful_pass(
    alice: Person, trust: mailseal.Trust, opaque: bool
) -> None:
    body = _body(2) + b"x" * 1500 + b"\r\n" + _body(1)
    sink = io.BytesIO()
    mailseal.sign_stream(io.BytesIO(HEAD + body), sink, alice.ident, opaque=opaque)
    res = mailseal.verify(sink.getvalue(), trust=trust)
    assert res.valid, res
    assert b"Content-Transfer-Encoding: quoted-printable" in res.content
    assert b"x" * 1500 not in res.content
    assert _no_feed_thread_left()


def test_two_digests_on_a_large_entity(alice: Person, bob: Person, trust: mailseal.Trust) -> None:
    signers = [
        PreparedSigner(alice.ident, SignerOptions(digest="sha256")),
        PreparedSigner(bob.ident, SignerOptions(digest="sha512")),
    ]
    sink = io.BytesIO()
    mailseal.sign_stream(io.BytesIO(HEAD + _body(2)), sink, signers)
    res = mailseal.verify(sink.getvalue(), trust=trust)
    assert len(res.signers) == 2
    # bob's address is not the From address; both signatures are intact and trusted
    assert all(s.intact and s.trusted for s in res.signers), res


class _FailingSink(io.BytesIO):
    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.fail_after:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_a_failing_sink_stops_the_hashing_thread(alice: Person, opaque: bool) -> None:
    with pytest.raises(OSError, match="No space"):
        mailseal.sign_stream(
            io.BytesIO(HEAD + _body(4)), _FailingSink(2 << 20), alice.ident, opaque=opaque
        )
    assert _no_feed_thread_left()
