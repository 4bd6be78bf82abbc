"""The dashboard's sections and exports of service quality: 好差评 ratings and 电子监察 cards.

Each section reads the same figures the domain gives everyone (``rating_figures``,
``card_figures``), so the page, the summary export and the domain's own tests agree; the
export kinds write the domain's own rows (``rating_rows``, ``card_rows``), personal data
already masked there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.supervision import deadlines as d
from server.supervision.cards import CARD_COLUMNS, card_figures, card_rows
from server.supervision.charts import Series, bar_chart
from server.supervision.dashboard import Chart, Figure, Period, Section, Translate, link
from server.supervision.exports import ExportKind
from server.supervision.rating_models import LEVEL_KEYS
from server.supervision.ratings import LABELS, rating_figures, rating_rows

TICKETS = "/staff/rating-tickets"
CASES = "/staff/cases"
COLOURS = {d.WARNING: "#bf8700", d.YELLOW: "#d4a72c", d.RED: "#cf222e"}


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


async def rating_section(session: AsyncSession, period: Period, _: Translate) -> Section:
    start, end = period.bounds()
    figures = await rating_figures(
        session,
        start=start,
        end=end,
        department_id=period.department_id,
        today=period.today,
        zone=period.zone,
    )
    overall = figures["overall"]
    section = Section("ratings", _("Ratings"))
    section.figures = [
        Figure("ratings", _("Ratings given"), overall["total"], link=TICKETS),
        Figure("good_rate", _("Good rating rate"), _percent(overall["good_rate"]), "%"),
        Figure("bad", _("Bad ratings"), overall["bad"], link=TICKETS),
        Figure("open_tickets", _("Open complaint tickets"), overall["open_tickets"], link=TICKETS),
        Figure(
            "follow_up_rate", _("Follow-up call rate"), _percent(overall["follow_up_rate"]), "%"
        ),
        Figure(
            "rectified_on_time",
            _("Rectified on time"),
            _percent(overall["on_time_rate"]),
            "%",
            link=TICKETS,
        ),
    ]
    levels = overall["levels"]
    departments = [g for g in figures["by_department"] if g["total"]]
    section.charts = [
        Chart(
            "rating_levels",
            _("Ratings by level"),
            bar_chart(
                [_(LABELS[k]) for k in LEVEL_KEYS],
                [Series(_("Ratings"), [levels[k] for k in LEVEL_KEYS])],
                links=[
                    TICKETS if k in ("dissatisfied", "very_dissatisfied") else None
                    for k in LEVEL_KEYS
                ],
                title=_("Ratings by level"),
            ),
            TICKETS,
        ),
        Chart(
            "rating_departments",
            _("Good and bad ratings by department"),
            bar_chart(
                [g["name"] or "—" for g in departments],
                [
                    Series(_("Good"), [g["good"] for g in departments], "#1a7f37"),
                    Series(_("Bad"), [g["bad"] for g in departments], "#cf222e"),
                ],
                links=[TICKETS for _g in departments],
                stacked=True,
                title=_("Good and bad ratings by department"),
            ),
            TICKETS,
        ),
    ]
    return section


def _department_cases(period: Period, department_id: int | None) -> str:
    if not department_id:
        return link(CASES, state="all", **period.query())
    return link(CASES, state="all", **{**period.query(), "department": department_id})


async def card_section(session: AsyncSession, period: Period, _: Translate) -> Section:
    start, end = period.bounds()
    figures = await card_figures(session, start=start, end=end, department_id=period.department_id)
    by_colour = figures["by_colour"]
    cases = link(CASES, state="all", **period.query())
    section = Section("cards", _("Deadline supervision"))
    section.figures = [
        Figure(f"cards_{c}", _(d.COLOUR_LABELS[c]), by_colour.get(c, 0), link=cases)
        for c in (d.WARNING, d.YELLOW, d.RED)
    ] + [
        Figure("closed_on_time", _("Closed without a card"), _percent(figures["on_time_rate"]), "%")
    ]
    colours = (d.WARNING, d.YELLOW, d.RED)
    for key, title, groups in (
        ("cards_departments", _("Cards by department"), figures["by_department"]),
        ("cards_officers", _("Cards by officer"), figures["by_officer"][:12]),
    ):
        section.charts.append(
            Chart(
                key,
                title,
                bar_chart(
                    [g["name"] or "—" for g in groups],
                    [
                        Series(_(d.COLOUR_LABELS[c]), [g[c] for g in groups], COLOURS[c])
                        for c in colours
                    ],
                    links=[_department_cases(period, g.get("department_id")) for g in groups],
                    stacked=True,
                    title=title,
                ),
                cases,
            )
        )
    return section


async def _ratings(
    session: AsyncSession, period: Period, principal: Principal, _: Translate
) -> list[dict[str, Any]]:
    start, end = period.bounds()
    return await rating_rows(
        session, start=start, end=end, department_id=period.department_id, zone=period.zone
    )


async def _cards(
    session: AsyncSession, period: Period, principal: Principal, _: Translate
) -> list[dict[str, Any]]:
    start, end = period.bounds()
    rows = await card_rows(session, start=start, end=end, department_id=period.department_id)
    return [
        {
            **row,
            "step": _(row["step"]),
            "colour": _(row["colour"]),
            "issued_at": row["issued_at"].astimezone(period.zone).strftime("%Y-%m-%d %H:%M"),
        }
        for row in rows
    ]


SECTIONS = [rating_section, card_section]
EXPORTS = {
    "ratings": ExportKind(
        "ratings",
        "Ratings",
        (
            ("Case number", "case"),
            ("Rated at", "rated_at"),
            ("Rating", "level_label"),
            ("Tags", "tags"),
            ("Comment", "comment"),
            ("Matter", "matter"),
            ("Department", "department"),
            ("Officer", "officer"),
            ("Mobile", "applicant_mobile"),
            ("Ticket", "ticket_status"),
            ("Ticket deadline", "ticket_deadline"),
            ("Followed up", "followed_up"),
            ("Fixed on time", "fixed_on_time"),
        ),
        _ratings,
    ),
    "cards": ExportKind("cards", "Deadline cards", tuple((m, k) for k, m in CARD_COLUMNS), _cards),
}
