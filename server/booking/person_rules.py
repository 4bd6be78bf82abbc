"""Rules per person, configured per matter: how many open bookings one applicant may
hold, and how no-shows block booking for a while.

A seat someone books and does not use is a seat another citizen could not get, so a
matter may cap the open bookings of one person (``max_open_bookings``) and close booking
for ``no_show_block_days`` to whoever missed ``no_show_limit`` appointments (of any
matter) within ``no_show_window_days``; the refusal says why and until when. 0 turns a
rule off. The person is the identity key (resident ID or credit code), as for the
one-per-slot index. Overlapping appointments of one person are refused by the claimed
minutes (:mod:`claims`, ``person:<key>``), which the database keeps across nodes.

The counts are read under a per-person lock so that the cap also holds when one person's
bookings race on several nodes: on PostgreSQL a transaction-scoped advisory lock on the
identity key (``pg_advisory_xact_lock``), taken after the sold-out read (a refused
attempt takes no lock) and held to commit, so a second booking of the same person waits
and then counts the first; bookings of different people never wait for each other. On
SQLite writers are serialised (a racing writer whose read is stale fails rather than
passing). The no-show count is as of the lock: a no-show marked while a booking is being
made counts from the next booking on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking import errors
from server.booking import models as m

OPEN = ("booked", "checked_in")


async def lock_person(session: AsyncSession, identity_key: str) -> None:
    """Serialise the bookings of one person until commit (PostgreSQL; see above)."""
    if session.get_bind().dialect.name == "postgresql":
        key = func.hashtextextended(f"booking.person:{identity_key}", 0)
        await session.execute(select(func.pg_advisory_xact_lock(key)))


async def check(
    session: AsyncSession, matter: m.Matter, identity_key: str, now: datetime, zone: ZoneInfo
) -> None:
    """Raise :class:`errors.BookingBlockedError` or :class:`errors.BookingLimitError`;
    the cap is read under :func:`lock_person`."""
    if matter.max_open_bookings > 0:
        await lock_person(session, identity_key)
    policy = matter.no_show_limit > 0 and matter.no_show_block_days > 0
    cap = matter.max_open_bookings > 0
    if not policy and not cap:
        return
    # One read of the person's relevant appointments serves both rules.
    since = now - timedelta(days=matter.no_show_window_days)
    rules: list[ColumnElement[bool]] = []
    if policy:
        rules.append((m.Appointment.status == "no_show") & (m.Appointment.starts_at >= since))
    if cap:
        rules.append(
            (m.Appointment.matter_id == matter.id)
            & m.Appointment.status.in_(OPEN)
            & (m.Appointment.ends_at > now)
        )
    rows = (
        await session.execute(
            select(m.Appointment.status, m.Appointment.starts_at).where(
                m.Appointment.identity_key == identity_key, or_(*rules)
            )
        )
    ).all()
    if policy:
        missed = sorted((at for status, at in rows if status == "no_show"), reverse=True)
        if len(missed) >= matter.no_show_limit:
            # Blocked from the no-show that reached the limit; later ones do not extend it
            # beyond the policy's own length from the latest.
            until = missed[0] + timedelta(days=matter.no_show_block_days)
            if now < until:
                raise errors.BookingBlockedError(
                    len(missed),
                    matter.no_show_window_days,
                    until.astimezone(zone).strftime("%Y-%m-%d"),
                )
    if cap:
        held = sum(1 for status, _ in rows if status in OPEN)
        if held >= matter.max_open_bookings:
            raise errors.BookingLimitError(matter.max_open_bookings)
