"""Live fixtures: the real app (``create_app``) on a real 127.0.0.1 port, tokens, a case.

Console links (inspector, supervisor, any ``staff-<id>`` participant) need the staff login
they were issued to: ``LiveServer.client`` logs such a participant in (creating the member
of staff ``<id>`` if the test has not) and sends the login as a bearer token, the way
``yunkan join --login-token`` does; ``LiveServer.login`` gives the token for a browser's
cookie.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.accounts.models import User
from server.accounts.sessions import create_session, principal_of_user
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.cases.numbers import open_case
from server.settings import Settings
from signaling.client import MediaClient
from signaling.handlers import LIVE_OPTIONS, SIGNER, LiveOptions
from signaling.tokens import JoinGrant, Role
from signaling.wsclient import SignalingClient

LOOPBACK = ("127.0.0.1",)


class StaffClient(SignalingClient):
    """A console participant: logs its member of staff in before the first connect."""

    def __init__(self, live: LiveServer, staff_id: int, role: str, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.live, self.staff_id, self.staff_role = live, staff_id, role

    async def connect(self) -> None:
        if not self.headers:
            token = await self.live.login(self.staff_id, self.staff_role)
            self.headers = {"Authorization": f"Bearer {token}"}
        await super().connect()


@dataclass
class LiveServer:
    server: TestServer
    case_id: int
    clients: list[SignalingClient]
    logins: dict[int, str] = field(default_factory=dict)

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

    async def login(self, staff_id: int, role: str = "inspector") -> str:
        """A login token of member of staff ``staff_id`` (created with that id if new)."""
        if staff_id in self.logins:
            return self.logins[staff_id]
        async with self.app[DB].begin() as session:
            user = await session.get(User, staff_id)
            if user is None:
                name = f"staff-{staff_id}"
                user = User(
                    id=staff_id, username=name, display_name=name, role=role, password_hash="!"
                )
                session.add(user)
                await session.flush()
            token, _ = await create_session(
                session, principal_of_user(user), hours=1, ip=None, user_agent="tests"
            )
        self.logins[staff_id] = token
        return token

    def client(
        self, participant: str, role: Role, *, source: str | None = "testsrc", **kw: Any
    ) -> SignalingClient:
        media = MediaClient(host_addresses=LOOPBACK, keep_last_frame=kw.pop("keep", False))
        token = self.token(participant, role)
        grant = self.app[SIGNER].verify(token)
        client: SignalingClient
        if grant.needs_login:
            staff_id = int(participant.removeprefix("staff-"))
            staff_role = "supervisor" if role == "supervisor" else "inspector"
            client = StaffClient(
                self, staff_id, staff_role, self.ws_url, token, source=source, media=media, **kw
            )
        else:
            client = SignalingClient(self.ws_url, token, source=source, media=media, **kw)
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
