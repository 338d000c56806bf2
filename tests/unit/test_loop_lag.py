"""`LoopLag`: how late the operator's event loop ran while a ping was in flight."""

import asyncio
import time

from federation_operator.controller.handlers.saturation import LOOP_LAG_TOLERANCE, LoopLag
from tests.harness.waiting import async_wait_for

# How long the test holds the loop: well above the tolerance, and well above the stalls a loaded
# machine causes by itself (0.3 s seen at load 15), which the "not counted" test must tell apart.
HELD = 1.5


async def _hold_the_loop() -> None:
    """Hold the loop for HELD seconds (as a burst of other work would), then resume."""
    asyncio.get_running_loop().call_soon(time.sleep, HELD)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def test_a_loop_held_by_a_callback_is_seen_late_from_the_moment_the_caller_resumes() -> None:
    async def scenario() -> float:
        lag = LoopLag()
        lag.start()
        try:
            since = lag.clock()
            await _hold_the_loop()
            # Asked at once, before the watch's own tick has run again: the tick in progress counts.
            return lag.worst_since(since)
        finally:
            await lag.stop()

    assert asyncio.run(scenario()) >= HELD - LOOP_LAG_TOLERANCE


def test_lateness_before_the_given_moment_is_not_counted() -> None:
    async def scenario() -> tuple[float, float]:
        lag = LoopLag()
        lag.start()
        try:
            held_from = lag.clock()
            await _hold_the_loop()
            seen = lag.ticks

            async def ticked(count: int) -> bool:
                return lag.ticks >= seen + count

            # Once the held tick is recorded (and one more), a later ping's window starts after
            # the hold: it must not see it.
            await async_wait_for(lambda: ticked(2), message="two ticks after the hold")
            recorded = lag.worst_since(held_from)
            later = lag.clock()
            await async_wait_for(lambda: ticked(4), message="two more ticks")
            return recorded, lag.worst_since(later)
        finally:
            await lag.stop()

    recorded, later = asyncio.run(scenario())
    assert recorded >= HELD - LOOP_LAG_TOLERANCE
    assert later < HELD - LOOP_LAG_TOLERANCE
