"""ratings: 好差评 ratings, 差评 tickets and appeals; department heads, complaint days

Revision ID: 0009
Revises: 0007 (the lead re-chains the migrations of issue 17 at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC = server.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("departments") as batch:
        batch.add_column(sa.Column("head_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("complaint_days", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_departments_head_id_users"),
            "users",
            ["head_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("matters") as batch:
        batch.add_column(sa.Column("complaint_days", sa.Integer(), nullable=True))

    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("session_ref", sa.String(length=80), nullable=False),
        sa.Column("applicant_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("matter_id", sa.Integer(), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("officer_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("editable_until", sa.Date(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint("scope IN ('session', 'case')", name=op.f("ck_ratings_scope")),
        sa.CheckConstraint("level BETWEEN 1 AND 5", name=op.f("ck_ratings_level")),
        sa.CheckConstraint("status IN ('valid', 'void')", name=op.f("ck_ratings_status")),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_ratings_case_id_cases"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["applicant_id"],
            ["applicants.id"],
            name=op.f("fk_ratings_applicant_id_applicants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint("case_id", "scope", "session_ref", name="uq_ratings_one"),
    )
    for column in ("case_id", "matter_id", "department_id", "officer_id", "created_at"):
        op.create_index(f"ix_ratings_{column}", "ratings", [column])

    op.create_table(
        "rating_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rating_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("follow_up_at", UTC, nullable=True),
        sa.Column("follow_up_reached", sa.Boolean(), nullable=True),
        sa.Column("follow_up_note", sa.Text(), nullable=False),
        sa.Column("fixed_at", UTC, nullable=True),
        sa.Column("fix_note", sa.Text(), nullable=False),
        sa.Column("rerating_level", sa.Integer(), nullable=True),
        sa.Column("rerated_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'fixed', 'closed', 'void')", name=op.f("ck_rating_tickets_status")
        ),
        sa.ForeignKeyConstraint(
            ["rating_id"],
            ["ratings.id"],
            name=op.f("fk_rating_tickets_rating_id_ratings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_rating_tickets_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_rating_tickets_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_tickets")),
        sa.UniqueConstraint("rating_id", name=op.f("uq_rating_tickets_rating_id")),
    )
    for column in ("case_id", "department_id", "assignee_id"):
        op.create_index(f"ix_rating_tickets_{column}", "rating_tickets", [column])

    op.create_table(
        "rating_appeals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rating_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("decided_at", UTC, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'upheld', 'rejected')", name=op.f("ck_rating_appeals_status")
        ),
        sa.ForeignKeyConstraint(
            ["rating_id"],
            ["ratings.id"],
            name=op.f("fk_rating_appeals_rating_id_ratings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_rating_appeals_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["by_id"], ["users.id"], name=op.f("fk_rating_appeals_by_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_rating_appeals_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_appeals")),
        sa.UniqueConstraint("rating_id", name=op.f("uq_rating_appeals_rating_id")),
    )
    op.create_index("ix_rating_appeals_case_id", "rating_appeals", ["case_id"])


def downgrade() -> None:
    op.drop_table("rating_appeals")
    op.drop_table("rating_tickets")
    op.drop_table("ratings")
    with op.batch_alter_table("matters") as batch:
        batch.drop_column("complaint_days")
    with op.batch_alter_table("departments") as batch:
        batch.drop_constraint("fk_departments_head_id_users", type_="foreignkey")
        batch.drop_column("complaint_days")
        batch.drop_column("head_id")
