"""Demo data: staff of every role and an applicant, so a fresh install can be tried at once.

Idempotent: running it again changes nothing. Domains add their own seeds to ``SEEDS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Applicant, User
from server.accounts.service import add_user
from server.booking.demo import seed as booking_seed
from server.booking.models import Matter
from server.cases.models import Case
from server.letters.demo import seed_templates
from server.settings import Settings
from server.supervision.card_demo import seed_cards
from server.supervision.demo import seed as supervision_seed
from server.supervision.rating_demo import seed_demo_ratings

# (username, password, role, display name): printed on start in demo mode.
DEMO_STAFF = (
    ("admin", "yunkan-admin", "admin", "系统管理员"),
    ("supervisor", "yunkan-super", "supervisor", "督查 周敏"),
    ("inspector", "yunkan-demo", "inspector", "勘验员 李明"),
    ("inspector2", "yunkan-demo", "inspector", "勘验员 王芳"),
    ("expert", "yunkan-demo", "inspector", "专家 陈工"),
)
DEMO_APPLICANT_MOBILE = "13800138000"

Seed = Callable[[AsyncSession, Settings], Awaitable[None]]


async def _letter_templates(session: AsyncSession, settings: Settings) -> None:
    matters = {m.id: m.name for m in await session.scalars(select(Matter))}
    await seed_templates(session, matters)


async def _ratings(session: AsyncSession, settings: Settings) -> None:
    """Ratings of the demo's closed cases (keep this after the seeds that make cases)."""
    cases = list(await session.scalars(select(Case).where(Case.status == "closed")))
    head = await session.scalar(select(User).where(User.username == "inspector2"))
    await seed_demo_ratings(session, cases=cases, head=head, zone=settings.zone)


# The month of history first, then the cards over it, then ratings of the closed cases.
SEEDS: list[Seed] = [booking_seed, _letter_templates, supervision_seed, seed_cards, _ratings]


async def _seed_accounts(session: AsyncSession, settings: Settings) -> None:
    for username, password, role, name in DEMO_STAFF:
        if await session.scalar(select(User.id).where(User.username == username)) is None:
            await add_user(
                session, username=username, password=password, role=role, display_name=name
            )
    if (
        await session.scalar(select(Applicant.id).where(Applicant.mobile == DEMO_APPLICANT_MOBILE))
        is None
    ):
        session.add(Applicant(mobile=DEMO_APPLICANT_MOBILE, name="张三"))


async def seed(db: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    async with db.begin() as session:
        await _seed_accounts(session, settings)
    for domain_seed in SEEDS:
        async with db.begin() as session:
            await domain_seed(session, settings)


def logins_text(settings: Settings) -> str:
    lines = [f"Yunkan: {settings.effective_public_url}/", "Demo logins (staff: /login?tab=staff):"]
    lines += [f"  {role:<10} {username} / {password}" for username, password, role, _ in DEMO_STAFF]
    lines.append(
        f"  applicant  mobile {DEMO_APPLICANT_MOBILE}; the SMS code is in the outbox "
        f"({settings.effective_public_url}/staff/outbox, log in as staff)"
    )
    return "\n".join(lines)
