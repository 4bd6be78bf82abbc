"""HTTP edge of the pre-call media test (``signaling.echo``); ``docs/signaling.md``.

Routes, each opened by the participant's join token (the same secret link as the page and
the WebSocket, with the same rules: a console link needs its staff login, a closed room
refuses):

* ``POST /api/v1/live/echo/{token}`` — start a test: its id and the ICE servers to use;
* ``POST /api/v1/live/echo/{token}/{echo}/offer`` — the upstream offer in, the relay's
  answer and its offer of the loop back out;
* ``POST /api/v1/live/echo/{token}/{echo}/answer`` — the answer to the loop back;
* ``DELETE /api/v1/live/echo/{token}/{echo}`` — done (otherwise it ends by itself).

No case event is written: a test before joining changes nothing about the case, and the
call itself is what the record holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from aiohttp import web

from server.appkeys import API_SPEC, DB
from server.cases import rooms as case_rooms
from server.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    YunkanError,
)
from server.http.requests import optional_principal
from server.openapi import ApiRoutes, read_json
from signaling.echo import EchoBusyError, EchoTests, NoSuchEchoError
from signaling.errors import TokenError
from signaling.handlers import HUB, RELAY, SIGNER
from signaling.links import participant_id
from signaling.negotiation import RelayError
from signaling.tokens import JoinGrant

ECHO_TESTS = web.AppKey[EchoTests]("echo_tests")
ECHO_SECONDS = 20.0
"""How long a test's relay room lives at most; the page measures for 5 s."""

routes = ApiRoutes(tag="live")
SDP_REFUSED = "The browser's media description was refused"


class LinkRefusedError(PermissionDeniedError):
    code = "link_refused"
    message = "This video link is not valid or has expired"


class WrongPersonError(PermissionDeniedError):
    code = "wrong_person"
    message = "This link belongs to another member of staff"


class SessionOverError(YunkanError):
    status: ClassVar[int] = 410
    code: ClassVar[str] = "room_closed"
    message = "This video session has ended"


class EchoBusy(YunkanError):
    status: ClassVar[int] = 503
    code: ClassVar[str] = "echo_busy"
    message = "The network test is busy. Try again in a minute."


SDP_REQUEST = {
    "type": "object",
    "required": ["sdp"],
    "additionalProperties": False,
    "properties": {"sdp": {"type": "string", "minLength": 1, "maxLength": 48 * 1024}},
}
START_RESPONSE = {
    "type": "object",
    "required": ["echo", "ice_servers", "seconds"],
    "properties": {
        "echo": {"type": "string"},
        "ice_servers": {"type": "array", "items": {"type": "object"}},
        "seconds": {"type": "number", "description": "the test room closes after this"},
    },
}
OFFER_RESPONSE = {
    "type": "object",
    "required": ["answer", "offer"],
    "properties": {
        "answer": {"type": "string", "description": "the relay's answer to the upstream"},
        "offer": {"type": "string", "description": "the relay's offer of the loop back"},
    },
}
REFUSALS: dict[int, Any] = {401: "error", 403: "error", 404: "error", 410: "error"}


async def _grant(request: web.Request) -> JoinGrant:
    """The token's grant, checked like the join page checks it."""
    try:
        grant = request.app[SIGNER].verify(request.match_info["token"])
    except TokenError:
        raise LinkRefusedError() from None
    if grant.needs_login:
        principal = optional_principal(request)
        if principal is None:
            raise AuthenticationError()
        if participant_id(principal) != grant.participant:
            raise WrongPersonError()
    async with request.app[DB]() as session:
        if await case_rooms.closed_reason(session, grant.room) is not None:
            raise SessionOverError()
    return grant


def _owner(grant: JoinGrant) -> str:
    return f"{grant.room}/{grant.participant}"


async def _sdp(request: web.Request) -> str:
    body = await read_json(request, SDP_REQUEST)
    sdp: str = body["sdp"]
    return sdp


@routes.post(
    "/api/v1/live/echo/{token}",
    summary="Start a pre-call media test: a relay room that sends your media back to you",
    request={"type": "object"},
    responses={201: START_RESPONSE, **REFUSALS},
    auth="none",
)
async def start(request: web.Request) -> web.Response:
    grant = await _grant(request)
    await read_json(request, {"type": "object"})
    try:
        test = await request.app[ECHO_TESTS].start(_owner(grant))
    except EchoBusyError:
        raise EchoBusy() from None
    servers = request.app[HUB].ice.servers_for(grant.participant)
    return web.json_response(
        {"echo": test.id, "ice_servers": servers, "seconds": ECHO_SECONDS}, status=201
    )


@routes.post(
    "/api/v1/live/echo/{token}/{echo}/offer",
    summary="The test's upstream offer; answers it and offers the loop back",
    request=SDP_REQUEST,
    responses={200: OFFER_RESPONSE, **REFUSALS},
    auth="none",
)
async def offer(request: web.Request) -> web.Response:
    grant = await _grant(request)
    sdp = await _sdp(request)
    try:
        answer, loop = await request.app[ECHO_TESTS].offer(
            request.match_info["echo"], _owner(grant), sdp
        )
    except NoSuchEchoError:
        raise NotFoundError("This network test has ended") from None
    except RelayError:
        raise ValidationError(fields={"sdp": SDP_REFUSED}) from None
    return web.json_response({"answer": answer, "offer": loop})


@routes.post(
    "/api/v1/live/echo/{token}/{echo}/answer",
    summary="The browser's answer to the test's loop back",
    request=SDP_REQUEST,
    responses={200: {"type": "object"}, **REFUSALS},
    auth="none",
)
async def answer(request: web.Request) -> web.Response:
    grant = await _grant(request)
    sdp = await _sdp(request)
    try:
        await request.app[ECHO_TESTS].answer(request.match_info["echo"], _owner(grant), sdp)
    except NoSuchEchoError:
        raise NotFoundError("This network test has ended") from None
    except RelayError:
        raise ValidationError(fields={"sdp": SDP_REFUSED}) from None
    return web.json_response({"ok": True})


@routes.delete(
    "/api/v1/live/echo/{token}/{echo}",
    summary="End a pre-call media test",
    responses={204: None, **REFUSALS},
    auth="none",
)
async def stop(request: web.Request) -> web.Response:
    grant = await _grant(request)
    tests = request.app[ECHO_TESTS]
    try:
        tests.get(request.match_info["echo"], _owner(grant))
    except NoSuchEchoError:
        raise NotFoundError("This network test has ended") from None
    await tests.close(request.match_info["echo"])
    return web.Response(status=204)


async def _echo_tests(app: web.Application) -> AsyncIterator[None]:
    tests = app[ECHO_TESTS] = EchoTests(app[RELAY], lifetime=ECHO_SECONDS)
    try:
        yield
    finally:
        await tests.close_all()


def setup(app: web.Application) -> None:
    """After ``signaling.handlers.setup``: the tests use its relay."""
    app.router.add_routes(routes)
    app[API_SPEC].include(routes)
    app.cleanup_ctx.append(_echo_tests)
