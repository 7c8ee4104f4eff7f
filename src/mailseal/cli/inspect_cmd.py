"""``mailseal inspect``: what is in a message, without judging it."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mailseal.cms.algorithms import CAPABILITY_NAMES
from mailseal.cms.inspect import ParsedSignerInfo
from mailseal.errors import NotSMIME
from mailseal.mime import headers as H
from mailseal.mime.verify import read_signed
from mailseal.validation.certinfo import certificate_addresses, issuer_of, name_of

_SIG = {"rsa-pkcs1": "RSASSA-PKCS1-v1_5", "rsa-pss": "RSASSA-PSS", "ecdsa": "ECDSA"}


def _cert(c: x509.Certificate) -> dict[str, Any]:
    try:
        pub: object = c.public_key()
    except Exception:  # an unknown or malformed key
        pub = None
    size = getattr(pub, "key_size", None)
    return {
        "subject": name_of(c),
        "issuer": issuer_of(c),
        "serial": format(c.serial_number, "x"),
        "not_before": c.not_valid_before_utc.isoformat(),
        "not_after": c.not_valid_after_utc.isoformat(),
        "key": (f"{type(pub).__name__.replace('PublicKey', '').lstrip('_')}" if pub else "unknown")
        + (f" {size}" if size else ""),
        "addresses": list(certificate_addresses(c)),
        "sha256": c.fingerprint(hashes.SHA256()).hex(),
    }


def _signer(si: ParsedSignerInfo) -> dict[str, Any]:
    return {
        "index": si.index,
        "signer_id": si.sid.describe(),
        "digest_algorithm": si.digest_name or si.digest_oid,
        "signature_algorithm": _SIG.get(si.signature_kind or "", si.signature_kind)
        or si.signature_oid,
        "signed_attributes": si.signed_attrs is not None,
        "signing_time": si.signing_time.isoformat() if si.signing_time else None,
        "capabilities": [CAPABILITY_NAMES.get(c, c) for c in si.capabilities],
        "encryption_key_preference": (
            si.encryption_key_preference.describe() if si.encryption_key_preference else None
        ),
        "timestamp_token": si.has_timestamp,
    }


def _envelope_info(src: BinaryIO) -> dict[str, Any] | None:
    """The outer layer when it is encrypted or compressed (read without a key)."""
    from mailseal.cms.enveloped import describe_recipient, peek_envelope
    from mailseal.mime.envelope import classify
    from mailseal.mime.reader import Reader

    start = src.tell()
    try:
        top = classify(Reader.from_stream(src))
    except NotSMIME:
        src.seek(start)
        return None
    if top.kind in ("enveloped-data", "authEnveloped-data") and top.read is not None:
        head = peek_envelope(top.read)
        return {
            "type": head.kind,
            "cipher": head.cipher,
            "authenticated": head.kind == "authEnveloped-data",
            "recipients": [
                {
                    "kind": r.kind,
                    "algorithm": r.algorithm,
                    "to": [describe_recipient(rid) for rid in r.rids],
                }
                for r in head.recipients
            ],
        }
    if top.kind == "compressed-data":
        return {"type": "compressed-data"}
    src.seek(start)
    return None


def run_inspect(src: BinaryIO, *, as_json: bool) -> None:
    from mailseal.mime.verify import _ensure_seekable

    src = _ensure_seekable(src)
    start = src.tell()
    layer = _envelope_info(src)
    if layer is not None:
        if as_json:
            click.echo(json.dumps({"layers": [layer]}, indent=2))
            return
        if layer["type"] == "compressed-data":
            click.echo("layer 1: compressed-data (zlib); decompress or open it to see inside")
            return
        auth = "authenticated" if layer["authenticated"] else "NOT integrity-protected"
        click.echo(f"layer 1: {layer['type']} ({layer['cipher']}, {auth})")
        for n, r in enumerate(layer["recipients"], 1):
            to = "; ".join(r["to"]) or r["kind"]
            click.echo(f"  recipient {n}: {to} ({r['algorithm']})")
        click.echo("  the inner layers can be seen only after decryption (mailseal open)")
        return
    src.seek(start)
    try:
        msg = read_signed(src, None)
    except NotSMIME as exc:
        info: dict[str, Any] = {"layers": [], "note": str(exc)}
        if as_json:
            click.echo(json.dumps(info, indent=2))
        else:
            click.echo(f"no S/MIME layer (not signed, encrypted or compressed): {exc}")
        return
    sd = msg.signed_data
    ct = H.content_type(list(msg.headers)) if msg.headers else None
    info = {
        "layers": [
            {
                "type": "signed-data",
                "form": msg.form,
                "mime_type": ct.value if ct else None,
                "micalg": msg.micalg,
                "content_type": sd.content_type,
                "content_length": msg.content_length,
                "signers": [_signer(si) for si in sd.signer_infos],
                "certificates": [_cert(c) for c in sd.certificates],
                "crls": len(sd.crls),
            }
        ],
        "from": list(msg.from_addresses),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    layer = info["layers"][0]
    click.echo(f"layer 1: signed-data ({layer['form']}, {layer['mime_type'] or 'raw CMS'})")
    if layer["micalg"]:
        click.echo(f"  micalg: {layer['micalg']}")
    click.echo(f"  signed content: {layer['content_length']} bytes")
    for s in layer["signers"]:
        click.echo(
            f"  signer {s['index'] + 1}: {s['signer_id']}, {s['digest_algorithm']} with "
            f"{s['signature_algorithm']}"
            + (f", signed {s['signing_time']}" if s["signing_time"] else "")
        )
        if s["encryption_key_preference"]:
            click.echo(f"    encryption key preference: {s['encryption_key_preference']}")
        if s["capabilities"]:
            click.echo(f"    capabilities: {', '.join(s['capabilities'])}")
    for c in layer["certificates"]:
        click.echo(f"  certificate: {c['subject']} (issuer {c['issuer']}, serial {c['serial']})")
        click.echo(f"    valid {c['not_before']} to {c['not_after']}, key {c['key']}")
