"""mailseal.cms.enveloped.open_envelope_bytes and the one-pass RecipientInfo reader.

Both are shortcuts for content held in memory. Each is checked against the general reader it
stands in for, on real envelopes and on thousands of mutated ones: the same result or the same
error, never anything the general reader would not say.
"""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from cryptography import x509

import mailseal
from mailseal import _open
from mailseal.cms import enveloped as EV
from mailseal.cms import recipients as R
from mailseal.errors import MailsealError
from mailseal.keys.base import Decrypter

from ..conftest import Person

Ids = list[tuple[x509.Certificate, Decrypter]]
MESSAGE = b"Subject: figures\r\nContent-Type: text/plain\r\n\r\n" + b"line of text\r\n" * 40


def _der(encrypted: bytes) -> bytes:
    return base64.b64decode(encrypted.split(b"\r\n\r\n", 1)[1])


@pytest.fixture(scope="module")
def envelopes(person: Callable[..., Person]) -> list[tuple[str, bytes, Ids]]:
    rsa = person("alice@example.org")
    ec = person("bob@example.org", key_type="p256")
    carol = person("carol-rsa@example.org")
    ids: Ids = _open._decrypters([rsa.ident])
    out = []
    for cipher in ("aes-256-gcm", "aes-128-cbc"):
        for kt in ("oaep", "pkcs1v15"):
            enc = mailseal.encrypt(MESSAGE, [rsa.cert], cipher=cipher, key_transport=kt)
            out.append((f"{cipher}-{kt}", _der(enc), ids))
    ski = mailseal.encrypt(MESSAGE, [rsa.cert], ski=True)
    out.append(("ski", _der(ski), ids))
    several = mailseal.encrypt(MESSAGE, [carol.cert, ec.cert, rsa.cert])
    out.append(("several", _der(several), ids))
    out.append(("kari", _der(mailseal.encrypt(MESSAGE, [ec.cert])), _open._decrypters([ec.ident])))
    out.append(("nobody", _der(mailseal.encrypt(MESSAGE, [carol.cert])), ids))
    return out


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return ("ok", fn())
    except MailsealError as exc:
        return (type(exc).__name__, str(exc))


def _streamed(data: bytes, ids: Ids, **kw: bool) -> tuple[EV.EnvelopeInfo, bytes]:
    out: list[bytes] = []
    info = EV.open_envelope(io.BytesIO(data).read, ids, out.append, **kw)
    return info, b"".join(out)


def test_usual_envelopes_take_the_one_pass_path(envelopes: list[tuple[str, bytes, Ids]]) -> None:
    for name, data, ids in envelopes:
        assert EV._read_small(data, EV.DEFAULT_LIMITS) is not None, name
        got = _outcome(lambda d=data, i=ids: EV.open_envelope_bytes(d, i))
        assert got == _outcome(lambda d=data, i=ids: _streamed(d, i)), name
        if name != "nobody":
            assert got[0] == "ok" and got[1][1].endswith(b"line of text\r\n"), name  # type: ignore[index]


def test_require_authenticated_is_the_same(envelopes: list[tuple[str, bytes, Ids]]) -> None:
    for name, data, ids in envelopes:
        fast = _outcome(
            lambda d=data, i=ids: EV.open_envelope_bytes(d, i, require_authenticated=True)
        )
        slow = _outcome(lambda d=data, i=ids: _streamed(d, i, require_authenticated=True))
        assert fast == slow, name


