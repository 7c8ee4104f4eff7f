"""Where mailseal's time goes: cProfile over the benchmarked paths, in process.

    python -m bench.profiling [--only sign-1k,verify-1k,sign-large,verify-large,
                                      encrypt-1k,decrypt-1k,encrypt-large,decrypt-large]
                              [--large-mib 100] [--top 25] [--sort tottime|cumulative]

The default is the signing paths; name the encryption ones to profile them (``--only
'encrypt-*,decrypt-*'`` or ``--only all``).

For each path it prints the hottest functions (``file:line(function)``, own time and
cumulative time) and writes the raw profile to ``bench/results/profiles/<path>.prof`` for
``python -m pstats`` or snakeviz. Profiling slows Python code down (roughly 1.5-2× here), not
the C inside OpenSSL or hashlib, so read shares, not absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import fnmatch
import io
import pstats
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import mailseal
from bench.common import MIB, OPENSSL, RESULTS
from bench.fixtures import Keys, make_keys, message_1k, write_large_mixed, write_large_text

PROFILES = RESULTS / "profiles"
PATHS = (
    "sign-1k",
    "verify-1k",
    "sign-large",
    "verify-large",
    "encrypt-1k",
    "decrypt-1k",
    "encrypt-large",
    "decrypt-large",
)


def _profile(name: str, fn: Callable[[], None], top: int, sort: str) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    PROFILES.mkdir(parents=True, exist_ok=True)
    prof.dump_stats(PROFILES / f"{name}.prof")
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats(sort).print_stats(top)
    text = buf.getvalue()
    # full paths keep file:line useful; drop the src/ prefix so the lines stay readable
    return text.replace(str(Path(mailseal.__file__).parents[1]) + "/", "")


def _sign_1k(keys: Keys, n: int) -> Callable[[], None]:
    msgs = [message_1k(i) for i in range(64)]

    def run() -> None:
        for i in range(n):
            mailseal.sign(msgs[i % 64], keys.prepared)

    return run


def _verify_1k(keys: Keys, n: int) -> Callable[[], None]:
    trust = keys.trust()
    signed = [mailseal.sign(message_1k(i), keys.prepared) for i in range(64)]
    mailseal.verify(signed[0], trust=trust)  # warm the path-validation cache, as a server would

    def run() -> None:
        for i in range(n):
            mailseal.verify(signed[i % 64], trust=trust)

    return run


def _encrypt_1k(keys: Keys, n: int, **options: str) -> Callable[[], None]:
    msgs = [message_1k(i) for i in range(64)]
    bob = keys.bob.cert

    def run() -> None:
        for i in range(n):
            mailseal.encrypt(msgs[i % 64], [bob], **options)

    return run


def _decrypt_1k(keys: Keys, n: int, **options: str) -> Callable[[], None]:
    blobs = [mailseal.encrypt(message_1k(i), [keys.bob.cert], **options) for i in range(64)]
    ident = keys.bob_identity

    def run() -> None:
        for i in range(n):
            mailseal.decrypt(blobs[i % 64], [ident])

    return run


def _encryption_large(
    keys: Keys, work: Path, src: Path, wanted: set[str]
) -> list[tuple[str, Callable[[], None]]]:
    jobs: list[tuple[str, Callable[[], None]]] = []
    for cipher in ("aes-256-gcm", "aes-256-cbc"):
        out = work / f"large-{cipher}.p7m"
        peer = work / f"large-{cipher}.openssl"

        def encrypt(out: Path = out, cipher: str = cipher) -> None:
            with src.open("rb") as fin, out.open("wb") as fout:
                mailseal.encrypt_stream(fin, fout, [keys.bob.cert], cipher=cipher)

        def decrypt(path: Path) -> Callable[[], None]:
            def run() -> None:
                with path.open("rb") as fin, open("/dev/null", "wb") as sink:
                    mailseal.decrypt_stream(fin, sink, [keys.bob_identity])

            return run

        if "encrypt-large" in wanted:
            jobs.append((f"encrypt-large-{cipher}", encrypt))  # runs before the decryptions
        else:
            encrypt()  # not profiled: only the input of the decryptions
        if "decrypt-large" in wanted:
            subprocess.run(
                [
                    OPENSSL, "cms", "-encrypt", "-binary", "-stream", f"-{cipher}",
                    "-in", str(src), "-out", str(peer), "-recip", str(keys.bob_cert_pem),
                    "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256",
                ],
                check=True,
            )  # fmt: skip
            jobs.append((f"decrypt-large-{cipher}-mailseal-output", decrypt(out)))
            jobs.append((f"decrypt-large-{cipher}-openssl-output", decrypt(peer)))
    return jobs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.profiling", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--only",
        default="sign-1k,verify-1k,sign-large,verify-large",
        help=f"comma-separated, globs allowed, or 'all': {', '.join(PATHS)}",
    )
    p.add_argument("--large-mib", type=int, default=100)
    p.add_argument("--variant", choices=("text", "mixed"), default="text")
    p.add_argument("--n", type=int, default=3000, help="messages for the 1 KiB paths")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    args = p.parse_args(argv)
    patterns = [w.strip() for w in args.only.split(",") if w.strip()]
    if "all" in patterns:
        patterns = ["*"]
    wanted = {name for name in PATHS if any(fnmatch.fnmatch(name, p) for p in patterns)}
    if not wanted:
        raise SystemExit(f"nothing to profile; choose from {', '.join(PATHS)}")
    with tempfile.TemporaryDirectory(prefix="mailseal-prof-") as tmp:
        work = Path(tmp)
        keys = make_keys(work)
        jobs: list[tuple[str, Callable[[], None]]] = []
        if "sign-1k" in wanted:
            jobs.append(("sign-1k", _sign_1k(keys, args.n)))
        if "verify-1k" in wanted:
            jobs.append(("verify-1k", _verify_1k(keys, args.n)))
        if wanted & {"sign-large", "verify-large"}:
            src = work / "large.eml"
            writer = write_large_text if args.variant == "text" else write_large_mixed
            writer(src, args.large_mib * MIB)
            trust = keys.trust()
            for opaque in (False, True):
                form = "opaque" if opaque else "detached"
                out = work / f"large-{form}.signed"

                def sign(out: Path = out, opaque: bool = opaque) -> None:
                    with src.open("rb") as fin, out.open("wb") as fout:
                        mailseal.sign_stream(fin, fout, keys.prepared, opaque=opaque)

                def verify(out: Path = out) -> None:
                    with out.open("rb") as fin, open("/dev/null", "wb") as sink:
                        res = mailseal.verify_stream(fin, sink, trust=trust)
                    assert res.valid, res.status

                if "sign-large" in wanted or "verify-large" in wanted:
                    jobs.append((f"sign-large-{args.variant}-{form}", sign))
                if "verify-large" in wanted:
                    jobs.append((f"verify-large-{args.variant}-{form}", verify))
        if "encrypt-1k" in wanted:
            jobs.append(("encrypt-1k-gcm-oaep", _encrypt_1k(keys, args.n)))
            jobs.append(
                (
                    "encrypt-1k-cbc-pkcs1v15",
                    _encrypt_1k(keys, args.n, cipher="aes-256-cbc", key_transport="pkcs1v15"),
                )
            )
        if "decrypt-1k" in wanted:
            jobs.append(("decrypt-1k-gcm-oaep", _decrypt_1k(keys, args.n)))
            jobs.append(
                (
                    "decrypt-1k-cbc-pkcs1v15",
                    _decrypt_1k(keys, args.n, cipher="aes-256-cbc", key_transport="pkcs1v15"),
                )
            )
        if wanted & {"encrypt-large", "decrypt-large"}:
            src = work / "large-enc.eml"
            write_large_text(src, args.large_mib * MIB)
            jobs += _encryption_large(keys, work, src, wanted)
        for name, fn in jobs:
            print(f"===== {name} " + "=" * max(0, 80 - len(name)))
            print(_profile(name, fn, args.top, args.sort))
    print(f"raw profiles: {PROFILES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
