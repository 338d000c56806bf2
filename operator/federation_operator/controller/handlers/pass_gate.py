"""The gate of the credentials passes: at most N at once, and which peers wait for their turn.

kopf hands every listed peer to its handlers at once: at a start over thousands of peers each
pass in flight holds its reads, plans and writes until its calls come back through the API
client's pool, and that transient peak, not what stays, sets the operator's RSS (CPython keeps an
arena while one block in it lives; docs/benchmarks.md, "Memory per peer"). Passes beyond the gate
wait before they read anything.

The heartbeat asks whether a peer's pass is waiting here: a new peer's cycles wait for its
credentials to be judged, at most `CREDENTIALS_WAIT` in general, but longer while its pass is
queued behind the others of a large start (`heartbeat_schedule.awaits_credentials`): that pass
is coming, and pinging before it would report a missing Secret that was never the link's.
"""

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Hashable


class PassGate:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a pass gate needs at least one slot, not {limit}")
        self._slots = asyncio.Semaphore(limit)
        self._waiting: Counter[Hashable] = Counter()

    def waiting(self, key: Hashable) -> bool:
        """Whether a pass of `key` waits for a slot now."""
        return self._waiting[key] > 0

    @contextlib.asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        self._waiting[key] += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
        try:
            yield
        finally:
            self._slots.release()
