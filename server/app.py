"""The application factory: ``create_app(settings)`` is used by ``yunkan serve`` and by
every test. Each live resource is a ``cleanup_ctx``: set up in order, torn down in reverse."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from recordings.blobs import BlobStore
from server import booking, evidence, letters, ops, pages
from server.accounts import handlers as account_handlers
from server.accounts import unlock as account_unlock
from server.accounts.session_cache import session_cache_ctx
from server.accounts.sms import OutboxSender
from server.appkeys import (
    API_SPEC,
    BLOBS,
    BUS,
    CATALOGS,
    DB,
    ENGINE,
    LIMITER,
    METRICS,
    REDIS,
    SETTINGS,
    SMS,
)
from server.cases import handlers as case_handlers
from server.cases import pages as case_pages
from server.db.engine import create_engine, session_factory
from server.http.middlewares import MIDDLEWARES
from server.http.templating import template_context
from server.i18n import Catalogs
from server.metrics import Metrics
from server.openapi import ApiSpec
from server.ratelimit import MemoryRateLimiter, RedisRateLimiter
from server.settings import Settings
from server.supervision import card_pages as deadline_pages
from server.supervision import dashboard_pages as supervision_pages
from server.supervision import rating_pages
from signaling import handlers as live_handlers
from signaling import precall
from signaling.bus import InProcessBus, RedisBus

log = logging.getLogger("yunkan.app")
WEB = Path(__file__).resolve().parent.parent / "web"

# Domains plug in here: each exposes ``setup(app)`` that adds routes, API docs and contexts.
DOMAINS: list[Callable[[web.Application], None]] = [
    booking.setup,
    case_handlers.setup,
    case_pages.setup,
    evidence.setup,
    letters.setup,
    live_handlers.setup,
    precall.setup,  # after live: the pre-call test uses its relay
    rating_pages.setup,  # after letters: it adds to the session factory's info
    deadline_pages.setup,
    supervision_pages.setup,
]


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS])
    app[ENGINE] = engine
    app[DB] = session_factory(engine)
    yield
    await engine.dispose()


def redis_client(url: str) -> Redis:
    """A client that retries a dead pooled socket (after a Redis restart) a few times within
    about a second, then raises, so a request answers 503 quickly while Redis is down
    (redis-py's default retries ten times with up to a second between tries)."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.redis_url:
        redis = redis_client(settings.redis_url)
        app[REDIS] = redis
        app[BUS] = RedisBus(redis, settings.redis_prefix)
        app[LIMITER] = RedisRateLimiter(redis, settings.redis_prefix)
    else:
        app[REDIS] = None
        app[BUS] = InProcessBus()
        app[LIMITER] = MemoryRateLimiter()
    yield
    await app[BUS].close()
    client = app[REDIS]
    if client is not None:
        await client.aclose()


async def _services(app: web.Application) -> AsyncIterator[None]:
    app[SMS] = OutboxSender(app[DB])
    yield


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.client_max_size)
    app[SETTINGS] = settings
    app[CATALOGS] = Catalogs()
    app[METRICS] = Metrics.create()
    app[BLOBS] = BlobStore(settings.blobs_dir)
    app[API_SPEC] = ApiSpec()

    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(WEB / "templates"),
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        context_processors=[template_context],
        undefined=jinja2.ChainableUndefined,
    )
    env.globals["static"] = lambda path: f"/static/{path}"

    app.cleanup_ctx.extend([_database, _redis, _services, session_cache_ctx])

    app.router.add_routes(ops.routes)
    app.router.add_routes(account_handlers.routes)
    app[API_SPEC].include(account_handlers.routes)
    app.router.add_routes(account_unlock.routes)
    app[API_SPEC].include(account_unlock.routes)
    app.router.add_routes(pages.routes)
    for setup in DOMAINS:
        setup(app)
    app.router.add_static("/static/", WEB / "static", name="static", append_version=True)
    return app
