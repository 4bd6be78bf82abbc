"""Case tables: the case, its parties and its hash-chained timeline."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base
from server.db.types import UTCDateTime, utcnow

GENESIS_HASH = "0" * 64


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    matter_id: Mapped[int | None] = mapped_column(Integer, default=None)
    applicant_id: Mapped[int | None] = mapped_column(
        ForeignKey("applicants.id", ondelete="RESTRICT"), default=None, index=True
    )
    # The procedure state (server.cases.procedure.STATES).
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    kind: Mapped[str] = mapped_column(String(20), default="inspection")
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    deadline: Mapped[dt.date | None] = mapped_column(Date, default=None)
    """Rectification deadline (a working day), while rectifying."""
    licence_number: Mapped[str | None] = mapped_column(String(64), default=None)
    state_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # The newest event's seq and hash, so appending needs no scan and the case row is the
    # lock that orders appends (SELECT … FOR UPDATE on PostgreSQL).
    head_seq: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)


class CaseCounter(Base):
    """The last case number handed out per day; bumped by one atomic upsert."""

    __tablename__ = "case_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class CaseParty(Base):
    """Who takes part in a case: the applicant, assigned staff, invited experts."""

    __tablename__ = "case_parties"
    __table_args__ = (UniqueConstraint("case_id", "principal_kind", "principal_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    principal_kind: Mapped[str] = mapped_column(String(16))
    principal_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseEvent(Base):
    """One step on the timeline. ``hash`` covers the event and ``prev_hash``: a hash chain.

    The unique (case_id, seq) constraint means two concurrent appends cannot both win.
    """

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(64))
    actor_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    actor_id: Mapped[int | None] = mapped_column(Integer, default=None)
    actor_name: Mapped[str | None] = mapped_column(String(100), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
