"""TURN through a real coturn (Debian's ``turnserver``) on 127.0.0.1.

Phones behind carrier NAT and site cameras on locked-down networks reach the relay through
TURN. These tests check against coturn itself, not against our reading of its scheme: the
credentials ``signaling.ice`` mints are accepted, expired or forged ones are refused, and a
call works when the camera may use relayed candidates only, with the ICE servers the
signaling server hands out in ``welcome``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint

from server.settings import Settings
from signaling.client import MediaClient
from signaling.handlers import LiveOptions
from signaling.ice import turn_credential
from signaling.wsclient import SignalingClient
from tests.signaling.conftest import LOOPBACK, LiveServer, running_live

TURNSERVER = (
    os.environ.get("YUNKAN_TURNSERVER") or shutil.which("turnserver") or "/usr/sbin/turnserver"
)


@dataclass
class Coturn:
    port: int
    secret: str
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"


def _free_port() -> int:
    """A port free for UDP *and* TCP: coturn listens on both (once it found the TCP side
    taken by another test's connection and failed with errno 98)."""
    while True:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        ):
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _answers_stun(port: int) -> bool:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(0.2)
        udp.sendto(bytes(request), ("127.0.0.1", port))
        try:
            reply = stun.parse_message(udp.recv(2048))
        except (OSError, ValueError):
            return False
    return reply.transaction_id == request.transaction_id


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    if not os.path.exists(TURNSERVER):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"coturn not found at {TURNSERVER} (CI=true: .ci/run installs it)")
        pytest.skip("coturn not installed: apt-get install coturn (or set YUNKAN_TURNSERVER)")
    server = Coturn(_free_port(), secrets.token_hex(16), tmp_path / "turnserver.log")
    process = subprocess.Popen(
        [
            TURNSERVER,
            "-n",  # no configuration file
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={server.port}",
            "--use-auth-secret",
            f"--static-auth-secret={server.secret}",
            "--realm=yunkan.test",
            "--allow-loopback-peers",  # the relay and the clients all live on 127.0.0.1
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            f"--pidfile={tmp_path / 'turnserver.pid'}",
            f"--log-file={server.log}",
            "--simple-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _answers_stun(server.port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"turnserver did not start: {server.log.read_text()[-2000:]}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _allocate(server: Coturn, username: str, password: str) -> tuple[str, int]:
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol,
        server_addr=("127.0.0.1", server.port),
        username=username,
        password=password,
    )
    try:
        address: tuple[str, int] = transport.get_extra_info("sockname")
        return address
    finally:
        transport.close()


async def test_coturn_accepts_minted_credentials_and_refuses_expired_or_forged_ones(
    coturn: Coturn,
) -> None:
    good = turn_credential(coturn.secret, "applicant-7", ttl=600)
    host, port = await _allocate(coturn, good.username, good.password)
    assert host == "127.0.0.1" and port > 0

    expired = turn_credential(coturn.secret, "applicant-7", ttl=600, now=time.time() - 3600)
    forged = turn_credential("not-the-secret", "applicant-7", ttl=600)
    stolen = turn_credential(coturn.secret, "applicant-7", ttl=600)
    for username, password in [
        (expired.username, expired.password),
        (forged.username, forged.password),
        # A valid password does not carry over to another user or a later expiry.
        (stolen.username.replace("applicant-7", "applicant-8"), stolen.password),
        (f"{stolen.expires + 3600}:applicant-7", stolen.password),
    ]:
        with pytest.raises(stun.TransactionFailed, match="401"):
            await _allocate(coturn, username, password)


@pytest.fixture
def turn_ttl() -> int:
    return 600


@pytest.fixture
async def live_turn(
    sqlite_settings: Settings, live_options: LiveOptions, coturn: Coturn, turn_ttl: int
) -> AsyncIterator[LiveServer]:
    settings = dataclasses.replace(
        sqlite_settings, ice_servers=coturn.url, turn_secret=coturn.secret, turn_ttl=turn_ttl
    )
    async with running_live(settings, live_options) as state:
        yield state


async def test_a_camera_that_may_only_use_turn_joins_with_the_servers_credentials(
    live_turn: LiveServer, coturn: Coturn
) -> None:
    """The camera's connections have relayed candidates only, so media between it and the
    relay crosses coturn both ways; the TURN credentials are the ones the server gave it."""
    live = live_turn
    inspector = live.client("staff-1", "inspector", auto_admit=True, keep=True)
    await inspector.connect()
    camera_media = MediaClient(host_addresses=LOOPBACK, relay_only=True)
    camera = SignalingClient(
        live.ws_url, live.token("applicant-3", "applicant"), media=camera_media
    )
    live.clients.append(camera)
    await camera.connect()
    await camera.wait_state("admitted")

    welcome = next(m for m in camera.messages if m["type"] == "welcome")
    [server] = welcome["ice_servers"]
    assert server["urls"] == [coturn.url]
    assert server["username"].endswith(":applicant-3")
    # The camera builds each connection with the newest credentials the server sent it
    # (``welcome``, ``admitted``, each ``offer``: minted apart, they differ when the clock
    # ticks between them), never someone else's.
    sent = {s["username"] for m in camera.messages for s in m.get("ice_servers", ())}
    assert all(name.endswith(":applicant-3") for name in sent)
    assert [s.username for s in camera_media.ice_servers] in [[name] for name in sent]

    await inspector.wait_for(
        lambda: (
            inspector.media.received.get("applicant-3") is not None
            and inspector.media.received["applicant-3"].video_frames >= 30
        ),
        within=20,
        what="the camera's video through TURN",
    )
    got = inspector.media.received["applicant-3"]
    assert (got.width, got.height) == (640, 480)
    # ... and the other way: the inspector's picture reaches the camera through TURN too.
    await camera.wait_for(
        lambda: any(m.video_frames >= 10 for m in camera_media.received.values()),
        within=20,
        what="the inspector's video through TURN",
    )

    # Only relayed candidates were offered by the camera.
    assert camera_media.publish_pc is not None
    sdp = camera_media.publish_pc.localDescription.sdp
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(" typ relay" in line for line in candidates)


@pytest.mark.parametrize("turn_ttl", [5])
async def test_a_newcomer_hours_later_is_reached_through_turn_with_fresh_credentials(
    live_turn: LiveServer,
) -> None:
    """TURN credentials expire (here after 5 s: with 2 s a loaded CI machine once could not
    allocate in time even with fresh ones; by default after an hour). A TURN-only
    camera that has been in the call longer than that must still build the connection to
    someone who starts publishing now: the server's ``offer`` carries fresh credentials."""
    live = live_turn
    inspector = live.client("staff-1", "inspector", auto_admit=True, source=None)
    await inspector.connect()
    camera_media = MediaClient(host_addresses=LOOPBACK, relay_only=True)
    camera = SignalingClient(
        live.ws_url, live.token("applicant-3", "applicant"), media=camera_media
    )
    live.clients.append(camera)
    await camera.connect()
    await camera.wait_state("admitted")
    await inspector.wait_for(
        lambda: (
            (m := inspector.media.received.get("applicant-3")) is not None and m.video_frames >= 5
        ),
        within=20,
        what="the camera's video through TURN",
    )
    admitted = next(m for m in camera.messages if m["type"] == "admitted")
    stale = int(admitted["ice_servers"][0]["username"].split(":")[0])
    await asyncio.sleep(max(0.0, stale + 1.5 - time.time()))  # coturn refuses them now

    expert = live.client("staff-4", "expert")  # joins "hours" later and publishes
    await expert.connect()
    await camera.wait_for(
        lambda: any(m["type"] == "offer" for m in camera.messages), within=20, what="an offer"
    )
    offer = next(m for m in camera.messages if m["type"] == "offer")
    assert offer["publisher"] == "staff-4"
    fresh = offer["ice_servers"][0]["username"]
    assert int(fresh.split(":")[0]) > stale and fresh.endswith(":applicant-3")
    await camera.wait_for(
        lambda: (m := camera_media.received.get("staff-4")) is not None and m.video_frames >= 10,
        within=20,
        what="the newcomer's video through TURN",
    )
    pc = camera_media.subscriptions["staff-4"]
    candidates = [
        line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")
    ]
    assert candidates and all(" typ relay" in line for line in candidates)
