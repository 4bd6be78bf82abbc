""" "Video now" API and the live streams (Server-Sent Events fed by the bus).

SSE rather than WebSocket: the streams only flow server → browser, survive proxies as
plain HTTP, and ``EventSource`` reconnects by itself on a flaky 4G link. Each stream
subscribes to a bus channel, so an update published by any process reaches a browser
connected to any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server.appkeys import BUS, DB, SETTINGS
from server.booking import models as m
from server.booking import queue, schemas
from server.booking.handlers import STAFF_CHANNEL, publish
from server.booking.validation import validate_applicant
from server.errors import ValidationError
from server.http.requests import limit_per_ip, optional_principal, require_staff
from server.http.responses import json_response
from server.http.sse import RESYNC_EVENT, EventStream, resumed
from server.openapi import ApiRoutes, read_json
from server.ratelimit import Limit

routes = ApiRoutes(tag="queue")
KEEPALIVE_SECONDS = 15.0
# Walk-in joins are anonymous writes: a few per address (a service-centre kiosk included),
# so one client cannot fill a queue. Ticket reads are the holder polling or reconnecting.
JOIN_PER_IP = Limit("queue-join-ip", 10, 600)
TICKET_PER_IP = Limit("queue-ticket-ip", 120, 60)


def queue_channel(matter_id: int) -> str:
    return f"booking.queue.{matter_id}"


def ticket_dict(
    ticket: m.QueueTicket,
    pos: queue.Position,
    *,
    secret: bool,
    join_url: str | None = None,
) -> dict[str, Any]:
    """A ticket as its holder sees it; ``join_url`` leads into the video once served.

    Only requests that name the ticket token get here, so the join link reaches the
    holder alone; the bus carries positions, never links.
    """
    out: dict[str, Any] = {
        "id": ticket.id,
        "matter_id": ticket.matter_id,
        "status": pos.status,
        "position": pos.position,
        "eta_minutes": pos.eta_minutes,
        "case_id": ticket.case_id,
        "join_url": join_url,
    }
    if secret:
        out["ticket"] = ticket.token
    return out


async def announce(request: web.Request, matter_id: int) -> None:
    """Push every waiting ticket's new position to whoever listens, on any process."""
    async with request.app[DB]() as session:
        positions = await queue.positions(session, matter_id)
    await publish(
        request,
        queue_channel(matter_id),
        {
            "type": "positions",
            "positions": [
                {"id": p.ticket_id, "position": p.position, "eta_minutes": p.eta_minutes}
                for p in positions
            ],
        },
    )
    await publish(request, STAFF_CHANNEL, {"type": "queue", "matter_id": matter_id})


@routes.post(
    "/api/v1/queue",
    summary='Join the "video now" queue of a matter; keep the returned ticket token',
    request=schemas.QUEUE_JOIN,
    responses={201: schemas.TICKET_OUT, 404: "error", 409: "error", 422: "error", 429: "error"},
    auth="none",
)
async def join_queue(request: web.Request) -> web.Response:
    await limit_per_ip(request, JOIN_PER_IP)
    body = await read_json(request, schemas.QUEUE_JOIN)
    info, fields = validate_applicant(body["applicant"])
    if info is None:
        raise ValidationError(fields=fields)
    principal = optional_principal(request)
    account = principal.id if principal is not None and principal.kind == "applicant" else None
    async with request.app[DB]() as session, session.begin():
        ticket = await queue.join(
            session,
            body["matter_id"],
            info,
            applicant_account_id=account,
            zone=request.app[SETTINGS].zone,
        )
    async with request.app[DB]() as session:
        pos = await queue.position_of(session, ticket)
    await announce(request, ticket.matter_id)
    return json_response(ticket_dict(ticket, pos, secret=True), status=201)


@routes.get(
    "/api/v1/queue/{ticket}",
    summary="A ticket's position and estimated wait",
    responses={200: schemas.TICKET_OUT, 404: "error", 429: "error"},
    auth="none",
)
async def get_ticket(request: web.Request) -> web.Response:
    await limit_per_ip(request, TICKET_PER_IP)
    async with request.app[DB]() as session:
        ticket = await queue.get_ticket(session, request.match_info["ticket"])
        pos = await queue.position_of(session, ticket)
    link = queue.applicant_join_url(request.app[SETTINGS], ticket)
    return json_response(ticket_dict(ticket, pos, secret=False, join_url=link))


