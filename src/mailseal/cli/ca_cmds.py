"""The CA commands: ``init``, ``issue``, ``renew``, ``revoke``, ``crl``, ``certs``, ``serve``.

Every command takes ``--home`` (else ``$MAILSEAL_HOME``, else ``~/.local/share/mailseal``).
Secrets never come from the command line: the CA passphrase from ``--passphrase-env VAR``,
``--passphrase-file FILE`` or a prompt; an HSM PIN from ``--pin-env`` / ``--pin-file``; a
PKCS#12 password from ``--p12-password-env`` / ``--p12-password-file`` or generated and printed
once.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailseal.cli.io import read_file
from mailseal.config import Settings, resolve_home
from mailseal.errors import PasswordError, UsageError

__all__ = ["register"]

PROFILE_CHOICES = (
    "mailbox-strict",
    "mailbox-multipurpose",
    "organization-strict",
    "organization-multipurpose",
    "sponsor-strict",
    "sponsor-multipurpose",
    "individual-strict",
    "individual-multipurpose",
)


def actor() -> str:
    """Who is acting, for the audit log: ``$MAILSEAL_ACTOR`` or the login name."""
    name = os.environ.get("MAILSEAL_ACTOR", "").strip()
    if name:
        return name[:200]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _secret_from(env: str | None, file: str | None, what: str) -> str | None:
    if env and file:
        raise UsageError(f"give the {what} either from an environment variable or a file")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise PasswordError(f"the environment variable {env} is not set (the {what})")
        return value
    if file:
        data = read_file(file, f"{what} file").decode("utf-8", "replace")
        return data.splitlines()[0] if data else ""
    return None


def _prompt(what: str, *, confirm: bool) -> str:
    try:
        with open("/dev/tty"):
            pass
    except OSError:
        options = (
            "--pin-env VAR or --pin-file FILE"
            if "PIN" in what
            else ("--passphrase-env VAR or --passphrase-file FILE")
        )
        raise PasswordError(
            f"the {what} is needed and there is no terminal to ask: use {options}"
        ) from None
    value: str = click.prompt(f"{what}", hide_input=True, confirmation_prompt=confirm)
    return value


def home_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--home",
        metavar="DIR",
        help="The data directory [$MAILSEAL_HOME or ~/.local/share/mailseal].",
    )(f)


def secret_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--passphrase-env/--passphrase-file for file keys, --pin-env/--pin-file for an HSM."""
    for opt in reversed(
        [
            click.option(
                "--passphrase-env", metavar="VAR", help="Read the CA passphrase from VAR."
            ),
            click.option(
                "--passphrase-file", metavar="FILE", help="Read the CA passphrase from FILE."
            ),
            click.option("--pin-env", metavar="VAR", help="Read the HSM PIN from VAR."),
            click.option("--pin-file", metavar="FILE", help="Read the HSM PIN from FILE."),
        ]
    ):
        f = opt(f)
    return f


def _secrets(settings: Settings, kw: dict[str, Any], *, confirm: bool = False) -> Any:
    from mailseal.lifecycle.authority import Secrets

    # an option given on the command line replaces what was remembered at init
    passphrase_env = kw.pop("passphrase_env", None)
    passphrase_file = kw.pop("passphrase_file", None)
    if not (passphrase_env or passphrase_file):
        passphrase_env = settings.passphrase_env or None
        passphrase_file = settings.passphrase_file or None
    pin_env = kw.pop("pin_env", None)
    pin_file = kw.pop("pin_file", None)
    if not (pin_env or pin_file):
        pin_env = settings.pkcs11_pin_env or None
        pin_file = settings.pkcs11_pin_file or None
    if settings.key_backend == "pkcs11":
        pin = _secret_from(pin_env, pin_file, "HSM PIN")
        if pin is None:
            pin = _prompt("HSM PIN", confirm=False)
        return Secrets(passphrase=None, pin=pin)
    phrase = _secret_from(passphrase_env, passphrase_file, "CA passphrase")
    if phrase is None:
        phrase = _prompt("CA passphrase", confirm=confirm)
    return Secrets(passphrase=phrase.encode(), pin=None)


def _open(home: str | None, kw: dict[str, Any]) -> Any:
    from mailseal.lifecycle.authority import Authority

    settings = Settings.load(resolve_home(home))
    return Authority.open(settings, _secrets(settings, kw))


def _with_authority(f: Callable[..., Any]) -> Callable[..., Any]:
    """Open the organisation (--home and the secret options) and pass it as ``authority``."""

    @functools.wraps(f)
    def wrapper(*args: Any, home: str | None, **kw: Any) -> Any:
        authority = _open(home, kw)
        try:
            return f(*args, authority=authority, **kw)
        finally:
            authority.close()

    return home_option(secret_options(wrapper))


