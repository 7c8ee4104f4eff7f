"""Escrow recovery and a tamper-evident audit log: escrow modes (threshold, HSM) and
re-sharing, imported keys, recovery requests and approvals, the audit log's hash chain
(existing events are chained in order) and its signed checkpoints.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

REQUEST_STATES = ("open", "ready", "delivered", "expired", "cancelled")


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("escrow_sets") as batch:
        batch.add_column(
            sa.Column("mode", sa.String(16), nullable=False, server_default="threshold")
        )
        batch.add_column(sa.Column("key_ref", sa.Text(), nullable=True))
        batch.add_column(sa.Column("approval_keys", JSON, nullable=True))
        batch.add_column(sa.Column("protection", JSON, nullable=True))
        batch.add_column(sa.Column("retired_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("replaced_by", sa.String(32), nullable=True))
        batch.create_check_constraint("mode", "mode IN ('threshold', 'hsm')")

    with op.batch_alter_table("escrow_records") as batch:
        batch.alter_column("certificate_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("masked", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("wrapped_key", sa.LargeBinary(), nullable=True))
        batch.add_column(
            sa.Column("source", sa.String(16), nullable=False, server_default="issued")
        )
        batch.add_column(sa.Column("mailbox_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("certificate_der", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.create_foreign_key(
            op.f("fk_escrow_records_mailbox_id_mailboxes"), "mailboxes", ["mailbox_id"], ["id"]
        )
        batch.create_unique_constraint(op.f("uq_escrow_records_fingerprint"), ["fingerprint"])
        batch.create_check_constraint("source", "source IN ('issued', 'imported')")
    op.create_index(op.f("ix_escrow_records_mailbox_id"), "escrow_records", ["mailbox_id"])
    op.execute(
        "UPDATE escrow_records SET mailbox_id = (SELECT certificates.mailbox_id FROM certificates"
        " WHERE certificates.id = escrow_records.certificate_id)"
    )

    op.create_table(
        "recovery_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("escrow_set_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("records", JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("delivery", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            _one_of("state", REQUEST_STATES), name=op.f("ck_recovery_requests_state")
        ),
        sa.ForeignKeyConstraint(
            ["escrow_set_id"],
            ["escrow_sets.id"],
            name=op.f("fk_recovery_requests_escrow_set_id_escrow_sets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_recovery_requests_request_id")),
    )
    op.create_table(
        "recovery_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("officer_index", sa.Integer(), nullable=False),
        sa.Column("officer", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("approved_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["recovery_requests.id"],
            name=op.f("fk_recovery_approvals_request_id_recovery_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_approvals")),
        sa.UniqueConstraint(
            "request_id",
            "officer_index",
            name=op.f("uq_recovery_approvals_request_id_officer_index"),
        ),
    )

    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=False, server_default="ok"))
        batch.add_column(sa.Column("prev_hash", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("entry_hash", sa.LargeBinary(), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", BIG_ID, nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("signer", sa.String(200), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    _chain_existing_events()


def _chain_existing_events() -> None:
    """Chain the events recorded before this revision, in the order they were appended, with
    the data directory's audit key (handed over by ``Database.upgrade``)."""
    from mailseal.store.audit import GENESIS, entry_digest
    from mailseal.store.types import UTCDateTime

    key = context.config.attributes.get("audit_key") or b""
    conn = op.get_bind()
    events = sa.table(
        "audit_events",
        sa.column("id", sa.BigInteger()),
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("subject", sa.Text()),
        sa.column("details", JSON),
        sa.column("prev_hash", sa.LargeBinary()),
        sa.column("entry_hash", sa.LargeBinary()),
    )
    columns = (events.c.id, events.c.at, events.c.actor, events.c.action, events.c.subject,
               events.c.details)  # fmt: skip
    prev = GENESIS
    for row in conn.execute(sa.select(*columns).order_by(events.c.id)).all():
        digest = entry_digest(
            key,
            event_id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            outcome="ok",
            details=row.details if isinstance(row.details, dict) else {},
            prev=prev,
        )
        conn.execute(
            events.update().where(events.c.id == row.id).values(prev_hash=prev, entry_hash=digest)
        )
        prev = digest


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("entry_hash")
        batch.drop_column("prev_hash")
        batch.drop_column("outcome")
    op.drop_table("recovery_approvals")
    op.drop_table("recovery_requests")
    op.drop_index(op.f("ix_escrow_records_mailbox_id"), "escrow_records")
    with op.batch_alter_table("escrow_records") as batch:
        batch.drop_constraint(op.f("ck_escrow_records_source"), type_="check")
        batch.drop_constraint(op.f("uq_escrow_records_fingerprint"), type_="unique")
        batch.drop_constraint(op.f("fk_escrow_records_mailbox_id_mailboxes"), type_="foreignkey")
        for column in ("fingerprint", "certificate_der", "mailbox_id", "source", "wrapped_key",
                       "masked"):  # fmt: skip
            batch.drop_column(column)
        batch.alter_column("certificate_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("escrow_sets") as batch:
        batch.drop_constraint(op.f("ck_escrow_sets_mode"), type_="check")
        for column in ("replaced_by", "retired_at", "protection", "approval_keys", "key_ref",
                       "mode"):  # fmt: skip
            batch.drop_column(column)
