"""Booking tables: catalogue, windows and plans, appointments, seats, reminders, queue.

Two invariants live in the schema rather than in code, so that any number of server
processes sharing one database keep them:

* ``slot_seats.taken`` never exceeds ``seats`` (CHECK constraint; bookings increment it
  with a conditional UPDATE and treat "no row changed" as "slot full");
* one applicant identity holds at most one live appointment per slot (partial unique
  index on ``(slot_id, identity_key)`` for every status but ``cancelled``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base
from server.db.types import UTCDateTime

ZONES = ("citizen", "enterprise")  # 惠民 / 利企
KINDS = ("consultation", "inspection", "joint_inspection")
STATUSES = ("booked", "checked_in", "in_session", "completed", "cancelled", "no_show")
LIVE_STATUSES = ("booked", "checked_in", "in_session")


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    head_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, default=None
    )
    """The department head (科室负责人): gets the 差评 tickets of its matters."""
    complaint_days: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    """Working days to settle a 差评 ticket of this department (none: 15)."""


class Matter(Base):
    """A service item (事项): what can be booked, and the rules of its slots."""

    __tablename__ = "matters"
    __table_args__ = (
        CheckConstraint("zone IN ('citizen', 'enterprise')", name="zone"),
        CheckConstraint("kind IN ('consultation', 'inspection', 'joint_inspection')", name="kind"),
        CheckConstraint("duration_min > 0 AND seats > 0", name="positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    zone: Mapped[str] = mapped_column(String(20), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    duration_min: Mapped[int] = mapped_column(Integer, default=30)
    seats: Mapped[int] = mapped_column(Integer, default=1)
    buffer_min: Mapped[int] = mapped_column(Integer, default=0)
    notice_min: Mapped[int] = mapped_column(Integer, default=60)
    horizon_days: Mapped[int] = mapped_column(Integer, default=14)
    materials: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Ordered list of {"key": str, "text": str}; the inspector walks it in this order.
    checklist: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Other departments joining a joint inspection (联合勘验), by department code.
    joint_departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    letter_template: Mapped[str | None] = mapped_column(Text, nullable=True)
    allows_video_now: Mapped[bool] = mapped_column(Boolean, default=False)
    retention_days: Mapped[int] = mapped_column(Integer, default=365 * 3)
    # The procedure (server.cases.procedure): which steps apply to this matter's cases.
    internal_review: Mapped[bool] = mapped_column(Boolean, default=True)
    rectification_allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    rectify_days: Mapped[int] = mapped_column(Integer, default=10)
    """Working days an applicant gets to rectify, unless the decision says otherwise."""
    issues_licence: Mapped[bool] = mapped_column(Boolean, default=False)
    """Closing a passed case needs the licence (or result) number."""
    observed_notice: Mapped[bool] = mapped_column(Boolean, default=False)
    """Tell the applicant that the session may be observed for quality."""
    # Promised working days per step (accept, inspect, review, rectify_review, close, total),
    # for deadline supervision.
    promised_days: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    complaint_days: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    """Working days to settle a 差评 ticket of this matter (none: the department's)."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Rules per person (0 switches a rule off): open bookings one person may hold of this
    # matter; N no-shows (of any matter) within the window block booking for some days.
    max_open_bookings: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    no_show_limit: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    no_show_window_days: Mapped[int] = mapped_column(Integer, default=90, server_default="90")
    no_show_block_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    video_now_hours: Mapped[str] = mapped_column(String(200), default="", server_default="")
    """"Video now" service hours on working days, like ``09:00-12:00,13:30-17:00``;
    empty: whenever the matter allows video now."""


class Window(Base):
    """A video window (视频窗口); its plans say when it is open, window_matters what it serves."""

    __tablename__ = "windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class WindowMatter(Base):
    __tablename__ = "window_matters"

    window_id: Mapped[int] = mapped_column(
        ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True
    )
    matter_id: Mapped[int] = mapped_column(
        ForeignKey("matters.id", ondelete="CASCADE"), primary_key=True
    )


class StaffQualification(Base):
    """Staff user ``user_id`` may serve ``matter_id``."""

    __tablename__ = "staff_qualifications"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    matter_id: Mapped[int] = mapped_column(
        ForeignKey("matters.id", ondelete="CASCADE"), primary_key=True
    )


class WorkingPlan(Base):
    """One weekly range of one window: weekday (0 = Monday), minutes after local midnight."""

    __tablename__ = "working_plans"
    __table_args__ = (
        CheckConstraint(
            "weekday BETWEEN 0 AND 6 AND start_min >= 0 AND start_min < end_min "
            "AND end_min <= 1440",
            name="range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    start_min: Mapped[int] = mapped_column(Integer)
    end_min: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(60), default="")  # 午间错时, 延时服务 …


class PlanException(Base):
    """A dated closure (whole day when no range) or extra opening; window NULL = every window."""

    __tablename__ = "plan_exceptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    window_id: Mapped[int | None] = mapped_column(
        ForeignKey("windows.id", ondelete="CASCADE"), nullable=True, index=True
    )
    day: Mapped[date] = mapped_column(Date, index=True)
    closed: Mapped[bool] = mapped_column(Boolean)
    start_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    end_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")


class HolidayOverride(Base):
    """An admin's word on one date, beating the statutory calendar."""

    __tablename__ = "holiday_overrides"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(200), default="")


