"""The ``mailseal`` command line.

Exit codes: 0 done (and, for ``verify``, every signature valid); 1 the message was evaluated
and is not valid; 2 the input or the arguments cannot be used. Errors are one line on stderr.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import warnings
from typing import TYPE_CHECKING, Any

import click

from mailseal import __version__
from mailseal.cli import ca_cmds as _ca_cmds
from mailseal.cli.io import (
    input_stream,
    load_cert_paths,
    output_stream,
    read_file,
    read_password,
)
from mailseal.cli.trust_opts import TrustSpec, check_recipients, trust_options
from mailseal.cli.trust_opts import validate as validate_cmd
from mailseal.errors import MailsealError, PasswordError, UsageError

# Each command imports the part of mailseal it runs when it runs, so that --help, or one
# command, does not load what the others need.
if TYPE_CHECKING:
    from mailseal.keys.identity import Identity
    from mailseal.validation.encryption import EncryptionReport
    from mailseal.validation.verdict import OpenResult, VerifyResult

__all__ = ["cli", "main"]

EXIT_OK, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailseal")
def cli() -> None:
    """mailseal: S/MIME for organisations: sign, verify, encrypt, decrypt, validate, and run
    the internal CA (init, issue, renew, revoke, crl, certs, serve)."""


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


def _signer_options(f: Any) -> Any:
    """The signing identity and signature options shared by ``sign`` and ``seal``."""
    options = [
        click.option("--cert", "certs", multiple=True, metavar="C.pem", help="Signer certificate."),
        click.option("--key", "keys", multiple=True, metavar="K.pem", help="Signer private key."),
        click.option("--p12", "p12s", multiple=True, metavar="F.p12", help="Signer as PKCS#12."),
        click.option(
            "--chain", multiple=True, metavar="CHAIN.pem", help="Intermediate certificates."
        ),
        click.option(
            "--encryption-cert",
            "enc_certs",
            multiple=True,
            metavar="E.pem",
            help="The signer's separate encryption certificate, announced to recipients "
            "(and, for seal, added as a recipient).",
        ),
        click.option(
            "--opaque", is_flag=True, help="application/pkcs7-mime instead of multipart/signed."
        ),
        click.option(
            "--digest", type=click.Choice(["sha256", "sha384", "sha512"]), help="Message digest."
        ),
        click.option("--pss", is_flag=True, help="RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _first_key(data: bytes, password: bytes | None) -> list[Identity]:
    from mailseal.keys.identity import load_pkcs12

    return [load_pkcs12(data, password=password)]


def _every_key(data: bytes, password: bytes | None) -> list[Identity]:
    from mailseal.keys.identity import load_pkcs12_identities

    return load_pkcs12_identities(data, password=password)


def _load_identities(
    certs: tuple[str, ...],
    keys: tuple[str, ...],
    p12s: tuple[str, ...],
    chain: tuple[str, ...],
    password_env: str | None,
    password_file: str | None,
    *,
    every_key: bool = False,
) -> list[Identity]:
    """The identities given. With ``every_key`` (decryption), a PKCS#12 file gives one identity
    per key it holds, such as a key-escrow recovery file with every historical key."""
    from mailseal.keys.identity import Identity, load_identity

    if not certs and not p12s:
        raise UsageError("give an identity: --cert C.pem --key K.pem, or --p12 F.p12")
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
        except PasswordError as exc:
            if password is not None and "not encrypted" in str(exc):
                # the one password given is for another key (an encrypted key or a PKCS#12)
                ident = load_identity(cert_pem, key_pem, chain=extra)
            elif password is not None:
                raise
            else:
                password = read_password(None, None, what=key_path, needed=True)
                ident = load_identity(cert_pem, key_pem, password=password, chain=extra)
        identities.append(ident)
    for p12_path in p12s:
        data = read_file(p12_path, "PKCS#12 file")
        password = read_password(password_env, password_file, what=p12_path, needed=False)
        loader = _every_key if every_key else _first_key
        try:
            found = loader(data, password)
        except PasswordError:
            if password is not None:
                raise
            password = read_password(None, None, what=p12_path, needed=True)
            found = loader(data, password)
        for ident in found:
            if extra:
                ident = Identity(ident.certificate, ident.key, ident.chain + tuple(extra))
            identities.append(ident)
    return identities


@cli.command()
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Message to sign [stdin].")
@click.option(
    "-o", "--out", "out_path", default="-", metavar="OUT", help="Signed message [stdout]."
)
@_signer_options
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
    from mailseal._sign import sign_stream
    from mailseal.cms.signed import PreparedSigner, SignerOptions

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
@click.option(
    "--certs", multiple=True, metavar="CERTS.pem", help="Extra certificates (signer, chain)."
)
@trust_options()
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify(
    in_path: str,
    out_path: str | None,
    certs: tuple[str, ...],
    as_json: bool,
    trust_spec: TrustSpec,
) -> None:
    """Verify a signed message; exit 0 only when every signature is valid and trusted."""
    from mailseal._verify import verify_stream

    extra = load_cert_paths(certs, "certificate file") if certs else []
    t = trust_spec.build()
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


def _open_lines(result: OpenResult) -> list[str]:
    from mailseal.validation.verdict import Status

    lines = []
    for n, layer in enumerate(result.layers, 1):
        mark = "OK " if layer.status is Status.VALID else "BAD"
        lines.append(f"{mark} layer {n}: {layer.kind}: {layer.summary}")
        if layer.verification is not None:
            for s in layer.verification.signers:
                lines.append(f"      signer {s.index + 1}: {s.describe()}")
        lines.extend(f"      note: {note}" for note in layer.notes)
    flags = [
        "signed" if result.signed else "NOT signed",
        "encrypted" if result.encrypted else "not encrypted",
        "authenticated" if result.authenticated else "NOT integrity-protected",
    ]
    head = "message: valid" if result.valid else f"message: NOT valid ({result.status.value})"
    lines.append(f"{head}; {', '.join(flags)}")
    return lines


def _encryption_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option(
                "--to", "to", multiple=True, metavar="CERT.pem", help="Recipient certificate(s)."
            ),
            click.option(
                "--to-signed",
                "to_signed",
                multiple=True,
                metavar="SIGNED.eml",
                help="A signed message from a recipient: use the certificate and capabilities "
                "it announces.",
            ),
            click.option(
                "--cipher",
                type=click.Choice(["aes-256-gcm", "aes-128-gcm", "aes-256-cbc", "aes-128-cbc"]),
                help="Content cipher [from the recipients' capabilities, else aes-256-gcm].",
            ),
            click.option("--oaep", "kt", flag_value="oaep", help="RSAES-OAEP key transport."),
            click.option(
                "--pkcs1v15", "kt", flag_value="pkcs1v15", help="RSA PKCS#1 v1.5 key transport."
            ),
            click.option(
                "--compatible",
                is_flag=True,
                help="AES-256-CBC with PKCS#1 v1.5, for clients that cannot do better.",
            ),
            click.option(
                "--ski",
                "recipient_ski",
                is_flag=True,
                help="Name recipients by subjectKeyIdentifier.",
            ),
            click.option(
                "--quiet", "-q", is_flag=True, help="Do not report the algorithms chosen."
            ),
        ]
    ):
        f = opt(f)
    return f


def _recipients(to: tuple[str, ...], to_signed: tuple[str, ...]) -> list[Any]:
    if not to and not to_signed:
        raise UsageError("give at least one recipient: --to CERT.pem or --to-signed SIGNED.eml")
    out: list[Any] = list(load_cert_paths(to, "recipient certificate")) if to else []
    if to_signed:
        from mailseal._open import recipient_from_signed  # reads signatures: only when asked

        for path in to_signed:
            out.append(recipient_from_signed(read_file(path, "signed message")))
    return out


def _report(report: EncryptionReport, quiet: bool) -> None:
    if quiet:
        return
    who = ", ".join(f"{w} ({h})" for w, h in report.recipients)
    click.echo(
        f"encrypted with {report.cipher} ({report.smime_type}; {report.reason}) to: {who}",
        err=True,
    )


@cli.command()
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Message [stdin].")
@click.option("-o", "--out", "out_path", default="-", metavar="OUT", help="Encrypted [stdout].")
@_encryption_options
@click.option("--self", "self_cert", metavar="C.pem", help="Also encrypt to the sender.")
@click.option("--no-self", is_flag=True, help="Do not add the sender as a recipient.")
@trust_options(messages=False, address=False)
def encrypt(
    in_path: str,
    out_path: str,
    to: tuple[str, ...],
    to_signed: tuple[str, ...],
    cipher: str | None,
    kt: str | None,
    compatible: bool,
    recipient_ski: bool,
    quiet: bool,
    self_cert: str | None,
    no_self: bool,
    trust_spec: TrustSpec,
) -> None:
    """Encrypt a message to one or more recipients (enveloped- or authEnveloped-data).

    With trust anchors (--trust, --system-trust), every recipient certificate is validated
    for encryption first, with revocation as --revocation says.
    """
    from mailseal._encrypt import encrypt_stream

    recipients = _recipients(to, to_signed)
    sender = None
    if self_cert and not no_self:
        sender = load_cert_paths((self_cert,), "sender certificate")[0]
    check_recipients(
        trust_spec,
        [getattr(r, "certificate", r) for r in [*recipients, *([sender] if sender else [])]],
        quiet=quiet,
    )
    with input_stream(in_path) as src, output_stream(out_path) as dst:
        report = encrypt_stream(
            src,
            dst,
            recipients,
            sender=sender,
            cipher=cipher,
            key_transport=kt,  # type: ignore[arg-type]
            compatible=compatible,
            ski=recipient_ski,
        )
    _report(report, quiet)


def _identity_options(f: Any) -> Any:
    f = _password_options(f)
    f = click.option("--p12", "p12s", multiple=True, metavar="F.p12", help="Identity as PKCS#12.")(
        f
    )
    f = click.option("--key", "keys", multiple=True, metavar="K.pem", help="Private key.")(f)
    f = click.option("--cert", "certs", multiple=True, metavar="C.pem", help="Certificate.")(f)
    return f


@cli.command()
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Encrypted [stdin].")
@click.option("-o", "--out", "out_path", default="-", metavar="OUT", help="Decrypted [stdout].")
@_identity_options
@click.option(
    "--require-authenticated",
    is_flag=True,
    help="Refuse content whose encryption does not protect integrity (CBC).",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not report how it was encrypted.")
def decrypt(
    in_path: str,
    out_path: str,
    certs: tuple[str, ...],
    keys: tuple[str, ...],
    p12s: tuple[str, ...],
    password_env: str | None,
    password_file: str | None,
    require_authenticated: bool,
    quiet: bool,
) -> None:
    """Decrypt a message; several identities may be given (old keys after a renewal too)."""
    from mailseal._open import decrypt_stream

    identities = _load_identities(
        certs, keys, p12s, (), password_env, password_file, every_key=True
    )
    with input_stream(in_path) as src, output_stream(out_path) as dst:
        result = decrypt_stream(
            src, dst, identities, require_authenticated=require_authenticated, with_headers=True
        )
    if not quiet:
        for layer in result.layers:
            click.echo(f"decrypted: {layer.summary}", err=True)


@cli.command()
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Message [stdin].")
@click.option("-o", "--out", "out_path", default="-", metavar="OUT", help="Sealed [stdout].")
@_signer_options
@_password_options
@_encryption_options
@click.option("--no-self", is_flag=True, help="Do not add the sender as a recipient.")
@trust_options(messages=False, address=False)
def seal(
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
    password_env: str | None,
    password_file: str | None,
    to: tuple[str, ...],
    to_signed: tuple[str, ...],
    cipher: str | None,
    kt: str | None,
    compatible: bool,
    recipient_ski: bool,
    quiet: bool,
    no_self: bool,
    trust_spec: TrustSpec,
) -> None:
    """Sign, then encrypt (RFC 8551 §3.7): the message a mail client sends.

    With trust anchors, every recipient certificate is validated for encryption first.
    """
    from mailseal._open import seal_stream
    from mailseal.cms.signed import PreparedSigner, SignerOptions

    recipients = _recipients(to, to_signed)
    check_recipients(trust_spec, [getattr(r, "certificate", r) for r in recipients], quiet=quiet)
    identities = _load_identities(certs, keys, p12s, chain, password_env, password_file)
    for i, path in enumerate(enc_certs[: len(identities)]):
        enc = load_cert_paths((path,), "encryption certificate")[0]
        identities[i] = identities[i].with_encryption_certificate(enc)
    opts = SignerOptions(digest=digest, pss=pss)  # type: ignore[arg-type]
    prepared = [PreparedSigner(i, opts) for i in identities]
    with input_stream(in_path) as src, output_stream(out_path) as dst:
        report = seal_stream(
            src,
            dst,
            prepared,
            recipients,
            include_self=not no_self,
            opaque=opaque,
            cipher=cipher,
            key_transport=kt,  # type: ignore[arg-type]
            compatible=compatible,
            ski=recipient_ski,
        )
    _report(report, quiet)


@cli.command(name="open")
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Message [stdin].")
@click.option("-o", "--out", "out_path", default=None, metavar="OUT", help="The content.")
@_identity_options
@click.option("--certs", "extra_certs", multiple=True, metavar="CERTS.pem", help="Extra certs.")
@trust_options()
@click.option(
    "--require-authenticated", is_flag=True, help="Refuse CBC-encrypted (unauthenticated) content."
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def open_cmd(
    in_path: str,
    out_path: str | None,
    certs: tuple[str, ...],
    keys: tuple[str, ...],
    p12s: tuple[str, ...],
    password_env: str | None,
    password_file: str | None,
    extra_certs: tuple[str, ...],
    require_authenticated: bool,
    as_json: bool,
    trust_spec: TrustSpec,
) -> None:
    """Peel every layer (encrypted, signed, compressed) and judge each one."""
    from mailseal._open import open_stream

    identities = (
        _load_identities(certs, keys, p12s, (), password_env, password_file, every_key=True)
        if certs or p12s
        else []
    )
    extra = load_cert_paths(extra_certs, "certificate file") if extra_certs else []
    t = trust_spec.build()
    to_stderr = out_path == "-"
    with input_stream(in_path) as src, tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
        result = open_stream(
            src,
            spool,  # type: ignore[arg-type]
            identities,
            trust=t,
            certificates=extra,
            require_authenticated=require_authenticated,
        )
        if out_path is not None:
            with output_stream(out_path) as dst:
                dst.write(result.transport_headers)
                spool.seek(0)
                shutil.copyfileobj(spool, dst, 1 << 20)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2), err=to_stderr)
    else:
        for line in _open_lines(result):
            click.echo(line, err=to_stderr)
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)


@cli.command()
@click.option("-i", "--in", "in_path", default="-", metavar="IN", help="Message [stdin].")
@click.option("-o", "--out", "out_path", default="-", metavar="OUT", help="Result [stdout].")
@click.option("-d", "--decompress", is_flag=True, help="Decompress instead.")
def compress(in_path: str, out_path: str, decompress: bool) -> None:
    """Compress a message (RFC 3274 compressed-data), or decompress one with -d."""
    from mailseal.mime import envelope as E
    from mailseal.mime.sign import transport_bytes

    with input_stream(in_path) as src, output_stream(out_path) as dst:
        if not decompress:
            E.compress_stream(src, dst)
            return
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            _size, headers = E.decompress_stream(src, spool)  # type: ignore[arg-type]
            dst.write(transport_bytes(headers))
            spool.seek(0)
            shutil.copyfileobj(spool, dst, 1 << 20)


@cli.command()
@click.option("--keep", type=click.Path(file_okay=False), help="Keep the demo files in DIR.")
def demo(keep: str | None) -> None:
    """Build a throwaway PKI, sign a message, verify it, tamper with it, verify again."""
    from mailseal.cli.demo import run_demo

    run_demo(keep)


cli.add_command(validate_cmd)
_ca_cmds.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: no traceback ever reaches the user."""
    # library warnings (e.g. about certificates with negative serial numbers in the mail
    # being judged) are not for the person at the terminal: the verdict says what matters
    warnings.simplefilter("ignore")
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
