"""Issuing a letter on a case: a commitment from the matter's template, or a record.

Issuing runs in two short transactions around the slow part (render + seal, ~0.5 s):

1. insert the letter as ``draft`` (this allocates its id and version; the unique
   (case, kind, version) constraint makes a concurrent issue fail cleanly);
2. render, seal and store the PDF — no transaction open;
3. mark it ``issued`` with a conditional UPDATE (``WHERE status = 'draft'``), supersede
   the predecessor (``WHERE superseded_by_id IS NULL``), write the audit event and the
   case timeline event with the hashes, commit.

A failure in 2 leaves a draft that nobody can sign; the case is untouched. Template
errors are raised before step 1, so a broken template never leaves anything behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Applicant, User
from server.accounts.principal import Principal
from server.cases.access import WORKING, authorize, staff_parties
from server.cases.models import Case
from server.cases.procedure import is_open
from server.cases.timeline import append_event
from server.db.types import utcnow
from server.errors import ConflictError, ValidationError
from server.letters import records, templates
from server.letters.demo import DEFAULT_COMMITMENT_SOURCE, DEFAULT_COMMITMENT_TITLE
from server.letters.documents import LetterContext, build_document, render_seal_store
from server.letters.errors import CaseClosedError, LetterStateError, NoApplicantError
from server.letters.models import Letter, LetterEvent, LetterTemplate
from server.masking import mask_mobile

FIELD_KEYS = ("enterprise_name", "credit_code", "site_address", "matter_title", "applicant_name")


@dataclass(frozen=True, slots=True)
class Audit:
    """Where a request came from, for the audit page."""

    ip: str | None = None
    user_agent: str | None = None


async def _open_case_for_staff(session: AsyncSession, principal: Principal, case_id: int) -> Case:
    case = await authorize(session, principal, case_id, "issue_letter")
    if not is_open(case):
        raise CaseClosedError(params={"case": case.number})
    return case


async def _applicant(session: AsyncSession, case: Case) -> Applicant:
    applicant = await session.get(Applicant, case.applicant_id) if case.applicant_id else None
    if applicant is None:
        raise NoApplicantError(params={"case": case.number})
    return applicant


def _applicant_name(applicant: Applicant) -> str:
    return applicant.name or mask_mobile(applicant.mobile)


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


def _staff_signer(user: User) -> dict[str, Any]:
    return {"kind": "staff", "id": user.id, "role": user.role, "name": user.display_name}


def _applicant_signer(applicant: Applicant) -> dict[str, Any]:
    return {
        "kind": "applicant",
        "id": applicant.id,
        "role": "applicant",
        "name": _applicant_name(applicant),
    }


async def _inspectors(
    session: AsyncSession, principal: Principal, case: Case, ids: list[int] | None
) -> list[User]:
    """The staff who sign as inspectors: the case's own (lead or co-inspectors) only, so
    every signer can open the letter to sign it."""
    wanted = ids or [principal.id]
    inspecting = {
        p.principal_id for p in await staff_parties(session, case.id) if p.role in WORKING
    }
    users: list[User] = []
    for user_id in dict.fromkeys(wanted):
        user = await session.get(User, user_id)
        if user is None or not user.active or user.role not in ("inspector", "supervisor", "admin"):
            raise ValidationError(fields={"inspectors": "Unknown inspector"})
        if user.id not in inspecting:
            raise ValidationError(
                fields={"inspectors": "Only the case's inspectors can sign its record"},
                details={"inspector": user.display_name},
            )
        users.append(user)
    return users


async def _compose(
    session: AsyncSession,
    ctx: LetterContext,
    case: Case,
    principal: Principal,
    body: Mapping[str, Any],
) -> tuple[str, str, list[dict[str, Any]], dict[str, Any]]:
    """(title, text, signers, data) of the new letter; raises before anything is written."""
    applicant = await _applicant(session, case)
    zone = ZoneInfo(ctx.timezone)
    now = utcnow()
    given = {k: str(v)[:200] for k, v in (body.get("fields") or {}).items() if k in FIELD_KEYS}
    if body["kind"] == "commitment":
        inspectors = await _inspectors(session, principal, case, None)
        fields: dict[str, Any] = {
            "case_number": case.number,
            "case_title": case.title,
            "matter_title": case.title,
            "applicant_name": _applicant_name(applicant),
            "applicant_mobile": mask_mobile(applicant.mobile),
            "enterprise_name": "",
            "credit_code": "",
            "site_address": "",
            "inspection_date": templates.date_cn(now.astimezone(zone).date()),
            "inspector_names": "、".join(u.display_name for u in inspectors),
            "agency_name": ctx.agency_name,
            **given,
        }
        title, source = await template_for(session, case.matter_id)
        text = templates.render(source, fields)
        return title, text, [_applicant_signer(applicant)], {"fields": fields}
    inspectors = await _inspectors(session, principal, case, body.get("inspectors"))
    day = now.astimezone(zone).date()
    checklist, findings, decision = records.parse_outcome(body, inspection_day=day)
    started = case.created_at
    record = records.InspectionRecord(
        case_number=case.number,
        matter_title=given.get("matter_title", case.title),
        applicant=(
            f"{given['enterprise_name']}（{_applicant_name(applicant)}）"
            if given.get("enterprise_name")
            else _applicant_name(applicant)
        ),
        site_address=given.get("site_address", "见视频勘验定位记录"),
        inspectors=tuple(u.display_name for u in inspectors),
        started_at=started,
        ended_at=now,
        checklist=checklist,
        findings=findings,
        decision=decision,
    )
    text = records.record_text(record, ctx.timezone)
    signers = [_staff_signer(u) for u in inspectors] + [_applicant_signer(applicant)]
    data = {
        "outcome": decision.outcome,
        "checklist": records.summarize(checklist),
        "deadline": decision.deadline.isoformat() if decision.deadline else None,
    }
    return "现场勘验笔录", text, signers, data


async def issue(
    db: async_sessionmaker[AsyncSession],
    ctx: LetterContext,
    principal: Principal,
    case_id: int,
    body: Mapping[str, Any],
    audit: Audit,
) -> int:
    """Issue a letter (``body["kind"]`` is "commitment" or "record"); returns its id."""
    kind = body["kind"]
    supersedes = body.get("supersedes")
    async with db.begin() as session:
        case = await _open_case_for_staff(session, principal, case_id)
        title, text, signers, data = await _compose(session, ctx, case, principal, body)
        if supersedes is not None:
            old = await session.get(Letter, supersedes)
            if old is None or old.case_id != case.id or old.kind != kind:
                raise ValidationError(fields={"supersedes": "No such letter on this case"})
            if old.superseded_by_id is not None:
                raise LetterStateError(params={"letter": old.id})
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
            title=title,
            body=text,
            body_sha256=hashlib.sha256(text.encode()).hexdigest(),
            status="draft",
            signers=signers,
            data=data,
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
    event = LetterEvent(
        letter_id=letter_id,
        action="issued",
        actor_kind=principal.kind,
        actor_id=principal.id,
        actor_name=principal.name,
        actor_role=principal.role,
        ip=audit.ip,
        user_agent=(audit.user_agent or "")[:300] or None,
        sha256=letter.body_sha256,
        at=now,
    )
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
        if supersedes is not None:
            result = await session.execute(
                update(Letter)
                .where(Letter.id == supersedes, Letter.superseded_by_id.is_(None))
                .values(status="superseded", superseded_by_id=letter_id)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise LetterStateError(params={"letter": supersedes})
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
                "version": version,
                "supersedes": supersedes,
                "body_sha256": letter.body_sha256,
                "pdf_sha256": stored.sha256,
                "signers": [{"kind": s["kind"], "id": s["id"], "role": s["role"]} for s in signers],
                "blobs": [{"key": stored.key, "sha256": stored.sha256}],
            },
        )
    return letter_id
