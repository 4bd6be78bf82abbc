"""Operations endpoints: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from server.appkeys import API_SPEC, ENGINE, METRICS, REDIS, SETTINGS, UNFILED
from server.errors import AuthenticationError, PermissionDeniedError
from server.http.middlewares import bearer_token
from server.http.responses import json_response

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(3):
            async with request.app[ENGINE].connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is for operators
        checks["database"] = f"error: {type(exc).__name__}"
    redis = request.app[REDIS]
    if redis is None:
        checks["redis"] = "not configured"
    else:
        try:
            async with asyncio.timeout(3):
                await redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v in ("ok", "not configured") for v in checks.values())
    body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": checks}
    # The last unfiled-files check (server.evidence): a count and when, not the paths
    # (this endpoint is public; the paths are in the log). It does not affect readiness.
    for report in request.app.get(UNFILED, []):
        body["unfiled"] = {"files": report.count, "checked_at": report.checked_at.isoformat()}
    return json_response(body, status=200 if ready else 503)


_LOOPBACK = ("127.0.0.1", "::1")


def _may_scrape(request: web.Request) -> None:
    """With ``YUNKAN_METRICS_TOKEN`` the scraper sends it as a bearer token. Without one,
    only a scraper on this host connecting directly may read: a request that came through
    the reverse proxy (which also connects from loopback) carries X-Forwarded-For."""
    token = request.app[SETTINGS].metrics_token
    if token:
        given = bearer_token(request) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise MetricsTokenError()
        return
    proxied = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if request.remote not in _LOOPBACK or proxied:
        raise MetricsForbiddenError()


class MetricsTokenError(AuthenticationError):
    code = "metrics_token_required"
    message = "Send the metrics token as a bearer token"


class MetricsForbiddenError(PermissionDeniedError):
    code = "metrics_forbidden"
    message = "Metrics are served to this host only; set YUNKAN_METRICS_TOKEN to scrape them"


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    _may_scrape(request)
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[API_SPEC].document())
