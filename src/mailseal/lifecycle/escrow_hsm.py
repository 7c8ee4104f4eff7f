"""HSM-mode escrow: the escrow key is an EC key pair inside the CA's PKCS#11 token, and the
M-of-N rule is enforced by the workflow.

- ``init``: the key pair is generated in the token (sensitive, non-extractable, derive-only);
  each officer gets an approval key (Ed25519) whose private half is in a file under the
  officer's passphrase; only the public halves are registered with the escrow set.
- ``approval``: the officer unlocks their approval key and signs exactly this request: escrow
  set, request id, officer, the records asked for and the expiry
  (:func:`mailseal.escrow.hsm.approval_message`).
- ``recover``: before the token is asked to open anything, every stored approval is verified
  against the registered public keys and the request as it stands now, and M distinct
  officers must have signed.

The guarantee is weaker than threshold mode's, and docs/escrow.md says so: whoever holds the
HSM PIN and can run code against the token can open records without any approval.
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mailseal.errors import EscrowError, UsageError
from mailseal.escrow import hsm
from mailseal.escrow.protect import KDF_MODERATE, DeliveryKey, KdfCost
from mailseal.store import repo

if TYPE_CHECKING:
    from mailseal.lifecycle.authority import Authority

__all__ = ["approval", "init", "recover"]

KEY_LABEL_PREFIX = "mailseal-escrow-"


def init(
    authority: Authority,
    threshold: int,
    officers: Sequence[tuple[str, bytes]],
    *,
    cost: KdfCost = KDF_MODERATE,
    actor: str = "cli",
) -> list[tuple[str, bytes]]:
    """A new HSM-mode escrow set: the key pair in the CA's token, one approval-key file per
    officer (returned; never stored here)."""
    import secrets as _secrets

    from mailseal.keys.pkcs11 import key_uri

    names = [n for n, _ in officers]
    if len(set(names)) != len(names):
        raise UsageError("officer names must be distinct")
    if not 2 <= threshold <= len(names) <= 64:
        raise UsageError(f"need 2 ≤ threshold ≤ officers ≤ 64 (got {threshold} of {len(names)})")
    if authority.settings.key_backend != "pkcs11":
        raise UsageError(
            "HSM-mode escrow keeps its key in the CA's HSM: this organisation's CA keys are"
            " files (initialise with --pkcs11-module/--pkcs11-token, or use threshold mode)"
        )
    token = authority.hsm_token()
    set_id = _secrets.token_bytes(16)
    label = KEY_LABEL_PREFIX + set_id.hex()[:16]
    public = hsm.create_hsm_escrow_key(token, label)
    files, keys = [], []
    for _name, phrase in officers:
        approval_public, data = hsm.create_approval_key(phrase, cost=cost)
        keys.append(approval_public.hex())
        files.append(data)
    with authority.db.session() as s:
        row = repo.add_escrow_set(
            s,
            set_id=set_id,
            threshold=threshold,
            officers=names,
            public_key=public,
            verification=[],
            protection=["passphrase"] * len(names),
        )
        row.mode = "hsm"
        row.key_ref = key_uri(token.label, label)
        row.approval_keys = keys
        repo.append_audit(
            s,
            actor=actor,
            action="escrow.init",
            subject=set_id.hex(),
            details={"mode": "hsm", "threshold": threshold, "officers": names, "key": label},
        )
    return list(zip(names, files, strict=True))


def _message(set_row: Any, req: Any, officer: str) -> bytes:
    from mailseal.lifecycle.escrow import record_id_for

    rows = repo_rows(req)
    return hsm.approval_message(
        set_id=bytes.fromhex(set_row.set_id),
        request_id=req.request_id,
        officer=officer,
        record_ids=[record_id_for(r) for r in rows],
        expires_at=req.expires_at,
    )


def repo_rows(req: Any) -> list[Any]:
    from sqlalchemy.orm import object_session

    session = object_session(req)
    assert session is not None
    return repo.escrow_records(session, list(req.records))


def approval(
    set_row: Any, req: Any, key_file: bytes, *, passphrase: bytes | None
) -> tuple[int, str, bytes]:
    """An officer's signed approval of ``req``: (officer index, name, stored payload)."""
    if passphrase is None:
        raise UsageError("give the passphrase of your approval key (--passphrase-env VAR)")
    key = hsm.open_approval_key(key_file, passphrase)
    registered = list(set_row.approval_keys or [])
    try:
        index = registered.index(key.public_key.hex()) + 1
    except ValueError:
        raise EscrowError(
            "this approval key is not an officer's of this request's escrow set"
            " (a key of another escrow set?)"
        ) from None
    officer = set_row.officers[index - 1]
    signature = key.sign(_message(set_row, req, officer))
    payload = json.dumps({"signature": b64encode(signature).decode()}).encode()
    return index, officer, payload


def recover(
    set_row: Any, req: Any, rows: Sequence[Any], *, token: Any, password: bytes
) -> list[bytes]:
    """The requested keys, opened in the HSM once the requester's ``password`` checks and M
    distinct officers' approvals verify."""
    from mailseal.keys.pkcs11 import parse_key_uri
    from mailseal.lifecycle.escrow import record_id_for

    if token is None:
        raise UsageError("the escrow key is in the HSM: give its PIN (--pin-env/--pin-file)")
    # Only the requester takes delivery, as in threshold mode (where the password is needed
    # to open the partials): the request stores the public half of a key derived from it.
    d = req.delivery
    DeliveryKey(
        bytes.fromhex(d["salt"]),
        KdfCost(int(d["opslimit"]), int(d["memlimit"])),
        bytes.fromhex(d["public_key"]),
    ).check(password)
    registered = list(set_row.approval_keys or [])
    good = set()
    for a in req.approvals:
        try:
            signature = b64decode(json.loads(bytes(a.payload))["signature"])
        except (ValueError, KeyError, TypeError):
            raise EscrowError(f"officer {a.officer}'s approval is damaged") from None
        if not 1 <= a.officer_index <= len(registered):
            raise EscrowError(f"approval by an unknown officer ({a.officer})")
        officer = set_row.officers[a.officer_index - 1]
        hsm.verify_approval(
            bytes.fromhex(registered[a.officer_index - 1]),
            _message(set_row, req, officer),
            signature,
        )
        good.add(a.officer_index)
    if len(good) < set_row.threshold:
        raise EscrowError(
            f"{len(good)} of the {set_row.threshold} officers' approvals verify; wait for more"
        )
    _token_label, label = parse_key_uri(set_row.key_ref or "")
    out = []
    for row in rows:
        record = hsm.HsmSealedRecord(
            ephemeral=bytes(row.ephemeral),
            wrapped_key=bytes(row.wrapped_key or b""),
            nonce=bytes(row.nonce),
            ciphertext=bytes(row.ciphertext),
        )
        out.append(hsm.open_hsm_record(token, label, record_id_for(row), record))
    return out
