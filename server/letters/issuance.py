"""Issuing a letter on a case: a commitment from the matter's template, or a record.

Issuing runs in two short transactions around the slow part (render + seal, ~0.5 s):

1. insert the letter as ``draft`` (this allocates its id and version; the unique
   (case, kind, version) constraint makes a concurrent issue fail cleanly);
2. render, seal and store the PDF — no transaction open;
3. mark it ``issued`` with a conditional UPDATE (``WHERE status = 'draft'``), supersede
   the predecessor (``WHERE superseded_by_id IS NULL``), write the audit events and the
   case timeline events (``letter.issued``, ``letter.superseded``) with the hashes, commit.

What a letter says comes from the case (:mod:`server.letters.facts`): a request may add
a remark, and may *state* values (an outcome, fields) only to have them checked — a
record that contradicts the case is refused (:mod:`server.letters.records`).

A failure in 2 leaves a draft that nobody can sign; the case is untouched. Template
errors are raised before step 1, so a broken template never leaves anything behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.principal import Principal
from server.cases.access import authorize
from server.cases.models import Case
from server.cases.procedure import is_open
from server.cases.timeline import append_event
from server.db.types import utcnow
from server.errors import ConflictError, ValidationError
from server.letters import facts, records, templates
from server.letters.demo import DEFAULT_COMMITMENT_SOURCE, DEFAULT_COMMITMENT_TITLE
from server.letters.documents import LetterContext, build_document, render_seal_store
from server.letters.errors import CaseClosedError, LetterStateError, NoApplicantError
from server.letters.models import Letter, LetterEvent, LetterTemplate
from server.parsing import check_text

FIELD_KEYS = (
    "enterprise_name",
    "credit_code",
    "site_address",
    "matter_title",
    "applicant_name",
    "contact_name",
)
"""Fields a commitment request may *state* (checked against the case, never taken over)."""
MAX_REMARK = 500


@dataclass(frozen=True, slots=True)
class Audit:
    """Where a request came from, for the audit page."""

    ip: str | None = None
    user_agent: str | None = None

    @property
    def agent(self) -> str | None:
        """The user agent as the audit columns keep it (300 characters, none if empty)."""
        return (self.user_agent or "")[:300] or None

    def event(
        self, letter_id: int, action: str, principal: Principal, at: dt.datetime, **extra: Any
    ) -> LetterEvent:
        """An audit row of ``principal`` acting on the letter from this request."""
        return LetterEvent(
            letter_id=letter_id,
            action=action,
            actor_kind=principal.kind,
            actor_id=principal.id,
            actor_name=principal.name,
            actor_role=principal.role,
            ip=self.ip,
            user_agent=self.agent,
            at=at,
            **extra,
        )


@dataclass(frozen=True, slots=True)
class Composed:
    """A letter as the case states it, before anything is written."""

    title: str
    text: str
    signers: list[dict[str, Any]]
    data: dict[str, Any]


async def _open_case_for_staff(session: AsyncSession, principal: Principal, case_id: int) -> Case:
    case = await authorize(session, principal, case_id, "issue_letter")
    if not is_open(case):
        raise CaseClosedError(params={"case": case.number})
    return case


async def template_for(session: AsyncSession, matter_id: int | None) -> tuple[str, str]:
    """(title, source) for a matter: its own template, the agency default, or ours."""
    for key in (matter_id or 0, 0):
        row = await session.scalar(
            select(LetterTemplate).where(
                LetterTemplate.matter_id == key, LetterTemplate.kind == "commitment"
            )
        )
        if row is not None:
            return row.title, row.source
    return DEFAULT_COMMITMENT_TITLE, DEFAULT_COMMITMENT_SOURCE


def _staff_signer(inspector: facts.Inspector) -> dict[str, Any]:
    return {"kind": "staff", "id": inspector.id, "role": inspector.role, "name": inspector.name}


def _applicant_signer(case: Case, applicant: facts.ApplicantFacts) -> dict[str, Any]:
    return {
        "kind": "applicant",
        "id": case.applicant_id,
        "role": "applicant",
        "name": applicant.signer_name or applicant.name,
    }


def _remark(body: Mapping[str, Any]) -> str:
    remark = check_text(str(body.get("remark") or ""), "remark").strip()
    if len(remark) > MAX_REMARK:
        raise ValidationError(fields={"remark": "At most 500 characters"})
    return remark


def commitment_fields(
    ctx: LetterContext, case: Case, known: facts.CaseFacts, remark: str
) -> dict[str, Any]:
    """The template's fields, all from the case (``templates.SAMPLE_FIELDS`` lists them)."""
    zone = ZoneInfo(ctx.timezone)
    applicant = known.applicant
    session = known.session
    day = (session.started_at if session is not None else utcnow()).astimezone(zone).date()
    enterprise = applicant.kind == "enterprise"
    return {
        "case_number": case.number,
        "case_title": case.title,
        "matter_title": known.matter_title,
        "applicant_name": applicant.signer_name or applicant.name,
        "applicant_mobile": applicant.mobile,
        "applicant": applicant.line(),
        "enterprise_name": applicant.name if enterprise else "",
        "credit_code": applicant.credit_code,
        "contact_name": applicant.contact_name,
        "site_address": known.site_address,
        "location": known.location.line() if known.location is not None else "",
        "inspection_date": templates.date_cn(day),
        "inspector_names": "、".join(i.name for i in known.inspectors),
        "agency_name": ctx.agency_name,
        "remark": remark,
    }


