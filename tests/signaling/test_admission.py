"""Admission control on one node: a really stalled event loop makes the node refuse *new*
rooms with ``node_busy`` (no other node to place them on), while a room it already hosts
keeps admitting participants; ``/metrics`` counts the refusal."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from server.settings import Settings, SettingsError
from signaling.admission import AdmissionLimits, Load, LoadSampler
from signaling.errors import CLOSE_BUSY
from signaling.handlers import HUB, LiveOptions
from tests.signaling.conftest import LOOPBACK, running_live

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def stalled_loop(block: float = 0.15, every: float = 0.2) -> Iterator[None]:
    """Block the running event loop for ``block`` seconds every ``every`` seconds, as a
    CPU-bound neighbour or a burst of packets would (a real stall, not a patched figure)."""
    loop = asyncio.get_running_loop()
    handle: list[asyncio.TimerHandle] = []

    def stall() -> None:
        time.sleep(block)
        handle[:] = [loop.call_later(every - block, stall)]

    handle.append(loop.call_later(0, stall))
    try:
        yield
    finally:
        for h in handle:
            h.cancel()


async def test_the_sampler_sees_a_stalled_loop_and_a_busy_cpu() -> None:
    sampler = LoadSampler(interval=0.05, window=1.0)
    sampler.start()
    try:
        await asyncio.sleep(0.6)
        assert sampler.lag_ms < 40, sampler.lag_ms  # an idle loop runs its timer on time
        with stalled_loop():
            await asyncio.sleep(1.2)
        assert sampler.lag_ms > 60, sampler.lag_ms
        await asyncio.sleep(1.2)  # the window slides: the stall is forgotten
        assert sampler.lag_ms < 40, sampler.lag_ms
        idle = sampler.cpu
        # CPU-bound for 1.5 s, yielding so the timer still runs; on a shared machine we get
        # what the scheduler gives, so compare with our own CPU clock over the last second.
        start = time.monotonic()
        mark: tuple[float, float] | None = None
        while time.monotonic() < start + 1.5:
            sum(range(20_000))
            await asyncio.sleep(0)
            if mark is None and time.monotonic() > start + 0.5:
                mark = (time.monotonic(), time.process_time())
        assert mark is not None
        own = 100 * (time.process_time() - mark[1]) / (time.monotonic() - mark[0])
        assert abs(sampler.cpu - own) < max(10.0, 0.3 * own), (sampler.cpu, own)
        assert sampler.cpu > idle + 5, (sampler.cpu, idle)
    finally:
        await sampler.close()


def test_limits_say_why_a_load_is_over_them() -> None:
    limits = AdmissionLimits(max_lag_ms=50, max_cpu=80, max_streams=4)
    assert Load(10, 30, 3, 1).over(limits) is None
    assert "event loop" in (Load(60, 30, 3, 1).over(limits) or "")
    assert "CPU" in (Load(10, 90, 3, 1).over(limits) or "")
    assert "streams" in (Load(10, 30, 4, 2).over(limits) or "")
    assert Load(10, 30, 3, 1).score(limits) == pytest.approx(0.75)
    # No limits (the default): nothing is ever over them.
    assert AdmissionLimits().enabled is False
    assert Load(900, 100, 99, 9).over(AdmissionLimits()) is None


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"YUNKAN_ADMIT_MAX_CPU": "150"}, "YUNKAN_ADMIT_MAX_CPU=150"),
        ({"YUNKAN_ADMIT_MAX_LAG_MS": "-1"}, "YUNKAN_ADMIT_MAX_LAG_MS=-1"),
        ({"YUNKAN_ADMIT_MAX_STREAMS": "-3"}, "YUNKAN_ADMIT_MAX_STREAMS=-3"),
        ({"YUNKAN_WORKERS": "0"}, "YUNKAN_WORKERS=0"),
        ({"YUNKAN_WORKERS": "2"}, "needs REDIS_URL"),
    ],
)
def test_capacity_settings_are_validated(tmp_path: Path, env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.load({"YUNKAN_DATA_DIR": str(tmp_path), **env})


def test_serve_refuses_several_workers_without_redis(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "YUNKAN_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "needs REDIS_URL" in done.stderr
    assert not (tmp_path / "yunkan.db").exists()  # refused before touching anything


async def test_a_busy_node_refuses_new_rooms_but_not_people(
    tmp_path: Path, sqlite_template: Path
) -> None:

    data = tmp_path / "var"
    data.mkdir()
    shutil.copy(sqlite_template, data / "yunkan.db")
    settings = Settings.for_tests(data, admit_max_lag_ms=60)
    options = LiveOptions(grace=5.0, host_addresses=LOOPBACK)
    async with running_live(settings, options) as live:
        hub = live.app[HUB]
        admission = hub.directory.admission  # type: ignore[attr-defined]
        # Start-up itself runs the loop late for a moment: begin once the node is calm.
        deadline = time.monotonic() + 20
        while admission.busy() is not None:
            assert time.monotonic() < deadline, f"never calm: {admission.busy()}"
            await asyncio.sleep(0.1)
        first = live.client("guest-a", "expert", source=None)
        await first.connect()
        await first.wait_state("admitted")

        with stalled_loop(block=0.18):
            deadline = time.monotonic() + 10
            while admission.busy() is None:
                assert time.monotonic() < deadline, "the stalled loop never made the node busy"
                await asyncio.sleep(0.1)

            # A new room: refused, with the stable code, a readable message and 4503.
            token = live.token("guest-b", "expert", room="other-room")
            refused = live.client("guest-b", "expert", source=None)
            refused.token = token
            await refused.connect()
            await refused.wait_for(lambda: refused.close_code is not None, within=20)
            assert [e["code"] for e in refused.errors] == ["node_busy"]
            assert refused.close_code == CLOSE_BUSY
            # zh-CN first (the server's default language), the English specifics as detail
            assert refused.errors[0]["message"] == "视频服务当前已满负荷，请几分钟后再试。"
            assert "no other node has headroom" in refused.errors[0]["detail"]
            assert "other-room" not in hub.rooms

            # The room the node already hosts: the next participant is let in.
            joining = live.client("guest-c", "expert", source=None)
            await joining.connect()
            await joining.wait_state("admitted", within=20)
            assert joining.errors == []
            assert admission.busy() is not None  # still busy: admitted despite it

        async with (
            aiohttp.ClientSession() as http,
            http.get(live.server.make_url("/metrics")) as response,
        ):
            text = await response.text()
        assert "yunkan_live_rooms_refused_total 1.0" in text
        assert "yunkan_live_rooms_placed_elsewhere_total 0.0" in text
