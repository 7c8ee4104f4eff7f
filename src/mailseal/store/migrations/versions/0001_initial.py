"""Initial schema of the internal CA: CAs, people and mailboxes, certificates, revocations,
CRLs, pre-signed OCSP responses, the job queue and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

REASONS = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "removeFromCRL",
    "privilegeWithdrawn",
    "aACompromise",
)


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "cas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("key_ref", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("not_before", TIMESTAMP, nullable=False),
        sa.Column("not_after", TIMESTAMP, nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(_one_of("role", ("root", "issuing")), name=op.f("ck_cas_role")),
        sa.CheckConstraint(
            _one_of("status", ("active", "retired", "revoked")), name=op.f("ck_cas_status")
        ),
        sa.CheckConstraint("crl_number >= 0", name=op.f("ck_cas_crl_number")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cas")),
        sa.UniqueConstraint("name", name=op.f("uq_cas_name")),
    )

    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(400), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
    )

    op.create_table(
        "mailboxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("address = lower(address)", name=op.f("ck_mailboxes_address_lower")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_mailboxes_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint("address", name=op.f("uq_mailboxes_address")),
    )
    op.create_index(op.f("ix_mailboxes_person_id"), "mailboxes", ["person_id"])

    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sans", JSON, nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("usage", sa.String(16), nullable=False),
        sa.Column("key_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("not_before", TIMESTAMP, nullable=False),
        sa.Column("not_after", TIMESTAMP, nullable=False),
        sa.Column("key_ref", sa.Text(), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            _one_of("usage", ("signing", "encryption", "dual")), name=op.f("ck_certificates_usage")
        ),
        sa.CheckConstraint(
            _one_of("status", ("valid", "revoked")), name=op.f("ck_certificates_status")
        ),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name=op.f("fk_certificates_ca_id_cas")),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name=op.f("fk_certificates_mailbox_id_mailboxes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        # One serial per CA: what makes double issuance impossible (RFC 5280 §4.1.2.2).
        sa.UniqueConstraint("ca_id", "serial", name=op.f("uq_certificates_ca_id_serial")),
    )
    op.create_index(op.f("ix_certificates_serial"), "certificates", ["serial"])
    op.create_index(op.f("ix_certificates_mailbox_id"), "certificates", ["mailbox_id"])
    op.create_index("ix_certificates_status_not_after", "certificates", ["status", "not_after"])

    op.create_table(
        "revocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=False),
        sa.Column("invalidity_date", TIMESTAMP, nullable=True),
        sa.Column("crl_number", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(_one_of("reason", REASONS), name=op.f("ck_revocations_reason")),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_revocations_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revocations")),
        sa.UniqueConstraint("certificate_id", name=op.f("uq_revocations_certificate_id")),
    )

    op.create_table(
        "crls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("delta_base", sa.BigInteger(), nullable=True),
        sa.Column("this_update", TIMESTAMP, nullable=False),
        sa.Column("next_update", TIMESTAMP, nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name=op.f("fk_crls_ca_id_cas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crls")),
        sa.UniqueConstraint("ca_id", "number", name=op.f("uq_crls_ca_id_number")),
    )

    op.create_table(
        "ocsp_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("produced_at", TIMESTAMP, nullable=False),
        sa.Column("next_update", TIMESTAMP, nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name=op.f("fk_ocsp_responses_ca_id_cas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocsp_responses")),
        sa.UniqueConstraint("ca_id", "serial", name=op.f("uq_ocsp_responses_ca_id_serial")),
    )
    op.create_index(op.f("ix_ocsp_responses_next_update"), "ocsp_responses", ["next_update"])

    op.create_table(
        "jobs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_after", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.String(200), nullable=True),
        sa.Column("locked_at", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            _one_of("state", ("queued", "running", "done", "failed")), name=op.f("ck_jobs_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_state_run_after", "jobs", ["state", "run_after"])

    op.create_table(
        "audit_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])


def downgrade() -> None:
    for table in (
        "audit_events",
        "jobs",
        "ocsp_responses",
        "crls",
        "revocations",
        "certificates",
        "mailboxes",
        "people",
        "cas",
    ):
        op.drop_table(table)