# -- init -----------------------------------------------------------------------------------------
@click.command()
@home_option
@click.option("--database", metavar="URL", help="postgresql://… [SQLite in the data directory].")
@click.option("--org", "organization", required=True, metavar="NAME", help="Organisation name.")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    metavar="DOMAIN",
    help="A permitted mail domain (repeatable; written as name constraints).",
)
@click.option(
    "--key-type",
    type=click.Choice(["p256", "p384", "rsa3072", "rsa4096", "ed25519"]),
    default="p384",
    show_default=True,
    help="CA key type.",
)
@click.option(
    "--validity",
    "validity_days",
    type=click.IntRange(30, 3653),
    default=1826,
    show_default=True,
    help="Issuing CA validity in days.",
)
@click.option(
    "--base-url",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="Public base URL written into CRL distribution points and AIA.",
)
@click.option(
    "--export-root-key",
    metavar="FILE",
    help="Move the root CA key to FILE (kept offline) once the hierarchy exists.",
)
@click.option(
    "--import-cert",
    metavar="CA.pem",
    help="Use an existing CA certificate (with its chain) instead of creating one.",
)
@click.option("--import-key", metavar="KEY.pem", help="The key of --import-cert.")
@click.option("--import-key-password-env", metavar="VAR", help="Password of --import-key.")
@click.option(
    "--ocsp-responder",
    type=click.Choice(["ca", "delegated"]),
    default="ca",
    show_default=True,
    help="Who signs OCSP responses: the CA key, or a responder certificate it issues.",
)
@click.option(
    "--noncritical-name-constraints",
    is_flag=True,
    help="Mark the domain name constraints non-critical, for mail clients that cannot "
    "process them (gpgsm); see docs/ca.md.",
)
@click.option("--pkcs11-module", metavar="PATH", help="Keep the CA keys in this PKCS#11 module.")
@click.option("--pkcs11-token", metavar="LABEL", help="The token label in the HSM.")
@secret_options
def init(**kw: Any) -> None:
    """Create the data directory, the database and the CA hierarchy."""
    from mailseal.lifecycle.authority import init_organisation

    home = resolve_home(kw.pop("home"))
    backend = "pkcs11" if kw.get("pkcs11_module") else "file"
    if backend == "pkcs11" and not kw.get("pkcs11_token"):
        raise UsageError("--pkcs11-module needs --pkcs11-token LABEL")
    settings = Settings(
        home=home,
        organization=kw.pop("organization"),
        domains=tuple(kw.pop("domains")),
        database_url=kw.pop("database") or "",
        base_url=kw.pop("base_url"),
        ocsp_responder=kw.pop("ocsp_responder"),
        key_backend=backend,
        pkcs11_module=kw.pop("pkcs11_module") or "",
        pkcs11_token=kw.pop("pkcs11_token") or "",
        pkcs11_pin_env=kw.get("pin_env") or "",
        pkcs11_pin_file=kw.get("pin_file") or "",
        passphrase_env=kw.get("passphrase_env") or "",
        passphrase_file=kw.get("passphrase_file") or "",
    )
    secrets = _secrets(settings, kw, confirm=True)
    imp_cert = kw.pop("import_cert")
    imp_key = kw.pop("import_key")
    imp_pw_env = kw.pop("import_key_password_env")
    imp_pw = _secret_from(imp_pw_env, None, "imported key password")
    export = kw.pop("export_root_key")
    authority = init_organisation(
        settings,
        secrets,
        key_type=kw.pop("key_type"),
        issuing_validity_days=kw.pop("validity_days"),
        import_certificate=read_file(imp_cert, "CA certificate") if imp_cert else None,
        import_key=read_file(imp_key, "CA key") if imp_key else None,
        import_key_password=imp_pw.encode() if imp_pw is not None else None,
        export_root_key=Path(export) if export else None,
        name_constraints_critical=not kw.pop("noncritical_name_constraints"),
    )
    try:
        click.echo(f"initialised {settings.organization} in {home}")
        for name, ca in authority.cas.items():
            where = "key here" if ca.key_ref else "key offline"
            click.echo(f"  {name:8} {ca.certificate.subject.rfc4514_string()}  ({where})")
        click.echo(f"  database {authority.db.url}")
        if export:
            click.echo(f"  the root key was moved to {export}: keep it offline")
        click.echo("next: mailseal issue --email someone@" + (settings.domains or ("…",))[0])
    finally:
        authority.close()


