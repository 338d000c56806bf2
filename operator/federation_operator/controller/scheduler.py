"""One heartbeat scheduler for all peers of an operator: a heap of slots and a bounded pool of workers.

Why not a kopf daemon per peer (what this replaced): kopf keeps a task, a stop flag and its
bookkeeping per daemon, starts them one by one and stops them one by one. At 10,000 peers that
shape alone cost kopf 139 s to start against 30 s for a no-op operator, and SIGTERM took minutes
(docs/benchmarks.md, "The framework's floor"). Here there is one dispatcher task and a fixed
number of worker tasks, whatever the number of peers; stopping is cancelling those few.

The first cycles are spread uniformly over the first interval after the start (a restart does not
fire every peer at once; `put` says why a late peer goes at once), then cycles land on the drift-free grid of
`heartbeat_schedule.next_slot` (missed slots are skipped, never burst). A peer is never in two
places at once: it is either in the heap (waiting for its slot), in the ready queue (due, waiting
for a worker) or in a worker (its cycle running), so one peer never runs two cycles at a time.

Saturation: when more cycles are due than the workers can start, they wait in the ready queue,
in slot order. How long a cycle waited (`lag`: slot to start) and how many still wait are
reported to the owner's `on_start`, the queue's length to `on_pending`; neither is part of a
ping's latency (the owner judges saturation from them: `heartbeat_schedule.judge_saturation`).

Removing a peer cancels its cycle if one is running (a deletion stops the ping in flight at once)
and drops it from the heap and queue lazily (a stale entry is skipped when it comes up).
"""

import asyncio
import contextlib
import heapq
import logging
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Final, Generic, Protocol, TypeVar

from federation_operator.domain.heartbeat_schedule import next_slot

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# How long `stop` waits for cancelled cycles to unwind (a ping's clean-up is a socket close).
STOP_TIMEOUT: Final = 5.0


class Beat(Protocol):
    """What the scheduler runs for one peer. Its interval is read again after every cycle."""

    def interval(self) -> float: ...

    async def cycle(self, *, due: float) -> None: ...

    async def crashed(self, error: Exception) -> None: ...


@dataclass
class _Peer:
    beat: Beat
    version: int = 0  # its current heap entry's number (unique per scheduler); 0: none
    running: asyncio.Task[None] | None = None
    due: float = 0.0


@dataclass
class SchedulerHooks:
    """What the scheduler tells its owner: each cycle's lag as it starts (with how many due cycles
    still wait for a worker), and the queue's length whenever it changes."""

    on_start: Callable[[float, int], None] = lambda lag, waiting: None
    on_pending: Callable[[int], None] = lambda pending: None