def _check_stated_fields(known: facts.CaseFacts, fields: dict[str, Any], stated: Any) -> None:
    for key, value in (stated or {}).items():
        if key not in FIELD_KEYS or str(value).strip() != str(fields.get(key, "")).strip():
            raise records.ContradictionError(
                params={"case": known.case_number, "field": key},
                details={"field": key, "case": fields.get(key), "stated": value},
            )


async def _compose(
    session: AsyncSession, ctx: LetterContext, case: Case, body: Mapping[str, Any]
) -> Composed:
    """The new letter from the case's facts; raises before anything is written."""
    known = await facts.gather(session, case)
    if known is None or case.applicant_id is None:
        raise NoApplicantError(params={"case": case.number})
    remark = _remark(body)
    applicant = _applicant_signer(case, known.applicant)
    if body["kind"] == "commitment":
        fields = commitment_fields(ctx, case, known, remark)
        _check_stated_fields(known, fields, body.get("fields"))
        title, source = await template_for(session, case.matter_id)
        text = templates.render(source, fields)
        if remark and "remark" not in source:
            text += f"\n备注：{remark}\n"
        return Composed(title, text, [applicant], {"fields": fields})
    session_facts, decision = records.check(known, case.status)
    records.check_statements(known, decision, body)
    if not known.inspectors:
        raise ValidationError(fields={"inspectors": "The case has no inspector to sign"})
    text = records.record_text(known, ctx.timezone, remark)
    signers = [_staff_signer(i) for i in known.inspectors] + [applicant]
    data = {
        "outcome": decision.outcome,
        "deadline": decision.deadline.isoformat() if decision.deadline else None,
        "checklist": records.summarize(known),
        "session": {
            "room": session_facts.room,
            "started_at": session_facts.started_at.isoformat(),
            "ended_at": session_facts.end.isoformat() if session_facts.end else None,
        },
        "remark": remark,
    }
    return Composed("现场勘验笔录", text, signers, data)


async def _predecessor(
    session: AsyncSession, case: Case, kind: str, supersedes: int | None
) -> Letter | None:
    """The version the new one replaces: the newest one of its kind, which a request that
    names one must name (an older one was replaced already)."""
    newest = await session.scalar(
        select(Letter)
        .where(Letter.case_id == case.id, Letter.kind == kind, Letter.superseded_by_id.is_(None))
        .order_by(Letter.version.desc())
        .limit(1)
    )
    if supersedes is None:
        return newest
    old = await session.get(Letter, supersedes)
    if old is None or old.case_id != case.id or old.kind != kind:
        raise ValidationError(fields={"supersedes": "No such letter on this case"})
    if old.superseded_by_id is not None or (newest is not None and newest.id != old.id):
        raise LetterStateError(params={"letter": old.id})
    return old