# -- issue / renew --------------------------------------------------------------------------------
def _write_issued(
    issued: list[Any], chain: list[Any], out_dir: Path, password: str | None, *, quiet: bool
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from mailseal.pki.issue import export_pkcs12, generate_password

    out_dir.mkdir(parents=True, exist_ok=True)
    printed = False
    for item in issued:
        cert = item.certificate
        email = cert.subject.rfc4514_string()
        with contextlib.suppress(x509.ExtensionNotFound):
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            email = next(iter(san.get_values_for_type(x509.RFC822Name)), email)
        stem = f"{email.partition('@')[0] or 'cert'}-{item.usage}"
        pem = cert.public_bytes(serialization.Encoding.PEM)
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        (out_dir / f"{stem}.crt").write_bytes(pem + chain_pem)
        line = f"{item.usage:10} serial {item.serial}  {out_dir / (stem + '.crt')}"
        if item.key is not None:
            pw = password
            if pw is None:
                pw = generate_password()
                if not printed:
                    click.echo(f"PKCS#12 password (shown once): {pw}")
                    printed = True
            data = export_pkcs12(item.key, cert, chain, pw.encode(), friendly_name=email)
            p12 = out_dir / f"{stem}.p12"
            fd = os.open(p12, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            line += f"  key: {p12}"
        if not quiet:
            click.echo(line)


def _p12_password(kw: dict[str, Any]) -> str | None:
    return _secret_from(kw.pop("p12_password_env"), kw.pop("p12_password_file"), "PKCS#12 password")


def _issue_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option(
                "--out",
                "out_dir",
                default=".",
                show_default=True,
                metavar="DIR",
                help="Where the certificates and PKCS#12 files go.",
            ),
            click.option("--p12-password-env", metavar="VAR", help="PKCS#12 password from VAR."),
            click.option("--p12-password-file", metavar="FILE", help="PKCS#12 password file."),
            click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
        ]
    ):
        f = opt(f)
    return f


def _issued_json(issued: list[Any]) -> str:
    return json.dumps(
        [
            {
                "serial": i.serial,
                "usage": i.usage,
                "profile": i.profile,
                "not_after": i.certificate.not_valid_after_utc.isoformat(),
                "server_generated_key": i.key is not None,
            }
            for i in issued
        ],
        indent=2,
    )


@click.command()
@click.option("--email", required=True, metavar="ADDR", help="The mailbox.")
@click.option("--name", metavar="NAME", help="The person's name (commonName where allowed).")
@click.option(
    "--profile",
    type=click.Choice(PROFILE_CHOICES),
    default="mailbox-strict",
    show_default=True,
    help="S/MIME BR certificate profile.",
)
@click.option(
    "--usage",
    type=click.Choice(["pair", "signing", "encryption", "dual"]),
    default="pair",
    show_default=True,
    help="pair: a signing and an encryption certificate.",
)
@click.option("--csr", metavar="CSR.pem", help="Certify this CSR's key (the signing key).")
@click.option(
    "--key-type",
    type=click.Choice(["p256", "p384", "rsa2048", "rsa3072", "rsa4096", "ed25519"]),
    default="p256",
    show_default=True,
    help="Type of keys generated here.",
)
@click.option("--days", "validity_days", type=click.IntRange(1, 825), help="Validity [365].")
@_issue_options
@_with_authority
def issue(authority: Any, **kw: Any) -> None:
    """Issue S/MIME certificates for a mailbox."""
    csr = read_file(kw["csr"], "CSR") if kw["csr"] else None
    password = _p12_password(kw)
    issued = authority.issue(
        email=kw["email"],
        name=kw["name"],
        profile=kw["profile"],
        usage=kw["usage"],
        csr=csr,
        key_type=kw["key_type"],
        validity_days=kw["validity_days"],
        actor=actor(),
    )
    authority.seal_audit()
    _write_issued(issued, authority.chain(), Path(kw["out_dir"]), password, quiet=kw["as_json"])
    if kw["as_json"]:
        click.echo(_issued_json(issued))


@click.command()
@click.option("--email", required=True, metavar="ADDR", help="The mailbox.")
@click.option("--revoke-old", metavar="REASON", help="Revoke the old certificates (superseded).")
@_issue_options
@_with_authority
def renew(authority: Any, **kw: Any) -> None:
    """New keys and certificates for a mailbox, like its current ones."""
    password = _p12_password(kw)
    issued = authority.renew(email=kw["email"], revoke_old=kw["revoke_old"], actor=actor())
    authority.seal_audit()
    _write_issued(issued, authority.chain(), Path(kw["out_dir"]), password, quiet=kw["as_json"])
    if kw["as_json"]:
        click.echo(_issued_json(issued))


# -- revoke / crl / certs -------------------------------------------------------------------------
@click.command()
@click.option("--serial", metavar="HEX", help="The certificate's serial number.")
@click.option("--email", metavar="ADDR", help="Revoke every valid certificate of this mailbox.")
@click.option(
    "--reason",
    required=True,
    metavar="REASON",
    help="keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn.",
)
@_with_authority
def revoke(authority: Any, serial: str | None, email: str | None, reason: str) -> None:
    """Revoke certificates; CRLs and OCSP answers change before this returns."""
    revoked = authority.revoke(serial=serial, email=email, reason=reason, actor=actor())
    authority.seal_audit()
    for s in revoked:
        click.echo(f"revoked {s}")


