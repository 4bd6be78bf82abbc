"""Letter tables: templates, letters (versioned), signatures and each letter's audit trail.

The guarantees live in the schema, not in a process lock, so they hold across workers
and hosts:

- ``letter_signatures`` is unique on (letter, signer) and on (letter, position): one
  person signs a letter once, and two people cannot both take the same turn;
- signing advances ``letters.next_signer`` with a conditional UPDATE (``WHERE
  next_signer = :seen AND status IN ('issued', 'partially_signed')``); a loser of a race
  changes no row and is refused;
- ``letters`` is unique on (case, kind, version) and a correction supersedes its
  predecessor with another conditional UPDATE, so two corrections cannot both win.

Nothing here is ever deleted: a superseded letter keeps its body, its PDFs and its
signatures; every PDF ever rendered is a row in ``letter_events`` with its blob key and
hash, which is how ``/verify`` recognises an older version someone kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base
from server.db.types import UTCDateTime, utcnow

KINDS = ("commitment", "record")
SIGNABLE = ("issued", "partially_signed")
STATUSES = ("draft", "issued", "partially_signed", "signed", "superseded")


class LetterTemplate(Base):
    """A commitment-letter template per matter (``matter_id`` 0 is the agency default)."""

    __tablename__ = "letter_templates"
    __table_args__ = (UniqueConstraint("matter_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    matter_id: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default="commitment")
    title: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(Integer, default=None)


class Letter(Base):
    __tablename__ = "letters"
    __table_args__ = (UniqueConstraint("case_id", "kind", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("letters.id", ondelete="RESTRICT"), default=None
    )
    superseded_by_id: Mapped[int | None] = mapped_column(Integer, default=None)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="issued")
    # [{"kind": "staff"|"applicant", "id": int, "role": str, "name": str}, …] in signing order
    signers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    next_signer: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # record inputs, fields
    pdf_key: Mapped[str | None] = mapped_column(String(200), default=None)
    pdf_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by_kind: Mapped[str] = mapped_column(String(16))
    created_by_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    issued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    sealed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)

    def signer_at(self, position: int) -> dict[str, Any] | None:
        return self.signers[position] if 0 <= position < len(self.signers) else None


class LetterSignature(Base):
    __tablename__ = "letter_signatures"
    __table_args__ = (
        UniqueConstraint("letter_id", "signer_kind", "signer_id"),
        UniqueConstraint("letter_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    letter_id: Mapped[int] = mapped_column(
        ForeignKey("letters.id", ondelete="RESTRICT"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    signer_kind: Mapped[str] = mapped_column(String(16))
    signer_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    image_key: Mapped[str] = mapped_column(String(200))
    image_sha256: Mapped[str] = mapped_column(String(64))
    consent: Mapped[bool] = mapped_column(Boolean)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    document_sha256: Mapped[str] = mapped_column(String(64))  # the PDF the signer was shown
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LetterEvent(Base):
    """One line of a letter's audit page; also the index of every PDF version."""

    __tablename__ = "letter_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    letter_id: Mapped[int] = mapped_column(
        ForeignKey("letters.id", ondelete="RESTRICT"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    actor_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    actor_id: Mapped[int | None] = mapped_column(Integer, default=None)
    actor_name: Mapped[str | None] = mapped_column(String(100), default=None)
    actor_role: Mapped[str | None] = mapped_column(String(20), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # what the step hashed
    pdf_key: Mapped[str | None] = mapped_column(String(200), default=None)
    pdf_sha256: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
