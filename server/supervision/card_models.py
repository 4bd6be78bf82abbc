"""Tables of deadline supervision (电子监察): clocks, cards, suspensions, staff notices.

A *clock* is one promised period of one case: a step's run (``run`` is the seq of the
timeline event that started the step; ``0`` for the whole case, step ``total``) as the
evaluator last saw it. A *card* is one change of colour of a clock. The unique
``(case_id, step, run, colour)`` is what makes a change happen exactly once, however many
evaluators run: colours only rise within a run, so each colour is reached at most once,
and the evaluator that inserts the card row is the one that writes its event, SMS and
notices in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
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
from server.db.types import UTCDateTime, utcnow


class DeadlineClock(Base):
    __tablename__ = "deadline_clocks"
    __table_args__ = (UniqueConstraint("case_id", "step", "run", name="uq_deadline_clocks_run"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(20))
    run: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    promised: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(Integer)
    """Working days used so far (suspended and rectification days not counted)."""
    due: Mapped[dt.date | None] = mapped_column(Date, default=None)
    colour: Mapped[str] = mapped_column(String(10))
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    """The clock still runs (its step is the case's current one, the case is open)."""
    evaluated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class DeadlineCard(Base):
    __tablename__ = "deadline_cards"
    __table_args__ = (
        UniqueConstraint("case_id", "step", "run", "colour", name="uq_deadline_cards_change"),
        Index("ix_deadline_cards_issued_at", "issued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(20))
    run: Mapped[int] = mapped_column(Integer)
    colour: Mapped[str] = mapped_column(String(10))
    previous: Mapped[str] = mapped_column(String(10))
    department_id: Mapped[int | None] = mapped_column(Integer, default=None)
    officer_id: Mapped[int | None] = mapped_column(Integer, default=None)
    """The case's lead when the card was issued."""
    promised: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(Integer)
    due: Mapped[dt.date | None] = mapped_column(Date, default=None)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    """The evaluator's clock (``now``) when the change was seen."""
    event_seq: Mapped[int | None] = mapped_column(Integer, default=None)


class DeadlineSuspension(Base):
    """A supervisor's justified stop of a case's clocks (e.g. waiting for material)."""

    __tablename__ = "deadline_suspensions"
    __table_args__ = (
        # At most one running suspension per case, enforced by the database.
        Index(
            "uq_deadline_suspensions_running",
            "case_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_by: Mapped[int] = mapped_column(Integer)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_by: Mapped[int | None] = mapped_column(Integer, default=None)


class StaffNotice(Base):
    """An in-app notice to one member of staff (one per card and recipient)."""

    __tablename__ = "staff_notices"
    __table_args__ = (UniqueConstraint("user_id", "card_id", name="uq_staff_notices_card"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    card_id: Mapped[int | None] = mapped_column(
        ForeignKey("deadline_cards.id", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
