"""A participant that speaks the signaling protocol: WebSocket + ``MediaClient``.

Used by ``yunkan join`` (fixed site cameras, load), by the tests, and as the reference
client next to ``docs/signaling.md``. It joins with a token, publishes once admitted,
answers every subscription offer, and, when the connection drops, rejoins with its session
id and a *new* publish connection (aiortc has no ICE restart)::

    async with SignalingClient(ws_url, token, source="testsrc") as client:
        await client.wait_state("admitted")
        await client.media.wait_for_video("staff-1", frames=30)
        print(client.media.summary())
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from signaling.client import MediaClient

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({"ended", "removed"})


@dataclass
class Outage:
    """One drop of the signaling connection, in ``time.monotonic()`` seconds."""

    started: float
    ended: float | None = None
    """When the server welcomed us back; None while (or if never) reconnected."""

    def duration(self, now: float | None = None) -> float:
        end = self.ended if self.ended is not None else time.monotonic() if now is None else now
        return end - self.started


class SignalingClient:
    def __init__(
        self,
        ws_url: str,
        token: str,
        *,
        source: str | None = "testsrc",
        media: MediaClient | None = None,
        auto_admit: bool = False,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        ssl: bool = True,
        login_token: str | None = None,
        reconnect: bool = False,
        reconnect_for: float = 120.0,
        heartbeat: float = 5.0,
    ) -> None:
        self.ws_url = ws_url
        self.token = token
        # A console link (inspector, supervisor, staff-<id>) needs its holder's login too:
        # sent as a bearer token on the WebSocket handshake, as a browser sends its cookie.
        self.headers: Mapping[str, str] = (
            {"Authorization": f"Bearer {login_token}"} if login_token else {}
        )
        self.source = source
        self.media = media or MediaClient()
        self.auto_admit = auto_admit
        self.on_message = on_message
        self.ssl = ssl
        self.session_id: str | None = None
        self.participant: str | None = None
        self.state = "connecting"
        self.messages: list[dict[str, Any]] = []
        self.presence: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._redirect: str | None = None
        self.redirects = 0
        self._follow: asyncio.Task[None] | None = None
        self.reconnect = reconnect
        self.reconnect_for = reconnect_for
        self.heartbeat = heartbeat
        """WebSocket ping interval; a dead link is noticed after 1.5 times this."""
        self.outages: list[Outage] = []
        self.gave_up = False
        """True once reconnecting failed for ``reconnect_for`` seconds."""
        self._closing = False

    async def __aenter__(self) -> SignalingClient:
        await self.connect()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- connection ---------------------------------------------------------------------
    async def connect(self) -> None:
        """(Re)connect and join; a known session id resumes the same session."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(
            self.ws_url, ssl=self.ssl, heartbeat=self.heartbeat, headers=self.headers
        )
        join: dict[str, Any] = {"type": "join", "token": self.token}
        if self.session_id:
            join["session"] = self.session_id
        await self.send(join)
        self._reader = asyncio.create_task(self._read(self._ws))

    async def drop(self) -> None:
        """Simulate losing the network: close socket and peer connections without leaving
        (and without reconnecting by itself: the caller calls ``connect()``)."""
        reconnect, self.reconnect = self.reconnect, False
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self.reconnect = reconnect
        old = self.media
        self.media = MediaClient(
            ice_servers=old.ice_servers,
            host_addresses=old._host_addresses,
            decode=old._decode,
            keep_last_frame=old._keep_last_frame,
            relay_only=old.relay_only,
        )
        await old.close()
        self.state = "dropped"

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None, "connect() first"
        await self._ws.send_str(json.dumps(message, ensure_ascii=False))

    async def close(self) -> None:
        self._closing = True
        if self._follow is not None:
            await asyncio.gather(self._follow, return_exceptions=True)
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send({"type": "leave"})
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.media.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- waiting ------------------------------------------------------------------------
    async def wait_for(
        self, predicate: Callable[[], bool], *, within: float = 10.0, what: str = "condition"
    ) -> None:
        async def loop() -> None:
            # Messages wake us at once; media counters are polled.
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)

        try:
            await asyncio.wait_for(loop(), within)
        except TimeoutError:
            raise TimeoutError(
                f"{self.participant or self.token[:8]}: no {what} "
                f"within {within}s (state {self.state})"
            ) from None

    async def wait_state(self, state: str, within: float = 10.0) -> None:
        await self.wait_for(lambda: self.state == state, within=within, what=state)

    async def wait_message(self, kind: str, within: float = 10.0) -> dict[str, Any]:
        seen = len(self.messages)
        await self.wait_for(
            lambda: any(m["type"] == kind for m in self.messages[seen:]),
            within=within,
            what=f"{kind} message",
        )
        return next(m for m in self.messages[seen:] if m["type"] == kind)

    # -- protocol -----------------------------------------------------------------------
    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                self.messages.append(message)
                if self.on_message is not None:
                    self.on_message(message)
                try:
                    await self._handle(message)
                except Exception:
                    log.exception("handling %s failed", message.get("type"))
                self._changed.set()
        finally:
            self.close_code = ws.close_code
            if self.state not in ("ended", "removed", "declined"):
                self.state = "disconnected"
            self._changed.set()
            if self._redirect is not None and self.redirects < 3:
                # The room lives on another node: go there (at most 3 hops, no loops).
                self.ws_url, self._redirect = self._redirect, None
                self.redirects += 1
                self.state = "connecting"
                self._follow = asyncio.create_task(self.connect())
            elif self.reconnect and self._may_resume(ws.close_code):
                self._follow = asyncio.create_task(self._reconnect())

    def _may_resume(self, code: int | None) -> bool:
        if self._closing or self.state in FINAL_STATES:
            return False
        return code is None or not 4000 <= code < 5000  # 4xxx: the server said no

    async def _reconnect(self) -> None:
        """New peer connections and a new WebSocket that resumes the session."""
        outage = Outage(time.monotonic())
        self.outages.append(outage)
        log.warning("connection lost (close code %s); reconnecting", self.close_code)
        await self.media.reset()
        pause, deadline = 0.25, outage.started + self.reconnect_for
        while not self._closing:
            self.state = "connecting"
            try:
                await self.connect()
                return
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("reconnect failed: %s", exc)
            if time.monotonic() + pause > deadline:
                self.state, self.gave_up = "disconnected", True
                self._changed.set()
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 4.0)

    def outage_summary(self) -> dict[str, Any]:
        """``{"count", "durations", "total", "recovered"}`` (seconds, rounded to 0.1)."""
        durations = [round(o.duration(), 1) for o in self.outages]
        return {
            "count": len(self.outages),
            "durations": durations,
            "total": round(sum(durations), 1),
            "recovered": all(o.ended is not None for o in self.outages),
        }

    def _fresh_ice_servers(self, message: dict[str, Any]) -> None:
        # ``admitted`` and every ``offer`` carry credentials minted for the peer connection
        # that follows; the ones in ``welcome`` may have expired by then.
        servers = message.get("ice_servers")
        if isinstance(servers, list):
            self.media.use_ice_servers(servers)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "welcome":
            if self.outages and self.outages[-1].ended is None:
                self.outages[-1].ended = time.monotonic()
            self.session_id = message["session"]
            self.participant = message["participant"]
            # The server's STUN/TURN (with this participant's TURN credentials) for the
            # connections that follow: a site camera behind NAT needs them.
            self.media.use_ice_servers(message.get("ice_servers") or [])
        elif kind in ("waiting", "declined", "removed", "ended"):
            self.state = kind
        elif kind == "admitted":
            self.state = "admitted"
            self._fresh_ice_servers(message)
            if self.source is not None:
                await self.send(
                    {"type": "offer", "sdp": await self.media.publish_offer(self.source)}
                )
        elif kind == "answer":
            await self.media.accept_publish_answer(message["sdp"])
        elif kind == "offer":
            self._fresh_ice_servers(message)
            sdp = await self.media.accept_subscription(message["publisher"], message["sdp"])
            await self.send({"type": "answer", "publisher": message["publisher"], "sdp": sdp})
        elif kind == "presence":
            self.presence = message["participants"]
            if self.auto_admit:
                for who in self.presence:
                    if who["state"] == "waiting":
                        await self.send({"type": "admit", "participant": who["id"]})
        elif kind == "request":
            # A camera cannot turn round; say so, as the protocol asks for an answer.
            await self.send(
                {
                    "type": "response",
                    "id": message["id"],
                    "ok": False,
                    "data": {"reason": "not supported by this client"},
                }
            )
        elif kind == "error":
            self.errors.append(message)
            url = (message.get("details") or {}).get("url")
            if message.get("code") == "wrong_node" and isinstance(url, str):
                base = url.rstrip("/")
                self._redirect = ("ws" + base[4:] if base.startswith("http") else base) + (
                    "/live/ws"
                )
