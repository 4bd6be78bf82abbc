"""procedure: case states, outcome and deadline; a matter's procedure steps; decision reasons

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(20), nullable=False, server_default="inspection")
        )
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=True))
        batch.add_column(sa.Column("deadline", sa.Date(), nullable=True))
        batch.add_column(sa.Column("licence_number", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("state_changed_at", server.db.types.UTCDateTime(timezone=True), nullable=True)
        )
    # Cases before the procedure were "open" (booked) or "closed".
    op.execute("UPDATE cases SET status = 'scheduled' WHERE status = 'open'")
    # Staff assigned by booking were the only inspectors: they are the leads.
    op.execute("UPDATE case_parties SET role = 'lead' WHERE role = 'inspector'")
    with op.batch_alter_table("matters") as batch:
        batch.add_column(
            sa.Column("internal_review", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(
            sa.Column(
                "rectification_allowed", sa.Boolean(), nullable=False, server_default=sa.true()
            )
        )
        batch.add_column(
            sa.Column("rectify_days", sa.Integer(), nullable=False, server_default="10")
        )
        batch.add_column(
            sa.Column("issues_licence", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("observed_notice", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("promised_days", sa.JSON(), nullable=False, server_default="{}"))
    op.execute("UPDATE matters SET internal_review = false WHERE kind = 'consultation'")
    with op.batch_alter_table("evidence_decisions") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("evidence_decisions") as batch:
        batch.drop_column("reason")
    with op.batch_alter_table("matters") as batch:
        for name in (
            "promised_days",
            "observed_notice",
            "issues_licence",
            "rectify_days",
            "rectification_allowed",
            "internal_review",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("cases") as batch:
        for name in ("state_changed_at", "licence_number", "deadline", "outcome", "kind"):
            batch.drop_column(name)
