"""What the applicant takes away: an ``.ics`` calendar invite and a QR code of the join link."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import qrcode
import qrcode.image.svg
from icalendar import Calendar, Event


def ics_invite(
    *,
    uid: str,
    title: str,
    start: datetime,
    end: datetime,
    join_url: str,
    description: str = "",
    location: str | None = None,
    sequence: int = 0,
    cancelled: bool = False,
) -> bytes:
    """One VEVENT; ``sequence`` (the appointment's version) makes a rescheduled invite
    replace the old one in calendar apps instead of adding a second event."""
    cal = Calendar()
    cal.add("prodid", "-//Yunkan//booking//ZH")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = Event()
    event.add("uid", uid)
    event.add("summary", title)
    event.add("dtstart", start.astimezone(UTC))
    event.add("dtend", end.astimezone(UTC))
    event.add("dtstamp", datetime.now(UTC))
    event.add("sequence", sequence)
    event.add("url", join_url)
    event.add("description", f"{description}\n{join_url}".strip())
    event.add("location", location or join_url)
    if cancelled:
        event.add("status", "CANCELLED")
    cal.add_component(event)
    return bytes(cal.to_ical())


def qr_svg(data: str) -> str:
    """A standalone SVG (scales on any phone screen, no Pillow round-trip)."""
    img = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buf = io.BytesIO()
    img.save(buf)
    return buf.getvalue().decode()
