"""Server-Sent Events framing: event ids, the reconnect delay, and resuming.

Our streams carry *state* (a ticket's position, "the day view changed"), not deltas, and
the bus keeps no history. So an event id is a per-stream counter that lets a browser say
it is coming back (``EventSource`` sends ``Last-Event-ID`` by itself when it reconnects),
and the answer to a resume is the current state, never a replay: the ticket stream's
first event is always the ticket as it is now, and the day view gets ``resync`` and
reloads. The same holds inside a stream: the bus's ``RESYNC`` marker (Redis restarted, or
the subscriber fell behind) makes the stream re-read what it shows.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

RETRY_MS = 3000
"""How long a browser waits before reconnecting a stream that ended (``retry:`` field)."""
RESYNC_EVENT: dict[str, Any] = {"type": "resync"}


def last_event_id(request: web.Request) -> int | None:
    """The id the browser saw last, when it is resuming (ASCII digits only, else None)."""
    raw = request.headers.get("Last-Event-ID", "").strip()
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    return None


def resumed(request: web.Request) -> bool:
    return last_event_id(request) is not None


class EventStream:
    """One open ``text/event-stream`` response whose ids continue a resumed stream's."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        self.next_id = (last_event_id(request) or 0) + 1
        self._retry_sent = False

    async def open(self) -> web.StreamResponse:
        await self.response.prepare(self.request)
        return self.response

    async def send(self, data: dict[str, Any]) -> None:
        # ``data`` first: field order inside an event is free, and simple readers (and our
        # tests) take the first line of a stream as its first event's data.
        lines = [f"data: {json.dumps(data, ensure_ascii=False)}", f"id: {self.next_id}"]
        if not self._retry_sent:
            lines.append(f"retry: {RETRY_MS}")
            self._retry_sent = True
        await self.response.write(("\n".join(lines) + "\n\n").encode())
        self.next_id += 1

    async def keepalive(self) -> None:
        await self.response.write(b": keepalive\n\n")
