"""signaling.stepping.InOrder: coroutines run at once, one at a time, in order."""

from __future__ import annotations

import asyncio

import pytest

from signaling.stepping import InOrder


def recorder() -> tuple[list[str], InOrder]:
    return [], InOrder("test")


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The exception (``Type: message``) of each failure InOrder logged, in order."""
    return [
        r.getMessage().rstrip().splitlines()[-1]
        for r in caplog.records
        if r.name == "signaling.stepping"
    ]


async def test_a_coroutine_that_does_not_suspend_runs_before_run_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done, steps = recorder()

    async def work(name: str) -> None:
        done.append(name)

    for name in "abc":
        steps.run(lambda name=name: work(name))  # type: ignore[misc]
        assert done[-1] == name  # already ran: no task, no loop turn
    assert (steps.suspended, steps.busy, failures(caplog)) == (0, False, [])


async def test_a_suspended_coroutine_holds_back_the_next_ones_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done, steps = recorder()
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def slow() -> None:
        done.append("slow:start")
        done.append("slow:" + await gate)

    async def quick(name: str) -> None:
        done.append(name)

    steps.run(slow)
    steps.run(lambda: quick("q1"))
    steps.run(lambda: quick("q2"))
    assert done == ["slow:start"] and steps.busy and steps.suspended == 1
    await asyncio.sleep(0.01)
    assert done == ["slow:start"]  # still waiting for the gate; q1, q2 not started
    gate.set_result("opened")
    await steps.drain()
    assert done == ["slow:start", "slow:opened", "q1", "q2"]
    assert not steps.busy and failures(caplog) == []
    steps.run(lambda: quick("q3"))  # back to running at once
    assert done[-1] == "q3"


async def test_a_bare_yield_and_a_failed_future_reach_the_coroutine_as_in_a_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done, steps = recorder()
    failing: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def yields() -> None:
        await asyncio.sleep(0)
        done.append("after sleep(0)")
        try:
            await failing
        except KeyError as exc:
            done.append(f"caught {exc!r}")

    steps.run(yields)
    assert done == []
    await asyncio.sleep(0)
    failing.set_exception(KeyError("gone"))
    await steps.drain()
    assert done == ["after sleep(0)", "caught KeyError('gone')"] and failures(caplog) == []


async def test_errors_are_logged_and_the_next_coroutine_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done, steps = recorder()
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def boom(after: asyncio.Future[None] | None) -> None:
        if after is not None:
            await after
        raise ValueError("bad packet")

    async def fine() -> None:
        done.append("fine")

    steps.run(lambda: boom(None))  # fails at once
    steps.run(fine)
    steps.run(lambda: boom(gate))  # fails after suspending
    steps.run(lambda: boom(None))  # fails from the backlog
    steps.run(fine)
    gate.set_result(None)
    await steps.drain()
    assert done == ["fine", "fine"]
    assert failures(caplog) == ["ValueError: bad packet"] * 3 and steps.errors == 3


async def test_nothing_to_run_and_a_failing_start_are_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, steps = recorder()
    steps.run(lambda: None)

    def start() -> None:
        raise ConnectionError("not connected")

    steps.run(start)  # type: ignore[arg-type]
    assert failures(caplog) == ["ConnectionError: not connected"] and steps.errors == 1


async def test_failures_are_logged_with_what_failed(caplog: pytest.LogCaptureFixture) -> None:
    steps = InOrder("relay thing")

    async def boom() -> None:
        raise RuntimeError("logged, not raised")

    steps.run(boom)
    assert "relay thing failed" in caplog.text and "logged, not raised" in caplog.text
