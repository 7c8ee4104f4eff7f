"""The ``mailseal`` command line.

Exit codes: 0 done (and, for ``verify``, every signature valid); 1 the message was evaluated
and is not valid; 2 the input or the arguments cannot be used. Errors are one line on stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mailseal import __version__
from mailseal._engine import sign_stream, verify_stream
from mailseal.cli.io import (
    input_stream,
    load_cert_paths,
    output_stream,
    read_file,
    read_password,
)
from mailseal.cms.signed import PreparedSigner, SignerOptions
from mailseal.errors import MailsealError, PasswordError, UsageError
from mailseal.keys.identity import Identity, load_identity, load_pkcs12
from mailseal.validation.trust import Trust
from mailseal.validation.verdict import VerifyResult

__all__ = ["cli", "main"]

EXIT_OK, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailseal")
def cli() -> None:
    """mailseal: S/MIME signing and verification for organisations."""


def _password_options(f: Any) -> Any:
    f = click.option(
        "--password-file",
        metavar="FILE",
        help="Read the key or PKCS#12 password from the first line of FILE.",
    )(f)
    f = click.option(
        "--password-env",
        metavar="VAR",
        help="Read the key or PKCS#12 password from the environment variable VAR.",
    )(f)
    return f


def _load_identities(
    certs: tuple[str, ...],
    keys: tuple[str, ...],
    p12s: tuple[str, ...],
    chain: tuple[str, ...],
    password_env: str | None,
    password_file: str | None,
) -> list[Identity]:
    if not certs and not p12s:
        raise UsageError("give a signer: --cert C.pem --key K.pem, or --p12 F.p12")
    if len(certs) != len(keys):
        raise UsageError("every --cert needs its --key (given in the same order)")
    extra = load_cert_paths(chain, "chain file") if chain else []
    identities: list[Identity] = []
    for cert_path, key_path in zip(certs, keys, strict=True):
        cert_pem = read_file(cert_path, "certificate")
        key_pem = read_file(key_path, "key")
        password = read_password(password_env, password_file, what=key_path, needed=False)
        try:
            ident = load_identity(cert_pem, key_pem, password=password, chain=extra)
        except PasswordError:
            if password is not None:
                raise
            password = read_password(None, None, what=key_path, needed=True)
            ident = load_identity(cert_pem, key_pem, password=password, chain=extra)
        identities.append(ident)
    for p12_path in p12s:
        data = read_file(p12_path, "PKCS#12 file")
        password = read_password(password_env, password_file, what=p12_path, needed=False)
        try:
            ident = load_pkcs12(data, password=password)
        except PasswordError:
            if password is not None:
                raise
            password = read_password(None, None, what=p12_path, needed=True)
            ident = load_pkcs12(data, password=password)
        if extra:
            ident = Identity(ident.certificate, ident.key, ident.chain + tuple(extra))
        identities.append(ident)
    return identities


@cli.command()
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Message to sign [stdin].")
@click.option(
    "-o", "--out", "out_path", default="-", metavar="OUT", help="Signed message [stdout]."
)
@click.option("--cert", "certs", multiple=True, metavar="C.pem", help="Signer certificate.")
@click.option("--key", "keys", multiple=True, metavar="K.pem", help="Signer private key.")
@click.option("--p12", "p12s", multiple=True, metavar="F.p12", help="Signer as PKCS#12.")
@click.option("--chain", multiple=True, metavar="CHAIN.pem", help="Intermediate certificates.")
@click.option(
    "--encryption-cert",
    "enc_certs",
    multiple=True,
    metavar="E.pem",
    help="The signer's separate encryption certificate, announced to recipients.",
)
@click.option("--opaque", is_flag=True, help="application/pkcs7-mime instead of multipart/signed.")
@click.option("--digest", type=click.Choice(["sha256", "sha384", "sha512"]), help="Message digest.")
@click.option("--pss", is_flag=True, help="RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys).")
@click.option("--ski", is_flag=True, help="Identify the signer by subjectKeyIdentifier.")
@_password_options
def sign(
    in_path: str,
    out_path: str,
    certs: tuple[str, ...],
    keys: tuple[str, ...],
    p12s: tuple[str, ...],
    chain: tuple[str, ...],
    enc_certs: tuple[str, ...],
    opaque: bool,
    digest: str | None,
    pss: bool,
    ski: bool,
    password_env: str | None,
    password_file: str | None,
) -> None:
    """Sign a message (a whole RFC 5322 message or a bare MIME entity).

    Repeat --cert/--key (or --p12) to sign with several signers.
    """
    identities = _load_identities(certs, keys, p12s, chain, password_env, password_file)
    if enc_certs:
        if len(enc_certs) > len(identities):
            raise UsageError("more --encryption-cert options than signers")
        for i, path in enumerate(enc_certs):
            enc = load_cert_paths((path,), "encryption certificate")[0]
            identities[i] = identities[i].with_encryption_certificate(enc)
    opts = SignerOptions(digest=digest, pss=pss, use_ski=ski)  # type: ignore[arg-type]
    prepared = [PreparedSigner(i, opts) for i in identities]
    with input_stream(in_path) as src, output_stream(out_path) as dst:
        sign_stream(src, dst, prepared, opaque=opaque)


def _verdict_lines(result: VerifyResult) -> list[str]:
    if not result.signers:
        return [f"{result.status.value}: " + ("; ".join(result.notes) or "no signature")]
    lines = []
    for s in result.signers:
        mark = "OK " if s.valid else "BAD"
        lines.append(f"{mark} signer {s.index + 1}: {s.describe()}")
        lines.extend(f"    note: {n}" for n in s.notes)
    verdict = "message: valid" if result.valid else f"message: NOT valid ({result.status.value})"
    lines.append(verdict)
    return lines


@cli.command()
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Signed message [stdin].")
@click.option(
    "-o", "--out", "out_path", default=None, metavar="CONTENT", help="Write the signed content."
)
@click.option("--trust", multiple=True, metavar="CA.pem", help="Trust anchor file or directory.")
@click.option(
    "--certs", multiple=True, metavar="CERTS.pem", help="Extra certificates (signer, chain)."
)
@click.option("--ignore-address", is_flag=True, help="Do not compare signer and From addresses.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify(
    in_path: str,
    out_path: str | None,
    trust: tuple[str, ...],
    certs: tuple[str, ...],
    ignore_address: bool,
    as_json: bool,
) -> None:
    """Verify a signed message; exit 0 only when every signature is valid and trusted."""
    anchors = load_cert_paths(trust, "trust anchor") if trust else []
    extra = load_cert_paths(certs, "certificate file") if certs else []
    t = Trust(anchors, check_address=not ignore_address)
    to_stderr = out_path == "-"
    with input_stream(in_path) as src:
        if out_path is not None:
            with output_stream(out_path) as dst:
                result = verify_stream(src, dst, trust=t, certificates=extra)
        else:
            result = verify_stream(src, None, trust=t, certificates=extra)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2), err=to_stderr)
    else:
        for line in _verdict_lines(result):
            click.echo(line, err=to_stderr)
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)


@cli.command()
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Message [stdin].")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect(in_path: str, as_json: bool) -> None:
    """Show the S/MIME layers, algorithms, signers and certificates of a message."""
    from mailseal.cli.inspect_cmd import run_inspect

    with input_stream(in_path) as src:
        run_inspect(src, as_json=as_json)


@cli.command()
@click.option("--keep", type=click.Path(file_okay=False), help="Keep the demo files in DIR.")
def demo(keep: str | None) -> None:
    """Build a throwaway PKI, sign a message, verify it, tamper with it, verify again."""
    from mailseal.cli.demo import run_demo

    run_demo(keep)


def main(argv: list[str] | None = None) -> None:
    """Entry point: no traceback ever reaches the user."""
    try:
        rv = cli.main(args=argv, prog_name="mailseal", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mailseal: aborted", err=True)
        sys.exit(EXIT_UNUSABLE)
    except click.UsageError as exc:
        where = f"mailseal {exc.ctx.info_name}" if exc.ctx and exc.ctx.parent else "mailseal"
        click.echo(f"mailseal: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(EXIT_UNUSABLE)
    except click.ClickException as exc:
        click.echo(f"mailseal: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_UNUSABLE)
    except MailsealError as exc:
        click.echo(f"mailseal: error: {exc}", err=True)
        sys.exit(EXIT_UNUSABLE)
    except KeyboardInterrupt:
        click.echo("mailseal: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(EXIT_UNUSABLE)
    except MemoryError:
        click.echo("mailseal: error: out of memory", err=True)
        sys.exit(EXIT_UNUSABLE)
    except Exception as exc:  # a bug: say so in one line, never a traceback
        click.echo(f"mailseal: internal error ({type(exc).__name__}): {exc}", err=True)
        sys.exit(EXIT_UNUSABLE)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)
