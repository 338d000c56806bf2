"""Operators (and other long-running coroutines) in threads of their own, started and stopped at will.

kopf wants an event loop of its own; the tests, the sandbox and the demo run several operators and
federation servers in one process and stop them one by one.
"""

import asyncio
import contextlib
import threading
from typing import Self

from federation_operator.controller.config import OperatorConfig, OperatorContext
from federation_operator.controller.runner import run_operator


class LoopThread:
    """A coroutine `main(stop, ready)` in its own thread and event loop.

    kopf wants a loop of its own, and tests, the sandbox and the demo run operators and federation
    servers side by side and stop them one by one: `start()` returns once `main` set `ready` (or
    raises what it failed with), `stop()` sets `stop` in that loop and joins.
    """

    def __init__(self, *, name: str) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    async def main(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        async def body() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready = asyncio.Event()
            task = asyncio.create_task(self.main(stop=self._stop, ready=ready))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            self._ready.set()
            waiter.cancel()
            await task

        try:
            asyncio.run(body())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()

    def start(self, *, timeout: float = 30.0) -> Self:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self._thread.name} did not become ready")
        if self._error is not None or not self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name} failed to start") from self._error
        return self

    def stop(self, *, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class OperatorThread(LoopThread):
    """An operator in its own thread and event loop: how tests, the sandbox and the demo run it."""

    def __init__(self, config: OperatorConfig, *, context: OperatorContext | None = None) -> None:
        super().__init__(name="federation-operator")
        self.config = config
        self.context = context

    async def main(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        await run_operator(config=self.config, stop=stop, ready=ready, context=self.context)
