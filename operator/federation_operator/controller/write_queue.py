"""The heartbeat's status writes, out of the ping workers: one waiting write per peer, a few writers.

Why: a ping holds a heartbeat worker for a round trip; a status write holds whoever makes it for
as long as the API server takes. When each worker made its cycle's write itself, a busy API server
set the pace of the pings: at 10,000 peers pinging real remotes, pings fell from 346 to 6-65 a
second while every worker waited on a status write (docs/benchmarks.md, "10,000 peers pinging a
real local federation endpoint"). Here a cycle hands its write over and its worker takes the next
ping at once.

The queue holds at most one waiting write per peer: a newer write for a peer whose write still
waits replaces it in its place in line (the newest observation carries everything a reader
needs), so the queue is never longer than the number of peers. The heartbeat makes no new ping for
a peer that `holds` a write, so a backlog slows each peer's pings to its writes instead of
spending the operator's CPU on pings whose results could not be written. One peer's writes never
run two at a time: each is computed from what the previous one returned.

`writers` tasks run the writes, oldest first: as many as the API lane has threads, so that writes
wait here, where they can be merged, and not in the lane's thread queue, where they cannot.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
Write = Callable[[], Awaitable[None]]

# How long `stop` waits for cancelled writes to unwind.
STOP_TIMEOUT: Final = 5.0


@dataclass
class WriteHooks:
    """What the queue tells its owner: its length whenever it changes."""

    on_pending: Callable[[int], None] = lambda pending: None


@dataclass
class WriteQueue(Generic[K]):
    """Per-key latest-wins writes, run by `writers` tasks. Start and stop it in one loop."""

    writers: int
    hooks: WriteHooks = field(default_factory=WriteHooks)

    def __post_init__(self) -> None:
        if self.writers < 1:
            raise ValueError("a write queue needs at least one writer")
        self._waiting: dict[K, Write] = {}  # insertion order is the line
        self._running: dict[K, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    @property
    def pending(self) -> int:
        """Writes that wait for a writer (at most one per key)."""
        return len(self._waiting)

    def holds(self, key: K) -> bool:
        """Whether `key` has a write waiting or in flight."""
        return key in self._waiting or key in self._running

    def start(self) -> None:
        if self._tasks or self._stopped:
            raise RuntimeError("a write queue starts once")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(), name=f"status-writer-{n}") for n in range(self.writers)]

    async def stop(self) -> None:
        """Drop the waiting writes, cancel the writers and the writes in flight (a status PATCH is
        atomic on the server: it lands whole or not at all); wait a few seconds at most."""
        self._stopped = True
        self._waiting.clear()
        self._wake.set()
        tasks = self._tasks + list(self._running.values())
        self._tasks = []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT)

    def submit(self, key: K, write: Write) -> None:
        """Queue `write` for `key`, replacing the one that waits for it, if any (same place in line)."""
        if self._stopped:
            return
        self._waiting[key] = write
        self._wake.set()
        self.hooks.on_pending(len(self._waiting))

    def discard(self, key: K) -> None:
        """Forget a key: its waiting write is dropped, its write in flight cancelled."""
        if self._waiting.pop(key, None) is not None:
            self.hooks.on_pending(len(self._waiting))
            self._wake.set()
        running = self._running.get(key)
        if running is not None:
            running.cancel()

    async def idle(self) -> None:
        """Wait until nothing waits and nothing runs (what a test or a drain needs)."""
        while self._waiting or self._running:
            self._wake.clear()
            await self._wake.wait()

    def _next(self) -> K | None:
        """The oldest waiting key whose previous write is not in flight."""
        for key in self._waiting:
            if key not in self._running:
                return key
        return None

    async def _work(self) -> None:
        while True:
            key = self._next()
            if key is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            write = self._waiting.pop(key)
            self.hooks.on_pending(len(self._waiting))
            task = asyncio.ensure_future(write())
            self._running[key] = task
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the queue is stopping
                # The key was discarded: its write is abandoned.
            except Exception:  # a write must report its own failures; this is the last guard
                logger.exception("a status write failed unreported")
            finally:
                if self._running.get(key) is task:
                    del self._running[key]
                # Another writer may wait for this key, `idle` for the end.
                self._wake.set()
