"""The escrow and audit commands.

``mailseal escrow init | history | import | request | approve | deliver | status | reshare``
and ``mailseal audit verify | show | checkpoint``. Secrets never come from the command line:
passphrases and passwords from an environment variable, a file or a prompt.

The actor recorded in the audit log is ``$MAILSEAL_ACTOR`` or the login name; for an approval,
the officer the share belongs to.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailseal.cli.ca_cmds import _open, _prompt, home_option, secret_options
from mailseal.cli.ca_cmds import actor as _actor
from mailseal.cli.io import read_file, read_password, write_new_file
from mailseal.config import Settings, resolve_home
from mailseal.errors import EscrowError, PasswordError, UsageError

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["audit", "escrow"]


def _authority(home: str | None) -> Any:
    """The organisation, opened without its CA keys (escrow work does not sign)."""
    from mailseal.lifecycle.authority import Authority

    return Authority.open(Settings.load(resolve_home(home)))


def _env_name(name: str) -> str:
    return "MAILSEAL_SHARE_PASSPHRASE_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def _officer_passphrase(name: str, *, confirm: bool = True) -> bytes:
    var = _env_name(name)
    value = os.environ.get(var)
    if value is None:
        value = _prompt(f"passphrase for officer {name}'s share ({var})", confirm=confirm)
    return value.encode()


def _officer_spec(spec: str) -> tuple[str, x509.Certificate | None]:
    """``NAME`` or ``NAME=CERT.pem``."""
    name, _, path = spec.partition("=")
    name = name.strip()
    if not re.fullmatch(r"[\w.@-]{1,64}", name):
        raise UsageError(f"officer name {name!r}: use 1–64 letters, digits, '.', '-', '_' or '@'")
    if not path:
        return name, None
    from mailseal.keys.identity import load_certificates

    return name, load_certificates(read_file(path, "officer certificate"), what=path)[0]


def _write_shares(target: Path, files: list[tuple[str, bytes]]) -> None:
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in files:
        path = target / f"share-{''.join(c if c.isalnum() else '_' for c in name)}.json"
        write_new_file(path, data)
        click.echo(f"share for {name}: {path}")


def _duration(text: str) -> _dt.timedelta:
    m = re.fullmatch(r"\s*(\d{1,5})\s*([mhd])\s*", text)
    if not m:
        raise UsageError(f"{text!r} is not a duration: use e.g. 30m, 12h or 7d")
    n, unit = int(m.group(1)), m.group(2)
    return {"m": _dt.timedelta(minutes=n), "h": _dt.timedelta(hours=n), "d": _dt.timedelta(days=n)}[
        unit
    ]


# -- escrow ---------------------------------------------------------------------------------------
@click.group()
def escrow() -> None:
    """Key escrow: archive encryption keys, recover them with a quorum of officers."""


@escrow.command("init")
@click.option("--threshold", type=click.IntRange(2, 64), required=True, metavar="M")
@click.option(
    "--officer",
    "officers",
    multiple=True,
    required=True,
    metavar="NAME[=CERT.pem]",
    help="A recovery officer (repeatable). With a certificate the share is encrypted to it; "
    "else under a passphrase from MAILSEAL_SHARE_PASSPHRASE_<NAME> or a prompt.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    metavar="DIR",
    help="Where the share files are written (one per officer, 0600).",
)
@click.option(
    "--hsm",
    is_flag=True,
    help="Keep the escrow key in the CA's HSM (PKCS#11) and enforce the quorum by signed "
    "approvals; officers get approval-key files instead of shares (docs/escrow.md).",
)
@home_option
@secret_options
def escrow_init(
    threshold: int, officers: tuple[str, ...], out_dir: str, hsm: bool, home: str | None, **kw: Any
) -> None:
    """Create the escrow key for N officers, any M of whom can recover."""
    specs = [_officer_spec(o) for o in officers]
    if threshold > len(specs):
        raise UsageError(f"--threshold {threshold} needs at least {threshold} officers")
    target = Path(out_dir)
    if hsm:
        if any(cert is not None for _, cert in specs):
            raise UsageError("in HSM mode officers protect their approval keys by passphrase")
        authority = _open(home, kw)
        try:
            from mailseal.lifecycle import escrow_hsm

            phrases = [(name, _officer_passphrase(name)) for name, _ in specs]
            files = escrow_hsm.init(authority, threshold, phrases, actor=_actor())
        finally:
            authority.close()
        _write_shares(target, files)
        click.echo(
            f"escrow ready (HSM mode): {threshold} of {len(specs)} officers approve; hand each "
            "approval-key file to its officer and delete it here"
        )
        return
    for k in ("passphrase_env", "passphrase_file", "pin_env", "pin_file"):
        kw.pop(k, None)
    authority = _authority(home)
    try:
        secrets: list[tuple[str, bytes | x509.Certificate]] = [
            (name, cert if cert is not None else _officer_passphrase(name)) for name, cert in specs
        ]
        files = authority.init_escrow(threshold, secrets, actor=_actor())
    finally:
        authority.close()
    _write_shares(target, files)
    click.echo(
        f"escrow ready: {threshold} of {len(specs)} officers recover; hand each share file "
        "to its officer and delete it here"
    )


@escrow.command("history")
@click.option("--email", required=True, metavar="ADDR")
@click.option("--json", "as_json", is_flag=True)
@home_option
def escrow_history(email: str, as_json: bool, home: str | None) -> None:
    """List a person's archived encryption keys."""
    authority = _authority(home)
    try:
        rows = authority.escrow_history(email)
    finally:
        authority.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no archived key for {email}")
    for r in rows:
        click.echo(
            f"{r['serial']}  {r['status']:8} until {r['not_after'][:10]}  "
            f"{r['source']:8} archived {r['archived_at'][:19]}"
        )


