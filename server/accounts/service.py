"""Log-in flows shared by the JSON API and the HTML forms."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
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
from server.errors import AuthenticationError, ValidationError
from server.ratelimit import Limit, RateLimiter, check, enforce, fail
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
    device: str | None = None  # the ``yk_device`` cookie, if the browser sent one


def device_mark(secret_key: str, account: str) -> str:
    """What the ``yk_device`` cookie holds for a browser that logged in to ``account``
    (``staff:<username>`` or ``mobile:<number>``): proof that it was the owner's before."""
    mac = hmac.new(secret_key.encode(), f"login-device:{account}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def staff_account(username: str) -> str:
    return f"staff:{username.lower()}"


def mobile_account(mobile: str) -> str:
    return f"mobile:{mobile}"


async def _check_failures(
    ctx: LoginContext, per_ip: Limit, per_account: Limit, account: str
) -> None:
    held = [(per_ip, ctx.ip)]
    known = ctx.device and hmac.compare_digest(
        ctx.device, device_mark(ctx.settings.secret_key, account)
    )
    if not known:
        held.append((per_account, account))
    await check(ctx.limiter, *held)


async def login_staff(
    ctx: LoginContext, *, username: str, password: str
) -> tuple[Principal, str, dt.datetime]:
    settings, ip, user_agent = ctx.settings, ctx.ip, ctx.user_agent
    account = staff_account(username)
    await enforce(ctx.limiter, (limits.LOGIN_PER_IP, ip))
    await _check_failures(
        ctx, limits.LOGIN_FAILURES_PER_IP, limits.LOGIN_FAILURES_PER_USER, account
    )
    async with ctx.db.begin() as session:
        user = await session.scalar(select(User).where(User.username == username))
        ok = await verify_password(user.password_hash if user else None, password)
        if user is None or not ok or not user.active:
            await fail(
                ctx.limiter,
                (limits.LOGIN_FAILURES_PER_IP, ip),
                (limits.LOGIN_FAILURES_PER_USER, account),
            )
            raise InvalidCredentialsError()
        principal = principal_of_user(user)
        token, expires = await create_session(
            session, principal, hours=settings.session_hours, ip=ip, user_agent=user_agent
        )
    await ctx.limiter.clear(limits.LOGIN_FAILURES_PER_USER, account)
    return principal, token, expires


async def request_otp(ctx: LoginContext, *, mobile_raw: object) -> str:
    settings, ip = ctx.settings, ctx.ip
    mobile = normalise_mobile(mobile_raw)
    await enforce(
        ctx.limiter,
        (limits.OTP_PER_MOBILE_MINUTE, mobile),
        (limits.OTP_PER_MOBILE_DAY, mobile),
        (limits.OTP_PER_IP_HOUR, ip),
        (limits.OTP_PER_IP_DAY, ip),
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
    account = mobile_account(mobile)
    await enforce(ctx.limiter, (limits.OTP_VERIFY_PER_IP, ip))
    await _check_failures(
        ctx, limits.OTP_VERIFY_FAILURES_PER_IP, limits.OTP_VERIFY_FAILURES_PER_MOBILE, account
    )
    async with ctx.db() as session:
        try:
            applicant = await consume_code(session, mobile, code, secret_key=settings.secret_key)
        except AuthenticationError as exc:
            if isinstance(exc, OtpInvalidError):
                await session.commit()  # keep the failed-attempt count
            await fail(
                ctx.limiter,
                (limits.OTP_VERIFY_FAILURES_PER_IP, ip),
                (limits.OTP_VERIFY_FAILURES_PER_MOBILE, account),
            )
            raise
        principal = principal_of_applicant(applicant)
        token, expires = await create_session(
            session, principal, hours=settings.session_hours, ip=ip, user_agent=user_agent
        )
        await session.commit()
    await ctx.limiter.clear(limits.OTP_VERIFY_FAILURES_PER_MOBILE, account)
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
