"""letters: templates, letters, signatures and their audit events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:40:00

The "sign once" guarantees are the unique constraints on ``letter_signatures`` (one
signature per signer, one per position) and on ``letters`` (one row per case, kind and
version); see ``server/letters/models.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = server.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "letter_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("matter_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_templates")),
        sa.UniqueConstraint("matter_id", "kind", name=op.f("uq_letter_templates_matter_id_kind")),
    )
    op.create_table(
        "letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("superseded_by_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("signers", sa.JSON(), nullable=False),
        sa.Column("next_signer", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("pdf_key", sa.String(length=200), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_by_kind", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("issued_at", UTC, nullable=True),
        sa.Column("sealed_at", UTC, nullable=True),
        sa.Column("signed_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_letters_case_id_cases"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["letters.id"],
            name=op.f("fk_letters_supersedes_id_letters"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letters")),
        sa.UniqueConstraint(
            "case_id", "kind", "version", name=op.f("uq_letters_case_id_kind_version")
        ),
    )
    op.create_index(op.f("ix_letters_case_id"), "letters", ["case_id"], unique=False)
    op.create_table(
        "letter_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("letter_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("signer_kind", sa.String(length=16), nullable=False),
        sa.Column("signer_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("image_key", sa.String(length=200), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("signed_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["letter_id"],
            ["letters.id"],
            name=op.f("fk_letter_signatures_letter_id_letters"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_signatures")),
        sa.UniqueConstraint(
            "letter_id",
            "signer_kind",
            "signer_id",
            name=op.f("uq_letter_signatures_letter_id_signer_kind_signer_id"),
        ),
        sa.UniqueConstraint(
            "letter_id", "position", name=op.f("uq_letter_signatures_letter_id_position")
        ),
    )
    op.create_index(
        op.f("ix_letter_signatures_letter_id"), "letter_signatures", ["letter_id"], unique=False
    )
    op.create_table(
        "letter_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("letter_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=100), nullable=True),
        sa.Column("actor_role", sa.String(length=20), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("pdf_key", sa.String(length=200), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["letter_id"],
            ["letters.id"],
            name=op.f("fk_letter_events_letter_id_letters"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_events")),
    )
    op.create_index(
        op.f("ix_letter_events_letter_id"), "letter_events", ["letter_id"], unique=False
    )
    op.create_index(
        op.f("ix_letter_events_pdf_sha256"), "letter_events", ["pdf_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_letter_events_pdf_sha256"), table_name="letter_events")
    op.drop_index(op.f("ix_letter_events_letter_id"), table_name="letter_events")
    op.drop_table("letter_events")
    op.drop_index(op.f("ix_letter_signatures_letter_id"), table_name="letter_signatures")
    op.drop_table("letter_signatures")
    op.drop_index(op.f("ix_letters_case_id"), table_name="letters")
    op.drop_table("letters")
    op.drop_table("letter_templates")
