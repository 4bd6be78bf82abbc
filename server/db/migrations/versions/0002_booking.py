"""Booking: catalogue, windows, plans, appointments, seats, reminders, queue.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
    )
    op.create_table(
        "matters",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("departments.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("zone", sa.String(20), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("duration_min", sa.Integer, nullable=False),
        sa.Column("seats", sa.Integer, nullable=False),
        sa.Column("buffer_min", sa.Integer, nullable=False),
        sa.Column("notice_min", sa.Integer, nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("materials", sa.JSON, nullable=False),
        sa.Column("checklist", sa.JSON, nullable=False),
        sa.Column("joint_departments", sa.JSON, nullable=False),
        sa.Column("letter_template", sa.Text, nullable=True),
        sa.Column("allows_video_now", sa.Boolean, nullable=False),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.CheckConstraint("zone IN ('citizen', 'enterprise')", name=op.f("ck_matters_zone")),
        sa.CheckConstraint(
            "kind IN ('consultation', 'inspection', 'joint_inspection')",
            name=op.f("ck_matters_kind"),
        ),
        sa.CheckConstraint("duration_min > 0 AND seats > 0", name=op.f("ck_matters_positive")),
    )
    op.create_table(
        "windows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("departments.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "window_matters",
        sa.Column(
            "window_id",
            sa.Integer,
            sa.ForeignKey("windows.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "matter_id",
            sa.Integer,
            sa.ForeignKey("matters.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "staff_qualifications",
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "matter_id",
            sa.Integer,
            sa.ForeignKey("matters.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "working_plans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "window_id",
            sa.Integer,
            sa.ForeignKey("windows.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("weekday", sa.Integer, nullable=False),
        sa.Column("start_min", sa.Integer, nullable=False),
        sa.Column("end_min", sa.Integer, nullable=False),
        sa.Column("label", sa.String(60), nullable=False),
        sa.CheckConstraint(
            "weekday BETWEEN 0 AND 6 AND start_min >= 0 AND start_min < end_min "
            "AND end_min <= 1440",
            name=op.f("ck_working_plans_range"),
        ),
    )
    op.create_table(
        "plan_exceptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "window_id",
            sa.Integer,
            sa.ForeignKey("windows.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
        sa.Column("day", sa.Date, nullable=False, index=True),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.Column("start_min", sa.Integer, nullable=True),
        sa.Column("end_min", sa.Integer, nullable=True),
        sa.Column("note", sa.String(200), nullable=False),
    )
    op.create_table(
        "holiday_overrides",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("working", sa.Boolean, nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
    )
    op.create_table(
        "slot_seats",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "window_id", sa.Integer, sa.ForeignKey("windows.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "matter_id", sa.Integer, sa.ForeignKey("matters.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("starts_at", UTCDateTime, nullable=False, index=True),
        sa.Column("ends_at", UTCDateTime, nullable=False),
        sa.Column("seats", sa.Integer, nullable=False),
        sa.Column("taken", sa.Integer, nullable=False),
        sa.UniqueConstraint("window_id", "matter_id", "starts_at", name=op.f("uq_slot_seats_slot")),
        sa.CheckConstraint("taken >= 0 AND taken <= seats", name=op.f("ck_slot_seats_capacity")),
    )
    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("matter_id", sa.Integer, sa.ForeignKey("matters.id"), nullable=False),
        sa.Column("window_id", sa.Integer, sa.ForeignKey("windows.id"), nullable=False),
        sa.Column(
            "slot_id", sa.Integer, sa.ForeignKey("slot_seats.id"), nullable=False, index=True
        ),
        sa.Column("starts_at", UTCDateTime, nullable=False),
        sa.Column("ends_at", UTCDateTime, nullable=False),
        sa.Column("staff_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("booked_by_staff_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column(
            "applicant_id", sa.Integer, sa.ForeignKey("applicants.id"), nullable=True, index=True
        ),
        sa.Column("applicant_kind", sa.String(20), nullable=False),
        sa.Column("applicant_name", sa.String(100), nullable=False),
        sa.Column("mobile", sa.String(20), nullable=False),
        sa.Column("id_number", sa.String(18), nullable=True),
        sa.Column("credit_code", sa.String(18), nullable=True),
        sa.Column("contact_name", sa.String(100), nullable=True),
        sa.Column("identity_key", sa.String(40), nullable=False),
        sa.Column("site_address", sa.String(300), nullable=True),
        sa.Column("site_lat", sa.Float, nullable=True),
        sa.Column("site_lon", sa.Float, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "status IN ('booked', 'checked_in', 'in_session', 'completed', 'cancelled', 'no_show')",
            name=op.f("ck_appointments_status"),
        ),
    )
    op.create_index(
        "uq_appointments_one_per_slot",
        "appointments",
        ["slot_id", "identity_key"],
        unique=True,
        sqlite_where=sa.text("status <> 'cancelled'"),
        postgresql_where=sa.text("status <> 'cancelled'"),
    )
    op.create_index("ix_appointments_staff_start", "appointments", ["staff_id", "starts_at"])
    op.create_index("ix_appointments_status_start", "appointments", ["status", "starts_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scope", sa.String(60), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False, index=True),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_idempotency_scope_key")),
    )
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "appointment_id",
            sa.Integer,
            sa.ForeignKey("appointments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False, index=True),
        sa.Column("sent_at", UTCDateTime, nullable=True),
        sa.Column("sent_by", sa.String(100), nullable=True),
        sa.Column("skipped", sa.Boolean, nullable=False),
        sa.UniqueConstraint("appointment_id", "kind", name=op.f("uq_reminders_kind")),
    )
    op.create_table(
        "queue_tickets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token", sa.String(40), nullable=False, unique=True),
        sa.Column("matter_id", sa.Integer, sa.ForeignKey("matters.id"), nullable=False),
        sa.Column("applicant_id", sa.Integer, sa.ForeignKey("applicants.id"), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("mobile", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("staff_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("taken_at", UTCDateTime, nullable=True),
        sa.CheckConstraint(
            "status IN ('waiting', 'serving', 'done', 'left')", name=op.f("ck_queue_tickets_status")
        ),
    )
    op.create_index(
        "ix_queue_tickets_matter_status", "queue_tickets", ["matter_id", "status", "id"]
    )


def downgrade() -> None:
    for table in (
        "queue_tickets",
        "reminders",
        "idempotency_keys",
        "appointments",
        "slot_seats",
        "holiday_overrides",
        "plan_exceptions",
        "working_plans",
        "staff_qualifications",
        "window_matters",
        "windows",
        "matters",
        "departments",
    ):
        op.drop_table(table)
