"""ICE consent checks that survive a busy event loop (signaling/consent.py).

Real aiortc peers over loopback, relay and publisher on one event loop. Two things make
answers late: the loop blocked for seconds by a callback (``time.sleep``), and a peer
that answers every check a second late (its STUN responses held back), as a phone on a
busy CPU. aioice's own check waits 0.5 s without resending, so each check to such a peer
fails; the relay's checks resend, keep the transaction open and count the late answer.
The timing is scaled down (checks every 0.5 s, a 2.5 s budget) so the test takes seconds;
the control runs the late peer against aioice's own checks with the same budget. The late
peer's second is 40 % of that budget (in production 1 s of 30 s): on a loaded CI machine
the loop's own scheduling delays come on top of it, and a 1.5 s budget left only 0.5 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aioice.ice
import pytest
from aioice import stun

from signaling.client import MediaClient
from signaling.consent import ConsentPolicy, ConsentState, install_consent
from signaling.relay import RelayConfig, RelayRoom
from tests.signaling.conftest import LOOPBACK

FAST = ConsentPolicy(interval=0.5, expiry=2.5)
STALL = 3.0
LATE = 1.0


def stall(seconds: float) -> None:
    time.sleep(seconds)


async def stall_loop(times: int) -> None:
    """Block the loop for STALL seconds, ``times`` times, with 0.6 s of normal running
    between (a check is sent, or due, around each stall)."""
    loop = asyncio.get_running_loop()
    for _ in range(times):
        loop.call_later(0.01, stall, STALL)
        await asyncio.sleep(0.6)


class LatePeer:
    """Holds back the STUN responses ``client``'s publish connection sends by ``LATE``."""

    def __init__(self, client: MediaClient) -> None:
        self.on = False
        self.held = 0
        assert client.publish_pc is not None
        loop = asyncio.get_running_loop()
        for protocol in connection_of(client.publish_pc)._protocols:
            original = protocol.send_stun

            def send_stun(message: Any, addr: Any, original: Any = original) -> None:
                if self.on and message.message_class == stun.Class.RESPONSE:
                    self.held += 1
                    loop.call_later(LATE, original, message, addr)
                else:
                    original(message, addr)

            protocol.send_stun = send_stun


def connection_of(pc: Any) -> Any:
    return pc.getTransceivers()[0].receiver.transport.transport._connection


def sent(room: RelayRoom) -> int:
    return sum(room.publication("phone").stats.packets.values())


async def connect(room: RelayRoom, publisher: MediaClient, tolerant: bool) -> None:
    offer = await publisher.publish_offer("testsrc")
    assert publisher.publish_pc is not None
    if tolerant:  # the publisher stands for a browser, whose consent is as patient
        install_consent(publisher.publish_pc, FAST)
    answer = await room.add_participant("phone", offer)
    await publisher.accept_publish_answer(answer)
    pc = room.publish_connection("phone")
    assert pc is not None
    for _ in range(200):
        if pc.connectionState == "connected" and sent(room):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"publish connection {pc.connectionState}")


@pytest.fixture
async def publisher() -> AsyncIterator[MediaClient]:
    client = MediaClient(host_addresses=LOOPBACK)
    yield client
    await client.close()


async def test_the_publish_connection_stays_up_through_a_busy_loop_and_a_late_peer(
    publisher: MediaClient,
) -> None:
    room = RelayRoom("consent", RelayConfig(host_addresses=LOOPBACK, consent=FAST))
    try:
        await connect(room, publisher, tolerant=True)
        pc = room.publish_connection("phone")
        assert pc is not None
        state: ConsentState = connection_of(pc).query_consent.args[2]
        await asyncio.sleep(1.0)
        # 1. Three 3 s stalls, each longer than the whole 2.5 s budget.
        await stall_loop(3)
        assert state.stalled > STALL, "the loop really was blocked"
        assert not state.expired, f"consent expired through the stalls: {state}"
        # 2. A peer that answers every check a second late, for 4 s.
        late = LatePeer(publisher)
        late.on = True
        answered = state.answered
        await asyncio.sleep(4.0)
        late.on = False
        assert late.held >= 4
        assert state.answered > answered, f"late answers count: {state}"
        packets = sent(room)
        await asyncio.sleep(1.0)
        assert not state.expired, state
        assert pc.connectionState == "connected"
        assert publisher.publish_pc is not None
        assert publisher.publish_pc.connectionState == "connected"
        assert sent(room) > packets, "media still flows"
    finally:
        await room.close()


async def test_control_aioice_consent_closes_for_the_same_late_peer(
    publisher: MediaClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aioice's checks with the same budget: 3 failures × 0.5 s instead of 6 × 5 s.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", FAST.interval)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", round(FAST.expiry / FAST.interval))
    room = RelayRoom("consent", RelayConfig(host_addresses=LOOPBACK, consent=None))
    try:
        await connect(room, publisher, tolerant=True)  # only the relay's side is aioice's
        pc = room.publish_connection("phone")
        assert pc is not None
        late = LatePeer(publisher)
        late.on = True
        for _ in range(80):
            if pc.connectionState in ("failed", "closed"):
                break
            await asyncio.sleep(0.1)
        assert pc.connectionState in ("failed", "closed"), "aioice kept consent?"
    finally:
        await room.close()
