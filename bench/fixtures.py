"""A throwaway PKI written to files, and the messages the benchmarks sign, verify, encrypt
and decrypt."""

from __future__ import annotations

import base64
import os
import random
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

import mailseal
from mailseal.cms.signed import PreparedSigner
from mailseal.pki.testpki import Issued, TestPKI, write_identity

SENDER = "alice@example.org"
RECIPIENT = "bob@example.org"


@dataclass(frozen=True)
class Keys:
    """A root, an issuing CA, an RSA-2048 signing certificate for :data:`SENDER` and an
    RSA-2048 encryption certificate (keyEncipherment, emailProtection) for :data:`RECIPIENT`."""

    pki: TestPKI
    user: Issued
    identity: mailseal.Identity
    prepared: PreparedSigner
    root_pem: Path  # the trust anchor
    chain_pem: Path  # the issuing CA, sent along with signatures
    cert_pem: Path
    key_pem: Path
    bob: Issued
    bob_identity: mailseal.Identity
    bob_cert_pem: Path
    bob_key_pem: Path

    def trust(self) -> mailseal.Trust:
        return mailseal.Trust([self.pki.root.cert])


def make_keys(workdir: Path) -> Keys:
    pki = TestPKI.create("mailseal Bench", key_type="rsa2048")
    user = pki.user(SENDER, key_type="rsa2048", usage="signing")
    identity = mailseal.load_identity(user.cert_pem, user.key_pem, chain=list(pki.chain))
    cert_pem, key_pem = write_identity(workdir, "alice", user)
    root_pem = workdir / "root.pem"
    root_pem.write_bytes(pki.root.cert_pem)
    chain_pem = workdir / "chain.pem"
    chain_pem.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.chain))
    bob = pki.user(RECIPIENT, key_type="rsa2048", usage="encryption")
    bob_identity = mailseal.load_identity(bob.cert_pem, bob.key_pem, chain=list(pki.chain))
    bob_cert_pem, bob_key_pem = write_identity(workdir, "bob", bob)
    return Keys(
        pki=pki,
        user=user,
        identity=identity,
        prepared=PreparedSigner(identity),
        root_pem=root_pem,
        chain_pem=chain_pem,
        cert_pem=cert_pem,
        key_pem=key_pem,
        bob=bob,
        bob_identity=bob_identity,
        bob_cert_pem=bob_cert_pem,
        bob_key_pem=bob_key_pem,
    )


# -- messages ---------------------------------------------------------------------------------

_WORDS = [
    "the",
    "quarterly",
    "report",
    "attached",
    "shows",
    "revenue",
    "growth",
    "across",
    "all",
    "regions",
    "while",
    "costs",
    "remained",
    "flat",
    "please",
    "review",
    "the",
    "figures",
    "before",
    "our",
    "meeting",
    "on",
    "thursday",
    "and",
    "send",
    "any",
    "questions",
    "to",
    "the",
    "finance",
    "team",
    "we",
    "expect",
    "the",
    "board",
    "to",
    "approve",
    "the",
    "budget",
    "for",
    "next",
    "year",
    "including",
    "new",
    "hires",
    "in",
    "engineering",
    "support",
    "and",
    "sales",
    "operations",
    "thanks",
    "regards",
]


def _headers(subject: str, i: int, content: list[str]) -> bytes:
    lines = [
        f"From: Alice Example <{SENDER}>",
        "To: Bob Example <bob@example.org>",
        f"Subject: {subject}",
        "Date: Mon, 24 Nov 2025 08:00:00 +0000",
        f"Message-ID: <bench-{i}@example.org>",
        "MIME-Version: 1.0",
        *content,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _text_lines(rng: random.Random, nbytes: int) -> bytes:
    """ASCII prose in lines of about 76 characters, CRLF line ends, ``nbytes`` long."""
    out: list[str] = []
    size = 0
    line: list[str] = []
    width = 0
    while size < nbytes:
        w = rng.choice(_WORDS)
        if width + len(w) + 1 > 76:
            text = " ".join(line) + "\r\n"
            out.append(text)
            size += len(text)
            line, width = [], 0
        line.append(w)
        width += len(w) + 1
    data = "".join(out).encode("ascii")
    return data[:nbytes]


def message_1k(i: int = 0, size: int = 1024) -> bytes:
    """A ``size``-byte text/plain message from :data:`SENDER`; ``i`` varies the bytes."""
    head = _headers(
        f"Weekly figures #{i}",
        i,
        ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"],
    )
    body_len = size - len(head)
    body = _text_lines(random.Random(i), body_len + 100)[: body_len - 2] + b"\r\n"
    msg = head + body
    assert len(msg) == size, len(msg)
    return msg


def write_large_text(path: Path, size: int, *, block: int = 4 << 20) -> int:
    """A text/plain 7bit message of about ``size`` bytes of ~76-character CRLF lines."""
    rng = random.Random(1)
    head = _headers(
        "Large text",
        1,
        ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"],
    )
    # a few distinct blocks of prose, cut at a line end, repeated until the size is reached
    blocks = []
    for _ in range(4):
        b = _text_lines(rng, min(block, size) + 200)
        blocks.append(b[: b.rfind(b"\r\n", 0, min(block, size)) + 2])
    written = 0
    with path.open("wb") as f:
        f.write(head)
        written += len(head)
        k = 0
        while written < size:
            b = blocks[k % len(blocks)]
            if written + len(b) > size:
                cut = b.rfind(b"\r\n", 0, size - written - 1)
                if cut < 0:
                    break
                b = b[: cut + 2]
            f.write(b)
            written += len(b)
            k += 1
    return written


def write_large_mixed(path: Path, size: int) -> int:
    """multipart/mixed: a short text part and a base64 attachment (76-char CRLF lines)."""
    boundary = "----=_bench_mixed_7f3a"
    head = _headers(
        "Large attachment", 2, [f'Content-Type: multipart/mixed; boundary="{boundary}"']
    )
    text = _text_lines(random.Random(2), 2000)
    text = text[: text.rfind(b"\r\n") + 2]
    part1 = (
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode() + text
    part2_head = (
        f"\r\n--{boundary}\r\n"
        'Content-Type: application/octet-stream; name="figures.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="figures.bin"\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    # base64 of 57 raw bytes is one 76-character line plus CRLF: 78 bytes
    lines = max((size - len(head) - len(part1) - len(part2_head) - len(tail)) // 78, 1)
    raw_block = 57 * 16384  # ~0.9 MiB raw per write, one random block reused
    rng_block = os.urandom(raw_block)
    written = 0
    with path.open("wb") as f:
        for piece in (head, part1, part2_head):
            f.write(piece)
            written += len(piece)
        remaining = lines
        k = 0
        while remaining:
            n = min(remaining, raw_block // 57)
            raw = rng_block[: n * 57]
            # vary each block a little so no two are equal
            raw = k.to_bytes(8, "big") + raw[8:]
            enc = base64.encodebytes(raw).replace(b"\n", b"\r\n")
            if remaining == n:
                enc = enc[:-2]  # the CRLF before the boundary belongs to the delimiter
            f.write(enc)
            written += len(enc)
            remaining -= n
            k += 1
        f.write(tail)
        written += len(tail)
    return written
