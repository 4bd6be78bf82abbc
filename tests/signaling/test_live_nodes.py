"""Scale-out: two nodes share the room directory in real Redis; the wrong node redirects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.settings import Settings
from signaling.directory import RedisDirectory
from signaling.handlers import LIVE_OPTIONS, LiveOptions
from tests.signaling.conftest import LOOPBACK, LiveServer, start_live

pytestmark = pytest.mark.redis


def _node(tmp: Path, template: Path, name: str, redis_url: str, prefix: str) -> Settings:
    data = tmp / name
    data.mkdir()
    shutil.copy(template, data / "yunkan.db")
    return Settings.for_tests(
        data,
        redis_url=redis_url,
        redis_prefix=prefix,
        node_id=name,
        advertise_url=f"https://{name}.yunkan.test",
    )


async def test_participant_on_the_wrong_node_is_sent_to_the_right_one(
    tmp_path: Path, sqlite_template: Path, redis_url: str, redis_prefix: str
) -> None:
    options = LiveOptions(grace=5.0, host_addresses=LOOPBACK, directory_ttl=5.0)
    a_server, case_id = await start_live(
        _node(tmp_path, sqlite_template, "node-a", redis_url, redis_prefix), options
    )
    b_server, _ = await start_live(
        _node(tmp_path, sqlite_template, "node-b", redis_url, redis_prefix), options
    )
    a, b = LiveServer(a_server, case_id, []), LiveServer(b_server, case_id, [])
    assert a.app[LIVE_OPTIONS] is options
    try:
        inspector = a.client("staff-1", "inspector", source=None)
        await inspector.connect()
        await inspector.wait_for(lambda: bool(inspector.presence), what="presence")

        lost = b.client("applicant-2", "applicant", source=None)
        lost.ws_url = b.ws_url  # the same token, but the load balancer picked node B
        await lost.connect()
        await lost.wait_for(lambda: lost.close_code is not None, what="close")
        error = lost.errors[-1]
        assert error["code"] == "wrong_node"
        assert error["details"]["url"] == "https://node-a.yunkan.test"
        assert lost.close_code == 4409

        directory = RedisDirectory.from_url(redis_url, prefix=redis_prefix)
        holder = await directory.lookup(a.room)
        await directory.close()
        assert holder is not None and holder.id == "node-a"

        # following the redirect (here: node A's real address) gets the applicant in
        found = a.client("applicant-2", "applicant", source=None)
        await found.connect()
        await found.wait_state("waiting")
    finally:
        for client in a.clients + b.clients:
            await client.close()
        await a_server.close()
        await b_server.close()
