"""Booking video windows: matters, schedules, slots, appointments, reminders, the live queue.

``setup(app)`` is what the app factory calls; everything else is reached through it.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    from server.appkeys import API_SPEC
    from server.booking import admin, handlers, pages, queue_handlers
    from server.booking.numbering import case_numbers_ctx
    from server.booking.queue_handlers import STREAMS, close_streams
    from server.booking.scheduler import scheduler_ctx
    from server.booking.soldout import sold_out_ctx

    for table in (handlers.routes, queue_handlers.routes, admin.routes):
        app.router.add_routes(table)
        app[API_SPEC].include(table)
    pages.setup_pages(app)
    app.cleanup_ctx.extend([sold_out_ctx, case_numbers_ctx, scheduler_ctx])
    app[STREAMS] = set()
    app.on_shutdown.append(close_streams)
