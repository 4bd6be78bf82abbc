"""Running aiortc's per-packet coroutines without a task hop, in order.

aiortc's per-packet code is written as coroutines (``RTCDtlsTransport._handle_rtp_data``,
``_send_rtp``), but with aioice 0.13 none of them ever suspends: aioice's
``StunProtocol.send_data`` calls ``transport.sendto`` at once, and a TURN transport's
``sendto`` starts its own task to wait for a channel binding. Waking a task per packet
to run them costs a turn of the event loop (an extra ``epoll`` call, the task machinery)
for nothing. :class:`InOrder` steps such a coroutine by hand right away, and only if it
does suspend hands it (and whatever comes after it) to a task, so that the coroutines of
one stream still run one at a time and in the order they came, as in a task's loop.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

Step = Coroutine[Any, Any, None]


class InOrder:
    """Runs coroutines one at a time, in the order they come, without a task if it can.

    :meth:`run` steps the coroutine right away; nearly always it returns without
    suspending. If it does suspend, a task finishes it, and coroutines that come meanwhile
    are started only after it, in order, by the same task: no two ever overlap. An
    exception is logged with its traceback (and counted in ``errors``) and the next
    coroutine runs.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.suspended = 0
        self.errors = 0
        self._backlog: deque[Callable[[], Step | None]] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """True while a suspended coroutine (or its backlog) is still running."""
        return self._backlog is not None

    def run(self, start: Callable[[], Step | None]) -> None:
        """Run the coroutine ``start()`` returns (None: nothing to do)."""
        if self._backlog is not None:
            self._backlog.append(start)
            return
        try:
            step = start()
        except Exception as exc:
            self._failed(exc)
            return
        if step is None:
            return
        suspended, awaited = self._step(step)
        if not suspended:
            return
        self.suspended += 1
        self._backlog = deque()
        self._task = asyncio.ensure_future(self._finish(step, awaited))

    async def drain(self) -> None:
        """Wait until a suspended coroutine and its backlog are done."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        logger.warning("%s failed:\n%s", self.what, "".join(traceback.format_exception(exc)))

    def _step(self, step: Step) -> tuple[bool, Any]:
        """Step ``step`` once: (True, what it awaits) if it suspended, else (False, None)."""
        try:
            return True, step.send(None)
        except StopIteration:
            return False, None
        except Exception as exc:
            self._failed(exc)
            return False, None

    async def _finish(self, step: Step, awaited: Any) -> None:
        try:
            await self._resume(step, awaited)
            while self._backlog:
                try:
                    next_step = self._backlog.popleft()()
                    if next_step is not None:
                        await next_step
                except Exception as exc:
                    self._failed(exc)
        finally:
            self._backlog = None
            self._task = None

    async def _resume(self, step: Step, awaited: Any) -> None:
        """Go on with a coroutine that was stepped by hand and yielded ``awaited``.

        What an asyncio task does: wait until the future it yielded is done (a bare
        ``yield`` is ``sleep(0)``), then step it again, until it returns. The future's
        outcome reaches the coroutine through its own ``await`` (``Future.result()``).
        """
        while True:
            try:
                if asyncio.isfuture(awaited):
                    awaited._asyncio_future_blocking = False
                    await asyncio.wait((awaited,))
                else:
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                step.close()
                raise
            suspended, awaited = self._step(step)
            if not suspended:
                return
