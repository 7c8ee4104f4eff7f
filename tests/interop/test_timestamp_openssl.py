"""RFC 3161 timestamp tokens made by ``openssl ts -reply`` (a real TSA implementation) over a
mailseal signature: mailseal accepts them as proof of the signing time, and ``openssl ts
-verify`` agrees that the token matches the signature value mailseal hashed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

import mailseal
from mailseal.keys.identity import Identity
from mailseal.keys.software import SoftwareKey
from mailseal.pki.testpki import TestPKI

TS_TOKEN = "1.2.840.113549.1.9.16.2.14"

TSA_CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.7.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess_alg}
"""


def _pem(path: Path, *certs: Any) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs))
    return path


@pytest.mark.parametrize("ess_alg", ["sha256", "sha1"])
def test_openssl_made_token_proves_the_signing_time(
    openssl: Any, smime: Any, ess_alg: str, tmp_path: Path
) -> None:
    pki = TestPKI.create("Timestamp Interop")
    tsa = pki.user(
        "tsa@example.org",
        eku=[ExtendedKeyUsageOID.TIME_STAMPING],
        eku_critical=True,
        usage="signing",
        name="Interop TSA",
    )
    alice = pki.user("alice@example.org", usage="signing")
    signed = mailseal.sign(smime.MAIL, Identity(alice.cert, SoftwareKey(alice.key), pki.chain))

    # the SignerInfo's signature value is what a timestamp covers (RFC 3161 Appendix A)
    sig_part = smime.parts(signed)[1]
    head, body = smime.split_headers(sig_part)
    ci = cms.ContentInfo.load(base64.b64decode(body))
    si = ci["content"]["signer_infos"][0]
    sig_value = openssl.write(bytes(si["signature"].native), ".sig")

    conf = tmp_path / "tsa.cnf"
    conf.write_text(TSA_CONFIG.format(dir=tmp_path, ess_alg=ess_alg))
    (tmp_path / "tsaserial").write_text("01\n")
    tsa_cert = _pem(tmp_path / "tsa.pem", tsa.cert)
    tsa_key = tmp_path / "tsa.key"
    tsa_key.write_bytes(tsa.key_pem)
    chain = _pem(tmp_path / "chain.pem", *pki.chain)
    root = _pem(tmp_path / "root.pem", pki.root.cert)

    query = openssl.path(".tsq")
    r = openssl.run(
        "openssl", "ts", "-query", "-data", sig_value, "-sha256", "-cert", "-out", query
    )
    assert r.returncode == 0, r.stderr
    token = openssl.path(".tst")
    r = openssl.run(
        "openssl", "ts", "-reply", "-config", conf, "-queryfile", query,
        "-signer", tsa_cert, "-inkey", tsa_key, "-chain", chain, "-token_out", "-out", token,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    # the reference agrees the token covers this signature value
    r = openssl.run(
        "openssl", "ts", "-verify", "-token_in", "-in", token, "-data", sig_value,
        "-CAfile", root, "-untrusted", chain,
    )  # fmt: skip
    assert r.returncode == 0 and b"Verification: OK" in r.stdout, r.stdout + r.stderr

    si["unsigned_attrs"] = cms.CMSAttributes(
        [{"type": TS_TOKEN, "values": [cms.ContentInfo.load(token.read_bytes())]}]
    )
    new_b64 = base64.encodebytes(ci.dump()).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    stamped = signed.replace(sig_part, head + new_b64)
    assert stamped != signed

    verdict = mailseal.verify(stamped, trust=mailseal.Trust([pki.root.cert]))
    (signer,) = verdict.signers
    assert signer.valid, signer.describe()
    assert any(n.startswith("timestamp by") and "Interop TSA" in n for n in signer.notes), (
        signer.notes
    )

    # one flipped bit in the token's signature (its last bytes) and the signature is no
    # longer valid
    raw = bytearray(token.read_bytes())
    raw[-1] ^= 1
    si["unsigned_attrs"] = cms.CMSAttributes(
        [{"type": TS_TOKEN, "values": [cms.ContentInfo.load(bytes(raw))]}]
    )
    broken_b64 = base64.encodebytes(ci.dump()).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    broken = signed.replace(sig_part, head + broken_b64)
    assert not mailseal.verify(broken, trust=mailseal.Trust([pki.root.cert])).valid