def _mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        b = bytearray(data)
        kind = rng.randrange(5)
        # most of the structure sits in the first few hundred bytes
        pos = rng.randrange(min(len(b), 600))
        if kind == 0:
            b[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            b[pos] = rng.choice([0x00, 0x04, 0x24, 0x30, 0x31, 0x80, 0x81, 0x82, 0xA0, 0xA1, 0xFF])
        elif kind == 2:
            del b[rng.randrange(len(b)) :]
        elif kind == 3:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        else:
            b += b"\x00" * rng.randrange(1, 3)
        out.append(bytes(b))
    return out


def test_mutated_envelopes_give_what_the_general_reader_gives(
    envelopes: list[tuple[str, bytes, Ids]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PKCS#1 v1.5 entry that fails to decrypt yields a random stand-in key (RFC 3218 §2.3),
    # so about one CBC message in 256 then "decrypts" to garbage: draw the same stand-in on
    # both readers so that their outcomes can be compared.
    monkeypatch.setattr(R, "os", SimpleNamespace(urandom=bytes))
    rng = random.Random(20261124)
    checked = 0
    for name, data, ids in envelopes:
        for bad in _mutations(data, rng, 250):
            fast = _outcome(lambda d=bad, i=ids: EV.open_envelope_bytes(d, i))
            slow = _outcome(lambda d=bad, i=ids: _streamed(d, i))
            assert fast == slow, (name, bad.hex())
            checked += 1
    assert checked == 250 * len(envelopes)


def _recipient_set(data: bytes) -> bytes:
    small = EV._read_small(data, EV.DEFAULT_LIMITS)
    assert small is not None
    # the SET is the second field of the envelope: find it through asn1crypto
    from asn1crypto import cms as a_cms

    content = a_cms.ContentInfo.load(data)["content"]
    return bytes(content["recipient_infos"].dump())


def test_one_pass_recipient_reader_agrees(envelopes: list[tuple[str, bytes, Ids]]) -> None:
    rng = random.Random(5652)
    fast_seen = 0
    for name, data, _ids in envelopes:
        rset = _recipient_set(data)
        fast = R._ktri_only(rset, 1024)
        if name in ("kari", "several"):
            assert fast is None, name  # key agreement entries take the general reader
        else:
            assert fast is not None and fast == R._parse_any(rset, 1024), name
        for bad in _mutations(rset, rng, 300):
            got = _outcome(lambda b=bad: R._ktri_only(b, 1024))
            if got[0] != "ok" or got[1] is None:  # type: ignore[index]
                continue
            fast_seen += 1
            assert got == _outcome(lambda b=bad: R._parse_any(b, 1024)), (name, bad.hex())
    assert fast_seen > 100


def test_recipient_limit_goes_to_the_general_reader(
    envelopes: list[tuple[str, bytes, Ids]],
) -> None:
    rset = _recipient_set(envelopes[0][1])
    assert R._ktri_only(rset, 0) is None
    with pytest.raises(MailsealError, match="more than 0 recipients"):
        R.parse_recipient_infos(rset, max_recipients=0)


@pytest.mark.parametrize("with_headers", [False, True])
def test_decrypt_in_memory_matches_the_stream(
    person: Callable[..., Person], with_headers: bool
) -> None:
    """mailseal.decrypt (one pass over bytes) and decrypt_stream agree on the whole result,
    transport headers included, and on refusals."""
    rsa = person("alice@example.org")
    message = b"From: alice@example.org\r\nTo: bob@example.org\r\n" + MESSAGE
    for enc in (
        mailseal.encrypt(message, [rsa.cert]),
        mailseal.encrypt(message, [rsa.cert], cipher="aes-256-cbc", key_transport="pkcs1v15"),
        _der(mailseal.encrypt(message, [rsa.cert])),  # raw DER input
    ):
        fast = mailseal.decrypt(enc, [rsa.ident], with_headers=with_headers)
        out = io.BytesIO()
        slow = mailseal.decrypt_stream(io.BytesIO(enc), out, [rsa.ident], with_headers=with_headers)
        assert fast.content == out.getvalue()
        assert fast.layers == slow.layers and fast.status == slow.status
        assert fast.transport_headers == slow.transport_headers
        if with_headers and not enc.startswith(b"0"):
            assert fast.content is not None and fast.content.startswith(b"From: alice@example.org")
    signed_corrupt = (
        b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nQUJDRA==\r\nQ\r\n"
    )
    for bad in (
        message,
        b"",
        b"Content-Type: application/pkcs7-mime\r\n\r\n!!!!\r\n",
        signed_corrupt,  # not encrypted: said before its (broken) body is read
    ):
        fast_err = _outcome(lambda b=bad: mailseal.decrypt(b, [rsa.ident]))
        slow_err = _outcome(
            lambda b=bad: mailseal.decrypt_stream(io.BytesIO(b), io.BytesIO(), [rsa.ident])
        )
        assert fast_err == slow_err and fast_err[0] != "ok"  # type: ignore[index]


def test_large_identifiers_are_not_remembered() -> None:
    """What hostile messages can make large stays out of the caches that remember by value."""
    from mailseal.asn1 import der
    from mailseal.cms.ids import CertId

    EV._describe_remembered.cache_clear()
    big = CertId(issuer_der=der.sequence(der.octet_string(b"x" * 4096)), serial=7)
    assert EV.describe_recipient(big).startswith("serial 7 from ")
    assert EV._describe_remembered.cache_info().currsize == 0
    small = CertId(ski=b"\x01" * 20)
    assert EV.describe_recipient(small) == "subjectKeyIdentifier " + "01" * 20
    assert EV._describe_remembered.cache_info().currsize == 1

    R._key_transport_remembered.cache_clear()
    oaep_params = der.sequence(
        der.context(2, der.sequence(der.oid("1.2.840.113549.1.1.9"), der.octet_string(b"L" * 300)))
    )
    alg = der.sequence(der.oid("1.2.840.113549.1.1.7"), oaep_params)
    transport, _text, _weak, problem = R._key_transport(alg)
    assert transport is None and problem is not None and "label" in problem
    assert R._key_transport_remembered.cache_info().currsize == 0
