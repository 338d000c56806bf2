"""The heartbeat scheduler: one heap and a bounded pool of workers for every peer of an operator.

Real asyncio, short intervals (tens of milliseconds): the beats below record when each cycle was
due and when it started, and hold their cycles on events the test controls.
"""

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from federation_operator.controller.scheduler import Scheduler, SchedulerHooks, default_workers
from tests.harness.waiting import async_wait_for

INTERVAL = 0.05


@dataclass
class Beat:
    """A peer's heartbeat as the scheduler sees it: records every cycle; can be made to hang or fail."""

    every: float = INTERVAL
    took: float = 0.0
    hold: asyncio.Event | None = None
    fail: bool = False
    dues: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    crashes: list[Exception] = field(default_factory=list)
    cancelled: int = 0
    running: int = 0

    def interval(self) -> float:
        return self.every

    async def cycle(self, *, due: float) -> None:
        self.dues.append(due)
        self.starts.append(asyncio.get_running_loop().time())
        self.running += 1
        try:
            if self.hold is not None:
                await self.hold.wait()
            if self.took:
                await asyncio.sleep(self.took)  # the ping's own duration, simulated
            if self.fail:
                raise RuntimeError("boom")
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    async def crashed(self, error: Exception) -> None:
        self.crashes.append(error)


@dataclass
class Seen:
    lags: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)

    def started(self, lag: float, waiting: int) -> None:
        self.lags.append(lag)
        self.waiting.append(waiting)


@pytest.fixture
async def seen() -> Seen:
    return Seen()


@pytest.fixture
async def scheduler(seen: Seen) -> AsyncIterator[Scheduler[str]]:
    made: Scheduler[str] = Scheduler(
        workers=4,
        hooks=SchedulerHooks(on_start=seen.started, on_pending=seen.pending.append),
        rng=random.Random(7),
    )
    made.start()
    yield made
    await made.stop()


def on_grid(dues: list[float], step: float) -> list[int]:
    """How many steps apart consecutive slots are; fails unless each gap is a whole number of steps
    (a busy host may make a cycle overrun and skip a slot: still on the grid)."""
    gaps = [later - earlier for earlier, later in itertools.pairwise(dues)]
    multiples = [round(gap / step) for gap in gaps]
    assert gaps == pytest.approx([m * step for m in multiples], abs=1e-9), "slots off the grid"
    return multiples


async def until(predicate: Callable[[], object], message: str) -> None:
    async def probe() -> bool:
        return bool(predicate())

    await async_wait_for(probe, timeout=5.0, message=message)


async def test_first_cycle_is_jittered_within_the_interval_then_cycles_stay_on_the_grid(
    scheduler: Scheduler[str],
) -> None:
    beats = {name: Beat(took=0.01) for name in "abcdef"}
    added = asyncio.get_running_loop().time()
    for name, beat in beats.items():
        scheduler.put(name, beat)
    await until(lambda: all(len(beat.dues) >= 5 for beat in beats.values()), "five cycles each")
    firsts = [beat.dues[0] - added for beat in beats.values()]
    assert all(0 <= first <= INTERVAL for first in firsts)
    assert len({round(first, 4) for first in firsts}) > 1, "first slots are spread, not all at once"
    for beat in beats.values():
        assert min(on_grid(beat.dues, INTERVAL)) >= 1, "slots on the grid, whatever each cycle took"
        assert all(start >= due for due, start in zip(beat.dues, beat.starts, strict=True))


