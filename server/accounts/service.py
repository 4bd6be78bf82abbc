"""Log-in flows shared by the JSON API and the HTML forms."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts import limits
from server.accounts.errors import InvalidCredentialsError, OtpInvalidError, UserExistsError
from server.accounts.models import STAFF_ROLES, User
from server.accounts.otp import consume_code, issue_code, normalise_mobile
from server.accounts.passwords import hash_password, verify_password
from server.accounts.principal import Principal
from server.accounts.sessions import create_session, principal_of_applicant, principal_of_user
from server.accounts.sms import SmsSender
from server.errors import ValidationError
from server.ratelimit import RateLimiter, enforce
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class LoginContext:
    """What every log-in flow needs from the app and the request."""

    db: async_sessionmaker[AsyncSession]
    limiter: RateLimiter
    sms: SmsSender
    settings: Settings
    ip: str
    user_agent: str | None


async def login_staff(
    ctx: LoginContext, *, username: str, password: str
) -> tuple[Principal, str, dt.datetime]:
    settings, ip, user_agent = ctx.settings, ctx.ip, ctx.user_agent
    await enforce(ctx.limiter, (limits.LOGIN_PER_USER, username.lower()), (limits.LOGIN_PER_IP, ip))
    async with ctx.db.begin() as session:
        user = await session.scalar(select(User).where(User.username == username))
        ok = await verify_password(user.password_hash if user else None, password)
        if user is None or not ok or not user.active:
            raise InvalidCredentialsError()
        principal = principal_of_user(user)
        token, expires = await create_session(
            session, principal, hours=settings.session_hours, ip=ip, user_agent=user_agent
        )
    return principal, token, expires


async def request_otp(ctx: LoginContext, *, mobile_raw: object) -> str:
    settings, ip = ctx.settings, ctx.ip
    mobile = normalise_mobile(mobile_raw)
    await enforce(
        ctx.limiter,
        (limits.OTP_PER_MOBILE_MINUTE, mobile),
        (limits.OTP_PER_MOBILE_DAY, mobile),
        (limits.OTP_PER_IP_HOUR, ip),
    )
    async with ctx.db.begin() as session:
        code = await issue_code(
            session, mobile, secret_key=settings.secret_key, ttl=settings.otp_ttl_seconds
        )
    minutes = settings.otp_ttl_seconds // 60
    await ctx.sms.send(
        mobile,
        f"【云勘】您的验证码是 {code}，{minutes} 分钟内有效。请勿告诉他人。"
        f" Your Yunkan code is {code}, valid for {minutes} minutes.",
        kind="otp",
    )
    return mobile


async def verify_otp(
    ctx: LoginContext, *, mobile_raw: object, code: str
) -> tuple[Principal, str, dt.datetime]:
    settings, ip, user_agent = ctx.settings, ctx.ip, ctx.user_agent
    mobile = normalise_mobile(mobile_raw)
    await enforce(ctx.limiter, (limits.OTP_VERIFY_PER_MOBILE, mobile))
    async with ctx.db() as session:
        try:
            applicant = await consume_code(session, mobile, code, secret_key=settings.secret_key)
        except OtpInvalidError:
            await session.commit()  # keep the failed-attempt count
            raise
        principal = principal_of_applicant(applicant)
        token, expires = await create_session(
            session, principal, hours=settings.session_hours, ip=ip, user_agent=user_agent
        )
        await session.commit()
    return principal, token, expires


async def add_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
) -> User:
    if role not in STAFF_ROLES:
        raise ValidationError(fields={"role": "This value is not one of the allowed choices"})
    if len(password) < 8:
        raise ValidationError(fields={"password": "Use at least 8 characters"})
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserExistsError()
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=hash_password(password),
    )
    session.add(user)
    await session.flush()
    return user
