"""Supervision tables: one row per video session, for figures and the live wall.

The case chain is the record of a session (``live.admitted`` … ``live.ended``); this table
is a *view* of it kept in the same transactions (``server.cases.rooms``), so the dashboard
can count and time sessions with plain SQL on SQLite and PostgreSQL instead of reading
JSON out of every event, and the wall can list the sessions live on every node.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base
from server.db.types import UTCDateTime


class VideoSession(Base):
    """A room's session: from the applicant's first admission to the room's end."""

    __tablename__ = "video_sessions"
    __table_args__ = (Index("ix_video_sessions_ended_started", "ended_at", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room: Mapped[str] = mapped_column(String(40), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    matter_id: Mapped[int | None] = mapped_column(Integer, default=None)
    appointment_id: Mapped[int | None] = mapped_column(Integer, default=None)
    ticket_id: Mapped[int | None] = mapped_column(Integer, default=None)
    """The walk-in ("video now") ticket served in this room, if any."""
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_by: Mapped[str | None] = mapped_column(String(10), default=None)
    """``end`` (an inspector ended it) or ``idle`` (everyone left)."""
