"""The facts of a case that its documents state, read from the case and never typed in.

A commitment letter and an inspection record are legal documents: what they say about
the case (who applied, where and when the inspection took place, what was checked, what
was decided) must be what the case says. So nothing of it comes from the issuing request:
:func:`gather` reads it from the rows and the hash-chained timeline, and the issuer may
only add a free remark.

Where each fact comes from:

- **session** (勘验时间): the latest room in which staff admitted the applicant
  (``live.admitted``, or ``live.readmitted`` after a decline, of a participant who joined
  as ``applicant``) starts it; it ends at
  the room's ``live.ended`` or, when the inspection was concluded while the call went on
  (so the record can be signed in the call), at the first decision drafted after the
  start (``case.under_review`` / ``case.decided``), whichever came first. The booked slot
  never enters the record;
- **applicant** (申请人): the appointment's applicant (an enterprise's name, unified social
  credit code and contact person, or a person with the resident ID masked), else the
  account's name, else the masked mobile number;
- **site** (勘验地点): the booked site address (the case's own site if staff set one), with
  the newest location the applicant shared, its distance to the site and the flag;
- **checklist**: the matter's items in order, each with the case's result, note and the
  ids of its snapshots; items of the matter without a result are ``missing``;
- **decision**: the newest decision row, when it is the case's outcome in force.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.models import CaseSite, ChecklistResult, Decision, Location, Snapshot
from server.accounts.models import Applicant, User
from server.booking.models import Appointment, Matter
from server.cases.access import WORKING, staff_parties
from server.cases.models import Case, CaseEvent
from server.cases.timeline import load_events
from server.cases.workflow import checklist_items
from server.masking import mask_id_number, mask_mobile

CONCLUDING = ("case.under_review", "case.decided")
"""Events that conclude the inspection of a session (the decision was drafted)."""


@dataclass(frozen=True, slots=True)
class SessionFacts:
    room: str
    started_at: dt.datetime
    ended_at: dt.datetime | None  # the room's live.ended
    concluded_at: dt.datetime | None  # the first decision drafted after the start

    @property
    def end(self) -> dt.datetime | None:
        """When the inspection of this session ended (None: it is still going on)."""
        ends = [t for t in (self.ended_at, self.concluded_at) if t is not None]
        return min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class ApplicantFacts:
    kind: str  # "person" | "enterprise"
    name: str  # the person, or the enterprise
    signer_name: str  # who signs: the person, or the enterprise's contact
    credit_code: str = ""
    contact_name: str = ""
    id_number: str = ""  # masked
    mobile: str = ""  # masked

    def line(self) -> str:
        """申请人 as the documents write it."""
        if self.kind == "enterprise":
            code = f"（统一社会信用代码：{self.credit_code}）" if self.credit_code else ""
            contact = f"，联系人：{self.contact_name}" if self.contact_name else ""
            return f"{self.name}{code}{contact}"
        ident = f"（身份证号：{self.id_number}）" if self.id_number else ""
        return f"{self.name}{ident}"


@dataclass(frozen=True, slots=True)
class LocationFacts:
    lat: float
    lon: float
    accuracy_m: float | None
    distance_m: float | None
    threshold_m: float | None
    flagged: bool
    at: dt.datetime

    def line(self) -> str:
        text = f"北纬 {self.lat:.5f}°，东经 {self.lon:.5f}°"
        if self.accuracy_m is not None:
            text += f"（精度约 {self.accuracy_m:.0f} 米）"
        if self.distance_m is not None:
            text += f"，距登记地址 {self.distance_m:.0f} 米"
            if self.flagged:
                limit = f" {self.threshold_m:.0f} 米" if self.threshold_m is not None else ""
                text += f"，超出允许范围{limit}，已标记待核"
            else:
                text += "，在允许范围内"
        return text


@dataclass(frozen=True, slots=True)
class ItemFacts:
    item: str
    result: str  # recordings.models.RESULTS
    note: str
    snapshot_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    outcome: str
    reason: str
    requirements: tuple[str, ...]
    deadline: dt.date | None
    decided_by: str
    decided_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Inspector:
    id: int
    name: str
    role: str  # the user's role (inspector, supervisor …)


@dataclass(frozen=True, slots=True)
class CaseFacts:
    case_number: str
    matter_title: str
    applicant: ApplicantFacts
    site_address: str
    location: LocationFacts | None
    session: SessionFacts | None
    inspectors: tuple[Inspector, ...]
    checklist: tuple[ItemFacts, ...]
    missing: tuple[str, ...]
    decision: DecisionFacts | None


def latest_session(events: Sequence[CaseEvent]) -> SessionFacts | None:
    """The latest room in which the applicant was admitted, from the timeline alone."""
    roles: dict[tuple[str, str], str] = {}
    starts: dict[str, dt.datetime] = {}
    ended: dict[str, dt.datetime] = {}
    concluded: list[dt.datetime] = []
    for event in events:
        data = event.data or {}
        room = str(data.get("room") or "")
        participant = str(data.get("participant") or "")
        if event.kind == "live.joined":
            roles[(room, participant)] = str(data.get("role") or "")
        elif event.kind in ("live.admitted", "live.readmitted") and room not in starts:
            role = roles.get((room, participant), "")
            if role == "applicant" or (not role and participant.startswith("applicant-")):
                starts[room] = event.created_at
        elif event.kind == "live.ended" and room and room not in ended:
            ended[room] = event.created_at
        elif event.kind in CONCLUDING:
            concluded.append(event.created_at)
    if not starts:
        return None
    room, start = max(starts.items(), key=lambda kv: kv[1])
    after = [t for t in concluded if t >= start]
    end = ended.get(room)
    return SessionFacts(
        room, start, end if end is not None and end >= start else None, min(after, default=None)
    )


async def _appointment(session: AsyncSession, case_id: int) -> Appointment | None:
    return await session.scalar(
        select(Appointment)
        .where(Appointment.case_id == case_id, Appointment.status != "cancelled")
        .order_by(Appointment.id)
        .limit(1)
    )


async def applicant_facts(session: AsyncSession, case: Case) -> ApplicantFacts | None:
    appt = await _appointment(session, case.id)
    account = await session.get(Applicant, case.applicant_id) if case.applicant_id else None
    if appt is not None and appt.applicant_kind == "enterprise":
        contact = (appt.contact_name or "").strip()
        return ApplicantFacts(
            kind="enterprise",
            name=appt.applicant_name,
            signer_name=contact or (account.name if account and account.name else ""),
            credit_code=appt.credit_code or "",
            contact_name=contact,
            mobile=mask_mobile(appt.mobile),
        )
    if appt is not None:
        return ApplicantFacts(
            kind="person",
            name=appt.applicant_name,
            signer_name=appt.applicant_name,
            id_number=mask_id_number(appt.id_number) if appt.id_number else "",
            mobile=mask_mobile(appt.mobile),
        )
    if account is None:
        return None
    name = account.name or mask_mobile(account.mobile)
    return ApplicantFacts("person", name, name, mobile=mask_mobile(account.mobile))


async def _checklist(
    session: AsyncSession, case: Case, matter: Matter | None
) -> tuple[tuple[ItemFacts, ...], tuple[str, ...]]:
    rows = {
        r.item: r
        for r in await session.scalars(
            select(ChecklistResult).where(ChecklistResult.case_id == case.id)
        )
    }
    shots: dict[str, set[int]] = {}
    for shot_id, item in (
        await session.execute(
            select(Snapshot.id, Snapshot.checklist_item).where(
                Snapshot.case_id == case.id, Snapshot.checklist_item.is_not(None)
            )
        )
    ).all():
        shots.setdefault(str(item), set()).add(int(shot_id))
    wanted = checklist_items(matter)
    order = wanted + sorted(item for item in rows if item not in wanted)
    items = tuple(
        ItemFacts(
            item=item,
            result=rows[item].result,
            note=(rows[item].note or "").strip(),
            snapshot_ids=tuple(sorted(set(rows[item].snapshot_ids or []) | shots.get(item, set()))),
        )
        for item in order
        if item in rows
    )
    return items, tuple(item for item in wanted if item not in rows)


async def _decision(session: AsyncSession, case: Case) -> DecisionFacts | None:
    if case.outcome is None:
        return None
    row = await session.scalar(
        select(Decision).where(Decision.case_id == case.id).order_by(Decision.id.desc()).limit(1)
    )
    if row is None or row.outcome != case.outcome:
        return None
    requirements = tuple(
        line.strip() for line in (row.requirements or "").splitlines() if line.strip()
    )
    return DecisionFacts(
        outcome=row.outcome,
        reason=(row.reason or "").strip(),
        requirements=requirements,
        deadline=case.deadline or row.deadline,
        decided_by=row.decided_by_name,
        decided_at=row.decided_at,
    )


async def inspectors_of(session: AsyncSession, case: Case) -> tuple[Inspector, ...]:
    """Every inspector party of the case, the lead first, then in the order they joined."""
    parties = [p for p in await staff_parties(session, case.id) if p.role in WORKING]
    parties.sort(key=lambda p: (p.role != "lead", p.id))
    out: list[Inspector] = []
    for party in parties:
        user = await session.get(User, party.principal_id)
        if user is not None and user.active:
            out.append(Inspector(user.id, user.display_name, user.role))
    return tuple(out)


async def _location(session: AsyncSession, case_id: int) -> LocationFacts | None:
    row = await session.scalar(
        select(Location).where(Location.case_id == case_id).order_by(Location.id.desc()).limit(1)
    )
    if row is None:
        return None
    return LocationFacts(
        row.lat, row.lon, row.accuracy_m, row.distance_m, row.threshold_m, row.flagged, row.at
    )


async def gather(session: AsyncSession, case: Case) -> CaseFacts | None:
    """Everything the documents of ``case`` state; None when it has no applicant."""
    applicant = await applicant_facts(session, case)
    if applicant is None:
        return None
    matter = await session.get(Matter, case.matter_id) if case.matter_id else None
    appt = await _appointment(session, case.id)
    site = await session.scalar(select(CaseSite).where(CaseSite.case_id == case.id))
    address = (appt.site_address if appt is not None else None) or ""
    if site is not None and site.address.strip():
        address = site.address.strip()  # staff corrected the booked site (site.set)
    checklist, missing = await _checklist(session, case, matter)
    return CaseFacts(
        case_number=case.number,
        matter_title=matter.name if matter is not None else case.title,
        applicant=applicant,
        site_address=address.strip(),
        location=await _location(session, case.id),
        session=latest_session(await load_events(session, case.id)),
        inspectors=await inspectors_of(session, case),
        checklist=checklist,
        missing=missing,
        decision=await _decision(session, case),
    )
