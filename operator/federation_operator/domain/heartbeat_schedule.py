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