async def issue(
    db: async_sessionmaker[AsyncSession],
    ctx: LetterContext,
    principal: Principal,
    case_id: int,
    body: Mapping[str, Any],
    audit: Audit,
) -> int:
    """Issue a letter (``body["kind"]`` is "commitment" or "record"); returns its id.

    A new version supersedes the newest one of its kind (``letter.superseded`` on the
    timeline); from then on only the new one can be signed."""
    kind = body["kind"]
    async with db.begin() as session:
        case = await _open_case_for_staff(session, principal, case_id)
        composed = await _compose(session, ctx, case, body)
        old = await _predecessor(session, case, kind, body.get("supersedes"))
        supersedes = old.id if old is not None else None
        old_version = old.version if old is not None else None
        version = (
            await session.scalar(
                select(func.max(Letter.version)).where(
                    Letter.case_id == case.id, Letter.kind == kind
                )
            )
            or 0
        ) + 1
        letter = Letter(
            case_id=case.id,
            kind=kind,
            version=version,
            supersedes_id=supersedes,
            title=composed.title,
            body=composed.text,
            body_sha256=hashlib.sha256(composed.text.encode()).hexdigest(),
            status="draft",
            signers=composed.signers,
            data=composed.data,
            created_by_kind=principal.kind,
            created_by_id=principal.id,
        )
        session.add(letter)
        try:
            await session.flush()
        except IntegrityError:
            raise ConflictError(
                "Another version of this letter was issued at the same time"
            ) from None
        case_number = case.number
        letter_id = letter.id
    now = utcnow()
    event = audit.event(letter_id, "issued", principal, now, sha256=letter.body_sha256)
    letter.issued_at = now
    document = await build_document(ctx, letter, case_number, [], [event])
    stored = await render_seal_store(ctx, document)
    async with db.begin() as session:
        current = await session.get(Case, case_id, populate_existing=True)
        if current is None or not is_open(current):
            raise CaseClosedError(params={"case": case_number})
        result = await session.execute(
            update(Letter)
            .where(Letter.id == letter_id, Letter.status == "draft")
            .values(
                status="issued",
                issued_at=now,
                sealed_at=utcnow(),
                pdf_key=stored.key,
                pdf_sha256=stored.sha256,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LetterStateError(params={"letter": letter_id})
        event.pdf_key, event.pdf_sha256 = stored.key, stored.sha256
        session.add(event)
        await append_event(
            session,
            current,
            kind="letter.issued",
            actor=principal,
            data={
                "letter_id": letter_id,
                "kind": kind,
                "title": composed.title,
                "version": version,
                "supersedes": supersedes,
                "body_sha256": letter.body_sha256,
                "pdf_sha256": stored.sha256,
                "signers": [
                    {"kind": s["kind"], "id": s["id"], "role": s["role"]} for s in composed.signers
                ],
                "blobs": [{"key": stored.key, "sha256": stored.sha256}],
            },
        )
        if supersedes is not None:
            await _supersede(session, current, principal, audit, supersedes, letter_id, now)
            await append_event(
                session,
                current,
                kind="letter.superseded",
                actor=principal,
                data={
                    "letter_id": supersedes,
                    "kind": kind,
                    "title": composed.title,
                    "version": old_version,
                    "superseded_by": letter_id,
                    "new_version": version,
                },
            )
    return letter_id


async def _supersede(
    session: AsyncSession,
    case: Case,
    principal: Principal,
    audit: Audit,
    old_id: int,
    new_id: int,
    now: dt.datetime,
) -> None:
    """Retire the predecessor; the conditional UPDATE lets one correction win a race."""
    result = await session.execute(
        update(Letter)
        .where(Letter.id == old_id, Letter.superseded_by_id.is_(None))
        .values(status="superseded", superseded_by_id=new_id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LetterStateError(params={"letter": old_id})
    session.add(audit.event(old_id, "superseded", principal, now))
