"""The server side of the heartbeat (protocol.HEARTBEAT_TIMEOUT_S): a page that pings and
then falls silent is dropped within about 3 s and the others see it disconnected; a client
that never pings (the Python client) is watched by WebSocket ping frames only and stays."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from signaling.protocol import HEARTBEAT_TIMEOUT_S, is_ping
from tests.signaling.conftest import LiveServer


async def _presence(ws: aiohttp.ClientWebSocketResponse, who: str, connected: bool) -> float:
    """Seconds until a ``presence`` shows ``who`` with ``connected``."""
    start = time.monotonic()
    while True:
        msg: dict[str, Any] = await ws.receive_json(timeout=10)
        if msg["type"] == "presence":
            seen = {p["id"]: p["connected"] for p in msg["participants"]}
            if seen.get(who) is connected:
                return time.monotonic() - start


async def _join(ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
    await ws.send_json({"type": "join", "token": token})
    assert (await ws.receive_json(timeout=5))["type"] == "welcome"


async def test_a_silent_page_is_dropped_and_others_see_it(live: LiveServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(live.ws_url) as watcher,
        http.ws_connect(live.ws_url) as page,
        http.ws_connect(live.ws_url) as quiet,
    ):
        await _join(watcher, live.token("guest-1", "expert", "专家"))
        await _join(page, live.token("guest-2", "expert", "会掉线的"))
        await _join(quiet, live.token("guest-3", "expert", "不发心跳的"))
        await _presence(watcher, "guest-3", True)
        await page.send_str('{"type":"ping"}')
        silent_since = time.monotonic()
        # the page stops sending (its network is gone); aiohttp keeps answering ping frames,
        # as a browser's network stack does
        waited = await _presence(watcher, "guest-2", False)
        dropped_after = time.monotonic() - silent_since
        msg = await page.receive(timeout=5)
        while msg.type == aiohttp.WSMsgType.TEXT:
            msg = await page.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert HEARTBEAT_TIMEOUT_S - 0.1 <= dropped_after <= HEARTBEAT_TIMEOUT_S + 1.5, waited
        # the client that never pinged is still there and still answered
        await quiet.send_str('{"type":"chat","text":"还在"}')
        while (await quiet.receive_json(timeout=5))["type"] != "chat":
            pass
        assert not quiet.closed


def test_is_ping() -> None:
    assert is_ping('{"type":"ping"}') and is_ping(b'{"type": "ping"}')
    assert not is_ping('{"type":"pong"}') and not is_ping("ping") and not is_ping("[]")
    assert not is_ping('{"type":"ping","pad":"' + "x" * 80 + '"}')
