"""Trust on the command line: the options shared by ``verify``, ``open``, ``validate``,
``encrypt`` and ``seal``, the ``validate`` command, and recipient checks before encrypting.

Exit codes of ``validate``: 0 the certificate is valid for the purpose; 1 it was evaluated and
is not; 2 the input or the arguments cannot be used.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailseal.cli.io import input_stream, load_cert_paths, read_file
from mailseal.errors import InputError, UsageError
from mailseal.validation.revocation import REVOCATION_MODES

if TYPE_CHECKING:
    from cryptography import x509

    from mailseal.validation.trust import Trust
    from mailseal.validation.verdict import CertificateVerdict

__all__ = ["TrustSpec", "check_recipients", "trust_options", "validate"]

EXIT_OK, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2

#: CA bundles tried for --system-trust after what Python's ssl module reports.
_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, BSDs
)


def parse_time(text: str) -> _dt.datetime:
    """ISO 8601 date or date and time; UTC unless an offset is given."""
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not an ISO 8601 time (e.g. 2025-06-01T12:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when


def system_anchors() -> list[x509.Certificate]:
    """The operating system's CA bundle (TLS roots: see docs/trust.md for the caveat)."""
    import ssl

    paths = ssl.get_default_verify_paths()
    candidates = [p for p in (paths.cafile, paths.openssl_cafile) if p] + list(_SYSTEM_BUNDLES)
    for cand in candidates:
        path = Path(cand)
        if path.is_file():
            return _load_bundle(path.read_bytes())
    capath = paths.capath or paths.openssl_capath
    if capath and Path(capath).is_dir():
        out: list[x509.Certificate] = []
        for f in sorted(Path(capath).iterdir()):
            if f.is_file() and f.suffix in (".pem", ".crt", ".0"):
                out.extend(_load_bundle(f.read_bytes()))
        if out:
            return out
    raise UsageError("no system CA bundle found; give trust anchors with --trust")


def _load_bundle(data: bytes) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        pass
    out = []
    for block in data.split(b"-----END CERTIFICATE-----"):
        start = block.find(b"-----BEGIN CERTIFICATE-----")
        if start < 0:
            continue
        try:
            out.append(x509.load_pem_x509_certificate(block[start:] + b"-----END CERTIFICATE-----"))
        except ValueError:
            continue  # a certificate cryptography cannot read: not usable as an anchor anyway
    return out


@dataclass(frozen=True)
class TrustSpec:
    """The trust options as given; :meth:`build` turns them into a :class:`Trust`."""

    trust: tuple[str, ...] = ()
    system_trust: bool = False
    intermediates: tuple[str, ...] = ()
    crls: tuple[str, ...] = ()
    ocsp_responses: tuple[str, ...] = ()
    revocation: str = "soft"
    offline: bool = False
    at: str | None = None
    trust_signing_time: bool = False
    allow_weak: bool = False
    ignore_address: bool = False
    policies: tuple[str, ...] = ()
    require_explicit_policy: bool = False
    fetch_issuers: bool = False
    cert_cache: str | None = None
    no_cert_cache: bool = False

    @property
    def has_anchors(self) -> bool:
        return bool(self.trust) or self.system_trust

    def build(self) -> Trust:
        # cryptography warns (with source lines) about certificates it will refuse one day,
        # e.g. negative serial numbers; the verdict is what the user reads
        from cryptography.utils import CryptographyDeprecationWarning

        from mailseal.validation.trust import Trust

        warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)
        anchors = load_cert_paths(self.trust, "trust anchor") if self.trust else []
        if self.system_trust:
            anchors.extend(system_anchors())
        inter = load_cert_paths(self.intermediates, "intermediate") if self.intermediates else []
        fetcher = None
        if not self.offline and self.revocation != "off":
            from mailseal.cli.fetcher import HttpFetcher

            fetcher = HttpFetcher()
        trust = Trust(
            anchors,
            intermediates=inter,
            revocation=self.revocation,  # type: ignore[arg-type]
            offline=self.offline,
            fetcher=fetcher,
            fetch_issuers=self.fetch_issuers,
            at=parse_time(self.at) if self.at else None,
            trust_signing_time=self.trust_signing_time,
            allow_weak=self.allow_weak,
            check_address=not self.ignore_address,
            policies=self.policies or None,
            require_explicit_policy=self.require_explicit_policy,
            cache=self._cache(),
        )
        for path in self.crls:
            try:
                trust.add_crls([read_file(path, "CRL file")])
            except InputError as exc:
                raise InputError(f"CRL file {path}: {exc}") from None
        for path in self.ocsp_responses:
            try:
                trust.add_ocsp_responses([read_file(path, "OCSP response file")])
            except InputError as exc:
                raise InputError(f"OCSP response file {path}: {exc}") from None
        return trust

    def _cache(self) -> Any:
        if self.no_cert_cache:
            return None
        from mailseal.validation.cache import DirectoryCertificateCache

        return DirectoryCertificateCache(self.cert_cache or default_cert_cache())


