"""Key escrow: escrow sets (public key, threshold, officers' verification points) and archived
encryption keys (one sealed record per certificate).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "escrow_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("set_id", sa.String(32), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("officers", JSON, nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("verification", JSON, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_sets")),
        sa.UniqueConstraint("set_id", name=op.f("uq_escrow_sets_set_id")),
    )
    op.create_table(
        "escrow_records",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("escrow_set_id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("ephemeral", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["escrow_set_id"],
            ["escrow_sets.id"],
            name=op.f("fk_escrow_records_escrow_set_id_escrow_sets"),
        ),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_escrow_records_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_records")),
        sa.UniqueConstraint("certificate_id", name=op.f("uq_escrow_records_certificate_id")),
    )


def downgrade() -> None:
    op.drop_table("escrow_records")
    op.drop_table("escrow_sets")
