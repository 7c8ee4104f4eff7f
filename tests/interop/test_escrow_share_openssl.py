"""An officer's share file, encrypted to the officer's certificate, opens with OpenSSL 3 alone:
``openssl cms -decrypt -inform DER -recip CERT -inkey KEY`` on the base64-decoded ``envelope``
gives the sealed JSON (header and share), so a share can be recovered without mailseal.

RSA (RSAES-OAEP SHA-256) and EC P-256 / P-384 (ECDH, X9.63 KDF) officers, AES-256-GCM
AuthEnvelopedData; another officer's key must not open it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from mailseal.escrow.officer import open_share_with_key, seal_share_to_certificate
from mailseal.escrow.threshold import create_escrow
from mailseal.keys.software import SoftwareKey

pytestmark = pytest.mark.interop

OFFICERS = {
    "rsa3072": "officer-rsa3072",
    "p256": "officer-p256",
    "p384": "officer-p384",
}


@pytest.fixture(scope="module")
def officers(make_ident: Any) -> dict[str, Any]:
    """Encryption-only officer certificates and keys, written as PEM files."""
    return {
        key_type: make_ident(stem, key_type=key_type, usage="encryption")
        for key_type, stem in OFFICERS.items()
    }


def _explain(proc: Any) -> str:
    command = " ".join(map(str, proc.args))
    stderr = proc.stderr.decode("utf-8", "replace")
    return f"\n$ {command}\nexit code {proc.returncode}\n{stderr}"


def _openssl_decrypt(openssl: Any, der: bytes, ident: Any) -> tuple[Any, bytes | None]:
    src, out = openssl.write(der, ".der"), openssl.path(".json")
    args: list[str | Path] = ["openssl", "cms", "-decrypt", "-inform", "DER", "-in", src]
    args += ["-recip", ident.cert, "-inkey", ident.key, "-out", out]
    proc = openssl.run(*args)
    return proc, (out.read_bytes() if proc.returncode == 0 and out.exists() else None)


@pytest.mark.parametrize("key_type", list(OFFICERS))
def test_openssl_recovers_the_share(key_type: str, openssl: Any, officers: dict[str, Any]) -> None:
    escrow, shares = create_escrow(2, 3)
    officer = officers[key_type]
    data = seal_share_to_certificate(escrow, shares[2], officer.issued.cert)
    doc = json.loads(data)
    der = base64.b64decode(doc["envelope"])

    proc, plaintext = _openssl_decrypt(openssl, der, officer)
    assert plaintext is not None, "openssl cms -decrypt failed" + _explain(proc)
    inner = json.loads(plaintext)
    assert bytes.fromhex(inner["share"]) == shares[2].value
    header = {k: v for k, v in doc.items() if k not in ("envelope", "certificate_pem")}
    assert inner["header"] == header
    # and mailseal agrees with what OpenSSL read
    key = SoftwareKey(officer.issued.key)
    assert open_share_with_key(data, key, officer.issued.cert, escrow) == shares[2]


def test_openssl_refuses_another_officers_key(openssl: Any, officers: dict[str, Any]) -> None:
    escrow, shares = create_escrow(2, 3)
    ann, bo = officers["rsa3072"], officers["p256"]
    der = base64.b64decode(
        json.loads(seal_share_to_certificate(escrow, shares[0], ann.issued.cert))["envelope"]
    )
    proc, plaintext = _openssl_decrypt(openssl, der, bo)
    assert plaintext is None, "another officer's key opened the share" + _explain(proc)
