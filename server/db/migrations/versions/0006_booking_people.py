"""booking: officers' claimed minutes; holidays as data (per year, from the State Council's notice)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("matters") as batch:
        batch.add_column(
            sa.Column("max_open_bookings", sa.Integer(), nullable=False, server_default="3")
        )
        batch.add_column(
            sa.Column("no_show_limit", sa.Integer(), nullable=False, server_default="3")
        )
        batch.add_column(
            sa.Column("no_show_window_days", sa.Integer(), nullable=False, server_default="90")
        )
        batch.add_column(
            sa.Column("no_show_block_days", sa.Integer(), nullable=False, server_default="30")
        )
    op.create_table(
        "time_claims",
        sa.Column("resource", sa.String(60), primary_key=True),
        sa.Column("minute", sa.Integer, primary_key=True),
        sa.Column(
            "appointment_id",
            sa.Integer,
            sa.ForeignKey("appointments.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
    )
    op.create_table(
        "holiday_years",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("imported_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "holiday_days",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("year", sa.Integer, nullable=False, index=True),
        sa.Column("working", sa.Boolean, nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("holiday_days")
    op.drop_table("holiday_years")
    op.drop_table("time_claims")
    with op.batch_alter_table("matters") as batch:
        for column in (
            "no_show_block_days",
            "no_show_window_days",
            "no_show_limit",
            "max_open_bookings",
        ):
            batch.drop_column(column)