class SlotSeat(Base):
    """Capacity of one (window, matter, start): created on first booking, then only counted."""

    __tablename__ = "slot_seats"
    __table_args__ = (
        UniqueConstraint("window_id", "matter_id", "starts_at", name="uq_slot_seats_slot"),
        CheckConstraint("taken >= 0 AND taken <= seats", name="capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id", ondelete="CASCADE"))
    matter_id: Mapped[int] = mapped_column(ForeignKey("matters.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seats: Mapped[int] = mapped_column(Integer)
    taken: Mapped[int] = mapped_column(Integer, default=0)


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('booked', 'checked_in', 'in_session', 'completed', 'cancelled', 'no_show')",
            name="status",
        ),
        Index(
            "uq_appointments_one_per_slot",
            "slot_id",
            "identity_key",
            unique=True,
            sqlite_where=text("status <> 'cancelled'"),
            postgresql_where=text("status <> 'cancelled'"),
        ),
        Index("ix_appointments_staff_start", "staff_id", "starts_at"),
        Index("ix_appointments_status_start", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    matter_id: Mapped[int] = mapped_column(ForeignKey("matters.id"))
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slot_seats.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    booked_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    applicant_id: Mapped[int | None] = mapped_column(
        ForeignKey("applicants.id"), nullable=True, index=True
    )
    applicant_kind: Mapped[str] = mapped_column(String(20))
    applicant_name: Mapped[str] = mapped_column(String(100))
    mobile: Mapped[str] = mapped_column(String(20))
    id_number: Mapped[str | None] = mapped_column(String(18), nullable=True)
    credit_code: Mapped[str | None] = mapped_column(String(18), nullable=True)
    contact_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    identity_key: Mapped[str] = mapped_column(String(40))
    site_address: Mapped[str | None] = mapped_column(String(300), nullable=True)
    site_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    site_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="booked")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), nullable=True)
    # The applicant's language (zh_CN or en): every SMS about the appointment uses it.
    lang: Mapped[str] = mapped_column(String(8), default="zh_CN", server_default="zh_CN")
    # Bumped on every change; manage links carry it so a used link cannot replay.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """First answer to a POST with an ``Idempotency-Key``, replayed for every repeat."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(60))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Reminder(Base):
    """One reminder of one appointment; ``sent_at`` is set by whoever claims it first."""

    __tablename__ = "reminders"
    __table_args__ = (UniqueConstraint("appointment_id", "kind", name="uq_reminders_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # "1440m", "30m"
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)


class QueueTicket(Base):
    """A "video now" (即时视频) walk-in: waiting → serving → done, or left."""

    __tablename__ = "queue_tickets"
    __table_args__ = (
        CheckConstraint("status IN ('waiting', 'serving', 'done', 'left')", name="status"),
        Index("ix_queue_tickets_matter_status", "matter_id", "status", "id"),
        # One live ticket per person (mobile) per matter, whichever node they ask.
        Index(
            "uq_queue_tickets_one_live",
            "matter_id",
            "mobile",
            unique=True,
            sqlite_where=text("status IN ('waiting', 'serving')"),
            postgresql_where=text("status IN ('waiting', 'serving')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    matter_id: Mapped[int] = mapped_column(ForeignKey("matters.id"))
    applicant_id: Mapped[int | None] = mapped_column(ForeignKey("applicants.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    mobile: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CapacityVersion(Base):
    """One row: bumped by every transaction that changes what slots and seats are made of,
    so each process's cache of them (:mod:`server.booking.plancache`) knows when to reload."""

    __tablename__ = "capacity_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class TimeClaim(Base):
    """One minute of one person's time, held by one appointment.

    ``resource`` is ``staff:<user id>`` (an officer) or ``person:<identity key>`` (an
    applicant, who cannot be in two video sessions at once either). The primary key makes "this
    officer already has an appointment in this minute" a constraint the database keeps
    for every process: an overlapping claim inserts nothing (``ON CONFLICT DO NOTHING``;
    on PostgreSQL it first waits for the transaction holding the row). ``minute`` is
    minutes since the Unix epoch, so the claim is exact for minute-aligned slots.
    """

    __tablename__ = "time_claims"

    resource: Mapped[str] = mapped_column(String(60), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)
    appointment_id: Mapped[int] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), index=True
    )


class HolidayYear(Base):
    """A year whose statutory holidays were loaded (from the State Council's notice)."""

    __tablename__ = "holiday_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HolidayDay(Base):
    """A day off (``working`` false) or a 调休 working weekend day of a loaded year."""

    __tablename__ = "holiday_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, index=True)
    working: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(60), default="")


class OutboxMessage(Base):
    """One SMS to send, written in the transaction of the change it tells about.

    ``key`` makes the write idempotent (one reminder, one cancellation of one version);
    a worker sends it after taking a lease with a conditional UPDATE, records the
    provider's answer, and on failure sets the next attempt (backoff) and lets go.
    """

    __tablename__ = "booking_outbox"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        Index("ix_booking_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="SET NULL"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    mobile: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    answer: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
