"""mailseal.pki.ocsp: request parsing under hostile input, GET path decoding, signed and
unsigned responses, delegated responders, pre-signing and the responder core."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from asn1crypto import ocsp as a_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.asn1 import der
from mailseal.errors import (
    IdentityError,
    MailsealError,
    OcspRequestError,
    StoreUnavailable,
    UsageError,
)
from mailseal.keys.software import SoftwareKey
from mailseal.pki.ocsp import (
    MAX_CERT_IDS,
    MAX_REQUEST_BYTES,
    CertId,
    CertStatus,
    MemoryResponseCache,
    OcspSigner,
    Responder,
    decode_get_path,
    internal_error,
    make_responder_certificate,
    malformed_request,
    parse_request,
    presign,
    refresh_time,
    try_later,
    unauthorized,
)
from mailseal.pki.testpki import Issued, TestPKI

from ._remote import Remote as Counting

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LINT_OCSP = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "lint_ocsp_response"


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create("OCSP Test", now=NOW)


@pytest.fixture(scope="module")
def other() -> TestPKI:
    return TestPKI.create("Other OCSP Test", key_type="p256", with_intermediate=False, now=NOW)


@pytest.fixture(scope="module")
def alice(pki: TestPKI) -> Issued:
    return pki.user("alice@example.org")


@pytest.fixture(scope="module")
def bob(pki: TestPKI) -> Issued:
    return pki.user("bob@example.org")


@pytest.fixture(scope="module")
def signer(pki: TestPKI) -> OcspSigner:
    return OcspSigner(pki.issuer.cert, SoftwareKey(pki.issuer.key))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def delegated(pki: TestPKI) -> tuple[OcspSigner, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = make_responder_certificate(
        pki.issuer.cert,
        SoftwareKey(pki.issuer.key),  # type: ignore[arg-type]
        key.public_key(),
        now=NOW,
    )
    return OcspSigner(pki.issuer.cert, SoftwareKey(key), responder_cert=cert), cert


def _request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    b = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


def _multi(*cert_ids: CertId, nonce: bytes | None = None, extra_ext: bytes = b"") -> bytes:
    reqs = [der.sequence(c.to_der()) for c in cert_ids]
    exts = b""
    if nonce is not None or extra_ext:
        items = []
        if nonce is not None:
            items.append(
                der.sequence(
                    der.oid("1.3.6.1.5.5.7.48.1.2"), der.octet_string(der.octet_string(nonce))
                )
            )
        if extra_ext:
            items.append(extra_ext)
        exts = der.context(2, der.sequence(*items))
    return der.sequence(der.sequence(der.sequence(*reqs), exts))


def _status(resp: bytes) -> ocsp.OCSPResponseStatus:
    return ocsp.load_der_ocsp_response(resp).response_status


def _verify_signature(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> None:
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))  # type: ignore[arg-type]
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(resp.signature, resp.tbs_response_bytes)
    else:
        pub.verify(  # type: ignore[union-attr, call-arg]
            resp.signature,
            resp.tbs_response_bytes,
            padding.PKCS1v15(),  # type: ignore[arg-type]
            resp.signature_hash_algorithm,  # type: ignore[arg-type]
        )


def _key_hash(cert: x509.Certificate) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest  # type: ignore[arg-type]


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256()])
def test_parse_request_from_cryptography(
    pki: TestPKI, alice: Issued, signer: OcspSigner, algorithm: hashes.HashAlgorithm
) -> None:
    req = parse_request(_request(alice.cert, pki.issuer.cert, nonce=b"n" * 16, algorithm=algorithm))
    assert req.nonce == b"n" * 16
    (cid,) = req.cert_ids
    assert cid.hash_algorithm == algorithm.name
    assert cid.serial == alice.cert.serial_number
    assert signer.serves(cid)
    assert cid == signer.cert_id(alice.cert.serial_number, algorithm.name)


def test_parse_request_without_nonce(pki: TestPKI, alice: Issued) -> None:
    assert parse_request(_request(alice.cert, pki.issuer.cert)).nonce is None


def test_parse_request_several_cert_ids(signer: OcspSigner) -> None:
    ids = [signer.cert_id(n) for n in range(1, MAX_CERT_IDS + 1)]
    req = parse_request(_multi(*ids, nonce=b"x" * 32))
    assert req.cert_ids == tuple(ids)
    assert req.nonce == b"x" * 32


def test_parse_request_keeps_the_cert_id_encoding(signer: OcspSigner) -> None:
    """A CertID whose hash AlgorithmIdentifier omits the NULL parameters is answered in the
    same encoding (some clients compare CertIDs byte for byte)."""
    cid = signer.cert_id(5)
    inner = der.sequence(
        der.sequence(der.oid("1.3.14.3.2.26")),
        der.octet_string(cid.issuer_name_hash),
        der.octet_string(cid.issuer_key_hash),
        der.integer(5),
    )
    (got,) = parse_request(der.sequence(der.sequence(der.sequence(der.sequence(inner))))).cert_ids
    assert got == cid and got.to_der() == inner


def test_non_critical_unknown_extension_ignored(signer: OcspSigner) -> None:
    ext = der.sequence(der.oid("1.3.6.1.5.5.7.48.1.4"), der.octet_string(der.sequence()))
    assert parse_request(_multi(signer.cert_id(1), extra_ext=ext)).nonce is None


def _valid(signer: OcspSigner) -> bytes:
    return _multi(signer.cert_id(0x1234), nonce=b"y" * 16)


HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "garbage": b"\x00\x01\x02 not an OCSP request at all",
    "http text": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bare sequence": b"\x30\x00",
    "indefinite length": b"\x30\x80\x30\x80\x00\x00\x00\x00",
    "huge length": b"\x30\x84\xff\xff\xff\xff",
    "five length octets": b"\x30\x85\x01\x00\x00\x00\x00",
    "high tag": b"\x1f\x81\x00",
    "claims more than it has": b"\x30\x82\x3f\xfc\x30\x82\x3f\xf8",
    "wrong outer tag": b"\x31\x03\x02\x01\x00",
}


def _deep(levels: int) -> bytes:
    out = b""
    for _ in range(levels):
        out = der.sequence(out)
    return out


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_requests_refused(name: str) -> None:
    with pytest.raises(OcspRequestError):
        parse_request(HOSTILE[name])


@pytest.mark.timeout(20)
def test_deep_nesting_refused() -> None:
    with pytest.raises(OcspRequestError):
        parse_request(_deep(4000)[:MAX_REQUEST_BYTES])
    with pytest.raises(OcspRequestError):
        parse_request(_deep(3000))


def test_every_truncation_refused(signer: OcspSigner) -> None:
    full = _valid(signer)
    parse_request(full)
    for n in range(len(full)):
        with pytest.raises(OcspRequestError):
            parse_request(full[:n])


def test_trailing_data_refused(signer: OcspSigner) -> None:
    with pytest.raises(OcspRequestError):
        parse_request(_valid(signer) + b"\x00")


def test_non_minimal_length_refused(signer: OcspSigner) -> None:
    full = _valid(signer)
    body = full[2:]
    assert full[1] == len(body)
    with pytest.raises(OcspRequestError, match="non-minimal"):
        parse_request(b"\x30\x81" + bytes((len(body),)) + body)


def test_oversized_refused(signer: OcspSigner) -> None:
    big = der.sequence(
        der.sequence(
            der.sequence(der.sequence(signer.cert_id(1).to_der())),
            der.context(1, der.octet_string(b"A" * MAX_REQUEST_BYTES)),
        )
    )
    with pytest.raises(OcspRequestError, match="larger"):
        parse_request(big)


@pytest.mark.timeout(20)
def test_a_thousand_cert_ids_refused(signer: OcspSigner) -> None:
    ids = [signer.cert_id(n) for n in range(1, 1001)]
    with pytest.raises(OcspRequestError):
        parse_request(_multi(*ids))
    # within the size bound, still too many
    with pytest.raises(OcspRequestError, match="too many"):
        parse_request(_multi(*ids[: MAX_CERT_IDS + 1]))


@pytest.mark.parametrize(
    ("nonce_value", "match"),
    [
        (der.octet_string(b""), "1 to 128"),
        (der.octet_string(b"z" * 129), "1 to 128"),
        (b"raw-not-an-octet-string", "OCTET STRING"),
        (b"", "empty"),
    ],
)
def test_bad_nonces_refused(signer: OcspSigner, nonce_value: bytes, match: str) -> None:
    ext = der.sequence(der.oid("1.3.6.1.5.5.7.48.1.2"), der.octet_string(nonce_value))
    with pytest.raises(OcspRequestError, match=match):
        parse_request(_multi(signer.cert_id(1), extra_ext=ext))


def test_critical_unknown_extension_refused(signer: OcspSigner) -> None:
    ext = der.sequence(der.oid("1.2.3.4"), b"\x01\x01\xff", der.octet_string(b"\x05\x00"))
    with pytest.raises(OcspRequestError, match="critical"):
        parse_request(_multi(signer.cert_id(1), extra_ext=ext))


def test_wrong_hash_length_refused(signer: OcspSigner) -> None:
    cid = signer.cert_id(1)
    bad = CertId("sha1", cid.issuer_name_hash[:19], cid.issuer_key_hash, 1)
    with pytest.raises(OcspRequestError, match="20 octets"):
        parse_request(_multi(bad))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_only_raise_ocsp_request_error(data: bytes) -> None:
    with contextlib.suppress(OcspRequestError):
        parse_request(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_requests(data: st.DataObject) -> None:
    base = bytearray(
        _multi(
            CertId("sha1", b"\x01" * 20, b"\x02" * 20, 77),
            CertId("sha256", b"\x03" * 32, b"\x04" * 32, 78),
            nonce=b"q" * 16,
        )
    )
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(OcspRequestError):
        parse_request(bytes(base))


# -- GET paths ---------------------------------------------------------------------------------


def test_get_path_round_trips(pki: TestPKI, alice: Issued) -> None:
    req = _request(alice.cert, pki.issuer.cert, nonce=b"\xfb\xff" * 10)
    b64 = base64.b64encode(req).decode()
    assert decode_get_path(quote(b64, safe="")) == req
    assert decode_get_path("/" + quote(b64, safe="")) == req
    assert decode_get_path(b64) == req  # '/' and '+' left unescaped by the client
    assert decode_get_path(b64.rstrip("=")) == req  # padding dropped
    assert decode_get_path(b64.replace("+", " ")) == req  # '+' turned into a space
    assert decode_get_path(base64.urlsafe_b64encode(req).decode()) == req
    assert decode_get_path(b64.replace("=", "%3D").replace("/", "%2f")) == req


@pytest.mark.parametrize(
    "path",
    ["", "/", "%", "%zz", "!!!!", "A", "AAAAA", "é" * 8, "%C3%A9" * 4, "MA==MA==", "%00%00%00%00"],
)
def test_get_path_hostile(path: str) -> None:
    with pytest.raises(OcspRequestError):
        decode_get_path(path)


def test_get_path_too_long() -> None:
    with pytest.raises(OcspRequestError, match="longer"):
        decode_get_path("A" * 100_000)
    # within the path bound but decoding to more than a request may be
    with pytest.raises(OcspRequestError, match="larger"):
        decode_get_path("A" * (4 * (MAX_REQUEST_BYTES // 3 + 8)))


def test_responder_answers_garbage_from_a_get_path(signer: OcspSigner) -> None:
    body = decode_get_path(base64.b64encode(b"\x30\x03\x02\x01\x05").decode())
    assert Responder([signer]).respond(body) == malformed_request()


# -- unsigned statuses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (malformed_request, ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        (internal_error, ocsp.OCSPResponseStatus.INTERNAL_ERROR),
        (try_later, ocsp.OCSPResponseStatus.TRY_LATER),
        (unauthorized, ocsp.OCSPResponseStatus.UNAUTHORIZED),
    ],
)
def test_unsigned_statuses(make: object, status: ocsp.OCSPResponseStatus) -> None:
    body = make()  # type: ignore[operator]
    assert _status(body) == status
    assert body == b"\x30\x03\x0a\x01" + bytes((status.value,))


# -- signing -----------------------------------------------------------------------------------


def test_sign_good_revoked_unknown(signer: OcspSigner, pki: TestPKI, alice: Issued) -> None:
    cid = signer.cert_id(alice.cert.serial_number)
    next_update = NOW + dt.timedelta(days=4)
    revoked_at = NOW - dt.timedelta(hours=2)
    for status in ("good", "revoked", "unknown"):
        kw = {"revoked_at": revoked_at, "reason": "key-compromise"} if status == "revoked" else {}
        body = signer.sign_status(cid, status, this_update=NOW, next_update=next_update, **kw)  # type: ignore[arg-type]
        resp = ocsp.load_der_ocsp_response(body)
        assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.certificate_status.name.lower() == status
        assert resp.serial_number == alice.cert.serial_number
        assert resp.this_update_utc == NOW and resp.next_update_utc == next_update
        assert resp.responder_key_hash == _key_hash(pki.issuer.cert)
        assert resp.responder_name is None
        assert resp.certificates == []
        assert list(resp.extensions) == []
        _verify_signature(resp, pki.issuer.cert)
        if status == "revoked":
            assert resp.revocation_time_utc == revoked_at
            assert resp.revocation_reason == x509.ReasonFlags.key_compromise


def test_revoked_without_reason_omits_it(signer: OcspSigner) -> None:
    body = signer.sign_status(
        signer.cert_id(9),
        "revoked",
        revoked_at=NOW,
        this_update=NOW,
        next_update=NOW + dt.timedelta(days=1),
    )
    assert ocsp.load_der_ocsp_response(body).revocation_reason is None


def test_nonce_is_echoed(signer: OcspSigner) -> None:
    body = signer.sign_status(
        signer.cert_id(9),
        "good",
        this_update=NOW,
        next_update=NOW + dt.timedelta(days=1),
        nonce=b"\x01" * 32,
    )
    ext = ocsp.load_der_ocsp_response(body).extensions.get_extension_for_class(x509.OCSPNonce)
    assert ext.value.nonce == b"\x01" * 32 and not ext.critical


def test_delegated_responder(delegated: tuple[OcspSigner, x509.Certificate], pki: TestPKI) -> None:
    d, cert = delegated
    assert d.delegated and d.responder_certificate == cert
    body = d.sign_status(
        d.cert_id(5), "good", this_update=NOW, next_update=NOW + dt.timedelta(days=1)
    )
    resp = ocsp.load_der_ocsp_response(body)
    assert resp.certificates == [cert]
    assert resp.responder_key_hash == _key_hash(cert)
    _verify_signature(resp, cert)
    cert.verify_directly_issued_by(pki.issuer.cert)


def test_responder_certificate_profile(
    delegated: tuple[OcspSigner, x509.Certificate], pki: TestPKI
) -> None:
    _, cert = delegated
    exts = cert.extensions
    assert list(exts.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.OCSP_SIGNING
    ]
    exts.get_extension_for_class(x509.OCSPNoCheck)
    ku = exts.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert not exts.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = exts.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = pki.issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=30)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.endswith(
        "OCSP Responder"
    )


def test_delegate_checks(pki: TestPKI, other: TestPKI) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = SoftwareKey(pki.issuer.key)  # type: ignore[arg-type]
    # issued by another CA
    foreign = make_responder_certificate(
        other.issuer.cert,
        SoftwareKey(other.issuer.key),
        key.public_key(),
        now=NOW,  # type: ignore[arg-type]
    )
    with pytest.raises(IdentityError, match="not issued by the CA"):
        OcspSigner(pki.issuer.cert, SoftwareKey(key), responder_cert=foreign)
    # an ordinary S/MIME certificate is no responder
    user = pki.user("not-a-responder@example.org")
    with pytest.raises(IdentityError, match="OCSPSigning"):
        OcspSigner(pki.issuer.cert, SoftwareKey(user.key), responder_cert=user.cert)  # type: ignore[arg-type]
    # the wrong key for the responder certificate
    good = make_responder_certificate(pki.issuer.cert, ca_key, key.public_key(), now=NOW)
    with pytest.raises(IdentityError, match="does not belong"):
        OcspSigner(
            pki.issuer.cert,
            SoftwareKey(ec.generate_private_key(ec.SECP256R1())),
            responder_cert=good,
        )
    # the wrong key for the CA
    with pytest.raises(IdentityError, match="does not belong"):
        OcspSigner(pki.issuer.cert, SoftwareKey(pki.root.key))  # type: ignore[arg-type]
    # an end-entity certificate is no CA
    with pytest.raises(IdentityError, match="not a CA"):
        OcspSigner(user.cert, SoftwareKey(user.key))  # type: ignore[arg-type]


def test_delegate_without_nocheck_refused(pki: TestPKI) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "No nocheck")]))
        .issuer_name(pki.issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(pki.issuer.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    with pytest.raises(IdentityError, match="nocheck"):
        OcspSigner(pki.issuer.cert, SoftwareKey(key), responder_cert=cert)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"next_update": NOW + dt.timedelta(hours=7)}, "8 hours to 10 days"),
        ({"next_update": NOW + dt.timedelta(days=10, seconds=1)}, "8 hours to 10 days"),
        ({"this_update": NOW.replace(tzinfo=None)}, "timezone"),
        ({"status": "revoked"}, "revoked_at"),
        ({"status": "good", "revoked_at": NOW}, "no revocation"),
        ({"status": "revoked", "revoked_at": NOW, "reason": "unspecified"}, "refused"),
        ({"status": "revoked", "revoked_at": NOW, "reason": "certificateHold"}, "refused"),
        ({"status": "expired"}, "unknown certificate status"),
        ({"nonce": b""}, "nonce"),
    ],
)
def test_sign_status_refusals(signer: OcspSigner, kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "status": "good",
        "this_update": NOW,
        "next_update": NOW + dt.timedelta(days=1),
    }
    args.update(kw)
    status = args.pop("status")
    with pytest.raises(UsageError, match=match):
        signer.sign_status(signer.cert_id(1), status, **args)  # type: ignore[arg-type]


def test_sign_status_for_another_issuer_refused(signer: OcspSigner, other: TestPKI) -> None:
    foreign = OcspSigner(other.issuer.cert, SoftwareKey(other.issuer.key)).cert_id(1)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="another issuer"):
        signer.sign_status(foreign, "good", this_update=NOW, next_update=NOW + dt.timedelta(days=1))


def test_ec_and_ed25519_signers(other: TestPKI) -> None:
    s = OcspSigner(other.issuer.cert, SoftwareKey(other.issuer.key))  # type: ignore[arg-type]
    body = s.sign_status(
        s.cert_id(3), "good", this_update=NOW, next_update=NOW + dt.timedelta(days=1)
    )
    _verify_signature(ocsp.load_der_ocsp_response(body), other.issuer.cert)
    ed = TestPKI.create("Ed OCSP", key_type="ed25519", with_intermediate=False, now=NOW)
    s = OcspSigner(ed.issuer.cert, SoftwareKey(ed.issuer.key))  # type: ignore[arg-type]
    body = s.sign_status(
        s.cert_id(3), "unknown", this_update=NOW, next_update=NOW + dt.timedelta(days=1)
    )
    _verify_signature(ocsp.load_der_ocsp_response(body), ed.issuer.cert)


# -- pre-signing ------------------------------------------------------------------------------


def test_presign_both_hashes_and_refresh_time(signer: OcspSigner, alice: Issued) -> None:
    out = presign(signer, alice.cert.serial_number, "good", now=NOW)
    assert [len(p.issuer_key_hash) for p in out] == [20, 32]
    for p in out:
        resp = ocsp.load_der_ocsp_response(p.der)
        assert resp.next_update_utc - resp.this_update_utc == dt.timedelta(days=4)
        # BR §4.9.10: ≥ 16 h validity → at least 8 h before nextUpdate, ≤ 4 days after
        assert p.refresh_at == NOW + dt.timedelta(days=3, hours=16)
    assert out[0].issuer_key_hash == _key_hash(signer.ca_certificate) == signer.key_id
    assert out[1].issuer_key_hash == signer.cert_id(1, "sha256").issuer_key_hash


def test_refresh_time_rules() -> None:
    t = NOW
    assert refresh_time(t, t + dt.timedelta(hours=8)) == t + dt.timedelta(hours=4)
    assert refresh_time(t, t + dt.timedelta(hours=16)) == t + dt.timedelta(hours=8)
    assert refresh_time(t, t + dt.timedelta(days=10)) == t + dt.timedelta(days=4)
    assert refresh_time(t, t + dt.timedelta(days=1)) == t + dt.timedelta(hours=16)


def test_presign_refuses_windows_outside_the_br(signer: OcspSigner) -> None:
    with pytest.raises(UsageError):
        presign(signer, 1, "good", now=NOW, validity=dt.timedelta(days=11))
    with pytest.raises(UsageError):
        presign(signer, 1, "good", now=NOW, validity=dt.timedelta(hours=1))


def test_memory_cache_expiry_and_due(signer: OcspSigner) -> None:
    clock = [NOW]
    cache = MemoryResponseCache(clock=lambda: clock[0])
    out = presign(signer, 77, "good", now=NOW)
    cache.put(*out)
    assert len(cache) == 2
    assert cache.get(out[0].issuer_key_hash, 77) == out[0].der
    assert cache.get(out[0].issuer_key_hash, 78) is None
    assert cache.due(NOW) == []
    assert len(cache.due(NOW + dt.timedelta(days=3, hours=17))) == 2
    clock[0] = NOW + dt.timedelta(days=4)
    assert cache.get(out[0].issuer_key_hash, 77) is None


# -- the responder ------------------------------------------------------------------------------


class Records:
    """A StatusSource over a dict, counting the lookups."""

    def __init__(self, ca_key_id: bytes, statuses: dict[int, CertStatus]) -> None:
        self.ca_key_id = ca_key_id
        self.statuses = statuses
        self.calls = 0
        self.fail: Exception | None = None

    def status(self, ca_key_id: bytes, serial: int) -> CertStatus | None:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        assert ca_key_id == self.ca_key_id
        return self.statuses.get(serial)


@pytest.fixture
def counting(pki: TestPKI) -> tuple[OcspSigner, Counting]:
    key = Counting(pki.issuer.key)
    s = OcspSigner(pki.issuer.cert, key)
    key.calls = 0
    return s, key


def test_hot_path_serves_presigned_without_signing(
    counting: tuple[OcspSigner, Counting], pki: TestPKI, alice: Issued
) -> None:
    s, key = counting
    cache = MemoryResponseCache()
    cache.put(*presign(s, alice.cert.serial_number, "good", now=NOW))
    signed = key.calls
    responder = Responder([s], responses=cache)
    for algorithm in (hashes.SHA1(), hashes.SHA256()):
        req = _request(alice.cert, pki.issuer.cert, algorithm=algorithm)
        resp = ocsp.load_der_ocsp_response(responder.respond(req))
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert resp.hash_algorithm.name == algorithm.name
    assert key.calls == signed


def test_unknown_serial_is_unknown_and_cached(
    counting: tuple[OcspSigner, Counting], pki: TestPKI, bob: Issued
) -> None:
    s, key = counting
    responder = Responder([s], responses=MemoryResponseCache())
    req = _request(bob.cert, pki.issuer.cert)
    first = responder.respond(req)
    assert ocsp.load_der_ocsp_response(first).certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert key.calls == 1
    assert responder.respond(req) == first
    assert key.calls == 1


def test_never_good_for_a_serial_the_ca_did_not_issue(
    signer: OcspSigner, pki: TestPKI, bob: Issued
) -> None:
    records = Records(signer.key_id, {})
    body = Responder([signer], statuses=records).respond(_request(bob.cert, pki.issuer.cert))
    assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def test_other_issuer_is_unauthorized(signer: OcspSigner, other: TestPKI) -> None:
    user = other.user("carol@example.org", key_type="p256")
    body = Responder([signer]).respond(_request(user.cert, other.issuer.cert))
    assert body == unauthorized()


def test_two_cas_one_responder(
    signer: OcspSigner, other: TestPKI, pki: TestPKI, alice: Issued
) -> None:
    s2 = OcspSigner(other.issuer.cert, SoftwareKey(other.issuer.key))  # type: ignore[arg-type]
    user = other.user("dan@example.org", key_type="p256")
    responder = Responder([signer, s2])
    r1 = ocsp.load_der_ocsp_response(responder.respond(_request(alice.cert, pki.issuer.cert)))
    r2 = ocsp.load_der_ocsp_response(responder.respond(_request(user.cert, other.issuer.cert)))
    assert r1.responder_key_hash == _key_hash(pki.issuer.cert)
    assert r2.responder_key_hash == _key_hash(other.issuer.cert)
    # one request mixing both CAs cannot be signed by either
    mixed = _multi(signer.cert_id(1), s2.cert_id(2))
    assert responder.respond(mixed) == unauthorized()


def test_nonce_gets_a_fresh_response(
    counting: tuple[OcspSigner, Counting], pki: TestPKI, alice: Issued
) -> None:
    s, key = counting
    cache = MemoryResponseCache()
    cache.put(*presign(s, alice.cert.serial_number, "good", now=NOW))
    records = Records(s.key_id, {alice.cert.serial_number: CertStatus("good")})
    before = key.calls
    body = Responder([s], responses=cache, statuses=records).respond(
        _request(alice.cert, pki.issuer.cert, nonce=b"\x42" * 32)
    )
    resp = ocsp.load_der_ocsp_response(body)
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x42" * 32
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert key.calls == before + 1


def test_nonce_ignored_without_status_source_or_when_off(
    signer: OcspSigner, pki: TestPKI, alice: Issued
) -> None:
    cache = MemoryResponseCache()
    out = presign(signer, alice.cert.serial_number, "good", now=NOW)
    cache.put(*out)
    req = _request(alice.cert, pki.issuer.cert, nonce=b"\x42" * 32)
    assert Responder([signer], responses=cache).respond(req) == out[0].der
    records = Records(signer.key_id, {})
    off = Responder([signer], responses=cache, statuses=records, echo_nonce=False)
    assert off.respond(req) == out[0].der
    assert records.calls == 0


def test_several_cert_ids_each_answered(signer: OcspSigner) -> None:
    records = Records(
        signer.key_id,
        {
            1: CertStatus("good"),
            2: CertStatus("revoked", NOW - dt.timedelta(days=1), "superseded"),
        },
    )
    ids = [signer.cert_id(1), signer.cert_id(2, "sha256"), signer.cert_id(3)]
    body = Responder([signer], statuses=records).respond(_multi(*ids, nonce=b"m" * 20))
    resp = a_ocsp.OCSPResponse.load(body)
    data = resp["response_bytes"]["response"].parsed["tbs_response_data"]
    got = [(r["cert_id"]["serial_number"].native, r["cert_status"].name) for r in data["responses"]]
    assert got == [(1, "good"), (2, "revoked"), (3, "unknown")]
    assert data["responses"][1]["cert_status"].chosen["revocation_reason"].native == "superseded"
    assert data["responses"][1]["cert_id"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert data["response_extensions"][0]["extn_value"].parsed.native == b"m" * 20


def test_several_cert_ids_without_status_source_answer_the_first(signer: OcspSigner) -> None:
    cache = MemoryResponseCache()
    out = presign(signer, 5, "revoked", revoked_at=NOW, now=NOW)
    cache.put(*out)
    responder = Responder([signer], responses=cache)
    assert responder.respond(_multi(signer.cert_id(5), signer.cert_id(6))) == out[0].der


def test_source_failures_become_statuses(signer: OcspSigner) -> None:
    records = Records(signer.key_id, {})
    responder = Responder([signer], statuses=records)
    req = _multi(signer.cert_id(1), nonce=b"n" * 16)
    records.fail = StoreUnavailable("database locked")
    assert responder.respond(req) == try_later()
    records.fail = MailsealError("inconsistent")
    assert responder.respond(req) == internal_error()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_responder_never_raises_on_hostile_input(signer: OcspSigner, name: str) -> None:
    assert Responder([signer]).respond(HOSTILE[name]) == malformed_request()


@pytest.mark.timeout(30)
def test_responder_hostile_sizes(signer: OcspSigner) -> None:
    responder = Responder([signer])
    ids = [signer.cert_id(n) for n in range(1, 1001)]
    assert responder.respond(_multi(*ids)) == malformed_request()
    assert responder.respond(b"\x30" * (MAX_REQUEST_BYTES * 4)) == malformed_request()
    assert responder.respond(_deep(3000)) == malformed_request()
    assert responder.respond(b"not bytes") == malformed_request()
    assert responder.respond("text") == malformed_request()  # type: ignore[arg-type]


def test_responder_arguments(signer: OcspSigner) -> None:
    with pytest.raises(UsageError):
        Responder([])
    with pytest.raises(UsageError):
        Responder([signer], validity=dt.timedelta(days=11))


# -- pkilint ----------------------------------------------------------------------------------


@pytest.mark.skipif(
    not LINT_OCSP.exists() and not shutil.which("lint_ocsp_response"), reason="no pkilint"
)
def test_pkilint_clean(
    signer: OcspSigner, delegated: tuple[OcspSigner, x509.Certificate], tmp_path: Path
) -> None:
    d, _ = delegated
    bodies = {
        "good": presign(signer, 1, "good", now=NOW)[0].der,
        "revoked": presign(signer, 2, "revoked", revoked_at=NOW, reason="keyCompromise", now=NOW)[
            1
        ].der,
        "unknown": presign(d, 3, "unknown", now=NOW)[0].der,
        "delegated-revoked": presign(d, 4, "revoked", revoked_at=NOW, now=NOW)[0].der,
        "nonce": d.sign_status(
            d.cert_id(5),
            "good",
            this_update=NOW,
            next_update=NOW + dt.timedelta(days=1),
            nonce=b"n" * 32,
        ),
        "multi": Responder([signer], statuses=Records(signer.key_id, {})).respond(
            _multi(signer.cert_id(1), signer.cert_id(2))
        ),
    }
    for name, body in bodies.items():
        path = tmp_path / f"{name}.der"
        path.write_bytes(body)
        proc = subprocess.run(
            [str(LINT_OCSP), "lint", "-s", "WARNING", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0 and proc.stdout.strip() == "", (name, proc.stdout, proc.stderr)