@click.command()
@click.option("--ca", "ca_name", default="issuing", show_default=True, help="Which CA.")
@click.option("--delta", is_flag=True, help="The delta CRL instead of the complete one.")
@click.option("-o", "--out", "out_path", metavar="FILE", help="Write the DER CRL to FILE.")
@click.option("--new", is_flag=True, help="Issue a new CRL first.")
@_with_authority
def crl(authority: Any, ca_name: str, delta: bool, out_path: str | None, new: bool) -> None:
    """Print (or write) the current CRL of a CA."""
    if new:
        authority.publish_crls(names=[ca_name])
    found = authority.crl(ca_name, delta=delta)
    if found is None:
        raise UsageError(f"no {'delta ' if delta else ''}CRL for CA {ca_name!r}")
    der, _ = found
    if out_path:
        Path(out_path).write_bytes(der)
        click.echo(f"wrote {out_path} ({len(der)} bytes)")
        return
    if sys.stdout.isatty():
        import base64

        click.echo("-----BEGIN X509 CRL-----")
        b64 = base64.b64encode(der).decode()
        for i in range(0, len(b64), 64):
            click.echo(b64[i : i + 64])
        click.echo("-----END X509 CRL-----")
    else:
        sys.stdout.buffer.write(der)


@click.command()
@click.option("--email", metavar="ADDR", help="Only this mailbox.")
@click.option(
    "--expiring",
    "expiring_days",
    type=click.IntRange(0),
    metavar="DAYS",
    help="Only valid certificates that expire within DAYS.",
)
@click.option("--status", type=click.Choice(["valid", "revoked", "expired"]))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@home_option
def certs(
    home: str | None,
    email: str | None,
    expiring_days: int | None,
    status: str | None,
    as_json: bool,
) -> None:
    """List issued certificates (no passphrase needed)."""
    from mailseal.lifecycle.authority import Authority

    authority = Authority.open(Settings.load(resolve_home(home)))
    try:
        rows = authority.certificates(email=email, expiring_days=expiring_days, status=status)
    finally:
        authority.close()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    if not rows:
        click.echo("no certificates")
        return
    for r in rows:
        click.echo(
            f"{r.serial}  {r.status:8} {r.usage:10} {r.email or '-':30} "
            f"until {r.not_after.date().isoformat()}  {r.profile}"
        )


# -- serve ----------------------------------------------------------------------------------------
@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--demo",
    is_flag=True,
    help="On first start, initialise a demo organisation (example.org) in the data directory.",
)
@home_option
@secret_options
def serve(host: str, port: int, demo: bool, home: str | None, **kw: Any) -> None:
    """Serve CRLs, OCSP, CA certificates, /health and /metrics over HTTP."""
    from mailseal.api.server import run_server

    where = resolve_home(home)
    if demo and not (where / "mailseal.toml").exists():
        _init_demo(where, f"http://{host}:{port}")
    settings = Settings.load(where)
    run_server(settings, _secrets(settings, kw), host=host, port=port)


def _init_demo(home: Path, base_url: str) -> None:
    """A demo organisation: SQLite, file keys whose passphrase is in demo-passphrase (0600;
    fine for a demo, never for a real CA), and a certificate pair for alice@example.org."""
    from mailseal.lifecycle.authority import Secrets, init_organisation
    from mailseal.pki.issue import generate_password

    click.echo(f"first start: initialising a demo organisation in {home}")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = home / "demo-passphrase"
    phrase = generate_password()
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(phrase + "\n")
    settings = Settings(
        home=home,
        organization="Example Organisation",
        domains=("example.org",),
        base_url=base_url,
        passphrase_file=str(secret),
    )
    authority = init_organisation(settings, Secrets(passphrase=phrase.encode()), key_type="p256")
    try:
        issued = authority.issue(email="alice@example.org", name="Alice Example")
        _write_issued(issued, authority.chain(), home / "demo", phrase, quiet=True)
    finally:
        authority.close()
    click.echo(
        f"  issued a signing and an encryption certificate for alice@example.org in {home / 'demo'}"
    )
    click.echo(f"  (PKCS#12 password and CA passphrase: the first line of {secret})")


def register(group: click.Group) -> None:
    from mailseal.cli.escrow_cmds import audit, escrow
    from mailseal.cli.pkcs12_cmds import pkcs12_group

    for command in (init, issue, renew, revoke, crl, certs, serve, escrow, audit, pkcs12_group):
        group.add_command(command)
