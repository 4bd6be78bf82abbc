"""supervision views: one row per video session (dashboard figures, the live wall)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("matter_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("started_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_video_sessions_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_sessions")),
        sa.UniqueConstraint("room", name=op.f("uq_video_sessions_room")),
    )
    with op.batch_alter_table("video_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_video_sessions_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_video_sessions_ended_started", ["ended_at", "started_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("video_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_video_sessions_ended_started")
        batch_op.drop_index(batch_op.f("ix_video_sessions_case_id"))
    op.drop_table("video_sessions")
