"""``mailseal pkcs12 list | split``: look into a PKCS#12 file with several keys (such as a key
escrow recovery) and cut it into one file per key.

``split --legacy`` writes the encoding gpgsm 2.2 imports (pbeWithSHAAnd3-KeyTripleDES-CBC,
HMAC-SHA1 MAC, 2,048 iterations): gpgsm 2.2 reads neither AES-encrypted PKCS#12 files nor more
than one key per file. 3DES keeps 112 bits of security, the least the S/MIME BR allow for key
transport; keep such files only as long as the import takes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailseal.cli.io import read_file, read_password, write_new_file
from mailseal.errors import UsageError

if TYPE_CHECKING:
    from mailseal.keys.pkcs12 import Pkcs12Contents

__all__ = ["pkcs12_group"]


def _gpgsm22_misreads(data: bytes, password: bytes) -> bool:
    """Whether gpgsm 2.2 would derive a wrong 3DES key for one of this legacy file's salts.

    Its PKCS#12 KDF (RFC 7292 B.2) turns each 64-byte block I_j into I_j + B + 1 between the
    two SHA-1 chains a 24-byte key needs, and drops that number's leading zero bytes: when the
    top byte is zero (about one salt in 128) it reports a bad passphrase for a sound file.
    The salts are random, so a file that hits this is simply made again."""
    import hashlib

    from asn1crypto import pkcs12 as a_pkcs12

    bmp = password.decode("utf-8", "replace").encode("utf-16-be") + b"\x00\x00"

    def fill(chunk: bytes) -> bytes:
        n = 64 * ((len(chunk) + 63) // 64)
        return (chunk * (n // max(len(chunk), 1) + 1))[:n] if chunk else b""

    params = []
    for ci in a_pkcs12.Pfx.load(data).authenticated_safe:
        if ci["content_type"].native == "encrypted_data":
            algs = [ci["content"]["encrypted_content_info"]["content_encryption_algorithm"]]
        else:
            algs = [
                bag["bag_value"]["encryption_algorithm"]
                for bag in a_pkcs12.SafeContents.load(ci["content"].native)
                if bag["bag_id"].native == "pkcs8_shrouded_key_bag"
            ]
        params += [(a["parameters"]["salt"].native, a["parameters"]["iterations"].native)
                   for a in algs]  # fmt: skip
    for salt, iterations in params:
        i_bytes = fill(salt) + fill(bmp)
        a = hashlib.sha1(b"\x01" * 64 + i_bytes).digest()  # noqa: S324 - the PKCS#12 KDF
        for _ in range(iterations - 1):
            a = hashlib.sha1(a).digest()  # noqa: S324
        b = int.from_bytes((a * 4)[:64], "big") + 1
        blocks = (i_bytes[j : j + 64] for j in range(0, len(i_bytes), 64))
        if any((int.from_bytes(blk, "big") + b) % (1 << 512) < (1 << 504) for blk in blocks):
            return True
    return False


def _read(
    path: str, password_env: str | None, password_file: str | None
) -> tuple[bytes, Pkcs12Contents]:
    from mailseal.keys.pkcs12 import read_pkcs12

    data = read_file(path, "PKCS#12 file")
    password = read_password(password_env, password_file, what=path, needed=True)
    assert password is not None
    return password, read_pkcs12(data, password)


@click.group("pkcs12")
def pkcs12_group() -> None:
    """PKCS#12 files with several keys (key escrow recoveries)."""


@pkcs12_group.command("list")
@click.argument("path", metavar="F.p12")
@click.option("--password-env", metavar="VAR")
@click.option("--password-file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True)
def pkcs12_list(
    path: str, password_env: str | None, password_file: str | None, as_json: bool
) -> None:
    """The keys and certificates in a PKCS#12 file."""
    _, contents = _read(path, password_env, password_file)
    rows: list[dict[str, Any]] = [
        {
            "serial": format(e.certificate.serial_number, "x"),
            "subject": e.certificate.subject.rfc4514_string(),
            "not_after": e.certificate.not_valid_after_utc.isoformat(),
            "name": e.friendly_name,
        }
        for e in contents.entries
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['serial']}  until {r['not_after'][:10]}  {r['subject']}")
    extra = len(contents.extra_certificates)
    click.echo(f"{len(rows)} key(s) with certificates, {extra} other certificate(s)")


@pkcs12_group.command("split")
@click.argument("path", metavar="F.p12")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Where the files go.")
@click.option("--password-env", metavar="VAR", help="The password (also of the new files).")
@click.option("--password-file", metavar="FILE")
@click.option(
    "--legacy",
    is_flag=True,
    help="3DES and a SHA-1 MAC, for gpgsm 2.2 (which reads nothing stronger).",
)
def pkcs12_split(
    path: str, out_dir: str, password_env: str | None, password_file: str | None, legacy: bool
) -> None:
    """One PKCS#12 file per key, each with its certificate and the CA certificates, under the
    same password."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    password, contents = _read(path, password_env, password_file)
    entries = contents.entries
    if not entries:
        raise UsageError(f"{path} holds no private key with its certificate")
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    if legacy:
        builder = (
            builder.kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303 - the MAC of a legacy container, on request
        )
    else:
        builder = (
            builder.kdf_rounds(600_000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
        )
    encryption = builder.build(password)
    target = Path(out_dir)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in entries:
        serial = format(entry.certificate.serial_number, "x")
        name = (entry.friendly_name or serial).encode()
        for _attempt in range(64):
            data = pkcs12.serialize_key_and_certificates(
                name,
                entry.key,  # type: ignore[arg-type]  # the reader yields RSA, EC and EdDSA keys only
                entry.certificate,
                list(contents.extra_certificates) or None,
                encryption,
            )
            if not legacy or not _gpgsm22_misreads(data, password):
                break
        out = target / f"{serial}.p12"
        write_new_file(out, data)
        click.echo(f"wrote {out}")
