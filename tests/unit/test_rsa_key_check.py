"""RSA private keys are loaded without OpenSSL's primality tests and checked by
mailseal.keys.software.check_rsa_key instead: every inconsistent key is refused with a clear
IdentityError, through the library, the CA key files and the command line."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailseal.errors import IdentityError
from mailseal.keys.files import load_key_file, save_key_file
from mailseal.keys.software import RSA_MAX_BITS, check_rsa_key, load_private_key

from ._support import rsa_key_der as _der
from ._support import rsa_key_pem as _pem
from ._support import rsa_numbers as _numbers


@cache
def _key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _composite_prime() -> dict[str, int]:
    """A key whose p is the product of two primes but whose other numbers were computed as if
    p were prime: what a faulty key generator would write. Every identity between the numbers
    holds, so only the signature round trip can tell."""
    small = _key(1024).private_numbers()
    q = _key(2048).private_numbers().p
    p = small.p * small.q
    e = 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    return {
        "version": 0,
        "modulus": p * q,
        "public_exponent": e,
        "private_exponent": d,
        "prime1": p,
        "prime2": q,
        "exponent1": d % (p - 1),
        "exponent2": d % (q - 1),
        "coefficient": pow(q, -1, p),
    }


def _broken() -> dict[str, tuple[dict[str, int], str | None]]:
    """Each inconsistent key and what the error says (None: OpenSSL's parser refuses it
    already, which is an IdentityError as well)."""
    good = _numbers(_key())
    p, q = good["prime1"], good["prime2"]

    def but(**changes: int) -> dict[str, int]:
        return {**good, **changes}

    return {
        "p*q is not n": (but(prime1=p + 2), "do not multiply to its modulus"),
        "even p": (but(prime1=p - 1), "two different odd numbers"),
        "p equals q": (but(prime2=p), "two different odd numbers"),
        "d does not match the CRT exponents": (
            but(private_exponent=good["private_exponent"] ^ (1 << 40)),
            "CRT exponents do not match",
        ),
        "both CRT exponents and d altered alike": (
            but(
                private_exponent=good["private_exponent"] + (p - 1) * (q - 1) // 2 + 2,
                exponent1=(good["exponent1"] + 2) % (p - 1),
                exponent2=(good["exponent2"] + 2) % (q - 1),
            ),
            "does not invert its public exponent",
        ),
        "wrong coefficient": (but(coefficient=good["coefficient"] ^ 1), "CRT coefficient"),
        "even e": (but(public_exponent=65536), "odd number of at least 3"),
        "e of 1": (but(public_exponent=1), "odd number of at least 3"),
        "zero d": (but(private_exponent=0), "zero, negative or larger"),
        "negative p": (but(prime1=-p), None),
        "q larger than n": (but(prime2=good["modulus"] + 2), "zero, negative or larger"),
        "tiny modulus": (
            {**_numbers(_key(2048)), "modulus": 2**255 + 1},
            "modulus has 256 bits",
        ),
        "huge modulus": (but(modulus=1 << (8 * 300_000)), f"modulus has {8 * 300_000 + 1:,}"),
        "composite p": (_composite_prime(), "does not verify with its public key"),
    }


@pytest.mark.parametrize("case", list(_broken()))
def test_inconsistent_keys_are_refused_with_the_reason(case: str) -> None:
    numbers, reason = _broken()[case]
    for data in (_pem(numbers), _der(numbers)):
        with pytest.raises(IdentityError) as err:
            load_private_key(data)
        if reason is not None:
            assert "the RSA private key is inconsistent: " in str(err.value)
            assert reason in str(err.value)


def test_good_keys_pass_both_checks() -> None:
    for bits in (2048, 3072):
        key = _key(bits)
        check_rsa_key(key)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        fast = load_private_key(pem, b"pw")
        full = load_private_key(pem, b"pw", thorough=True)
        assert fast.key.private_numbers() == full.key.private_numbers() == key.private_numbers()
    assert _pem(_numbers(_key())).startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert load_private_key(_pem(_numbers(_key()))).key_size == 2048
    assert RSA_MAX_BITS == 16384


def test_thorough_load_refuses_what_the_fast_check_refuses() -> None:
    """OpenSSL's own check (used for a CA key on import) also refuses the composite prime;
    the fast check must not be weaker on any key the generator got wrong."""
    data = _pem(_composite_prime())
    with pytest.raises(IdentityError):
        load_private_key(data, thorough=True)
    with pytest.raises(IdentityError, match="inconsistent"):
        load_private_key(data)


def test_damaged_ca_key_file_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.key.pem"
    save_key_file(good, _key(), b"passphrase")
    assert load_key_file(good, b"passphrase").key_type == "rsa"
    numbers, _ = _broken()["wrong coefficient"]
    bad_key = serialization.load_der_private_key(
        _der(numbers), None, unsafe_skip_rsa_key_validation=True
    )
    bad = tmp_path / "bad.key.pem"
    save_key_file(bad, bad_key, b"passphrase")
    with pytest.raises(IdentityError, match=r"the key in .*bad\.key\.pem is inconsistent"):
        load_key_file(bad, b"passphrase")
