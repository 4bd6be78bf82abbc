"""Scale-out: two nodes share the room directory in real Redis; the wrong node redirects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port

from server.settings import Settings
from signaling.directory import RedisDirectory
from signaling.handlers import LIVE_OPTIONS, LiveOptions
from tests.signaling.conftest import LOOPBACK, LiveServer, start_live

pytestmark = pytest.mark.redis


def _node(tmp: Path, template: Path, name: str, redis_url: str, prefix: str, port: int) -> Settings:
    data = tmp / name
    data.mkdir()
    shutil.copy(template, data / "yunkan.db")
    return Settings.for_tests(
        data,
        redis_url=redis_url,
        redis_prefix=prefix,
        node_id=name,
        advertise_url=f"http://127.0.0.1:{port}",
    )


async def test_participant_on_the_wrong_node_is_sent_to_the_right_one(
    tmp_path: Path, sqlite_template: Path, redis_url: str, redis_prefix: str
) -> None:
    options = LiveOptions(grace=5.0, host_addresses=LOOPBACK, directory_ttl=5.0)
    ports = unused_port(), unused_port()
    a_server, case_id = await start_live(
        _node(tmp_path, sqlite_template, "node-a", redis_url, redis_prefix, ports[0]),
        options,
        ports[0],
    )
    b_server, _ = await start_live(
        _node(tmp_path, sqlite_template, "node-b", redis_url, redis_prefix, ports[1]),
        options,
        ports[1],
    )
    a, b = LiveServer(a_server, case_id, []), LiveServer(b_server, case_id, [])
    assert a.app[LIVE_OPTIONS] is options
    try:
        inspector = a.client("staff-1", "inspector", source=None)
        await inspector.connect()
        await inspector.wait_for(lambda: bool(inspector.presence), what="presence")

        # the same token, but the load balancer picked node B: told to go to A, goes there
        lost = b.client("applicant-2", "applicant", source=None)
        await lost.connect()
        await lost.wait_state("waiting")
        error = lost.errors[-1]
        assert error["code"] == "wrong_node"
        assert error["details"]["url"] == f"http://127.0.0.1:{ports[0]}"
        assert lost.redirects == 1 and lost.ws_url == a.ws_url
        await inspector.wait_for(
            lambda: any(p["id"] == "applicant-2" for p in inspector.presence), what="arrival"
        )

        directory = RedisDirectory.from_url(redis_url, prefix=redis_prefix)
        holder = await directory.lookup(a.room)
        await directory.close()
        assert holder is not None and holder.id == "node-a"
    finally:
        for client in a.clients + b.clients:
            await client.close()
        await a_server.close()
        await b_server.close()
