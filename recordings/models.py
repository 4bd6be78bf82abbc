"""Evidence tables: recordings, snapshots, locations, checklist results, decisions, sites.

Every row that points at a file keeps the blob key *and* the SHA-256 taken when the file
was stored, so verification never trusts the file system alone; the matching case event
carries the same pair under ``data["blobs"]`` for ``verify_case``. Sessions are referenced
by the live room's id as a string (``session_ref``): rooms belong to the live domain and
may be gone long before the evidence is.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base
from server.db.types import UTCDateTime, utcnow

RESULTS = ("ok", "problem", "na")
STORED = ("finished", "incomplete")
"""Recording states whose file is in the blob store (playable, exported, purgeable)."""


class CaseSite(Base):
    """The inspected site's address and, when known, coordinates (for the distance flag)."""

    __tablename__ = "evidence_sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), unique=True, index=True
    )
    address: Mapped[str] = mapped_column(String(300), default="")
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    threshold_m: Mapped[float | None] = mapped_column(Float, default=None)


class Recording(Base):
    __tablename__ = "evidence_recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    session_ref: Mapped[str] = mapped_column(String(64), index=True)
    participant: Mapped[str] = mapped_column(String(64))
    participant_role: Mapped[str] = mapped_column(String(20), default="")
    blob_key: Mapped[str | None] = mapped_column(String(200), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    mime: Mapped[str] = mapped_column(String(40), default="video/webm")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # "finished" once stored; "incomplete" when filed at start-up from what a killed
    # process left (recordings.recovery); "purged" after retention removed the file (the
    # row stays, with its hash, so the timeline still says what existed).
    status: Mapped[str] = mapped_column(String(16), default="finished")
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class Snapshot(Base):
    __tablename__ = "evidence_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    session_ref: Mapped[str] = mapped_column(String(64), index=True)
    participant: Mapped[str] = mapped_column(String(64))
    taken_by_id: Mapped[int] = mapped_column(Integer)
    taken_by_name: Mapped[str] = mapped_column(String(100))
    checklist_item: Mapped[str | None] = mapped_column(String(200), default=None)
    original_key: Mapped[str] = mapped_column(String(200))
    original_sha256: Mapped[str] = mapped_column(String(64))
    watermarked_key: Mapped[str] = mapped_column(String(200))
    watermarked_sha256: Mapped[str] = mapped_column(String(64))
    annotated_key: Mapped[str | None] = mapped_column(String(200), default=None)
    annotated_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    annotations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    accuracy_m: Mapped[float | None] = mapped_column(Float, default=None)
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Location(Base):
    __tablename__ = "evidence_locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    participant: Mapped[str] = mapped_column(String(64))
    principal_kind: Mapped[str] = mapped_column(String(16))
    principal_id: Mapped[int] = mapped_column(Integer)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float, default=None)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    distance_m: Mapped[float | None] = mapped_column(Float, default=None)
    threshold_m: Mapped[float | None] = mapped_column(Float, default=None)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)


class ChecklistResult(Base):
    """The current result of one checklist item; each change is also a case event."""

    __tablename__ = "evidence_checklist_results"
    __table_args__ = (UniqueConstraint("case_id", "item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    item: Mapped[str] = mapped_column(String(200))
    result: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    snapshot_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    by_id: Mapped[int] = mapped_column(Integer)
    by_name: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Decision(Base):
    """Each decision is kept; the newest one is the case's current decision."""

    __tablename__ = "evidence_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    requirements: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    deadline: Mapped[dt.date | None] = mapped_column(Date, default=None)
    decided_by_id: Mapped[int] = mapped_column(Integer)
    decided_by_name: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
