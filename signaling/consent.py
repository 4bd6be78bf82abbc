"""ICE consent freshness (RFC 7675) that survives a busy event loop.

aioice 0.13 (``Connection.query_consent``) sends one binding request per nominated pair
every 5 s ± 20 % *without retransmission* (0.5 s to answer) and closes the connection after
6 failures in a row. A response that is late — a loaded peer, a datagram dropped by a full
receive buffer, or our own loop busy when it arrives (the 0.5 s timer and the reply are
then handled in the same turn, and the timer may come first) — is a failure, and a server
under load lost connections that were carrying media perfectly well (issue 18: 40 of 48
``closed`` at 24 pairs under contention).

:func:`install_consent` replaces that task on one connection (an instance attribute that
aioice's ``connect()`` picks up when it starts the task) with RFC 7675's own rule:

* a check is sent every ``interval`` (5 s, randomised ×0.8–1.2 as aioice and §5.1 do), as a
  STUN transaction **with retransmissions** (RFC 5389's RTO 0.5 s, doubling: sent at 0,
  0.5, 1.5, 3.5 s and given up at 7.5 s), so a late reply to any send of it still counts,
  and checks overlap instead of waiting for each other;
* consent **expires ``expiry`` (30 s) after the last authenticated response** (§5.1), and
  only then is the connection closed, as aioice closes it;
* time our own loop could not run does not count against the peer: when the timer wakes
  late, the deadline moves by the lateness, and never to less than one interval ahead,
  so the answers that waited in the socket meanwhile are read before consent is judged.
  A stalled server that comes back finds the peer's answers in its (large,
  ``signaling.sockets``) receive buffer and goes on.

Only an authenticated binding response refreshes consent. Received media does not:
RFC 7675 §5.1 requires a STUN response because media from the peer proves it is alive,
not that it still agrees to receive (the point of consent: never keep sending to an
address that stopped asking for it). What media does prove is liveness, and that is what
the relaxed timing above buys: the connection dies 30 s after the peer stops answering,
not after 6 unlucky half-seconds.

Private aioice names: ``Connection.query_consent`` (replaced per instance),
``_nominated``, ``_query_consent_task``, ``remote_password``, ``build_request``, and
``StunProtocol.request``; checked by :func:`install_consent`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection

logger = logging.getLogger(__name__)

_NAMES = ("query_consent", "_nominated", "_query_consent_task", "build_request")


@dataclass(frozen=True, slots=True)
class ConsentPolicy:
    interval: float = 5.0
    """Seconds between two checks (randomised ×0.8–1.2)."""
    expiry: float = 30.0
    """Seconds without an authenticated response before the connection is closed."""
    retransmissions: int = 3
    """Resends of each check (RTO 0.5 s doubling: 3 keeps a check open for 7.5 s)."""

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.expiry <= self.interval:
            raise ValueError("consent: expiry must be longer than a positive interval")
        if self.retransmissions < 0:
            raise ValueError("consent: retransmissions must be 0 or more")


@dataclass(slots=True)
class ConsentState:
    """What one connection's consent task has seen (read by tests)."""

    checks: int = 0
    answered: int = 0
    stalled: float = 0.0
    """Seconds the deadline was moved because our own loop woke late."""
    expired: bool = False


async def _query_consent(connection: Any, policy: ConsentPolicy, state: ConsentState) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.expiry
    pending: set[asyncio.Task[Any]] = set()

    def answered(task: asyncio.Task[Any]) -> None:
        nonlocal deadline
        pending.discard(task)
        if not task.cancelled() and task.exception() is None:
            state.answered += 1
            deadline = max(deadline, loop.time() + policy.expiry)

    try:
        while True:
            delay = policy.interval * (0.8 + 0.4 * random.random())
            due = loop.time() + delay
            await asyncio.sleep(delay)
            late = loop.time() - due
            if late > 0.1:
                # Our loop did not run: the deadline moves by that, and the answers that
                # waited in the socket meanwhile get at least one interval to be read.
                state.stalled += late
                deadline = max(deadline + late, loop.time() + policy.interval)
            if loop.time() > deadline:
                state.expired = True
                logger.info("%s: consent to send expired", connection)
                connection._query_consent_task = None
                await connection.close()
                return
            key = connection.remote_password.encode("utf8")
            for pair in list(connection._nominated.values()):
                request = connection.build_request(pair, nominate=False)
                check = asyncio.create_task(
                    pair.protocol.request(
                        request,
                        pair.remote_addr,
                        integrity_key=key,
                        retransmissions=policy.retransmissions,
                    )
                )
                state.checks += 1
                pending.add(check)
                check.add_done_callback(answered)
    finally:
        for check in pending:
            check.cancel()


def install_consent(pc: RTCPeerConnection, policy: ConsentPolicy) -> list[ConsentState]:
    """Use ``policy`` for the consent checks of ``pc``'s ICE connections (module doc).

    Call before the connection is up (after ``setLocalDescription`` is fine: aioice starts
    the consent task only once its checks have succeeded).
    """
    states: list[ConsentState] = []
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport or transceiver.sender.transport
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        if connection is None or id(connection) in seen:
            continue
        seen.add(id(connection))
        for name in _NAMES:
            if not hasattr(connection, name):
                raise RuntimeError(f"aioice Connection has no {name}")
        state = ConsentState()
        connection.query_consent = functools.partial(_query_consent, connection, policy, state)
        states.append(state)
    return states
