"""The SMS texts about an appointment, each in the applicant's language and only that one.

The language is the one the applicant booked in (``appointments.lang``: the page's
language, or ``lang`` in the API body; zh-CN when staff book on someone's behalf and say
nothing). Message ids are English and the zh-CN strings live in ``sms.po`` like every
other translation, so a text is never bilingual and a new language is one catalog.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from server.booking import models as m
from server.i18n import LOCALES, Catalogs

WHEN = {"zh_CN": "%m月%d日 %H:%M", "en": "%d %b %H:%M"}


@cache
def _catalogs() -> Catalogs:
    return Catalogs()


def language(lang: str | None) -> str:
    return lang if lang in LOCALES else "zh_CN"


def _text(lang: str, message: str, **params: str) -> str:
    return _catalogs().gettext(language(lang), message, **params)


def _when(appt: m.Appointment, zone: ZoneInfo, lang: str) -> str:
    local: datetime = appt.starts_at.astimezone(zone)
    return local.strftime(WHEN[language(lang)])


def _about(
    appt: m.Appointment, matter: m.Matter, zone: ZoneInfo, message: str, **params: str
) -> str:
    """``message`` in the applicant's language, with the matter's name and the local time."""
    return _text(
        appt.lang, message, matter=matter.name, when=_when(appt, zone, appt.lang), **params
    )


def confirmation(
    appt: m.Appointment, matter: m.Matter, zone: ZoneInfo, join_url: str, manage_url: str
) -> str:
    return _about(
        appt,
        matter,
        zone,
        "[Yunkan] You have booked “%(matter)s” at %(when)s. Join the video window at the "
        "time: %(join)s To move or cancel: %(manage)s",
        join=join_url,
        manage=manage_url,
    )


def cancellation(
    appt: m.Appointment, matter: m.Matter, zone: ZoneInfo, rebook_url: str, *, by_staff: bool
) -> str:
    message = (
        "[Yunkan] Your booking of “%(matter)s” (%(when)s) was cancelled by the staff. "
        "To book again: %(url)s"
        if by_staff
        else "[Yunkan] Your booking of “%(matter)s” (%(when)s) is cancelled. To book again: %(url)s"
    )
    return _about(appt, matter, zone, message, url=rebook_url)


def closure(appt: m.Appointment, matter: m.Matter, zone: ZoneInfo, manage_url: str) -> str:
    return _about(
        appt,
        matter,
        zone,
        "[Yunkan] Sorry: your booking of “%(matter)s” (%(when)s) cannot be served because the "
        "window is closed then. Please choose another time: %(url)s",
        url=manage_url,
    )


def staff_change(appt: m.Appointment, matter: m.Matter, zone: ZoneInfo, manage_url: str) -> str:
    return _about(
        appt,
        matter,
        zone,
        "[Yunkan] Sorry: the officer for your booking of “%(matter)s” (%(when)s) is no longer "
        "available and nobody else is free then. Please choose another time: %(url)s",
        url=manage_url,
    )


def reminder(appt: m.Appointment, matter: m.Matter, zone: ZoneInfo, join_url: str) -> str:
    return _about(
        appt,
        matter,
        zone,
        "[Yunkan] Reminder: your booking of “%(matter)s” starts at %(when)s. Please join on "
        "time through: %(url)s",
        url=join_url,
    )
