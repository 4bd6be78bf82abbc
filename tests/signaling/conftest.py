"""Live fixtures: the real app (``create_app``) on a real 127.0.0.1 port, tokens, a case."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.cases.numbers import open_case
from server.settings import Settings
from signaling.client import MediaClient
from signaling.handlers import LIVE_OPTIONS, SIGNER, LiveOptions
from signaling.tokens import JoinGrant, Role
from signaling.wsclient import SignalingClient

LOOPBACK = ("127.0.0.1",)


@dataclass
class LiveServer:
    server: TestServer
    case_id: int
    clients: list[SignalingClient]

    @property
    def app(self) -> web.Application:
        return self.server.app

    @property
    def ws_url(self) -> str:
        return str(self.server.make_url("/live/ws")).replace("http://", "ws://")

    @property
    def room(self) -> str:
        return f"case-{self.case_id}"

    def token(self, participant: str, role: Role, name: str = "", room: str | None = None) -> str:
        grant = JoinGrant(room or self.room, participant, role, name or participant)
        return self.app[SIGNER].issue(grant, ttl=600)

    def client(
        self, participant: str, role: Role, *, source: str | None = "testsrc", **kw: Any
    ) -> SignalingClient:
        media = MediaClient(host_addresses=LOOPBACK, keep_last_frame=kw.pop("keep", False))
        client = SignalingClient(
            self.ws_url, self.token(participant, role), source=source, media=media, **kw
        )
        self.clients.append(client)
        return client


async def start_live(
    settings: Settings, options: LiveOptions, port: int | None = None
) -> tuple[TestServer, int]:
    app = create_app(settings)
    app[LIVE_OPTIONS] = options
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with app[DB]() as session, session.begin():
        case = await open_case(session, title="现场勘验", zone=app[SETTINGS].zone)
        case_id = case.id
    return server, case_id


@pytest.fixture
def live_options() -> LiveOptions:
    return LiveOptions(grace=5.0, host_addresses=LOOPBACK)


@asynccontextmanager
async def running_live(settings: Settings, options: LiveOptions) -> AsyncIterator[LiveServer]:
    """A live server for one test; its clients and the server are closed at the end."""
    server, case_id = await start_live(settings, options)
    state = LiveServer(server, case_id, [])
    try:
        yield state
    finally:
        for client in state.clients:
            await client.close()
        await server.close()


@pytest.fixture
async def live(sqlite_settings: Settings, live_options: LiveOptions) -> AsyncIterator[LiveServer]:
    async with running_live(sqlite_settings, live_options) as state:
        yield state


Factory = Callable[..., SignalingClient]