def default_cert_cache() -> Path:
    """``$MAILSEAL_CERT_CACHE``, else ``$XDG_CACHE_HOME/mailseal/certificates`` (by default
    ``~/.cache/mailseal/certificates``)."""
    env = os.environ.get("MAILSEAL_CERT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mailseal" / "certificates"


_FIELDS = tuple(TrustSpec.__dataclass_fields__)


def trust_options(*, messages: bool = True, address: bool = True) -> Callable[[Any], Any]:
    """Add the trust options to a command; it receives them as one ``trust_spec`` argument.

    ``messages`` adds ``--trust-signing-time`` (for signatures); ``address`` adds
    ``--ignore-address``.
    """
    options = [
        click.option(
            "--trust",
            multiple=True,
            metavar="CA.pem",
            help="Trust anchor file (PEM/DER) or directory; repeatable.",
        ),
        click.option(
            "--system-trust", is_flag=True, help="Also trust the operating system's CA bundle."
        ),
        click.option(
            "--intermediate",
            "intermediates",
            multiple=True,
            metavar="CA.pem",
            help="Intermediate CA certificates to build paths with; repeatable.",
        ),
        click.option(
            "--crl",
            "crls",
            multiple=True,
            metavar="CRL",
            help="A CRL (PEM or DER) to check revocation with; repeatable.",
        ),
        click.option(
            "--ocsp-response",
            "ocsp_responses",
            multiple=True,
            metavar="RESP.der",
            help="An OCSP response (DER or PEM) to check revocation with; repeatable.",
        ),
        click.option(
            "--revocation",
            type=click.Choice(list(REVOCATION_MODES)),
            default="soft",
            show_default=True,
            help="hard: an unknown revocation status invalidates; soft: it is reported; off.",
        ),
        click.option(
            "--offline",
            is_flag=True,
            help="Fetch nothing: use only the CRLs and OCSP responses given or carried.",
        ),
        click.option(
            "--fetch-issuers",
            is_flag=True,
            help="Fetch missing CA certificates from AIA caIssuers URLs (not with --offline).",
        ),
        click.option(
            "--cert-cache",
            metavar="DIR",
            help="Where CA certificates of validated paths are kept for later path building "
            "[$MAILSEAL_CERT_CACHE or ~/.cache/mailseal/certificates].",
        ),
        click.option(
            "--no-cert-cache",
            is_flag=True,
            help="Neither use nor fill the certificate cache.",
        ),
        click.option(
            "--at",
            metavar="TIME",
            help="Validate at TIME (ISO 8601, UTC unless an offset is given) instead of now.",
        ),
        click.option(
            "--allow-weak",
            is_flag=True,
            help="Accept SHA-1/MD5 signatures, RSA keys under 2048 bits and DSA.",
        ),
        click.option(
            "--policy",
            "policies",
            multiple=True,
            metavar="OID",
            help="Acceptable certificate policy (RFC 5280 initial policy set) [any].",
        ),
        click.option(
            "--require-explicit-policy",
            is_flag=True,
            help="The path must be valid for at least one acceptable policy.",
        ),
    ]
    if messages:
        options.append(
            click.option(
                "--trust-signing-time",
                is_flag=True,
                help="Judge a signer whose certificate has expired since at the signingTime "
                "it claims (the signer asserts it: use on purpose).",
            )
        )
    if address:
        options.append(
            click.option(
                "--ignore-address",
                is_flag=True,
                help="Do not compare signer and From addresses.",
            )
        )

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            spec = TrustSpec(**{k: kwargs.pop(k) for k in _FIELDS if k in kwargs})
            return f(*args, trust_spec=spec, **kwargs)

        for opt in reversed(options):
            wrapper = opt(wrapper)
        return wrapper

    return decorate


# -- recipients ---------------------------------------------------------------------------------
def check_recipients(
    spec: TrustSpec, certificates: Sequence[x509.Certificate], *, quiet: bool = False
) -> None:
    """With trust anchors given, refuse to encrypt to a certificate that is not valid for
    encryption (untrusted, revoked, expired, wrong purpose, weak, unknown revocation status
    in hard mode). Without anchors, only the checks of the encryption itself apply."""
    if not spec.has_anchors or not certificates:
        return
    from mailseal._encrypt import validate_recipients
    from mailseal.validation.certinfo import name_of

    for verdict in validate_recipients(spec.build(), certificates):
        who = (verdict.addresses or (name_of(verdict.certificate),))[0]
        if not quiet and verdict.validation and not verdict.validation.revocation_checked:
            click.echo(f"note: recipient {who}: revocation not checked", err=True)


# -- mailseal validate --------------------------------------------------------------------------
@click.command()
@click.argument("cert_path", metavar="CERT.pem")
@click.option(
    "--purpose",
    type=click.Choice(["sign", "encrypt"]),
    default="sign",
    show_default=True,
    help="Check for signing mail or for receiving encrypted mail.",
)
@click.option("--email", "emails", multiple=True, metavar="ADDR", help="Address it must hold.")
@trust_options(messages=False, address=False)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def validate(
    cert_path: str,
    purpose: str,
    emails: tuple[str, ...],
    as_json: bool,
    trust_spec: TrustSpec,
) -> None:
    """Validate a certificate (the first in CERT.pem; the others help build the path).

    Exit 0 when it is valid for the purpose, 1 when it is not, 2 when it cannot be read.
    """
    from mailseal.keys.identity import load_certificates

    with input_stream(cert_path) as src:
        data = src.read()
    certs = load_certificates(data, what=f"certificate {cert_path}")
    trust = trust_spec.build()
    verdict: CertificateVerdict = trust.validate(
        certs[0], purpose=purpose, email=list(emails) or None, extra=certs[1:]
    )
    if as_json:
        click.echo(json.dumps(verdict.to_json(), indent=2))
    else:
        for line in verdict_lines(verdict):
            click.echo(line)
    sys.exit(EXIT_OK if verdict.valid else EXIT_INVALID)


def verdict_lines(verdict: CertificateVerdict) -> list[str]:
    mark = "OK " if verdict.valid else "BAD"
    lines = [f"{mark} {verdict.describe()}"]
    report = verdict.validation
    if report is not None:
        for ev in report.revocation:
            lines.append(f"    revocation: {ev.status}: {ev.detail}")
        lines.extend(f"    note: {n}" for n in report.notes if not n.startswith("revocation"))
    return lines
