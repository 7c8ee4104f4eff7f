"""mailseal's own work per 1 KiB message, without the RSA operation.

    python -m bench.overhead [--n 20000] [--rounds 5]

The 1 KiB targets compare whole operations (mailseal's Python work plus one RSA private-key
operation of about 250 µs) with OpenSSL and pyca. This tool takes the RSA operation out, to
show what is left to mailseal: the signer's key is replaced by one that returns a signature
made once (the message digests still differ, so every message is encoded in full), and the
decrypting key by one that remembers the content-encryption key of each message it was
shown before the timed rounds. Everything else runs as in ``mailseal.sign`` and
``mailseal.decrypt`` on the benchmark's messages.

It prints the median over ``--rounds`` rounds of ``--n`` messages, in µs per message. These
figures are lower than what the same code costs between RSA operations (the caches are
warm), so they are for comparing versions of mailseal, not for the targets.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import mailseal
from bench.fixtures import make_keys, message_1k
from mailseal.cms.signed import PreparedSigner
from mailseal.keys.base import Decrypter, KeyTransport, KeyType, PrivateKey, SignatureScheme

POOL = 64


class _FixedSignature:
    """A signing key that gives the same (real) signature every time."""

    def __init__(self, key: PrivateKey, scheme: SignatureScheme) -> None:
        self._key = key
        self._signature = key.sign(b"mailseal", scheme)

    @property
    def key_type(self) -> KeyType:
        return self._key.key_type

    @property
    def key_size(self) -> int:
        return self._key.key_size

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        return self._signature


class _Remembering:
    """A decrypting key that opens each encrypted key once and then remembers it."""

    def __init__(self, key: Decrypter) -> None:
        self._key = key
        self._seen: dict[tuple[bytes, str], bytes] = {}

    @property
    def key_type(self) -> KeyType:
        return self._key.key_type

    def decrypt(self, ciphertext: bytes, padding_name: KeyTransport) -> bytes:
        k = (ciphertext, padding_name)
        if k not in self._seen:
            self._seen[k] = self._key.decrypt(ciphertext, padding_name)
        return self._seen[k]

    def exchange(self, peer_public_key: bytes) -> bytes:
        return self._key.exchange(peer_public_key)


def _per_message(fn: Callable[[int], object], n: int, rounds: int) -> float:
    for i in range(POOL):
        fn(i)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        times.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20000, help="messages a round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mailseal-overhead-") as tmp:
        keys = make_keys(Path(tmp))
    msgs = [message_1k(i) for i in range(POOL)]

    ident = keys.identity
    scheme = PreparedSigner(ident).scheme
    fixed = mailseal.Identity(
        ident.certificate,
        _FixedSignature(ident.key, scheme),
        ident.chain,
        ident.encryption_certificate,
    )
    signer = PreparedSigner(fixed)
    rows: list[tuple[str, Callable[[int], object]]] = [
        ("sign, detached, PreparedSigner", lambda i: mailseal.sign(msgs[i % POOL], signer))
    ]

    bob = keys.bob_identity
    key = _Remembering(cast(Decrypter, bob.key))
    remembering = mailseal.Identity(bob.certificate, cast(PrivateKey, key), bob.chain)
    for cipher, kt in (("aes-256-gcm", "oaep"), ("aes-256-cbc", "pkcs1v15")):
        blobs = [
            mailseal.encrypt(m, [keys.bob.cert], cipher=cipher, key_transport=kt) for m in msgs
        ]

        def dec(i: int, blobs: list[bytes] = blobs) -> object:
            return mailseal.decrypt(blobs[i % POOL], [remembering])

        label = "OAEP" if kt == "oaep" else "PKCS#1 v1.5"
        rows.append((f"decrypt, {cipher} + {label}", dec))

    print(
        f"mailseal's work per 1 KiB message, without the RSA operation "
        f"(median of {args.rounds} rounds of {args.n:,})"
    )
    for name, fn in rows:
        print(f"  {name:40s} {_per_message(fn, args.n, args.rounds):6.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