class LatestDraw(random.Random):
    """Draws every first slot at the end of its window: the latest the scheduler may choose."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_first_slots_are_drawn_within_the_interval_after_the_start_not_after_each_arrival() -> None:
    """kopf hands a start's listed peers over at its own pace (a minute at 10,000): a peer that
    arrives after its drawn slot is due at once, not a whole interval after it arrived."""
    scheduler: Scheduler[str] = Scheduler(workers=4, rng=LatestDraw())
    loop = asyncio.get_running_loop()
    scheduler.start()
    try:
        started = loop.time()
        early = Beat()
        scheduler.put("early", early)
        await until(lambda: early.dues, "the early peer's first cycle")
        assert early.dues[0] == pytest.approx(started + INTERVAL, abs=0.01), "drawn within the first interval"
        late = Beat()
        arrived = loop.time()  # past the first interval: the early peer's first slot is behind us
        scheduler.put("late", late)
        await until(lambda: late.dues, "the late peer's first cycle")
        assert late.dues[0] == pytest.approx(arrived, abs=0.01), "due at once, not drawn from its arrival"
    finally:
        await scheduler.stop()


async def test_a_cycle_that_overran_its_interval_skips_the_missed_slots(scheduler: Scheduler[str]) -> None:
    beat = Beat(took=2.5 * INTERVAL)
    scheduler.put("slow", beat)
    await until(lambda: len(beat.dues) >= 3, "three cycles")
    assert min(on_grid(beat.dues, INTERVAL)) >= 3, "the next free slot, no burst of missed ones"


async def test_at_most_workers_cycles_run_at_once_and_the_rest_wait_as_pending(
    scheduler: Scheduler[str], seen: Seen
) -> None:
    hold = asyncio.Event()
    beats = [Beat(hold=hold) for _ in range(10)]
    for number, beat in enumerate(beats):
        scheduler.put(str(number), beat)
    await until(lambda: scheduler.busy == 4 and scheduler.pending == 6, "four running, six waiting")
    assert sum(beat.running for beat in beats) == 4
    assert seen.pending[-1] == 6
    hold.set()
    await until(lambda: all(beat.dues for beat in beats), "every peer had its cycle")
    # The six that waited for a worker started after their slot: the operator's lag, reported
    # (taken as the worker picks the cycle up, a task switch before the cycle itself starts).
    late = sorted(start - due for beat in beats for due, start in zip(beat.dues, beat.starts, strict=True))
    assert late[-1] > 0
    assert max(seen.lags) == pytest.approx(late[-1], abs=0.01)
    # The fifth start is the first of the six: five more waited behind it. (Not the largest count
    # seen: when the loop stalls for the jitter's 50 ms, several of the first four come due in one
    # batch and the second of them to start sees up to eight behind it.)
    assert seen.waiting[4] == 5, "the first of the six to start saw five more waiting behind it"


async def test_removing_a_peer_cancels_its_running_cycle_and_ends_its_cycles(
    scheduler: Scheduler[str],
) -> None:
    hold = asyncio.Event()
    beat = Beat(hold=hold)
    scheduler.put("gone", beat)
    await until(lambda: beat.running == 1, "cycle running")
    assert scheduler.remove("gone") is beat
    await until(lambda: beat.cancelled == 1 and beat.running == 0, "cycle cancelled")
    other = Beat()
    scheduler.put("other", other)
    await until(lambda: len(other.dues) >= 3, "the scheduler goes on with other peers")
    assert len(beat.dues) == 1, "no cycle after the removal"
    assert beat.crashes == [], "a cancelled cycle is not a failure"


async def test_a_failing_cycle_is_reported_and_the_next_slot_comes_as_planned(
    scheduler: Scheduler[str],
) -> None:
    beat = Beat(fail=True)
    scheduler.put("failing", beat)
    await until(lambda: len(beat.crashes) >= 3, "three failures reported")
    assert all(isinstance(error, RuntimeError) for error in beat.crashes)
    assert min(on_grid(beat.dues, INTERVAL)) >= 1


async def test_put_of_a_known_peer_keeps_its_slot_and_uses_the_new_interval_from_the_next(
    scheduler: Scheduler[str],
) -> None:
    beat = Beat()
    scheduler.put("p", beat)
    await until(lambda: len(beat.dues) >= 2, "two cycles")
    replacement = Beat(every=2 * INTERVAL)
    scheduler.put("p", replacement)
    await until(lambda: len(replacement.dues) >= 3, "three cycles of the replacement")
    assert min(on_grid(replacement.dues[1:], 2 * INTERVAL)) >= 1
    assert scheduler.peers == 1


async def test_expedite_runs_a_waiting_peer_now_and_its_grid_continues_from_there(
    scheduler: Scheduler[str],
) -> None:
    """A cycle that had nothing to do yet (credentials not judged) is run at once when that changes,
    not one interval later; a peer whose cycle is running is left alone."""
    beat = Beat(every=60.0)  # the next slot is a minute away after each cycle
    scheduler.put("p", beat)
    scheduler.expedite("p")  # its jittered first slot is up to a minute away: now instead
    await until(lambda: len(beat.dues) == 1, "the first cycle, at once")
    loop = asyncio.get_running_loop()
    asked = loop.time()
    scheduler.expedite("p")
    await until(lambda: len(beat.dues) == 2, "the next cycle, at once")
    assert beat.starts[1] - asked < 5.0, "not the slot a minute later"
    hold = asyncio.Event()
    held = Beat(every=60.0, hold=hold)
    scheduler.put("held", held)
    scheduler.expedite("held")
    await until(lambda: held.running == 1, "a cycle running")
    scheduler.expedite("held")  # while it runs: nothing
    hold.set()
    await until(lambda: held.running == 0, "the cycle done")
    assert len(held.dues) == 1, "no second cycle from an expedite while the first ran"
    scheduler.expedite("unknown")  # a peer the scheduler does not know: nothing


async def test_stop_ends_every_cycle_at_once_however_many_peers(seen: Seen) -> None:
    scheduler: Scheduler[str] = Scheduler(workers=8, hooks=SchedulerHooks(on_start=seen.started))
    scheduler.start()
    hold = asyncio.Event()  # never set: cycles that would hang forever
    beats = [Beat(every=0.01, hold=hold) for _ in range(2000)]
    for number, beat in enumerate(beats):
        scheduler.put(str(number), beat)
    await until(lambda: scheduler.busy == 8, "eight cycles hanging")
    loop = asyncio.get_running_loop()
    stopping = loop.time()
    await scheduler.stop()
    assert loop.time() - stopping < 1.0
    assert sum(beat.running for beat in beats) == 0
    assert sum(beat.cancelled for beat in beats) == 8


def test_workers_are_sized_for_the_machine_within_bounds() -> None:
    assert default_workers(2) == 128
    assert default_workers(None) == 64
    assert default_workers(64) == 256
    with pytest.raises(ValueError, match="at least one worker"):
        Scheduler(workers=0)
