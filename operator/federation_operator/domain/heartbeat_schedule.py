"""A heartbeat's settings (`spec.heartbeat`, with defaults), its drift-free slot grid, when a cycle
waits for the peer's credentials, and the operator's saturation (pure)."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from federation_operator.domain import condition_types, conditions, durations

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


# How long a peer's cycles wait for its credentials to be judged at most. The credentials handler
# judges a new peer within a second or two; this bound only keeps a broken or stalled credentials
# handler from silencing the heartbeat: after it, the cycle pings and reports what it finds.
CREDENTIALS_WAIT: Final = timedelta(minutes=2)
# ... and while the peer's credentials pass waits for its turn behind the others of a large start
# (at 10,000 new peers the last pass runs minutes after the first): that pass is coming.
CREDENTIALS_WAIT_QUEUED: Final = timedelta(minutes=10)


def credentials_judged(status: Mapping[str, Any], *, generation: int | None) -> bool:
    """Whether the credentials handler has judged the peer under its current spec: a
    `CredentialsReady` condition (True or False) for this generation or a newer one.

    A condition without `observedGeneration` (written by an older operator) counts as judged: the
    peer is not new."""
    condition = conditions.get_condition(status.get("conditions") or [], condition_types.CREDENTIALS_READY)
    if condition is None:
        return False
    observed = condition.get("observedGeneration")
    return not isinstance(observed, int) or generation is None or observed >= generation


def awaits_credentials(
    status: Mapping[str, Any],
    *,
    generation: int | None,
    waiting_since: datetime | None,
    now: datetime,
    queued: bool = False,
) -> bool:
    """Whether a cycle should make no ping and write nothing yet: the peer's credentials are not
    judged for its current spec, and have not been awaited for `CREDENTIALS_WAIT` (for
    `CREDENTIALS_WAIT_QUEUED` while its credentials pass is `queued` behind others).

    Why: a new peer's first slot falls anywhere within its interval, often before the
    credentials handler has created its generated outbound Secret; pinging then reports the
    missing Secret (`Degraded`, factor `Secret`) for one interval, a failure that was never the
    link's. Credentials judged not ready (`CredentialsReady=False`) are judged: the cycle pings and
    reports the honest failure."""
    if credentials_judged(status, generation=generation):
        return False
    if waiting_since is None:
        return True
    return now - waiting_since < (CREDENTIALS_WAIT_QUEUED if queued else CREDENTIALS_WAIT)


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
