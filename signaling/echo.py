"""The pre-call media test: a participant's own audio and video, through the relay and back.

Before joining, the phone page publishes a few seconds of camera and microphone to a
short-lived relay room of its own and subscribes to itself there, with the same two
connections (upstream offered by the client, downstream offered by the server) and the same
ICE servers (fresh TURN credentials) as the call. Its ``getStats()`` then measures what the
call would get: round trip, loss, the bitrate the browser's estimator reaches, frames that
came back, and whether only a TURN relay candidate connected. Nothing is recorded and
nothing reaches anyone else; the room closes when the page says so or after ``lifetime``.

:class:`EchoTests` knows no HTTP (``signaling.precall`` is its edge). Errors:
:class:`EchoBusyError` (too many tests at once on this node), :class:`NoSuchEchoError`.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

from signaling.relay import Relay, RelayRoom

PUBLISHER = "self"
LOOPBACK = "loop"


class EchoError(Exception):
    """Base of the echo test's errors."""


class EchoBusyError(EchoError):
    """This node already runs ``limit`` tests: each costs a relay room for a few seconds."""


class NoSuchEchoError(EchoError):
    """No open test with this id for this participant (expired, closed or never made)."""


@dataclass(slots=True)
class EchoTest:
    id: str
    participant: str
    room: RelayRoom
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)


class EchoTests:
    """The open echo tests of this node; one per participant (a new one replaces it)."""

    def __init__(self, relay: Relay, *, lifetime: float = 20.0, limit: int = 8) -> None:
        self.relay = relay
        self.lifetime = lifetime
        self.limit = limit
        self._tests: dict[str, EchoTest] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tests)

    async def start(self, participant: str) -> EchoTest:
        for test in [t for t in self._tests.values() if t.participant == participant]:
            await self.close(test.id)
        if len(self._tests) >= self.limit:
            raise EchoBusyError(f"{len(self._tests)} echo tests are running")
        echo_id = secrets.token_urlsafe(12)
        test = EchoTest(echo_id, participant, self.relay.room(f"echo-{echo_id}"))
        test.expiry = asyncio.get_running_loop().call_later(self.lifetime, self._expire, echo_id)
        self._tests[echo_id] = test
        return test

    def get(self, echo_id: str, participant: str) -> EchoTest:
        test = self._tests.get(echo_id)
        if test is None or test.participant != participant:
            raise NoSuchEchoError(echo_id)
        return test

    async def offer(self, echo_id: str, participant: str, sdp: str) -> tuple[str, str]:
        """The relay's answer to the upstream ``sdp`` and its offer of the loop back."""
        room = self.get(echo_id, participant).room
        answer = await room.add_participant(PUBLISHER, sdp)
        offer = await room.subscribe(LOOPBACK, PUBLISHER)
        return answer, offer

    async def answer(self, echo_id: str, participant: str, sdp: str) -> None:
        await self.get(echo_id, participant).room.accept_answer(LOOPBACK, PUBLISHER, sdp)

    async def close(self, echo_id: str) -> None:
        test = self._tests.pop(echo_id, None)
        if test is None:
            return
        if test.expiry is not None:
            test.expiry.cancel()
        await self.relay.close_room(test.room.room_id)

    async def close_all(self) -> None:
        for echo_id in list(self._tests):
            await self.close(echo_id)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _expire(self, echo_id: str) -> None:
        task = asyncio.ensure_future(self.close(echo_id))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
