"""Login sessions: one random token serves as the cookie and as the bearer token."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts import committed, session_cache
from server.accounts.models import Applicant, AuthSession, User
from server.accounts.principal import Principal
from server.accounts.session_cache import SessionCache
from server.db.types import utcnow

SESSION_COOKIE = "yk_session"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_session(
    session: AsyncSession,
    principal: Principal,
    *,
    hours: int,
    ip: str | None,
    user_agent: str | None,
) -> tuple[str, dt.datetime]:
    token = secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(hours=hours)
    session.add(
        AuthSession(
            token_hash=token_digest(token),
            principal_kind=principal.kind,
            principal_id=principal.id,
            expires_at=expires,
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    await session.flush()
    return token, expires


def principal_of_user(user: User) -> Principal:
    return Principal("staff", user.id, user.role, user.display_name, user.mobile)


def principal_of_applicant(applicant: Applicant) -> Principal:
    return Principal("applicant", applicant.id, "applicant", applicant.name or "", applicant.mobile)


async def principal_for_token(
    session: AsyncSession, token: str, cache: SessionCache | None = None
) -> Principal | None:
    """Who holds ``token``; from ``cache`` when it knows (no statement at all), else from
    the database, and a valid answer is then cached (see :mod:`session_cache`)."""
    if not token or len(token) > 200:
        return None
    digest = token_digest(token)
    if cache is not None:
        known = cache.get(digest)
        if known is not None:
            return known
        generation = cache.generation
    row = await session.scalar(
        select(AuthSession).where(
            AuthSession.token_hash == digest,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > utcnow(),
        )
    )
    if row is None:
        return None
    principal: Principal | None
    if row.principal_kind == "staff":
        user = await session.get(User, row.principal_id)
        principal = principal_of_user(user) if user and user.active else None
    else:
        applicant = await session.get(Applicant, row.principal_id)
        principal = principal_of_applicant(applicant) if applicant else None
    if cache is not None and principal is not None:
        cache.put(digest, principal, row.expires_at, generation)
    return principal


async def revoke(session: AsyncSession, token: str) -> None:
    """End the session; every process's cache forgets it after the commit."""
    committed.note(session, session_cache.TOPIC, token_digest(token))
    await session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == token_digest(token), AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
