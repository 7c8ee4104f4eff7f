"""``mailseal demo``: the message engine end to end on a throwaway PKI."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from mailseal._open import open_message, seal
from mailseal._sign import sign
from mailseal._verify import verify
from mailseal.keys.identity import load_identity
from mailseal.pki.testpki import TestPKI, write_identity
from mailseal.validation.verdict import Status, VerifyResult

_MESSAGE = (
    "From: Alice Example <alice@example.org>\n"
    "To: Bob Example <bob@example.org>\n"
    "Subject: Quarterly figures\n"
    "Date: Tue, 24 Nov 2026 09:00:00 +0000\n"
    "Message-ID: <demo-1@example.org>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Hello Bob,\n"
    "\n"
    "the figures are final: revenue 1,204,000 EUR. Grüße aus Köln!\n"
    "\n"
    "Alice\n"
).encode()


def _show(title: str, result: VerifyResult) -> None:
    click.echo(click.style(title, bold=True))
    for s in result.signers:
        colour = "green" if s.valid else "red"
        click.echo(
            "  " + click.style(s.status.value.upper(), fg=colour, bold=True) + "  " + s.describe()
        )
        click.echo(f"    signature intact: {'yes' if s.intact else 'NO'}")
        click.echo(f"    signer trusted:   {'yes' if s.trusted else 'no'}")
        if s.address_matches_from is not None:
            click.echo(f"    signer matches From: {'yes' if s.address_matches_from else 'no'}")
    click.echo(
        f"  => the message is {'VALID' if result.valid else 'NOT valid: ' + result.status.value}"
    )
    click.echo("")


def run_demo(keep: str | None) -> None:
    tmp = tempfile.mkdtemp(prefix="mailseal-demo-")
    home = Path(tmp)
    try:
        click.echo(f"Building a throwaway test PKI in {home} ...")
        pki = TestPKI.create("mailseal Demo")
        alice = pki.user("alice@example.org", name="Alice Example", usage="signing")
        cert_path, key_path = write_identity(home, "alice", alice)
        # alice.crt carries the issuing CA after the leaf, so signatures include the chain
        cert_path.write_bytes(alice.cert_pem + pki.chain_pem())
        (home / "alice.p12").write_bytes(alice.pkcs12(b"demo", chain=pki.chain))
        (home / "ca.pem").write_bytes(pki.trust_pem())
        (home / "message.eml").write_bytes(_MESSAGE)
        alice_enc = pki.user("alice@example.org", name="Alice Example", usage="encryption")
        write_identity(home, "alice-enc", alice_enc)
        bob = pki.user("bob@example.org", name="Bob Example", usage="encryption")
        write_identity(home, "bob", bob)
        identity = load_identity(cert_path.read_bytes(), key_path.read_bytes())
        identity = identity.with_encryption_certificate(alice_enc.cert)
        click.echo(
            f"  root CA, issuing CA, alice's signing and encryption certificates and bob's "
            f"encryption certificate in {home}\n"
        )

        signed = sign(_MESSAGE, identity)
        (home / "signed.eml").write_bytes(signed)
        click.echo(f"Signed the message ({len(signed)} bytes, detached multipart/signed).\n")
        _show("1. Verifying the message as sent:", verify(signed, trust=[pki.root.cert]))

        tampered = signed.replace(b"1,204,000", b"9,204,000")
        (home / "tampered.eml").write_bytes(tampered)
        _show(
            "2. Verifying a copy where someone changed the amount:",
            verify(tampered, trust=[pki.root.cert]),
        )
        _show(
            "3. Verifying the untouched message against a different trust anchor:",
            verify(
                signed, trust=[TestPKI.create("Someone Else", with_intermediate=False).root.cert]
            ),
        )

        sealed = seal(_MESSAGE, identity, [bob.cert])
        (home / "sealed.eml").write_bytes(sealed)
        bob_id = load_identity(bob.cert_pem, bob.key_pem)
        opened = open_message(sealed, [bob_id], trust=[pki.root.cert])
        click.echo(click.style("4. Signed, then encrypted to bob; bob opens it:", bold=True))
        for layer in opened.layers:
            colour = "green" if layer.status is Status.VALID else "red"
            click.echo(
                "  " + click.style(layer.kind.upper(), fg=colour, bold=True) + "  " + layer.summary
            )
            for note in layer.notes:
                click.echo(f"    note: {note}")
        flags = ", ".join(
            [
                "signed" if opened.signed else "NOT signed",
                "encrypted" if opened.encrypted else "not encrypted",
                "authenticated" if opened.authenticated else "NOT authenticated",
            ]
        )
        click.echo(f"  => {'VALID' if opened.valid else 'NOT valid'}: {flags}")
        click.echo("")
    finally:
        if keep:
            dest = Path(keep)
            dest.mkdir(parents=True, exist_ok=True)
            for f in home.iterdir():
                shutil.copy2(f, dest / f.name)
            click.echo(f"Demo files kept in {dest}. Try:")
            click.echo(f"  mailseal verify -i {dest}/signed.eml --trust {dest}/ca.pem")
        shutil.rmtree(home, ignore_errors=True)