@routes.post(
    "/api/v1/queue/{ticket}/leave",
    summary="Leave the queue",
    responses={200: schemas.TICKET_OUT, 404: "error", 429: "error"},
    auth="none",
)
async def leave_queue(request: web.Request) -> web.Response:
    await limit_per_ip(request, TICKET_PER_IP)
    async with request.app[DB]() as session, session.begin():
        ticket = await queue.get_ticket(session, request.match_info["ticket"])
        await queue.leave(session, ticket)
        await session.refresh(ticket)
        pos = await queue.position_of(session, ticket)
    await announce(request, ticket.matter_id)
    return json_response(ticket_dict(ticket, pos, secret=False))


@routes.post(
    "/api/v1/queue/next",
    summary="Staff: take the next applicant (due booked appointments before walk-ins)",
    responses={200: schemas.SERVED_OUT, 403: "error"},
    auth="staff",
)
async def take_next(request: web.Request) -> web.Response:
    staff = require_staff(request)
    async with request.app[DB]() as session, session.begin():
        served = await queue.take_next(session, staff, zone=request.app[SETTINGS].zone)
    if served is None:
        return json_response({"kind": "none", "id": None, "case_id": None, "console_url": None})
    await announce(request, served.matter_id)
    return json_response(
        {
            "kind": served.kind,
            "id": served.id,
            "case_id": served.case_id,
            "console_url": queue.console_url(request.app[SETTINGS], served, staff),
        }
    )


STREAMS = web.AppKey["set[asyncio.Task[Any]]"]("booking_streams")


async def close_streams(app: web.Application) -> None:
    """``on_shutdown``: end open event streams now rather than after the shutdown timeout."""
    for task in list(app.get(STREAMS, ())):
        task.cancel()


Relay = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


async def _stream(
    request: web.Request,
    channel: str,
    first: dict[str, Any],
    relay: Relay,
) -> web.StreamResponse:
    """Send ``first``, then whatever ``relay`` makes of each bus message (None ends it).
    The bus's RESYNC marker reaches ``relay`` like any message; each relay answers it
    with the current state (see ``server.http.sse``).

    The pending ``__anext__`` is kept across keep-alive timeouts instead of being
    cancelled: cancelling it would close the bus subscription's generator and silently
    end the stream after the first quiet period.
    """
    events = EventStream(request)
    response = await events.open()
    streams = request.app[STREAMS]
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    pending: asyncio.Future[dict[str, Any]] | None = None
    try:
        await events.send(first)
        async with request.app[BUS].subscribe(channel) as messages:
            iterator = messages.__aiter__()
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
                if not done:
                    await events.keepalive()
                    continue
                try:
                    message = pending.result()
                except StopAsyncIteration:
                    break
                pending = None
                out = await relay(message)
                if out is None:
                    break
                await events.send(out)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the browser went away, or the server is shutting down
    finally:
        streams.discard(task)
        if pending is not None:
            pending.cancel()
    return response


@routes.get(
    "/api/v1/queue/{ticket}/events",
    summary="Server-Sent Events: the ticket's position whenever the queue moves",
    responses={200: "text/event-stream", 404: "error", 429: "error"},
    auth="none",
)
async def ticket_events(request: web.Request) -> web.StreamResponse:
    await limit_per_ip(request, TICKET_PER_IP)
    async with request.app[DB]() as session:
        ticket = await queue.get_ticket(session, request.match_info["ticket"])
        pos = await queue.position_of(session, ticket)
    settings = request.app[SETTINGS]
    state = {"ticket": ticket, "done": pos.status != "waiting"}

    async def relay(message: dict[str, Any]) -> dict[str, Any] | None:
        if state["done"]:
            return None
        current: m.QueueTicket = state["ticket"]  # type: ignore[assignment]
        mine = [p for p in message.get("positions", []) if p.get("id") == current.id]
        if mine:
            new = queue.Position(current.id, "waiting", mine[0]["position"], mine[0]["eta_minutes"])
        else:  # not waiting any more: read what happened, tell, then end the stream
            async with request.app[DB]() as session:
                fresh = await session.get(m.QueueTicket, current.id)
                assert fresh is not None
                new = await queue.position_of(session, fresh)
            state["ticket"] = current = fresh
            state["done"] = new.status != "waiting"
        link = queue.applicant_join_url(settings, current)
        return ticket_dict(current, new, secret=False, join_url=link)

    first = ticket_dict(
        ticket, pos, secret=False, join_url=queue.applicant_join_url(settings, ticket)
    )
    return await _stream(request, queue_channel(ticket.matter_id), first, relay)


async def staff_events(request: web.Request) -> web.StreamResponse:
    """Staff day view stream: every booking change and queue move, from any process."""
    require_staff(request)

    async def relay(message: dict[str, Any]) -> dict[str, Any] | None:
        return message

    first = RESYNC_EVENT if resumed(request) else {"type": "hello"}  # missed updates: reload
    return await _stream(request, STAFF_CHANNEL, first, relay)