@escrow.command("import")
@click.option("--p12", "p12_path", required=True, metavar="F.p12")
@click.option("--password-env", metavar="VAR", help="The PKCS#12 password from VAR.")
@click.option("--password-file", metavar="FILE", help="The PKCS#12 password from FILE.")
@click.option(
    "--allow-dual-use",
    is_flag=True,
    help="Also archive keys whose certificate allows signing as well as encryption.",
)
@click.option("--json", "as_json", is_flag=True)
@home_option
def escrow_import(
    p12_path: str,
    password_env: str | None,
    password_file: str | None,
    allow_dual_use: bool,
    as_json: bool,
    home: str | None,
) -> None:
    """Archive the encryption keys of an existing PKCS#12 file."""
    from mailseal.lifecycle.escrow import import_pkcs12

    data = read_file(p12_path, "PKCS#12 file")
    password = read_password(password_env, password_file, what=p12_path, needed=True)
    authority = _authority(home)
    try:
        items = import_pkcs12(
            authority, data, password, allow_dual_use=allow_dual_use, actor=_actor()
        )
    finally:
        authority.close()
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for item in items:
        click.echo(f"archived the key of {item['email']} (serial {item['serial']})")


@escrow.command("request")
@click.option("--email", required=True, metavar="ADDR")
@click.option("--serial", "serials", multiple=True, metavar="HEX", help="A key by its serial.")
@click.option("--all", "all_keys", is_flag=True, help="Every archived key of the person.")
@click.option("--reason", required=True, metavar="TEXT")
@click.option(
    "--expires-in",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="How long the request may collect approvals (30m, 12h, 7d; at most 90d).",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="The requester's password (protects the delivery) from VAR [prompt].",
)
@click.option("--password-file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True)
@home_option
def escrow_request(
    email: str,
    serials: tuple[str, ...],
    all_keys: bool,
    reason: str,
    expires_in: str,
    password_env: str | None,
    password_file: str | None,
    as_json: bool,
    home: str | None,
) -> None:
    """Open a recovery request; prints its id."""
    from mailseal.lifecycle.escrow import request_recovery

    if bool(serials) == all_keys:
        raise UsageError("name the keys: --serial HEX (repeatable) or --all")
    duration = _duration(expires_in)
    password = _new_password(password_env, password_file)
    authority = _authority(home)
    try:
        view = request_recovery(
            authority,
            email=email,
            serials=list(serials) if serials else None,
            reason=reason,
            password=password,
            requester=_actor(),
            expires_in=duration,
        )
    finally:
        authority.close()
    if as_json:
        click.echo(json.dumps(view.as_dict(), indent=2))
        return
    click.echo(view.request_id)
    click.echo(
        f"request {view.request_id}: {len(view.serials)} key(s) of {view.email}; needs "
        f"{view.threshold} officers' approvals before {view.expires_at:%Y-%m-%d %H:%M} UTC",
        err=True,
    )


def _new_password(env: str | None, file: str | None) -> bytes:
    if env or file:
        value = read_password(env, file, what="the recovery request", needed=True)
        assert value is not None
        return value
    phrase = _prompt("requester's password (protects the delivery)", confirm=True)
    return phrase.encode()


@escrow.command("approve")
@click.argument("request_id", metavar="REQUEST")
@click.option("--share", "share_path", required=True, metavar="FILE", help="Your share file.")
@click.option("--passphrase-env", metavar="VAR", help="The share's passphrase from VAR [prompt].")
@click.option("--passphrase-file", metavar="FILE")
@click.option(
    "--officer-key",
    metavar="KEY.pem",
    help="Your private key, for a share encrypted to your certificate.",
)
@click.option(
    "--officer-cert", metavar="CERT.pem", help="Your certificate [the one named in the share]."
)
@click.option("--key-password-env", metavar="VAR", help="Password of --officer-key from VAR.")
@home_option
def escrow_approve(
    request_id: str,
    share_path: str,
    passphrase_env: str | None,
    passphrase_file: str | None,
    officer_key: str | None,
    officer_cert: str | None,
    key_password_env: str | None,
    home: str | None,
) -> None:
    """Approve a recovery request with your share."""
    from mailseal.escrow.officer import share_protection
    from mailseal.lifecycle.escrow import approve

    data = read_file(share_path, "share file")
    key = cert = None
    passphrase = None
    if officer_key:
        from mailseal.keys.software import load_private_key

        kpw = read_password(key_password_env, None, what=officer_key, needed=False)
        key = load_private_key(read_file(officer_key, "officer key"), kpw)
        if officer_cert:
            from mailseal.keys.identity import load_certificates

            cert = load_certificates(read_file(officer_cert, "officer certificate"))[0]
    else:
        try:
            kind = share_protection(data)
        except EscrowError:
            kind = "passphrase"
        if kind != "passphrase":
            raise UsageError(
                "this share is encrypted to your certificate: give --officer-key KEY.pem"
            )
        if passphrase_env or passphrase_file:
            passphrase = read_password(
                passphrase_env, passphrase_file, what=share_path, needed=True
            )
        else:
            passphrase = _prompt("passphrase of your share", confirm=False).encode()
    authority = _authority(home)
    try:
        view = approve(
            authority,
            request_id,
            data,
            passphrase=passphrase,
            officer_key=key,
            officer_certificate=cert,
            actor=_actor(),
        )
    finally:
        authority.close()
    click.echo(
        f"request {view.request_id}: {len(view.approvals)} of {view.threshold} approvals "
        f"({', '.join(view.approvals)}); state {view.state}"
    )


@escrow.command("deliver")
@click.argument("request_id", metavar="REQUEST")
@click.option("--out", "out_path", required=True, metavar="F.p12")
@click.option(
    "--password-env",
    metavar="VAR",
    help="The requester's password from VAR [prompt]; it also protects the PKCS#12 file.",
)
@click.option("--password-file", metavar="FILE")
@home_option
@secret_options
def escrow_deliver(
    request_id: str,
    out_path: str,
    password_env: str | None,
    password_file: str | None,
    home: str | None,
    **kw: Any,
) -> None:
    """Once the quorum is in: every requested key in one PKCS#12 file."""
    from mailseal.lifecycle.escrow import deliver

    target = Path(out_path)
    if target.exists():
        raise UsageError(f"{target} exists already; choose another name")
    password = read_password(password_env, password_file, what=f"request {request_id}", needed=True)
    assert password is not None
    authority = _authority(home)
    try:
        token = None
        if _needs_hsm(authority, request_id):
            authority.close()
            authority = _open(home, kw)
            token = authority.hsm_token()
        view = deliver(
            authority,
            request_id,
            password,
            lambda data: write_new_file(target, data),
            token=token,
            actor=_actor(),
        )
    finally:
        authority.close()
    click.echo(
        f"wrote {target}: {len(view.serials)} key(s) of {view.email} with their certificates "
        "(PKCS#12, AES-256; open it with the requester's password)"
    )


def _needs_hsm(authority: Any, request_id: str) -> bool:
    from mailseal.lifecycle.escrow import status

    views = status(authority, request_id)
    return bool(views and views[0].mode == "hsm")


@escrow.command("status")
@click.argument("request_id", metavar="[REQUEST]", required=False)
@click.option("--json", "as_json", is_flag=True)
@home_option
def escrow_status(request_id: str | None, as_json: bool, home: str | None) -> None:
    """Recovery requests and their states."""
    from mailseal.lifecycle.escrow import status

    authority = _authority(home)
    try:
        views = status(authority, request_id)
    finally:
        authority.close()
    if as_json:
        click.echo(json.dumps([v.as_dict() for v in views], indent=2))
        return
    if not views:
        click.echo("no recovery request")
    for v in views:
        click.echo(
            f"{v.request_id}  {v.state:9} {v.email}  {len(v.serials)} key(s)  "
            f"{len(v.approvals)}/{v.threshold} approvals"
            f"{' (' + ', '.join(v.approvals) + ')' if v.approvals else ''}  "
            f"by {v.requester}  until {v.expires_at:%Y-%m-%d %H:%M}  — {v.reason}"
        )


@escrow.command("reshare")
@click.option(
    "--share",
    "share_paths",
    multiple=True,
    required=True,
    metavar="FILE",
    help="A share of the current set (a quorum of them; each opened with "
    "MAILSEAL_SHARE_PASSPHRASE_<NAME> of its officer or a prompt).",
)
@click.option("--officer-key", "officer_keys", multiple=True, metavar="KEY.pem",
              help="Private key(s) for shares encrypted to officers' certificates.")  # fmt: skip
@click.option("--threshold", type=click.IntRange(2, 64), required=True, metavar="M")
@click.option("--officer", "officers", multiple=True, required=True, metavar="NAME[=CERT.pem]")
@click.option("--out", "out_dir", required=True, metavar="DIR")
@home_option
def escrow_reshare(
    share_paths: tuple[str, ...],
    officer_keys: tuple[str, ...],
    threshold: int,
    officers: tuple[str, ...],
    out_dir: str,
    home: str | None,
) -> None:
    """Replace the officers (and the escrow key) with a quorum of the current shares."""
    from mailseal.escrow.officer import open_share_file, share_protection
    from mailseal.keys.software import load_private_key
    from mailseal.lifecycle.authority import seal_share_for
    from mailseal.lifecycle.escrow import escrow_from_row, reshare

    specs = [_officer_spec(o) for o in officers]
    if threshold > len(specs):
        raise UsageError(f"--threshold {threshold} needs at least {threshold} officers")
    keys = [load_private_key(read_file(k, "officer key")) for k in officer_keys]
    authority = _authority(home)
    try:
        current = authority.active_escrow_set()
        if current.mode != "threshold":  # an HSM-mode set has no shares to re-share
            raise UsageError(
                "re-sharing is for threshold escrow sets; the active set is in HSM mode "
                "(for new officers, run 'mailseal escrow init --hsm' again)"
            )
        escrow_set = escrow_from_row(current)
        shares = []
        for path in share_paths:
            data = read_file(path, "share file")
            if share_protection(data) == "passphrase":
                index = json.loads(data)["index"]
                name = current.officers[int(index) - 1]
                share = open_share_file(
                    data, passphrase=_officer_passphrase(name, confirm=False), escrow=escrow_set
                )
            else:
                share = _open_with_keys(data, keys, escrow_set, path)
            shares.append(share)
        sealers = []
        for name, cert in specs:
            secret: bytes | x509.Certificate = (
                cert if cert is not None else _officer_passphrase(name)
            )
            sealers.append((name, lambda e, sh, secret=secret: seal_share_for(e, sh, secret)))
        files = reshare(authority, shares, threshold=threshold, officers=sealers, actor=_actor())
    finally:
        authority.close()
    _write_shares(Path(out_dir), files)
    click.echo(
        f"re-shared: {threshold} of {len(specs)} officers recover from now on; the old shares "
        "open nothing any more"
    )


def _open_with_keys(data: bytes, keys: list[Any], escrow_set: Any, path: str) -> Any:
    from mailseal.escrow.officer import open_share_file

    for key in keys:
        try:
            return open_share_file(data, key=key, escrow=escrow_set)
        except (EscrowError, PasswordError):
            continue
    raise UsageError(f"no --officer-key opens {path}")


# -- audit ----------------------------------------------------------------------------------------
@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.option("--trust", "trust_paths", multiple=True, metavar="CA.pem",
              help="Also accept checkpoints signed by this CA certificate.")  # fmt: skip
@home_option
def audit_verify(as_json: bool, trust_paths: tuple[str, ...], home: str | None) -> None:
    """Check the whole chain and its signed checkpoints; exit 1 naming the first bad entry."""
    from mailseal.keys.identity import load_certificates
    from mailseal.lifecycle.audit import verify

    trusted = [c for p in trust_paths for c in load_certificates(read_file(p, "certificate"))]
    authority = _authority(home)
    try:
        report = verify(authority, trusted=trusted)
    finally:
        authority.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif report.ok:
        click.echo(
            f"audit log intact: {report.events} entries, {report.checkpoints} signed "
            f"checkpoint(s), {report.unsealed} entr{'y' if report.unsealed == 1 else 'ies'} "
            "after the last checkpoint"
        )
    else:
        if report.problem is not None:
            click.echo(f"audit log NOT intact: {report.problem.message}")
        for p in report.checkpoint_problems:
            click.echo(f"audit log NOT intact: {p}")
    raise SystemExit(0 if report.ok else 1)


@audit.command("show")
@click.option("--since", metavar="TIME", help="ISO date or time (UTC unless it says), or 24h/7d.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), metavar="N")
@click.option("--json", "as_json", is_flag=True)
@home_option
def audit_show(since: str | None, limit: int | None, as_json: bool, home: str | None) -> None:
    """The audit log, oldest first."""
    from mailseal.lifecycle.audit import events

    when = _since(since) if since else None
    authority = _authority(home)
    try:
        rows = events(authority, since=when, limit=limit)
    finally:
        authority.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        details = json.dumps(r["details"], sort_keys=True, ensure_ascii=False)
        click.echo(
            f"{r['id']:>6}  {r['at'][:19]}  {r['outcome']:7} {r['actor']:<12} {r['action']:<22} "
            f"{r['subject']}  {details}"
        )


def _since(text: str) -> _dt.datetime:
    try:
        return _dt.datetime.now(_dt.UTC) - _duration(text)
    except UsageError:
        pass
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: give an ISO date/time or a duration (24h)") from None
    return when if when.tzinfo else when.replace(tzinfo=_dt.UTC)


@audit.command("checkpoint")
@home_option
@secret_options
def audit_checkpoint(home: str | None, **kw: Any) -> None:
    """Seal the log so far with a checkpoint signed by the issuing CA."""
    from mailseal.lifecycle.audit import checkpoint

    authority = _open(home, kw)
    try:
        sealed = checkpoint(authority)
    finally:
        authority.close()
    click.echo(
        "nothing new since the last checkpoint"
        if sealed is None
        else f"sealed up to entry {sealed}"
    )
