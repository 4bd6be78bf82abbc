"""Scale-out with real worker processes: two ``yunkan serve`` processes on one host share
PostgreSQL and Redis; a participant who reaches the wrong one is sent to the room's node,
admitted there, and both sides see each other's video."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.accounts.models import User
from server.accounts.sessions import create_session, principal_of_user
from server.cases.numbers import open_case
from server.db.engine import create_engine, session_factory
from server.settings import Settings
from signaling.client import MediaClient
from signaling.directory import RedisDirectory
from signaling.tokens import JoinGrant, Role, TokenSigner
from signaling.wsclient import SignalingClient
from tests.booking.servers import SECRET, running_servers

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

LOOPBACK = ("127.0.0.1",)


async def test_two_worker_processes_redirect_admit_and_relay(
    pg_database: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = Settings.for_tests(tmp_path / "seed", database_url=pg_database)
    engine = create_engine(settings)
    async with session_factory(engine)() as session, session.begin():
        case = await open_case(session, title="两进程勘验", zone=settings.zone)
        room = f"case-{case.id}"
        # The console link needs its staff login (sent as a bearer token, like the CLI).
        user = User(username="staff-a", display_name="王科员", role="inspector", password_hash="!")
        session.add(user)
        await session.flush()
        inspector_id = user.id
        login, _ = await create_session(
            session, principal_of_user(user), hours=1, ip=None, user_agent="tests"
        )
    await engine.dispose()

    signer = TokenSigner(SECRET)  # the servers' YUNKAN_SECRET_KEY

    def token(participant: str, role: Role) -> str:
        return signer.issue(JoinGrant(room, participant, role, participant), ttl=600)

    env = {
        "REDIS_URL": redis_url,
        "YUNKAN_REDIS_PREFIX": redis_prefix,
        "YUNKAN_ICE_HOST_ADDRESSES": "127.0.0.1",
    }
    clients: list[SignalingClient] = []
    async with running_servers(pg_database, tmp_path, env=env) as urls:
        ws = [url.replace("http://", "ws://") + "/live/ws" for url in urls]
        try:
            inspector = SignalingClient(
                ws[0],
                token(f"staff-{inspector_id}", "inspector"),
                source="testsrc",
                media=MediaClient(host_addresses=LOOPBACK),
                auto_admit=True,
                login_token=login,
            )
            clients.append(inspector)
            await inspector.connect()
            await inspector.wait_for(lambda: bool(inspector.presence), what="presence")

            # The load balancer sent the applicant to the other process.
            applicant = SignalingClient(
                ws[1],
                token("applicant-7", "applicant"),
                source="testsrc",
                media=MediaClient(host_addresses=LOOPBACK),
            )
            clients.append(applicant)
            await applicant.connect()
            await applicant.wait_state("admitted", within=20)
            assert [e["code"] for e in applicant.errors] == ["wrong_node"]
            assert applicant.redirects == 1 and applicant.ws_url == ws[0]

            await applicant.media.wait_for_video(f"staff-{inspector_id}", frames=10, within=20)
            await inspector.media.wait_for_video("applicant-7", frames=10, within=20)
            for media in (
                applicant.media.received[f"staff-{inspector_id}"],
                inspector.media.received["applicant-7"],
            ):
                assert (media.width, media.height) == (640, 480)

            directory = RedisDirectory.from_url(redis_url, prefix=redis_prefix)
            holder = await directory.lookup(room)
            await directory.close()
            assert holder is not None and holder.id == "node0" and holder.url == urls[0]
        finally:
            for client in clients:
                await client.close()
