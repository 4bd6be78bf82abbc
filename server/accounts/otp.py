"""SMS one-time codes for applicants: 6 digits, hashed at rest, expiring, single-use."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.errors import (
    InvalidMobileError,
    OtpExpiredError,
    OtpInvalidError,
    OtpTooManyAttemptsError,
    OtpUsedError,
)
from server.accounts.models import Applicant, OtpCode
from server.db.types import utcnow

MOBILE = re.compile(r"^1[3-9]\d{9}$")
MAX_ATTEMPTS = 5


def normalise_mobile(raw: object) -> str:
    """Accept ``13800138000``, ``+86 138-0013-8000`` and similar; refuse anything else."""
    if not isinstance(raw, str):
        raise InvalidMobileError()
    digits = re.sub(r"[\s\-()]", "", raw)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not MOBILE.match(digits):
        raise InvalidMobileError()
    return digits


def _digest(secret_key: str, mobile: str, code: str) -> str:
    return hmac.new(secret_key.encode(), f"{mobile}:{code}".encode(), hashlib.sha256).hexdigest()


async def issue_code(session: AsyncSession, mobile: str, *, secret_key: str, ttl: int) -> str:
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        OtpCode(
            mobile=mobile,
            code_hash=_digest(secret_key, mobile, code),
            expires_at=utcnow() + dt.timedelta(seconds=ttl),
        )
    )
    await session.flush()
    return code


async def consume_code(
    session: AsyncSession, mobile: str, code: str, *, secret_key: str
) -> Applicant:
    """Check the newest code for ``mobile`` and use it up; return (or create) the applicant.

    The code is marked used by a conditional UPDATE, so two concurrent requests with the
    same code cannot both log in.
    """
    latest = await session.scalar(
        select(OtpCode).where(OtpCode.mobile == mobile).order_by(OtpCode.id.desc()).limit(1)
    )
    now = utcnow()
    if latest is None:
        raise OtpInvalidError()
    if latest.used_at is not None:
        # A reused code is named as such, whether or not it is typed right.
        if hmac.compare_digest(latest.code_hash, _digest(secret_key, mobile, code)):
            raise OtpUsedError()
        raise OtpInvalidError()
    if latest.attempts >= MAX_ATTEMPTS:
        raise OtpTooManyAttemptsError()
    if latest.expires_at <= now:
        raise OtpExpiredError()
    if not (code.isdigit() and len(code) == 6) or not hmac.compare_digest(
        latest.code_hash, _digest(secret_key, mobile, code)
    ):
        await session.execute(
            update(OtpCode).where(OtpCode.id == latest.id).values(attempts=OtpCode.attempts + 1)
        )
        raise OtpInvalidError()
    claimed = await session.execute(
        update(OtpCode)
        .where(OtpCode.id == latest.id, OtpCode.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise OtpUsedError()
    applicant = await session.scalar(select(Applicant).where(Applicant.mobile == mobile))
    if applicant is None:
        applicant = Applicant(mobile=mobile)
        session.add(applicant)
    applicant.last_login_at = now
    await session.flush()
    return applicant
