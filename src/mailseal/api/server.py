"""``mailseal serve``: the publication server around an :class:`~mailseal.lifecycle.authority.
Authority`, with a background thread that keeps OCSP responses and CRLs fresh."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from mailseal.api.app import create_app
from mailseal.config import Settings
from mailseal.lifecycle.authority import Authority, Secrets

__all__ = ["Refresher", "run_server"]

log = logging.getLogger("mailseal.serve")

#: How often the refresher looks for responses and CRLs due for re-signing.
REFRESH_SECONDS = 60.0


class Refresher(threading.Thread):
    """Calls :meth:`Authority.refresh` every ``interval`` seconds until stopped. A failure is
    logged (without secrets) and retried at the next tick."""

    def __init__(self, authority: Authority, interval: float = REFRESH_SECONDS) -> None:
        super().__init__(name="mailseal-refresh", daemon=True)
        self.authority = authority
        self.interval = interval
        self.stopped = threading.Event()
        self.runs = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.authority.refresh()
                self.runs += 1
            except Exception as exc:  # keep serving; the next tick tries again
                log.warning("refresh failed: %s", exc)

    def stop(self) -> None:
        self.stopped.set()


def build(settings: Settings, secrets: Secrets) -> tuple[Authority, Any]:
    """The authority (keys opened, responses and CRLs brought up to date) and its app."""
    authority = Authority.open(settings, secrets)
    authority.check_keys()
    authority.refresh()
    return authority, create_app(authority)


def run_server(settings: Settings, secrets: Secrets, *, host: str, port: int) -> None:
    import click
    import uvicorn

    authority, app = build(settings, secrets)
    refresher = Refresher(authority)
    refresher.start()
    base = f"http://{host}:{port}"
    click.echo(f"mailseal serving {settings.organization} on {base}")
    for name in authority.cas:
        click.echo(f"  CA certificate   {base}/ca/{name}.crt")
        if authority.has_key(name):
            click.echo(f"  CRL              {base}/crl/{name}.crl")
    click.echo(f"  OCSP             {base}/ocsp")
    click.echo(f"  health, metrics  {base}/health  {base}/metrics")
    if settings.base_url.rstrip("/") != base:
        click.echo(f"  (certificates point at {settings.base_url}: publish these there)")
    home = settings.home
    demo = home / "demo" / "alice-signing.crt"
    exe = Path(sys.executable).parent / "mailseal"
    me = str(exe) if exe.exists() else "mailseal"
    click.echo("try, in another terminal:")
    click.echo(f"  curl -s {base}/health")
    click.echo(f"  MAILSEAL_HOME={home} {me} certs")
    if demo.exists():
        click.echo(
            f"  openssl ocsp -issuer {home}/ca/issuing.crt -cert {demo} -url {base}/ocsp "
            f"-CAfile {home}/ca/root.crt"
        )
        click.echo(
            f"  MAILSEAL_HOME={home} {me} revoke --email alice@example.org "
            f"--reason keyCompromise --passphrase-file {home}/demo-passphrase"
        )
    click.echo("Ctrl-C stops the server.")
    # everything loaded so far lives as long as the server: keep it out of the garbage
    # collector's full passes, which otherwise pause requests for tens of milliseconds
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        refresher.stop()
        authority.close()
