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
        batch.add_column(
            sa.Column("video_now_hours", sa.String(200), nullable=False, server_default="")
        )
    op.create_index(
        "uq_queue_tickets_one_live",
        "queue_tickets",
        ["matter_id", "mobile"],
        unique=True,
        sqlite_where=sa.text("status IN ('waiting', 'serving')"),
        postgresql_where=sa.text("status IN ('waiting', 'serving')"),
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
        "booking_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(120), nullable=False, unique=True),
        sa.Column(
            "appointment_id",
            sa.Integer,
            sa.ForeignKey("appointments.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("mobile", sa.String(20), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("sent_at", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_booking_outbox_status")
        ),
    )
    op.create_index("ix_booking_outbox_due", "booking_outbox", ["status", "next_attempt_at"])
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
    op.drop_index("ix_booking_outbox_due", "booking_outbox")
    op.drop_table("booking_outbox")
    op.drop_table("time_claims")
    op.drop_index("uq_queue_tickets_one_live", "queue_tickets")
    with op.batch_alter_table("matters") as batch:
        for column in (
            "video_now_hours",
            "no_show_block_days",
            "no_show_window_days",
            "no_show_limit",
            "max_open_bookings",
        ):
            batch.drop_column(column)
