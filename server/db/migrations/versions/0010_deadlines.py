"""deadlines: 电子监察 clocks, cards, suspensions, staff notices; a department's head

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC = server.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    # The department head (departments.head_id) comes with the ratings (0009).
    op.create_table(
        "deadline_clocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(20), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("promised", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("due", sa.Date(), nullable=True),
        sa.Column("colour", sa.String(10), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("evaluated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_deadline_clocks_case_id_cases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deadline_clocks"),
        sa.UniqueConstraint("case_id", "step", "run", name="uq_deadline_clocks_run"),
    )
    op.create_index("ix_deadline_clocks_case_id", "deadline_clocks", ["case_id"])
    op.create_table(
        "deadline_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(20), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("colour", sa.String(10), nullable=False),
        sa.Column("previous", sa.String(10), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("officer_id", sa.Integer(), nullable=True),
        sa.Column("promised", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("due", sa.Date(), nullable=True),
        sa.Column("issued_at", UTC, nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_deadline_cards_case_id_cases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deadline_cards"),
        sa.UniqueConstraint("case_id", "step", "run", "colour", name="uq_deadline_cards_change"),
    )
    op.create_index("ix_deadline_cards_case_id", "deadline_cards", ["case_id"])
    op.create_index("ix_deadline_cards_issued_at", "deadline_cards", ["issued_at"])
    op.create_table(
        "deadline_suspensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("started_by", sa.Integer(), nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("ended_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name="fk_deadline_suspensions_case_id_cases",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deadline_suspensions"),
    )
    op.create_index("ix_deadline_suspensions_case_id", "deadline_suspensions", ["case_id"])
    op.create_index(
        "uq_deadline_suspensions_running",
        "deadline_suspensions",
        ["case_id"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_table(
        "staff_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("read_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_staff_notices_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_staff_notices_case_id_cases", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["deadline_cards.id"],
            name="fk_staff_notices_card_id_deadline_cards",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_staff_notices"),
        sa.UniqueConstraint("user_id", "card_id", name="uq_staff_notices_card"),
    )
    op.create_index("ix_staff_notices_user_id", "staff_notices", ["user_id"])


def downgrade() -> None:
    op.drop_table("staff_notices")
    op.drop_table("deadline_suspensions")
    op.drop_table("deadline_cards")
    op.drop_table("deadline_clocks")
