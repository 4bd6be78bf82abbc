"""Exports for supervisors: cases, appointments and the dashboard's figures, as CSV or XLSX.

A kind of export is an :class:`ExportKind` in ``EXPORTS``: its columns (English msgids,
written in zh-CN, as the issue asks of every export) and a function that gives the rows
for a :class:`~server.supervision.dashboard.Period` and the exporter. Adding ratings or
deadline cards is one entry::

    EXPORTS["ratings"] = ExportKind("ratings", "Ratings", (("Case", "case"), …), rating_rows_for)

Personal data (mobile, ID number, credit code) is masked unless the exporter may read the
case's identity (``read_identity`` of :mod:`server.cases.access`, decided per case from
the exporter's party roles): supervisors doing oversight see masked values.

The ``summary`` kind is the dashboard itself, section by section, so the XLSX carries the
same figures as the page; ``all`` (XLSX only) is every kind, one sheet each.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.booking.models import Appointment, Department, Matter
from server.booking.present import STATUS_LABELS
from server.cases import procedure
from server.cases.access import may, roles_on_cases
from server.cases.models import Case
from server.masking import mask_id_number, mask_mobile
from server.supervision.dashboard import Period, Translate, dashboard

Rows = Callable[[AsyncSession, Period, Principal, Translate], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class ExportKind:
    key: str
    title: str
    """msgid of the sheet's name (zh-CN in the file)."""
    columns: Sequence[tuple[str, str]]
    """(msgid of the header, key of the row dict)"""
    rows: Rows


async def _identity_cases(
    session: AsyncSession, principal: Principal, case_ids: set[int]
) -> set[int]:
    """The cases among ``case_ids`` whose identity data ``principal`` may read unmasked."""
    roles = await roles_on_cases(session, principal, case_ids)
    return {c for c in case_ids if may(principal, frozenset(roles.get(c, ())), "read_identity")}


def _local(value: Any, period: Period) -> str:
    return value.astimezone(period.zone).strftime("%Y-%m-%d %H:%M") if value else ""


async def case_rows(
    session: AsyncSession, period: Period, principal: Principal, _: Translate
) -> list[dict[str, Any]]:
    start, end = period.bounds()
    query = (
        select(Case, Matter.name, Department.name)
        .outerjoin(Matter, Matter.id == Case.matter_id)
        .outerjoin(Department, Department.id == Matter.department_id)
        .where(Case.created_at >= start, Case.created_at < end)
        .order_by(Case.created_at, Case.id)
    )
    if period.department_id:
        query = query.where(Matter.department_id == period.department_id)
    found = (await session.execute(query)).all()
    contacts: dict[int, Appointment] = {}
    if found:
        for booked in await session.scalars(
            select(Appointment)
            .where(Appointment.case_id.in_([c.id for c, _m, _d in found]))
            .order_by(Appointment.id.desc())
        ):
            contacts[booked.case_id or 0] = booked  # the first booking of the case wins
    full = await _identity_cases(session, principal, {c.id for c, _m, _d in found})
    rows = []
    for case, matter, department in found:
        appt = contacts.get(case.id)
        mobile = appt.mobile if appt else ""
        rows.append(
            {
                "number": case.number,
                "title": case.title,
                "matter": matter or "",
                "department": department or "",
                "status": _(procedure.LABELS.get(case.status, case.status)),
                "outcome": case.outcome or "",
                "opened": _local(case.created_at, period),
                "closed": _local(case.closed_at, period),
                "applicant": appt.applicant_name if appt else "",
                "mobile": mobile if case.id in full else mask_mobile(mobile) if mobile else "",
            }
        )
    return rows


async def appointment_rows(
    session: AsyncSession, period: Period, principal: Principal, _: Translate
) -> list[dict[str, Any]]:
    start, end = period.bounds()
    query = (
        select(Appointment, Matter.name, Department.name, Case.number)
        .join(Matter, Matter.id == Appointment.matter_id)
        .join(Department, Department.id == Matter.department_id)
        .outerjoin(Case, Case.id == Appointment.case_id)
        .where(Appointment.starts_at >= start, Appointment.starts_at < end)
        .order_by(Appointment.starts_at, Appointment.id)
    )
    if period.department_id:
        query = query.where(Matter.department_id == period.department_id)
    found = (await session.execute(query)).all()
    full = await _identity_cases(session, principal, {a.case_id for a, *_ in found if a.case_id})
    rows = []
    for appt, matter, department, number in found:
        shown = appt.case_id in full
        identity = appt.id_number or appt.credit_code or ""
        rows.append(
            {
                "id": appt.id,
                "case": number or "",
                "matter": matter,
                "department": department,
                "starts": _local(appt.starts_at, period),
                "status": _(STATUS_LABELS.get(appt.status, appt.status)),
                "applicant": appt.applicant_name,
                "contact": appt.contact_name or "",
                "mobile": appt.mobile if shown else mask_mobile(appt.mobile),
                "identity": identity if shown else mask_id_number(identity) if identity else "",
            }
        )
    return rows


async def summary_rows(
    session: AsyncSession, period: Period, principal: Principal, _: Translate
) -> list[dict[str, Any]]:
    rows = []
    for section in await dashboard(session, period, _):
        for figure in section.figures:
            rows.append(
                {
                    "section": section.title,
                    "key": figure.key,
                    "figure": figure.label,
                    "value": figure.value,
                    "unit": figure.unit.strip(),
                }
            )
    return rows


EXPORTS: dict[str, ExportKind] = {
    "summary": ExportKind(
        "summary",
        "Figures",
        (
            ("Section", "section"),
            ("Figure", "figure"),
            ("Value", "value"),
            ("Unit", "unit"),
            ("Key", "key"),
        ),
        summary_rows,
    ),
    "cases": ExportKind(
        "cases",
        "Cases",
        (
            ("Case number", "number"),
            ("Title", "title"),
            ("Matter", "matter"),
            ("Department", "department"),
            ("Status", "status"),
            ("Outcome", "outcome"),
            ("Opened", "opened"),
            ("Concluded on", "closed"),
            ("Applicant", "applicant"),
            ("Mobile", "mobile"),
        ),
        case_rows,
    ),
    "appointments": ExportKind(
        "appointments",
        "Appointments",
        (
            ("Appointment", "id"),
            ("Case number", "case"),
            ("Matter", "matter"),
            ("Department", "department"),
            ("Starts", "starts"),
            ("Status", "status"),
            ("Applicant", "applicant"),
            ("Contact", "contact"),
            ("Mobile", "mobile"),
            ("ID number or credit code", "identity"),
        ),
        appointment_rows,
    ),
}
"""Every kind of export, in the order of the ``all`` workbook's sheets."""


async def table(
    session: AsyncSession, kind: ExportKind, period: Period, principal: Principal, _: Translate
) -> tuple[list[str], list[list[Any]]]:
    """The export as a header row and value rows."""
    rows = await kind.rows(session, period, principal, _)
    header = [_(msgid) for msgid, _key in kind.columns]
    return header, [[row.get(key) for _m, key in kind.columns] for row in rows]


def to_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    """UTF-8 with a BOM, so Excel opens the Chinese headers right."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(sheets: list[tuple[str, list[str], list[list[Any]]]]) -> bytes:
    book = Workbook(write_only=True)
    for title, header, rows in sheets:
        sheet = book.create_sheet(title[:31])  # Excel's limit on sheet names
        sheet.append(header)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
