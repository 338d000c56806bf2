"""A heartbeat's settings (`spec.heartbeat`, with defaults) and its drift-free slot grid (pure)."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from federation_operator.domain import durations

DEFAULT_INTERVAL: Final = timedelta(seconds=30)
DEFAULT_TIMEOUT: Final = timedelta(seconds=10)
DEFAULT_SLOW: Final = timedelta(seconds=1)


@dataclass(frozen=True)
class Settings:
    interval: timedelta
    timeout: timedelta
    slow_threshold: timedelta


def settings_of(spec: Mapping[str, Any]) -> Settings:
    """`spec.heartbeat` with defaults; an unparseable value falls back rather than stop the heartbeat."""
    heartbeat = spec.get("heartbeat") or {}

    def read(key: str, default: timedelta) -> timedelta:
        try:
            return durations.parse_duration(str(heartbeat[key])) if heartbeat.get(key) else default
        except durations.InvalidDuration:
            return default

    interval = read("interval", DEFAULT_INTERVAL)
    timeout = min(read("timeout", DEFAULT_TIMEOUT), interval)
    return Settings(interval=interval, timeout=timeout, slow_threshold=read("slowThreshold", DEFAULT_SLOW))


def next_slot(*, previous: float, now: float, step: float) -> float:
    """The next ping time on the grid `previous + k * step`: never in the past, never drifting.

    A cycle that overran its slot skips the missed slots instead of firing them in a burst.
    """
    upcoming = previous + step
    if upcoming <= now:
        upcoming += step * (1 + (now - upcoming) // step)
    return upcoming


# A cycle that starts more than this after its slot while others still wait for a worker means
# the operator has more pings due than its workers can send: it is saturated.
LATE_AFTER: Final = 1.0
# Saturation ends once no cycle started late for this long and none waits.
CALM_FOR: Final = 60.0


@dataclass(frozen=True)
class Saturation:
    """Whether the operator is its own bottleneck, and when (monotonic seconds) it last looked so."""

    saturated: bool = False
    last_late: float | None = None


def judge_saturation(state: Saturation, *, lag: float, waiting: int, now: float) -> Saturation:
    """The state after a cycle started `lag` seconds after its slot with `waiting` cycles still due.

    Late alone is not saturation (one busy moment of the event loop makes one cycle late); late
    with a queue behind it is: the workers cannot start what is due. It ends only after `CALM_FOR`
    without a late start and with nothing waiting, so that it does not flap with every cycle.
    """
    if lag > LATE_AFTER and waiting > 0:
        return Saturation(saturated=True, last_late=now)
    if state.saturated and waiting == 0 and (state.last_late is None or now - state.last_late >= CALM_FOR):
        return Saturation(saturated=False, last_late=state.last_late)
    return state