@dataclass
class Scheduler(Generic[K]):
    """Cycles of many peers on one heap, run by `workers` tasks. Start and stop it in one loop."""

    workers: int
    hooks: SchedulerHooks = field(default_factory=SchedulerHooks)
    rng: random.Random = field(default_factory=random.Random)  # jitter, not security

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("a heartbeat scheduler needs at least one worker")
        self._peers: dict[K, _Peer] = {}
        self._heap: list[tuple[float, int, K, int]] = []
        self._ready: asyncio.Queue[tuple[K, int, float]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sequence = 0
        self._busy = 0
        self._stopped = False
        self._started_at: float | None = None

    @property
    def peers(self) -> int:
        return len(self._peers)

    @property
    def started(self) -> bool:
        """Started once (a stopped scheduler stays stopped)."""
        return bool(self._tasks) or self._stopped

    @property
    def pending(self) -> int:
        """Cycles that are due and wait for a worker."""
        return self._ready.qsize()

    @property
    def busy(self) -> int:
        """Workers running a cycle now."""
        return self._busy

    def beat_of(self, key: K) -> Beat | None:
        peer = self._peers.get(key)
        return peer.beat if peer is not None else None

    def start(self) -> None:
        if self.started:
            raise RuntimeError("a heartbeat scheduler starts once")
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        self._tasks = [loop.create_task(self._dispatch(), name="heartbeat-dispatcher")]
        for number in range(self.workers):
            self._tasks.append(loop.create_task(self._work(), name=f"heartbeat-worker-{number}"))

    async def stop(self) -> None:
        """Cancel the dispatcher, the workers and every running cycle; wait a few seconds at most."""
        tasks = self._tasks + [peer.running for peer in self._peers.values() if peer.running is not None]
        self._tasks = []
        self._stopped = True
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT)

    def put(self, key: K, beat: Beat) -> None:
        """Add a peer, or replace its beat (same slot).

        A new peer's first slot is drawn within the first interval after the scheduler started, or
        now if that slot has passed: the draw spreads the first pings of the peers a start finds
        over one interval, and a peer handed over after its drawn slot (kopf hands the listed peers
        over at its own pace, about a minute at 10,000) or created later is pinged at once, already
        spread by that pace. Drawn from each peer's arrival instead, the last peers of a large
        start would wait a whole interval more."""
        peer = self._peers.get(key)
        if peer is not None:
            peer.beat = beat
            return
        peer = self._peers[key] = _Peer(beat)
        now = asyncio.get_running_loop().time()
        start = now if self._started_at is None else self._started_at
        self._push(key, peer, max(now, start + self.rng.uniform(0, max(beat.interval(), 0.0))))

    def expedite(self, key: K) -> None:
        """Run a waiting peer's next cycle now rather than at its slot; its grid continues from now.

        For a cycle that had nothing to do yet (its peer's credentials not judged) and now has: the
        first ping then follows the credentials at once instead of one interval later. A peer that
        is due, queued or running is left as it is."""
        peer = self._peers.get(key)
        if peer is None or peer.running is not None:
            return
        now = asyncio.get_running_loop().time()
        if peer.due > now:
            self._push(key, peer, now)

    def remove(self, key: K) -> Beat | None:
        """Forget a peer: its slot is dropped and its running cycle, if any, cancelled."""
        peer = self._peers.pop(key, None)
        if peer is None:
            return None
        peer.version = 0
        if peer.running is not None:
            peer.running.cancel()
        return peer.beat

    def _push(self, key: K, peer: _Peer, due: float) -> None:
        self._sequence += 1
        peer.version = self._sequence
        peer.due = due
        first = not self._heap or due < self._heap[0][0]
        heapq.heappush(self._heap, (due, self._sequence, key, peer.version))
        if first:
            self._wake.set()

    async def _dispatch(self) -> None:
        """Move every due peer to the ready queue, in slot order; sleep until the next slot."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self._heap and self._heap[0][0] <= now:
                due, _, key, version = heapq.heappop(self._heap)
                peer = self._peers.get(key)
                if peer is not None and peer.version == version:
                    self._ready.put_nowait((key, version, due))
            self.hooks.on_pending(self._ready.qsize())
            self._wake.clear()
            delay = self._heap[0][0] - loop.time() if self._heap else None
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key, version, due = await self._take()
            peer = self._peers.get(key)
            if peer is None or peer.version != version:
                continue  # removed (or replaced) while it waited
            waiting = self._ready.qsize()
            self.hooks.on_pending(waiting)
            self.hooks.on_start(loop.time() - due, waiting)
            self._busy += 1
            try:
                await self._run(peer, due)
            finally:
                self._busy -= 1
            if self._peers.get(key) is peer:
                self._push(key, peer, next_slot(previous=due, now=loop.time(), step=_step(peer.beat)))

    async def _take(self) -> tuple[K, int, float]:
        """The next due cycle (key, entry number, slot), oldest slot first."""
        return await self._ready.get()

    async def _run(self, peer: _Peer, due: float) -> None:
        """One cycle in a task of its own, so that `remove` can cancel it without the worker."""
        task = asyncio.ensure_future(peer.beat.cycle(due=due))
        peer.running = task
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the scheduler is stopping
            # The peer was removed: its cycle is abandoned, nothing to report.
        except Exception as error:  # a cycle must never end a worker, nor fail unseen
            try:
                await peer.beat.crashed(error)
            except Exception:
                logger.exception("a heartbeat's failure report failed")
        finally:
            peer.running = None


def _step(beat: Beat) -> float:
    # A zero or negative interval would spin: a millisecond is the floor (the CRD asks for more).
    return max(beat.interval(), 0.001)


def default_workers(cpus: int | None) -> int:
    """Workers (pings in flight) sized for the machine: 64 per CPU, between 32 and 256.

    A worker mostly waits for the network, so there are many per CPU; but every handshake costs
    CPU on the operator's one event loop, and beyond what the CPU can finish in time more
    concurrent handshakes only make each one slower, until healthy remotes look Slow. 128 on two
    CPUs keeps up with 10,000 peers every 30 s at a 350 ms round trip.
    """
    return max(32, min(256, 64 * (cpus or 1)))
