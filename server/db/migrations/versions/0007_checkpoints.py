"""checkpoints: the agency's signed chain heads (case state changes and exports)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("timestamp_token", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_checkpoints_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_checkpoints")),
    )
    with op.batch_alter_table("case_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_checkpoints_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_checkpoints_case_id"))
    op.drop_table("case_checkpoints")
