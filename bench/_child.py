"""The mailseal side of the large-message benchmarks, run in a fresh interpreter.

    python -m bench._child baseline [sign|verify|encrypt|decrypt]
    python -m bench._child sign IN OUT CERT KEY CHAIN [--opaque]
    python -m bench._child verify IN ROOT [CONTENT_OUT]
    python -m bench._child encrypt IN OUT CERT [--cipher NAME] [--pkcs1v15]
    python -m bench._child decrypt IN OUT CERT KEY

``baseline`` only imports mailseal; ``baseline OP`` also loads the part of mailseal that OP
uses (``import mailseal`` loads each public name on first use), and its peak RSS is what OP's
is compared with, so that the comparison counts what processing the message takes, not code.
The others print one JSON line: the time of the library call alone and the peak RSS just
before it (and, for ``decrypt``, the bytes written and the cipher found). The parent measures
the whole process (wall time, peak RSS via wait4).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import mailseal

#: The public names each operation below uses.
USES: dict[str, tuple[str, ...]] = {
    "sign": ("load_certificates", "load_identity", "sign_stream"),
    "verify": ("Trust", "load_certificates", "verify_stream"),
    "encrypt": ("load_certificates", "encrypt_stream"),
    "decrypt": ("load_identity", "decrypt_stream"),
}


def _maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _sign(args: list[str]) -> dict[str, object]:
    from pathlib import Path

    from mailseal.cms.signed import PreparedSigner

    src, dst, cert, key, chain = args[:5]
    opaque = "--opaque" in args[5:]
    chain_certs = mailseal.load_certificates(Path(chain).read_bytes())
    ident = mailseal.load_identity(
        Path(cert).read_bytes(), Path(key).read_bytes(), chain=chain_certs
    )
    prepared = PreparedSigner(ident)
    before = _maxrss_kib()
    start = time.perf_counter()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        mailseal.sign_stream(fin, fout, prepared, opaque=opaque)
    return {"op_seconds": time.perf_counter() - start, "rss_before_op_kib": before}


def _verify(args: list[str]) -> dict[str, object]:
    from pathlib import Path

    src, root = args[:2]
    out = args[2] if len(args) > 2 else None
    trust = mailseal.Trust(mailseal.load_certificates(Path(root).read_bytes()))
    before = _maxrss_kib()
    start = time.perf_counter()
    with open(src, "rb") as fin:
        if out is None:
            res = mailseal.verify_stream(fin, None, trust=trust)
        else:
            with open(out, "wb") as sink:
                res = mailseal.verify_stream(fin, sink, trust=trust)
    elapsed = time.perf_counter() - start
    return {
        "op_seconds": elapsed,
        "rss_before_op_kib": before,
        "status": str(res.status.value),
        "problems": [p.message for s in res.signers for p in s.problems],
    }


def _encrypt(args: list[str]) -> dict[str, object]:
    from pathlib import Path

    src, dst, cert = args[:3]
    opts = args[3:]
    cipher = opts[opts.index("--cipher") + 1] if "--cipher" in opts else None
    key_transport = "pkcs1v15" if "--pkcs1v15" in opts else None
    recipient = mailseal.load_certificates(Path(cert).read_bytes())[0]
    before = _maxrss_kib()
    start = time.perf_counter()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        report = mailseal.encrypt_stream(
            fin,
            fout,
            [recipient],
            cipher=cipher,
            key_transport=key_transport,  # type: ignore[arg-type]
        )
    return {
        "op_seconds": time.perf_counter() - start,
        "rss_before_op_kib": before,
        "cipher": report.cipher,
        "key_transport": report.recipients[0][1],
    }


class _Counter:
    """A sink that passes writes on and counts the bytes (no extra copy, one call per chunk)."""

    def __init__(self, sink: object) -> None:
        self._write = sink.write  # type: ignore[attr-defined]
        self.n = 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        self._write(data)
        return len(data)


def _decrypt(args: list[str]) -> dict[str, object]:
    from pathlib import Path

    src, dst, cert, key = args[:4]
    ident = mailseal.load_identity(Path(cert).read_bytes(), Path(key).read_bytes())
    before = _maxrss_kib()
    start = time.perf_counter()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        sink = _Counter(fout)
        res = mailseal.decrypt_stream(fin, sink, [ident])  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    layer = res.layers[0]
    return {
        "op_seconds": elapsed,
        "rss_before_op_kib": before,
        "status": str(res.status.value),
        "cipher": layer.cipher,
        "authenticated": layer.authenticated,
        "bytes_out": sink.n,
    }


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "baseline":
        if rest and rest[0] not in USES:
            print(f"unknown operation {rest[0]}", file=sys.stderr)
            return 2
        for name in USES[rest[0]] if rest else ():
            getattr(mailseal, name)
        return 0
    if cmd == "sign":
        out = _sign(rest)
    elif cmd == "verify":
        out = _verify(rest)
    elif cmd == "encrypt":
        out = _encrypt(rest)
    elif cmd == "decrypt":
        out = _decrypt(rest)
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
