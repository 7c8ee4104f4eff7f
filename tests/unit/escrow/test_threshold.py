"""mailseal.escrow.threshold: M of N officers open an archived record together, M−1 cannot, a
partial decryption only opens its own record, and every malformed or foreign input is refused."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailseal.escrow.threshold import (
    EscrowError,
    L,
    combine,
    create_escrow,
    open_record,
    partial_decrypt,
    seal_record,
    verify_partial,
)

SECRET = b"-----BEGIN PRIVATE KEY----- pretend this is a key"


@pytest.mark.parametrize(("m", "n"), [(2, 2), (2, 3), (3, 5), (4, 7)])
def test_any_m_of_n_open_and_m_minus_one_cannot(m: int, n: int) -> None:
    escrow, shares = create_escrow(m, n)
    record = seal_record(escrow, b"rec-1", SECRET)
    for group in itertools.combinations(shares, m):
        partials = [partial_decrypt(escrow, s, record) for s in group]
        assert open_record(escrow, b"rec-1", record, partials) == SECRET
    fewer = [partial_decrypt(escrow, s, record) for s in shares[: m - 1]]
    with pytest.raises(EscrowError, match=f"{m - 1} of the {m} approvals"):
        open_record(escrow, b"rec-1", record, fewer)


def test_m_minus_one_partials_and_a_forged_one_do_not_open() -> None:
    """M−1 honest partials plus anything an outsider can make (here: a partial computed with a
    random scalar and a consistent-looking proof for a wrong index) do not open the record."""
    escrow, shares = create_escrow(3, 5)
    record = seal_record(escrow, b"rec", SECRET)
    honest = [partial_decrypt(escrow, s, record) for s in shares[:2]]
    forged_share = replace(shares[2], value=os.urandom(31) + b"\x00")
    with pytest.raises(EscrowError, match="does not match its verification point"):
        partial_decrypt(escrow, forged_share, record)
    good = partial_decrypt(escrow, shares[2], record)
    tampered = replace(good, value=honest[0].value)
    with pytest.raises(EscrowError, match="does not verify"):
        open_record(escrow, b"rec", record, [*honest, tampered])


def test_a_partial_opens_only_its_own_record() -> None:
    escrow, shares = create_escrow(2, 3)
    alice = seal_record(escrow, b"alice", b"alice's key")
    bob = seal_record(escrow, b"bob", b"bob's key")
    for_alice = [partial_decrypt(escrow, s, alice) for s in shares[:2]]
    assert open_record(escrow, b"alice", alice, for_alice) == b"alice's key"
    with pytest.raises(EscrowError):
        open_record(escrow, b"bob", bob, for_alice)  # the proofs are about alice's R
    with pytest.raises(EscrowError, match="does not open"):
        open_record(escrow, b"bob", alice, for_alice)  # the record id is authenticated


def test_shares_of_another_set_and_duplicates_are_refused() -> None:
    escrow, shares = create_escrow(2, 3)
    other, other_shares = create_escrow(2, 3)
    record = seal_record(escrow, b"r", SECRET)
    with pytest.raises(EscrowError, match="another escrow set"):
        partial_decrypt(escrow, other_shares[0], record)
    stray = partial_decrypt(other, other_shares[0], seal_record(other, b"r", SECRET))
    with pytest.raises(EscrowError, match="another escrow set"):
        verify_partial(escrow, record, stray)
    p1 = partial_decrypt(escrow, shares[0], record)
    with pytest.raises(EscrowError, match="contributed twice"):
        combine(escrow, record, [p1, partial_decrypt(escrow, shares[0], record)])
    with pytest.raises(EscrowError, match="not an officer"):
        partial_decrypt(escrow, replace(shares[0], index=9), record)


def test_altered_records_and_bad_points_are_refused() -> None:
    escrow, shares = create_escrow(2, 2)
    record = seal_record(escrow, b"r", SECRET)
    partials = [partial_decrypt(escrow, s, record) for s in shares]
    flipped = replace(
        record, ciphertext=record.ciphertext[:-1] + bytes([record.ciphertext[-1] ^ 1])
    )
    with pytest.raises(EscrowError, match="does not open"):
        open_record(escrow, b"r", flipped, partials)
    for bad in (b"\x00" * 32, b"\x01" + b"\x00" * 31, b"\xff" * 32, b"short"):
        with pytest.raises(EscrowError, match="not a valid group element"):
            partial_decrypt(escrow, shares[0], replace(record, ephemeral=bad))
        with pytest.raises(EscrowError):
            verify_partial(escrow, record, replace(partials[0], value=bad))
    with pytest.raises(EscrowError, match="not reduced"):
        verify_partial(escrow, record, replace(partials[0], z=(L + 1).to_bytes(32, "little")))


def test_set_up_limits_and_no_secret_in_repr() -> None:
    for m, n in ((1, 3), (4, 3), (2, 65)):
        with pytest.raises(EscrowError, match="threshold"):
            create_escrow(m, n)
    escrow, shares = create_escrow(2, 3)
    assert shares[0].value.hex() not in repr(shares[0])
    assert len({s.value for s in shares}) == 3
    assert escrow.public_key not in escrow.verification


@settings(max_examples=25, deadline=None)
@given(secret=st.binary(max_size=4096), record_id=st.binary(min_size=1, max_size=64))
def test_round_trip_any_secret(secret: bytes, record_id: bytes) -> None:
    escrow, shares = create_escrow(2, 3)
    record = seal_record(escrow, record_id, secret)
    partials = [partial_decrypt(escrow, s, record) for s in (shares[2], shares[0])]
    assert open_record(escrow, record_id, record, partials) == secret
