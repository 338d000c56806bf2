"""Poll-until-deadline helpers: tests wait for a condition, never for a fixed time."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class ConditionTimeout(AssertionError):
    pass


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Call `probe` until it returns something truthy; return that, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise ConditionTimeout(f"{message} not met within {timeout}s (last: {last!r})")
        time.sleep(interval)


def wait_settled(
    probe: Callable[[], T],
    *,
    quiet: float = 1.0,
    timeout: float = 10.0,
    message: str = "value settles",
) -> T:
    """Call `probe` until its value has not changed for `quiet` seconds; return that value.

    For counts that follow the last handler by an unannounced delay (kopf's own writes): waiting
    for the count to stop moving, not for a fixed time."""
    seen: list[T] = []
    since = [time.monotonic()]

    def settled() -> tuple[T] | None:
        now, value = time.monotonic(), probe()
        if not seen or value != seen[0]:
            seen[:] = [value]
            since[0] = now
        return (value,) if now - since[0] >= quiet else None

    return wait_for(settled, timeout=timeout, message=message)[0]


async def async_wait_for(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109  (a deadline for polling, not an I/O timeout)
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """The asyncio twin of `wait_for`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise ConditionTimeout(f"{message} not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)
