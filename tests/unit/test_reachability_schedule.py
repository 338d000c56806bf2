"""The heartbeat's schedule and settings: drift-free slots, defaults, and what bounds a ping."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from federation_operator.domain.heartbeat_schedule import (
    CALM_FOR,
    CREDENTIALS_WAIT,
    CREDENTIALS_WAIT_QUEUED,
    LATE_AFTER,
    Saturation,
    awaits_credentials,
    judge_saturation,
    next_slot,
    settings_of,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def credentials(status: str, generation: int | None) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": "CredentialsReady", "status": status, "reason": "X", "message": ""}
    if generation is not None:
        condition["observedGeneration"] = generation
    return {"conditions": [condition]}


def test_a_cycle_waits_until_the_credentials_are_judged_for_the_current_spec() -> None:
    new_peer: dict[str, Any] = {}
    assert awaits_credentials(new_peer, generation=1, waiting_since=None, now=NOW)
    assert awaits_credentials(credentials("True", 1), generation=2, waiting_since=None, now=NOW), (
        "judged for an older spec"
    )
    assert not awaits_credentials(credentials("True", 2), generation=2, waiting_since=None, now=NOW)
    # Judged not ready is judged: the cycle pings and reports the honest failure.
    assert not awaits_credentials(credentials("False", 2), generation=2, waiting_since=None, now=NOW)
    # An older operator's condition without a generation: the peer is not new.
    assert not awaits_credentials(credentials("True", None), generation=2, waiting_since=None, now=NOW)


def test_a_cycle_waits_for_the_credentials_a_bounded_time_only() -> None:
    """A stalled credentials handler must not silence the heartbeat: after the wait it pings."""
    since = NOW - CREDENTIALS_WAIT
    assert awaits_credentials({}, generation=1, waiting_since=since + timedelta(seconds=1), now=NOW)
    assert not awaits_credentials({}, generation=1, waiting_since=since, now=NOW)


def test_a_cycle_waits_longer_while_the_peers_credentials_pass_waits_its_turn() -> None:
    """At a large start the last credentials passes run minutes after the first: a peer whose
    pass is queued is not pinged at `CREDENTIALS_WAIT` (a missing Secret, never the link's), but
    a queue that does not move still ends the wait."""
    since = NOW - CREDENTIALS_WAIT
    assert awaits_credentials({}, generation=1, waiting_since=since, now=NOW, queued=True)
    assert not awaits_credentials({}, generation=1, waiting_since=since, now=NOW, queued=False)
    late = NOW - CREDENTIALS_WAIT_QUEUED
    assert awaits_credentials(
        {}, generation=1, waiting_since=late + timedelta(seconds=1), now=NOW, queued=True
    )
    assert not awaits_credentials({}, generation=1, waiting_since=late, now=NOW, queued=True)
    # Judged is judged, queued or not (a later pass for the same spec is queued too).
    assert not awaits_credentials(
        credentials("True", 1), generation=1, waiting_since=late, now=NOW, queued=True
    )


def test_slots_stay_on_the_grid_however_long_each_cycle_took() -> None:
    start, step = 100.0, 30.0
    slot = start
    for took in (0.1, 2.0, 29.9, 0.0):
        slot = next_slot(previous=slot, now=slot + took, step=step)
    assert slot == start + 4 * step


def test_an_overrun_skips_missed_slots_instead_of_bursting() -> None:
    assert next_slot(previous=100.0, now=175.0, step=30.0) == 190.0
    assert next_slot(previous=100.0, now=130.0, step=30.0) == 160.0


def test_defaults_are_the_documented_ones() -> None:
    settings = settings_of({})
    assert (settings.interval, settings.timeout, settings.slow_threshold) == (
        timedelta(seconds=30),
        timedelta(seconds=10),
        timedelta(seconds=1),
    )


def test_spec_settings_are_read_and_the_timeout_never_exceeds_the_interval() -> None:
    settings = settings_of({"heartbeat": {"interval": "2s", "timeout": "5s", "slowThreshold": "250ms"}})
    assert settings.interval == timedelta(seconds=2)
    assert settings.timeout == timedelta(seconds=2)
    assert settings.slow_threshold == timedelta(milliseconds=250)


@pytest.mark.parametrize("bad", ["soon", "-1s", ""])
def test_an_unparseable_setting_falls_back_to_the_default(bad: str) -> None:
    assert settings_of({"heartbeat": {"interval": bad}}).interval == timedelta(seconds=30)


def test_saturation_is_a_late_start_with_a_queue_behind_it_and_ends_after_a_calm_minute() -> None:
    calm = Saturation()
    # Late with nothing waiting: one busy moment of the event loop, not saturation.
    assert not judge_saturation(calm, lag=5.0, waiting=0, now=10.0).saturated
    # A queue that starts on time: keeping up.
    assert not judge_saturation(calm, lag=0.1, waiting=40, now=10.0).saturated
    saturated = judge_saturation(calm, lag=LATE_AFTER + 0.5, waiting=3, now=10.0)
    assert saturated == Saturation(saturated=True, last_late=10.0)
    # On time again, but not for long enough, or still a queue: still saturated (no flapping).
    assert judge_saturation(saturated, lag=0.0, waiting=0, now=10.0 + CALM_FOR - 1).saturated
    assert judge_saturation(saturated, lag=0.0, waiting=2, now=10.0 + CALM_FOR + 1).saturated
    caught_up = judge_saturation(saturated, lag=0.0, waiting=0, now=10.0 + CALM_FOR)
    assert not caught_up.saturated
