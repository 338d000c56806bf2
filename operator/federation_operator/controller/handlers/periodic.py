"""One periodic task per operator for what time alone makes due, instead of a kopf timer per object.

A kopf timer per FederationPeer is an asyncio task, a stop flag and kopf's per-object bookkeeping
for every peer: at 10,000 peers kopf with no-op bodies in that shape took 4.6x the framework's
own floor to start and stopped in seconds, not at once (docs/benchmarks.md, "The framework's
floor"). What the timers did (look for deadlines that passed, re-check a namespace's edge) needs
one loop over a table the handlers keep, so each concern runs one `Periodic`: started by an
`on.startup` handler, stopped by an `on.cleanup` handler.

A pass that fails is logged and tried again on the next tick, as kopf's timer did. Stopping waits
a short grace for a pass in flight (so its writes finish in their fail-closed order), then
cancels it: a write already sent to the API completes there, and the next start re-judges from
what it finds (the restart storm test proves restarts at any point are safe).
"""

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable

# How long `stop` lets a pass in flight finish before cancelling it.
STOP_GRACE = 2.0


class Periodic:
    """Runs `tick` every `interval` seconds (the first after one interval) until stopped."""

    def __init__(
        self, *, name: str, interval: float, tick: Callable[[], Awaitable[None]], logger: logging.Logger
    ) -> None:
        self.name = name
        self._interval = interval
        self._tick = tick
        self._logger = logger
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, *, grace: float = STOP_GRACE) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval)
            if self._stopping.is_set():
                return
            try:
                await self._tick()
            except Exception:
                # The next tick retries; one bad pass must not end the loop for every object.
                self._logger.exception("%s failed; retrying in %.0f s", self.name, self._interval)


class HandlerContext:
    """kopf's context of a handler, borrowed so that a sweep's passes can post Events.

    `kopf.event` finds kopf's Event queue through context variables that kopf sets only in the
    tasks that run handlers; a task of our own would fail with `LookupError`. The first handler
    that runs for the sweep's kind captures its context; each pass runs in a copy of it. The sweep
    knows only objects a handler has seen, so there is always one to borrow from when it acts.
    """

    def __init__(self) -> None:
        self._context: contextvars.Context | None = None

    def capture(self) -> None:
        if self._context is None:
            self._context = contextvars.copy_context()

    def copy(self) -> contextvars.Context | None:
        return None if self._context is None else self._context.copy()


async def bounded(
    jobs: list[tuple[str, Callable[[], Awaitable[None]]]],
    *,
    limit: int,
    logger: logging.Logger,
    context: HandlerContext,
) -> None:
    """Run named `jobs` in `context`, at most `limit` at a time; one that fails is logged, the rest go on."""
    semaphore = asyncio.Semaphore(limit)

    async def one(what: str, job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            try:
                await job()
            except Exception as error:
                # kopf's own errors carry what to say; anything else is a bug worth its traceback.
                logger.warning(
                    "%s failed: %s; retrying on the next check", what, error, exc_info=not _expected(error)
                )

    tasks = [asyncio.create_task(one(what, job), context=context.copy()) for what, job in jobs]
    if tasks:
        await asyncio.gather(*tasks)


def _expected(error: Exception) -> bool:
    return type(error).__module__.startswith("kopf")
