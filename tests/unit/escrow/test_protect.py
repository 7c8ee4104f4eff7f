"""mailseal.escrow.protect: share files under an officer's passphrase, and partial decryptions
sealed to a recovery request's password-derived delivery key."""

from __future__ import annotations

import json

import pytest

from mailseal.errors import EscrowError, PasswordError
from mailseal.escrow.protect import (
    DeliveryKey,
    KdfCost,
    open_partial,
    open_share,
    seal_partial,
    seal_share,
)
from mailseal.escrow.threshold import create_escrow, open_record, partial_decrypt, seal_record

FAST = KdfCost(1, 8 << 20)  # tests only: the default costs 256 MiB per derivation


def test_share_file_round_trip_and_wrong_passphrase() -> None:
    escrow, shares = create_escrow(2, 3)
    data = seal_share(escrow, shares[1], b"officer two passphrase", cost=FAST)
    doc = json.loads(data)
    assert doc["index"] == 2 and doc["set_id"] == escrow.set_id.hex()
    assert shares[1].value.hex() not in data.decode()
    assert open_share(data, b"officer two passphrase", escrow) == shares[1]
    with pytest.raises(PasswordError, match="wrong passphrase"):
        open_share(data, b"not the passphrase")
    other, _ = create_escrow(2, 3)
    with pytest.raises(EscrowError, match="another escrow set"):
        open_share(data, b"officer two passphrase", other)


def test_relabelled_or_hostile_share_files_are_refused() -> None:
    escrow, shares = create_escrow(2, 3)
    doc = json.loads(seal_share(escrow, shares[0], b"passphrase one", cost=FAST))
    relabelled = {**doc, "index": 3}  # claim to be officer 3: the header is authenticated
    with pytest.raises(PasswordError):
        open_share(json.dumps(relabelled).encode(), b"passphrase one")
    greedy = {**doc, "kdf": {**doc["kdf"], "memlimit": 1 << 40}}
    with pytest.raises(EscrowError, match="out of bounds"):
        open_share(json.dumps(greedy).encode(), b"passphrase one")
    for junk in (b"", b"{}", b"[1]", b"not json", b"x" * 100_000, b'{"format": 1}'):
        with pytest.raises(EscrowError):
            open_share(junk, b"passphrase one")
    with pytest.raises(PasswordError, match="at least 8"):
        seal_share(escrow, shares[0], b"short", cost=FAST)


def test_partials_travel_sealed_to_the_requester() -> None:
    escrow, shares = create_escrow(2, 3)
    record = seal_record(escrow, b"key-1", b"the archived key")
    request = DeliveryKey.create(b"requester password", cost=FAST)
    stored = DeliveryKey(request.salt, request.cost, request.public_key)  # what the server keeps
    sealed = [
        seal_partial(partial_decrypt(escrow, s, record), stored.public_key) for s in shares[:2]
    ]
    with pytest.raises(EscrowError, match="locked"):
        open_partial(sealed[0], stored)
    with pytest.raises(PasswordError, match="wrong password"):
        stored.check(b"a guessed password")
    unlocked = stored.check(b"requester password")
    partials = [open_partial(s, unlocked) for s in sealed]
    assert open_record(escrow, b"key-1", record, partials) == b"the archived key"
    stranger = DeliveryKey.create(b"someone else's password", cost=FAST)
    with pytest.raises(EscrowError, match="does not open"):
        open_partial(sealed[0], stranger)
    with pytest.raises(EscrowError):
        open_partial(sealed[0][:-1] + bytes([sealed[0][-1] ^ 1]), unlocked)
