"""Child process for the stall test: the real app (``create_app``) serving live calls.

``live_child.py DATA_DIR PORT``: serves on 127.0.0.1:PORT with an SQLite database in
DATA_DIR, opens a case, makes an inspector with a login, and prints one JSON line (the
case, the join tokens, the login) once it accepts connections; then serves until
terminated. Its own process, so the parent can SIGSTOP it while its peers keep sending.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from aiohttp import web

from server.accounts.models import User
from server.accounts.sessions import create_session, principal_of_user
from server.app import create_app
from server.appkeys import DB, SETTINGS
from server.cases.models import CaseParty
from server.cases.numbers import open_case
from server.settings import Settings
from signaling.handlers import LIVE_OPTIONS, SIGNER, LiveOptions
from signaling.tokens import JoinGrant

LOOPBACK = ("127.0.0.1",)


async def main(data_dir: Path, port: int) -> None:
    app = create_app(Settings.for_tests(data_dir))
    app[LIVE_OPTIONS] = LiveOptions(grace=3.0, host_addresses=LOOPBACK)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with app[DB]() as session, session.begin():
        case = await open_case(session, title="停顿勘验", zone=app[SETTINGS].zone)
        user = User(username="wang", display_name="王勘验", role="inspector", password_hash="!")
        session.add(user)
        await session.flush()
        session.add(
            CaseParty(
                case_id=case.id, principal_kind="staff", principal_id=user.id, role="inspector"
            )
        )
        login, _ = await create_session(
            session, principal_of_user(user), hours=1, ip=None, user_agent="tests"
        )
        case_id, staff = case.id, f"staff-{user.id}"
    room = f"case-{case_id}"

    def token(participant: str, role: str) -> str:
        return str(app[SIGNER].issue(JoinGrant(room, participant, role, participant), ttl=600))  # type: ignore[arg-type]

    print(
        json.dumps(
            {
                "case_id": case_id,
                "login": login,
                "staff": staff,
                "inspector": token(staff, "inspector"),
                "applicant": token("applicant-1", "applicant"),
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
