"""``yunkan serve --workers 2`` as real processes on 127.0.0.1, with real Redis.

The workers share the public port (SO_REUSEPORT) and each listens on its own as well; a
room lives on one worker and a participant who reaches the other is redirected there
(``wrong_node``) and exchanges video with the first; a killed worker is started again by
the parent; a worker over its admission limit places a new room on the other worker,
still admits people into the rooms it has, and with no worker left refuses ``node_busy``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from signaling.client import MediaClient
from signaling.directory import RedisDirectory
from signaling.errors import CLOSE_BUSY
from signaling.tokens import JoinGrant, TokenSigner
from signaling.wsclient import SignalingClient
from tests.server.workers import SECRET, Workers, alive, children, running_workers

pytestmark = [pytest.mark.redis, pytest.mark.slow]
LOOPBACK = ("127.0.0.1",)


def _client(workers: Workers, url: str, room: str, pid: str, source: str | None) -> SignalingClient:
    token = TokenSigner(SECRET).issue(JoinGrant(room, pid, "expert", pid), ttl=600)
    return SignalingClient(
        workers.ws(url), token, source=source, media=MediaClient(host_addresses=LOOPBACK)
    )


async def _metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in {url}/metrics")


async def test_workers_share_the_port_redirect_relay_and_come_back(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {"REDIS_URL": redis_url, "YUNKAN_REDIS_PREFIX": redis_prefix}
    clients: list[SignalingClient] = []
    # SQLite (the embedded database): the parent migrated it once before the workers.
    async with running_workers(tmp_path / "var", 2, env) as workers:
        assert (tmp_path / "var" / "yunkan.db").exists()
        assert len(children(workers.proc.pid)) == 2
        room = "workers-room"
        try:
            # Through the shared port: whichever worker the kernel picked claims the room.
            first = _client(workers, workers.url, room, "guest-a", "testsrc")
            clients.append(first)
            await first.connect()
            await first.wait_state("admitted", within=30)
            assert first.errors == []
            directory = RedisDirectory.from_url(redis_url, prefix=redis_prefix)
            holder = await directory.lookup(room)
            await directory.close()
            urls = [workers.worker_url(i) for i in range(2)]
            assert holder is not None and holder.url in urls
            index = urls.index(holder.url)
            assert holder.id.endswith(f"/w{index}")

            # The other worker, straight at its own port: sent to the room's worker.
            second = _client(workers, urls[1 - index], room, "guest-b", "testsrc")
            clients.append(second)
            await second.connect()
            await second.wait_state("admitted", within=30)
            assert [e["code"] for e in second.errors] == ["wrong_node"]
            assert second.redirects == 1 and second.ws_url == workers.ws(holder.url)
            await first.media.wait_for_video("guest-b", frames=10, within=30)
            await second.media.wait_for_video("guest-a", frames=10, within=30)
            seen = first.media.received["guest-b"]
            assert (seen.width, seen.height) == (640, 480)
        finally:
            for client in clients:
                await client.close()

        # A worker killed outright: the parent starts it again and it serves its port.
        before = children(workers.proc.pid)
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            now = children(workers.proc.pid)
            if len(now) == 2 and before[0] not in now:
                break
            assert time.monotonic() < deadline, f"no restart:\n{workers.tail()}"
            await asyncio.sleep(0.2)
        await workers.wait_healthy(within=60)
        assert "exited with -9" in workers.tail()
        assert workers.proc.poll() is None

    # SIGTERM to the parent stopped every worker, and the parent with 0.
    assert workers.proc.returncode == 0
    assert not any(map(alive, now))


async def _wait_busy(redis_url: str, prefix: str, url: str, within: float = 20) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            async for key in client.scan_iter(match=f"{prefix}node:*"):
                raw = await client.get(key)
                if raw and json.loads(raw)["url"] == url and json.loads(raw)["busy"]:
                    return
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()
    raise AssertionError(f"{url} never published itself busy")


@pytest.mark.postgres
async def test_a_full_worker_places_new_rooms_on_the_other_and_keeps_its_own(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    env = {
        "REDIS_URL": redis_url,
        "YUNKAN_REDIS_PREFIX": redis_prefix,
        "YUNKAN_ADMIT_MAX_STREAMS": "2",  # two forwarded streams fill a worker
    }
    clients: list[SignalingClient] = []

    async def join(url: str, room: str, pid: str, source: str | None) -> SignalingClient:
        client = _client(workers, url, room, pid, source)
        clients.append(client)
        await client.connect()
        return client

    async with running_workers(tmp_path / "var", 2, env, database_url=pg_database) as workers:
        w0, w1 = workers.worker_url(0), workers.worker_url(1)
        try:
            # Worker 0 fills up with a 1:1 call (two streams forwarded).
            a = await join(w0, "full-room", "guest-a", "testsrc")
            b = await join(w0, "full-room", "guest-b", "testsrc")
            await a.media.wait_for_video("guest-b", frames=5, within=30)
            await b.media.wait_for_video("guest-a", frames=5, within=30)
            await _wait_busy(redis_url, redis_prefix, w0)

            # A new room reaching worker 0 is placed on worker 1.
            c = await join(w0, "new-room", "guest-c", None)
            await c.wait_state("admitted", within=30)
            assert [e["code"] for e in c.errors] == ["wrong_node"]
            assert c.errors[0]["details"]["url"] == w1 and c.ws_url == workers.ws(w1)
            assert await _metric(w0, "yunkan_live_rooms_placed_elsewhere_total") == 1.0

            # The room worker 0 already has still lets people in.
            d = await join(w0, "full-room", "guest-d", None)
            await d.wait_state("admitted", within=30)
            assert d.errors == []
            await d.media.wait_for_video("guest-a", frames=5, within=30)

            # Worker 1 fills up too; a third new room finds no worker with headroom.
            e = await join(w1, "new-room", "guest-e", "testsrc")
            f = await join(w1, "new-room", "guest-f", None)
            await c.media.wait_for_video("guest-e", frames=5, within=30)
            await f.media.wait_for_video("guest-e", frames=5, within=30)
            await _wait_busy(redis_url, redis_prefix, w1)
            g = await join(w0, "third-room", "guest-g", None)
            await g.wait_for(lambda: g.close_code is not None, within=30, what="refusal")
            assert [x["code"] for x in g.errors] == ["node_busy"]
            assert g.close_code == CLOSE_BUSY
            assert await _metric(w0, "yunkan_live_rooms_refused_total") == 1.0
            assert await _metric(w0, "yunkan_admission_busy") == 1.0
            assert e.errors == [] and f.errors == []
        finally:
            for client in clients:
                await client.close()
