"""Typed application keys: every live object the app owns, in one place."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from recordings.blobs import BlobStore
from server.accounts.sms import SmsSender
from server.i18n import Catalogs
from server.metrics import Metrics
from server.openapi import ApiSpec
from server.ratelimit import RateLimiter
from server.settings import Settings
from signaling.bus import Bus

if TYPE_CHECKING:  # aiortc loads with the live domain, not with every import of the keys
    from recordings.orphans import UnfiledReport
    from signaling.relay import Relay

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
DB = web.AppKey("db", async_sessionmaker[AsyncSession])
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")
BUS = web.AppKey("bus", Bus)
BLOBS = web.AppKey("blobs", BlobStore)
LIMITER = web.AppKey("limiter", RateLimiter)
SMS = web.AppKey("sms", SmsSender)
CATALOGS = web.AppKey("catalogs", Catalogs)
API_SPEC = web.AppKey("api_spec", ApiSpec)
METRICS = web.AppKey("metrics", Metrics)
REGISTRY = web.AppKey("registry", CollectorRegistry)
UNFILED: web.AppKey[list[UnfiledReport]] = web.AppKey("unfiled_report")
"""[the last run] of the unfiled-files check (``server.evidence``), for ``/readyz``."""
RELAY: web.AppKey[Relay] = web.AppKey("live_relay")
"""The media relay; set by ``signaling.handlers``, read by evidence for snapshots."""
OUTBOX_WAKE = web.AppKey("outbox_wake", asyncio.Event)
"""Set after a commit that wrote booking SMS: the scheduler loop delivers them now instead
of at its next interval (``server.booking.scheduler``); absent without background tasks."""
