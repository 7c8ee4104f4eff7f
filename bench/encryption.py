"""Encryption: 1 KiB rates in process, and large messages one fresh process per operation.

References measured in the same run:

* ``encrypt-1k``: ``openssl speed -seconds N rsa2048`` verify/s (the RSA public-key
  operation, which is what wrapping a content key costs OpenSSL) for context, and
  ``openssl cms -encrypt``, one process per message;
* ``decrypt-1k``: ``openssl speed -seconds N rsa2048`` sign/s (the RSA private-key operation,
  which unwrapping a content key needs), and ``openssl cms -decrypt``, one process per message;
* ``large-encrypt``: ``openssl cms -encrypt -binary -stream -<cipher>`` and
  ``openssl cms -decrypt`` on the same files, for AES-256-GCM (AuthEnvelopedData) and
  AES-256-CBC (EnvelopedData). Both sides wrap the content key with RSAES-OAEP (SHA-256,
  MGF1-SHA-256): mailseal's default, and ``-keyopt rsa_padding_mode:oaep -keyopt
  rsa_oaep_md:sha256`` for OpenSSL (whose own default is PKCS#1 v1.5).

The ``openssl speed`` runs bracket the in-process loops: the most recent run of this process
(or a fresh one) before them, a fresh one after, and the mean of the two is the reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import mailseal
from bench.common import (
    MIB,
    OPENSSL,
    BenchError,
    Figure,
    ProcResult,
    Target,
    interleaved_rates,
    measure_rate,
    python_child,
    run_measured,
)
from bench.fixtures import Keys, message_1k, write_large_text
from bench.large import RSS_TARGET_MIB, _best, _child_json, _cwd, _size_label
from bench.throughput import speed_after, speed_before, unstable_note

POOL = 64  # distinct messages cycled through, so nothing per-message can be cached
FILES = 16  # distinct message files for the one-process-per-message OpenSSL loops

#: OpenSSL's key transport set to what mailseal writes by default (RFC 8551 §2.3, RFC 4055):
#: RSAES-OAEP with SHA-256; the MGF1 hash follows the OAEP hash unless set.
OAEP_KEYOPTS = ("-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256")

#: mailseal's default, and what other clients commonly send (AES-CBC with PKCS#1 v1.5).
DEFAULT = ("aes-256-gcm", "oaep")
PEER = ("aes-256-cbc", "pkcs1v15")
LARGE_CIPHERS = ("aes-256-gcm", "aes-256-cbc")

ENCRYPT_TARGET = 10_000  # msg/s
DECRYPT_TARGET = 0.80  # × openssl speed rsa2048 sign


def _kt_name(key_transport: str) -> str:
    return "RSAES-OAEP" if key_transport == "oaep" else "RSA PKCS#1 v1.5"


def _combo(cipher: str, key_transport: str) -> str:
    return f"{cipher} + {_kt_name(key_transport)}"


def _entity_body(message: bytes) -> bytes:
    return message.split(b"\r\n\r\n", 1)[1]


def _check_roundtrip(keys: Keys, message: bytes, encrypted: bytes, cipher: str) -> None:
    res = mailseal.decrypt(encrypted, [keys.bob_identity])
    layer = res.layers[0]
    if res.content is None or _entity_body(res.content) != _entity_body(message):
        raise BenchError(f"mailseal's {cipher} message does not decrypt to what was encrypted")
    if layer.cipher != cipher:
        raise BenchError(f"asked for {cipher}, the message says {layer.cipher}")


def _openssl_loop(
    argv_for: Callable[[Path], list[str]], paths: list[Path], seconds: float, what: str
) -> tuple[float, int]:
    """messages/s of an OpenSSL command run once per message, for about ``seconds``."""
    n = 0
    start = time.perf_counter()
    while True:
        p = paths[n % len(paths)]
        proc = subprocess.run(argv_for(p), capture_output=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"{what} failed on {p.name}: {proc.stderr.decode()[-400:]}")
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 10:
            return n / elapsed, n


def _write_files(workdir: Path, stem: str, blobs: list[bytes]) -> list[Path]:
    paths = []
    for i, blob in enumerate(blobs[:FILES]):
        p = workdir / f"{stem}-{i}.eml"
        p.write_bytes(blob)
        paths.append(p)
    return paths


# -- 1 KiB, in process ------------------------------------------------------------------------


def encrypt_1k(keys: Keys, seconds: float, speed_seconds: int, workdir: Path) -> list[Figure]:
    msgs = [message_1k(i) for i in range(POOL)]
    bob = keys.bob.cert

    def ms_default(i: int) -> None:
        mailseal.encrypt(msgs[i % POOL], [bob])

    def ms_peer(i: int) -> None:
        mailseal.encrypt(msgs[i % POOL], [bob], cipher=PEER[0], key_transport=PEER[1])

    pub = bob.public_key()
    assert isinstance(pub, rsa.RSAPublicKey)
    sha256 = hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(sha256), algorithm=sha256, label=None)
    pkcs1 = padding.PKCS1v15()
    ceks = [os.urandom(32) for _ in range(POOL)]

    def prim_oaep(i: int) -> None:
        pub.encrypt(ceks[i % POOL], oaep)

    def prim_pkcs1(i: int) -> None:
        pub.encrypt(ceks[i % POOL], pkcs1)

    # sanity: what we time decrypts to the message, with the cipher asked for
    _check_roundtrip(keys, msgs[0], mailseal.encrypt(msgs[0], [bob]), DEFAULT[0])
    _check_roundtrip(
        keys,
        msgs[1],
        mailseal.encrypt(msgs[1], [bob], cipher=PEER[0], key_transport=PEER[1]),
        PEER[0],
    )

    before = speed_before(speed_seconds)
    both = interleaved_rates({"default": ms_default, "peer": ms_peer}, seconds)
    r, r_peer = both["default"], both["peer"]
    r_oaep = measure_rate(prim_oaep, seconds / 2, rounds=3)
    r_pkcs1 = measure_rate(prim_pkcs1, seconds / 2, rounds=3)
    _sign, ossl_verify, speed_runs = speed_after(speed_seconds, before)

    paths = _write_files(workdir, "plain", msgs)

    def ossl_encrypt(p: Path) -> list[str]:
        return [
            OPENSSL, "cms", "-encrypt", "-binary", "-aes-256-gcm", "-in", str(p),
            "-out", "/dev/null", "-recip", str(keys.bob_cert_pem), *OAEP_KEYOPTS,
        ]  # fmt: skip

    ossl_rate, ossl_n = _openssl_loop(ossl_encrypt, paths, seconds, "openssl cms -encrypt")
    speed_ref = f"openssl speed rsa2048 verify (2×{speed_seconds} s)"
    unstable = unstable_note(speed_runs, 1)
    return [
        Figure(
            "encrypt-1k",
            f"encrypt 1 KiB, {_combo(*DEFAULT)} (default)",
            r.median,
            "msg/s",
            speed_ref,
            ossl_verify,
            Target("value", ">=", ENCRYPT_TARGET, "msg/s"),
            note="; ".join(
                x
                for x in (
                    "the reference is for context: raw RSA public-key operations/s",
                    unstable,
                )
                if x
            ),
            detail={"mailseal": r.as_json(), "openssl_speed_runs": speed_runs},
        ),
        Figure(
            "encrypt-1k",
            f"encrypt 1 KiB, {_combo(*PEER)}",
            r_peer.median,
            "msg/s",
            speed_ref,
            ossl_verify,
            note="informative: the compatible choice (key_transport='pkcs1v15')",
            detail={"mailseal": r_peer.as_json()},
        ),
        Figure(
            "encrypt-1k",
            f"encrypt 1 KiB, {_combo(*DEFAULT)} (default)",
            r.median,
            "msg/s",
            "openssl cms -encrypt -aes-256-gcm (OAEP), 1 process per msg",
            ossl_rate,
            note="informative: what shelling out to OpenSSL costs",
            detail={"openssl_processes": ossl_n},
        ),
        Figure(
            "encrypt-1k",
            "RSA-2048 OAEP-SHA-256 encrypt primitive via cryptography",
            r_oaep.median,
            "op/s",
            speed_ref,
            ossl_verify,
            note="informative: the ceiling for the default (one key wrap per message)",
            detail={"primitive": r_oaep.as_json()},
        ),
        Figure(
            "encrypt-1k",
            "RSA-2048 PKCS#1 v1.5 encrypt primitive via cryptography",
            r_pkcs1.median,
            "op/s",
            speed_ref,
            ossl_verify,
            note="informative",
            detail={"primitive": r_pkcs1.as_json()},
        ),
    ]


def decrypt_1k(keys: Keys, seconds: float, speed_seconds: int, workdir: Path) -> list[Figure]:
    msgs = [message_1k(i) for i in range(POOL)]
    bob = keys.bob.cert
    ident = keys.bob_identity
    combos = (DEFAULT, PEER, ("aes-256-gcm", "pkcs1v15"))
    sets: dict[tuple[str, str], list[bytes]] = {}
    for cipher, kt in combos:
        sets[(cipher, kt)] = [
            mailseal.encrypt(m, [bob], cipher=cipher, key_transport=kt) for m in msgs
        ]
        _check_roundtrip(keys, msgs[5], sets[(cipher, kt)][5], cipher)

    def loop(which: tuple[str, str]) -> Callable[[int], None]:
        blobs = sets[which]

        def run(i: int) -> None:
            mailseal.decrypt(blobs[i % POOL], [ident])

        return run

    key = keys.bob.key
    assert isinstance(key, rsa.RSAPrivateKey)
    pub = bob.public_key()
    assert isinstance(pub, rsa.RSAPublicKey)
    sha256 = hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(sha256), algorithm=sha256, label=None)
    pkcs1 = padding.PKCS1v15()
    wrapped_oaep = [pub.encrypt(os.urandom(32), oaep) for _ in range(POOL)]
    wrapped_pkcs1 = [pub.encrypt(os.urandom(32), pkcs1) for _ in range(POOL)]

    def prim_oaep(i: int) -> None:
        key.decrypt(wrapped_oaep[i % POOL], oaep)

    def prim_pkcs1(i: int) -> None:
        key.decrypt(wrapped_pkcs1[i % POOL], pkcs1)

    before = speed_before(speed_seconds)
    rates = interleaved_rates({_combo(*c): loop(c) for c in combos}, seconds)
    r_def, r_peer, r_gcm_pkcs1 = (rates[_combo(*c)] for c in combos)
    r_oaep = measure_rate(prim_oaep, seconds / 2, rounds=3)
    r_pkcs1 = measure_rate(prim_pkcs1, seconds / 2, rounds=3)
    ossl_sign, _verify, speed_runs = speed_after(speed_seconds, before)

    paths = _write_files(workdir, "enc-gcm-oaep", sets[DEFAULT])

    def ossl_decrypt(p: Path) -> list[str]:
        return [
            OPENSSL, "cms", "-decrypt", "-in", str(p), "-recip", str(keys.bob_cert_pem),
            "-inkey", str(keys.bob_key_pem), "-out", "/dev/null",
        ]  # fmt: skip

    ossl_rate, ossl_n = _openssl_loop(ossl_decrypt, paths, seconds, "openssl cms -decrypt")
    speed_ref = f"openssl speed rsa2048 sign (2×{speed_seconds} s)"
    unstable = unstable_note(speed_runs, 0)
    target = Target("ratio", ">=", DECRYPT_TARGET)
    return [
        Figure(
            "decrypt-1k",
            f"decrypt 1 KiB, {_combo(*DEFAULT)} (default)",
            r_def.median,
            "msg/s",
            speed_ref,
            ossl_sign,
            target,
            note=unstable,
            detail={"mailseal": r_def.as_json(), "openssl_speed_runs": speed_runs},
        ),
        Figure(
            "decrypt-1k",
            f"decrypt 1 KiB, {_combo(*PEER)}",
            r_peer.median,
            "msg/s",
            speed_ref,
            ossl_sign,
            target,
            note="the combination other clients commonly send",
            detail={"mailseal": r_peer.as_json()},
        ),
        Figure(
            "decrypt-1k",
            f"decrypt 1 KiB, {_combo(*combos[2])}",
            r_gcm_pkcs1.median,
            "msg/s",
            speed_ref,
            ossl_sign,
            note="informative: key transport alone changed from the default",
            detail={"mailseal": r_gcm_pkcs1.as_json()},
        ),
        Figure(
            "decrypt-1k",
            "RSA-2048 OAEP-SHA-256 decrypt primitive via cryptography",
            r_oaep.median,
            "op/s",
            speed_ref,
            ossl_sign,
            note="informative: the ceiling for any Python code on cryptography's OpenSSL",
            detail={"primitive": r_oaep.as_json()},
        ),
        Figure(
            "decrypt-1k",
            "RSA-2048 PKCS#1 v1.5 decrypt primitive via cryptography",
            r_pkcs1.median,
            "op/s",
            speed_ref,
            ossl_sign,
            note="informative",
            detail={"primitive": r_pkcs1.as_json()},
        ),
        Figure(
            "decrypt-1k",
            f"decrypt 1 KiB, {_combo(*DEFAULT)} (default)",
            r_def.median,
            "msg/s",
            "openssl cms -decrypt, 1 process per msg",
            ossl_rate,
            note="informative: what shelling out to OpenSSL costs",
            detail={"openssl_processes": ossl_n},
        ),
    ]


# -- large messages, one process per operation ------------------------------------------------


def _mailseal_cli() -> Path | None:
    exe = Path(sys.executable).with_name("mailseal")
    return exe if exe.exists() else None


def run_large(
    name: str,
    size: int,
    keys: Keys,
    workdir: Path,
    baseline: Callable[[str], tuple[int, float]],
    *,
    repeat: int = 1,
) -> list[Figure]:
    """``baseline(op)``: the (peak RSS KiB, wall s) the RSS figures of ``op`` are over."""
    src = workdir / f"{name}-text.eml"
    actual = write_large_text(src, size)
    label = f"{_size_label(size)} text"
    figures: list[Figure] = []
    try:
        for cipher in LARGE_CIPHERS:
            figures += _one_cipher(
                name, label, src, actual, cipher, keys, workdir, baseline, repeat
            )
    finally:
        src.unlink(missing_ok=True)
    return figures


def _one_cipher(
    name: str,
    label: str,
    src: Path,
    actual: int,
    cipher: str,
    keys: Keys,
    workdir: Path,
    baseline: Callable[[str], tuple[int, float]],
    repeat: int,
) -> list[Figure]:
    cert, key = str(keys.bob_cert_pem), str(keys.bob_key_pem)
    ms_out = workdir / f"{src.stem}-{cipher}.mailseal"
    ossl_out = workdir / f"{src.stem}-{cipher}.openssl"
    cli_out = workdir / f"{src.stem}-{cipher}.cli"
    ossl_enc = [
        OPENSSL, "cms", "-encrypt", "-binary", "-stream", f"-{cipher}", "-in", str(src),
        "-out", str(ossl_out), "-recip", cert, *OAEP_KEYOPTS,
    ]  # fmt: skip
    ms_enc = python_child("encrypt", str(src), str(ms_out), cert, "--cipher", cipher)

    def ossl_dec(path: Path) -> list[str]:
        return [
            OPENSSL, "cms", "-decrypt", "-in", str(path), "-recip", cert, "-inkey", key,
            "-out", "/dev/null",
        ]  # fmt: skip

    def ms_dec(path: Path) -> list[str]:
        return python_child("decrypt", str(path), "/dev/null", cert, key)

    # the command line as well, for the default cipher (informative)
    cli = _mailseal_cli() if cipher == DEFAULT[0] else None
    cli_enc: list[str] = []
    cli_dec: list[str] = []
    if cli is not None:
        cli_enc = [
            str(cli), "encrypt", "-i", str(src), "-o", str(cli_out), "--to", cert,
            "--cipher", cipher, "-q",
        ]  # fmt: skip
        cli_dec = [
            str(cli), "decrypt", "-i", str(ms_out), "-o", "/dev/null", "--cert", cert,
            "--key", key, "-q",
        ]  # fmt: skip
    cwd = _cwd()
    o_enc: list[ProcResult] = []
    m_enc: list[ProcResult] = []
    c_enc: list[ProcResult] = []
    o_dec: list[ProcResult] = []
    m_dec: list[ProcResult] = []
    c_dec: list[ProcResult] = []
    o_dec_o: list[ProcResult] = []
    m_dec_o: list[ProcResult] = []
    try:
        # each run writes a new file (see bench.large: replacing a large file costs its
        # writer the time to free the old one)
        for _ in range(repeat):
            ossl_out.unlink(missing_ok=True)
            o_enc.append(run_measured(ossl_enc))
            ms_out.unlink(missing_ok=True)
            m_enc.append(run_measured(ms_enc, cwd=cwd))
            if cli_enc:
                c_enc.append(run_measured(cli_enc))
                cli_out.unlink(missing_ok=True)
        sizes = {"mailseal": ms_out.stat().st_size, "openssl": ossl_out.stat().st_size}
        for _ in range(repeat):
            # both decrypt the message mailseal wrote …
            o_dec.append(run_measured(ossl_dec(ms_out)))
            m_dec.append(run_measured(ms_dec(ms_out), cwd=cwd))
            if cli_dec:
                c_dec.append(run_measured(cli_dec))
            # … and the one OpenSSL wrote (what a peer sends)
            o_dec_o.append(run_measured(ossl_dec(ossl_out)))
            m_dec_o.append(run_measured(ms_dec(ossl_out), cwd=cwd))
    finally:
        for p in (ms_out, ossl_out, cli_out):
            p.unlink(missing_ok=True)

    me, oe, md, od, mdo, odo = (_best(x) for x in (m_enc, o_enc, m_dec, o_dec, m_dec_o, o_dec_o))
    me_info = _child_json(me)
    md_info = _child_json(md)
    mdo_info = _child_json(mdo)
    for info, whose in ((md_info, "mailseal's"), (mdo_info, "OpenSSL's")):
        if info.get("status") != "valid" or info.get("cipher") != cipher:
            raise BenchError(
                f"mailseal did not decrypt {whose} {label} {cipher} message: "
                f"{info.get('status')} {info.get('cipher')}"
            )
        out = int(info.get("bytes_out", 0))  # type: ignore[call-overload]
        if abs(out - actual) > 4096:
            raise BenchError(
                f"mailseal decrypted {whose} {label} {cipher} message to {out} bytes, "
                f"not about {actual}"
            )
    mib = actual / MIB
    kt = str(me_info.get("key_transport"))
    e_base, d_base = baseline("encrypt"), baseline("decrypt")

    def detail(
        m: ProcResult, o: ProcResult, info: dict[str, object], base: tuple[int, float]
    ) -> dict[str, object]:
        op = float(info["op_seconds"])  # type: ignore[arg-type]
        return {
            "input_bytes": actual,
            "encrypted_bytes": sizes,
            "cipher": cipher,
            "key_transport": kt,
            "mailseal_wall_s": m.wall,
            "mailseal_op_s": op,
            "mailseal_op_mib_per_s": mib / op if op else None,
            "mailseal_maxrss_kib": m.maxrss_kib,
            "mailseal_rss_before_op_kib": info.get("rss_before_op_kib"),
            "mailseal_bytes_out": info.get("bytes_out"),
            "baseline_maxrss_kib": base[0],
            "baseline_wall_s": base[1],
            "openssl_wall_s": o.wall,
            "openssl_maxrss_kib": o.maxrss_kib,
            "repeat": repeat,
        }

    def op_note(info: dict[str, object]) -> str:
        op = float(info["op_seconds"])  # type: ignore[arg-type]
        return f"call alone {op:.2f} s ({mib / op:.0f} MiB/s)"

    rss_target = Target("value", "<=", RSS_TARGET_MIB, "MiB")
    wall_target = Target("ratio", "<=", 1.0)
    ossl_enc_ref = f"openssl cms -encrypt -binary -stream -{cipher} (OAEP)"
    ossl_dec_ref = "openssl cms -decrypt, same file"
    figures = [
        Figure(
            name,
            f"encrypt {label} {cipher}: wall",
            me.wall,
            "s",
            ossl_enc_ref,
            oe.wall,
            wall_target,
            note=f"{op_note(me_info)}; {kt}",
            detail=detail(me, oe, me_info, e_base),
        ),
        Figure(
            name,
            f"encrypt {label} {cipher}: peak RSS over baseline",
            (me.maxrss_kib - e_base[0]) / 1024,
            "MiB",
            "openssl cms -encrypt peak RSS",
            oe.maxrss_kib / 1024,
            rss_target,
            detail=detail(me, oe, me_info, e_base),
        ),
    ]
    for m, o, info, whose in ((md, od, md_info, "mailseal's"), (mdo, odo, mdo_info, "OpenSSL's")):
        figures += [
            Figure(
                name,
                f"decrypt {label} {cipher}, {whose} output: wall",
                m.wall,
                "s",
                ossl_dec_ref,
                o.wall,
                wall_target,
                note=op_note(info),
                detail=detail(m, o, info, d_base),
            ),
            Figure(
                name,
                f"decrypt {label} {cipher}, {whose} output: peak RSS over baseline",
                (m.maxrss_kib - d_base[0]) / 1024,
                "MiB",
                "openssl cms -decrypt peak RSS",
                o.maxrss_kib / 1024,
                rss_target,
                detail=detail(m, o, info, d_base),
            ),
        ]
    if c_enc and c_dec:
        ce, cd = _best(c_enc), _best(c_dec)
        figures += [
            Figure(
                name,
                f"`mailseal encrypt` CLI {label} {cipher}: wall",
                ce.wall,
                "s",
                ossl_enc_ref,
                oe.wall,
                note=f"informative: the command line; peak RSS {ce.maxrss_kib / 1024:.1f} MiB "
                "absolute",
                detail={"cli_wall_s": ce.wall, "cli_maxrss_kib": ce.maxrss_kib},
            ),
            Figure(
                name,
                f"`mailseal decrypt` CLI {label} {cipher}, mailseal's output: wall",
                cd.wall,
                "s",
                ossl_dec_ref,
                od.wall,
                note=f"informative: the command line; peak RSS {cd.maxrss_kib / 1024:.1f} MiB "
                "absolute",
                detail={"cli_wall_s": cd.wall, "cli_maxrss_kib": cd.maxrss_kib},
            ),
        ]
    return figures
