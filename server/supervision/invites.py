"""Rating links sent by SMS: 一事一评 when a case closes, the re-rating when a 差评 is fixed.

A link is the booking links' signed token (:mod:`server.booking.links`) with its own
purposes, so a join or manage token cannot rate and a rating link cannot manage a
booking. The link names the case (or the ticket), never a person: whoever holds it rates
as the case's applicant, to whom alone it was sent — that is what makes a rating not
anonymous without asking the applicant to log in on the phone.

The procedure closes cases inside its callers' transactions without an app object, so
what building a link needs (secret key, public URL) rides on the app's session factory
(``session.info[LINKS]``, set by :func:`server.supervision.rating_pages.setup`), as the
checkpoint signer does; a bare session (a tool, a test) sends no invitation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Applicant
from server.booking import outbox
from server.booking.links import BadManageToken, make_token, read_token
from server.cases.models import Case
from server.cases.timeline import append_event
from server.db.types import utcnow

LINKS = "yunkan.rating_links"
LINK_DAYS = 60
"""Calendar days a rating link stays valid: longer than any rectification period."""
CASE = "rate-case"
FIX = "rate-fix"


@dataclass(frozen=True, slots=True)
class RatingLinks:
    secret_key: str
    base_url: str

    def token(self, purpose: str, target_id: int, now: dt.datetime) -> str:
        return make_token(
            self.secret_key, target_id, 0, now + dt.timedelta(days=LINK_DAYS), purpose
        )

    def url(self, purpose: str, target_id: int, now: dt.datetime) -> str:
        return f"{self.base_url}/rate/{self.token(purpose, target_id, now)}"


@dataclass(frozen=True, slots=True)
class LinkClaim:
    purpose: str  # CASE: target is a case id; FIX: a ticket id
    target_id: int


def links_of(session: AsyncSession) -> RatingLinks | None:
    value = session.info.get(LINKS)
    return value if isinstance(value, RatingLinks) else None


def read_link(secret_key: str, token: str, now: dt.datetime) -> LinkClaim | None:
    """The purpose and target of a rating link; None when forged, malformed or expired."""
    for purpose in (CASE, FIX):
        try:
            claim = read_token(secret_key, token, now, purpose)
        except BadManageToken:
            continue
        return LinkClaim(purpose, claim.appointment_id)
    return None


async def on_state_change(session: AsyncSession, case: Case, state: str) -> None:
    """The procedure's hook: a closed case sends its applicant the 一事一评 link."""
    links = links_of(session)
    if state != "closed" or links is None or case.applicant_id is None:
        return
    applicant = await session.get(Applicant, case.applicant_id)
    if applicant is None:
        return
    await tell(
        session,
        key=f"rating-invite:{case.id}",
        kind="rating_invite",
        mobile=applicant.mobile,
        body=(
            f"【云勘】您的办件{case.number}已办结。请对本次服务进行评价（好差评），"
            f"您的评价将用于改进服务：{links.url(CASE, case.id, utcnow())}"
        ),
    )
    await append_event(session, case, kind="rating.invited", data={"channel": "sms"})


async def tell(
    session: AsyncSession, *, key: str, kind: str, mobile: str | None, body: str
) -> None:
    """One SMS through the outbox, in this transaction; nothing without a number."""
    if mobile:
        await outbox.enqueue(session, key=key, kind=kind, mobile=mobile, body=body, now=utcnow())
