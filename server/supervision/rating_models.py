"""好差评 tables: ratings, the 差评 tickets they open, and appeals against them.

"One rating per session and per case" is a unique constraint, not a check in code:
``(case_id, scope, session_ref)`` with ``session_ref`` the room for 一次一评 and ``""``
for 一事一评, so two taps racing on two nodes cannot both insert. A ticket belongs to
exactly one rating (unique ``rating_id``), and a rating has at most one appeal.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base
from server.db.types import UTCDateTime, utcnow

LEVEL_KEYS = ("very_satisfied", "satisfied", "basic", "dissatisfied", "very_dissatisfied")


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("case_id", "scope", "session_ref", name="uq_ratings_one"),
        CheckConstraint("scope IN ('session', 'case')", name="scope"),
        CheckConstraint("level BETWEEN 1 AND 5", name="level"),
        CheckConstraint("status IN ('valid', 'void')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    scope: Mapped[str] = mapped_column(String(10))
    session_ref: Mapped[str] = mapped_column(String(80), default="")
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id", ondelete="RESTRICT"))
    level: Mapped[int] = mapped_column(Integer)
    """5 非常满意 … 1 非常不满意 (GB/T 39734-2020's five levels); 1 and 2 are 差评."""
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    comment: Mapped[str] = mapped_column(Text, default="")
    matter_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    department_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    officer_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    """The case's lead when the rating was given: whom the figures count it for."""
    status: Mapped[str] = mapped_column(String(10), default="valid")
    """``void`` once a supervisor upheld a staff appeal: out of the figures, kept on file."""
    editable_until: Mapped[dt.date] = mapped_column(Date)
    """The last day of the rectification period: changes after it answer 409."""
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RatingTicket(Base):
    """A 差评 ticket: the department head calls back (回访), fixes, the applicant re-rates."""

    __tablename__ = "rating_tickets"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'fixed', 'closed', 'void')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rating_id: Mapped[int] = mapped_column(
        ForeignKey("ratings.id", ondelete="RESTRICT"), unique=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    department_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    deadline: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="open")
    follow_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    follow_up_reached: Mapped[bool | None] = mapped_column(default=None)
    follow_up_note: Mapped[str] = mapped_column(Text, default="")
    fixed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    fix_note: Mapped[str] = mapped_column(Text, default="")
    rerating_level: Mapped[int | None] = mapped_column(Integer, default=None)
    rerated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RatingAppeal(Base):
    """A member of staff says a rating is plainly mistaken; a supervisor decides."""

    __tablename__ = "rating_appeals"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'upheld', 'rejected')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rating_id: Mapped[int] = mapped_column(
        ForeignKey("ratings.id", ondelete="RESTRICT"), unique=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    decision_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
