"""The reachability table and the write decision, with `now` injected (no waiting five minutes)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from federation_operator.domain.reachability import (
    GIVE_UP_AFTER,
    REFRESH_INTERVAL,
    Failure,
    Observation,
    PingResult,
    Reachability,
    heartbeat_status,
    latency_bucket,
    latency_moved,
    reachability,
    remembered,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SLOW = timedelta(seconds=1)


def ok(at: datetime, ms: float = 20) -> PingResult:
    return PingResult(ok=True, time=at, latency=timedelta(milliseconds=ms))


def failed(at: datetime) -> PingResult:
    return PingResult(ok=False, time=at, latency=timedelta(milliseconds=5))


def state(**kwargs: object) -> Reachability:
    defaults: dict[str, object] = {"last_success": None, "first_probe": None, "slow_threshold": SLOW}
    return reachability(**{**defaults, **kwargs})  # type: ignore[arg-type]


def test_no_finished_ping_is_unknown() -> None:
    assert state(last_result=None, now=T0) is Reachability.UNKNOWN


def test_green_ping_within_threshold_is_reachable() -> None:
    assert state(last_result=ok(T0), last_success=T0, now=T0) is Reachability.REACHABLE


def test_green_ping_equal_to_threshold_is_still_reachable() -> None:
    assert state(last_result=ok(T0, ms=1000), last_success=T0, now=T0) is Reachability.REACHABLE


def test_green_ping_over_threshold_is_slow() -> None:
    assert state(last_result=ok(T0, ms=1001), last_success=T0, now=T0) is Reachability.SLOW


def test_green_ping_older_than_a_minute_is_unknown() -> None:
    now = T0 + timedelta(minutes=1, seconds=1)
    assert state(last_result=ok(T0), last_success=T0, now=now) is Reachability.UNKNOWN


def test_failure_after_recent_success_is_degraded() -> None:
    now = T0 + GIVE_UP_AFTER
    assert state(last_result=failed(now), last_success=T0, now=now) is Reachability.DEGRADED


def test_failure_more_than_five_minutes_after_success_is_unreachable() -> None:
    now = T0 + GIVE_UP_AFTER + timedelta(seconds=1)
    assert state(last_result=failed(now), last_success=T0, now=now) is Reachability.UNREACHABLE


def test_never_reachable_is_degraded_for_five_minutes_after_first_ping_then_unreachable() -> None:
    at_limit = T0 + GIVE_UP_AFTER
    after = at_limit + timedelta(seconds=1)
    assert state(last_result=failed(at_limit), first_probe=T0, now=at_limit) is Reachability.DEGRADED
    assert state(last_result=failed(after), first_probe=T0, now=after) is Reachability.UNREACHABLE


@pytest.mark.parametrize(
    ("ms", "bucket"), [(0, 0), (9, 0), (49, 0), (50, 1), (99, 1), (100, 2), (999, 4), (1000, 5), (5000, 5)]
)
def test_latency_buckets_edges(ms: int, bucket: int) -> None:
    assert latency_bucket(ms, slow_threshold=SLOW) == bucket


def test_latency_buckets_end_at_a_low_slow_threshold() -> None:
    threshold = timedelta(milliseconds=200)
    assert latency_bucket(150, slow_threshold=threshold) == 2
    assert latency_bucket(300, slow_threshold=threshold) == latency_bucket(900, slow_threshold=threshold)


@pytest.mark.parametrize(
    ("old", "new", "moved"),
    [(9, 55, False), (9, 60, True), (20, 41, False), (70, 41, False), (70, 39, True), (120, 301, True)],
)
def test_latency_must_leave_its_bucket_by_a_margin_to_count(old: int, new: int, moved: bool) -> None:
    assert latency_moved(old, new, slow_threshold=SLOW) is moved


def credentials_ready() -> dict[str, object]:
    return {
        "conditions": [
            {
                "type": "CredentialsReady",
                "status": "True",
                "reason": "Ready",
                "message": "ok",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }


def green(at: datetime, ms: float = 20, **kwargs: object) -> Observation:
    return Observation(result=ok(at, ms), slow_threshold=SLOW, last_success=at, **kwargs)  # type: ignore[arg-type]


def red(
    at: datetime,
    *,
    last_success: datetime | None,
    factor: str = "Network",
    message: str = "refused",
    first_probe: datetime | None = None,
) -> Observation:
    return Observation(
        result=failed(at),
        slow_threshold=SLOW,
        last_success=last_success,
        first_probe=first_probe,
        failure=Failure(factor, message),
    )


def apply(status: dict[str, object], update_status: dict[str, object]) -> dict[str, object]:
    """A merge patch of the heartbeat's fields, as the API server applies it."""
    merged = dict(status)
    for key, value in update_status.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}  # type: ignore[dict-item]
        else:
            merged[key] = value
    return merged


def test_first_green_ping_is_written_and_sets_both_conditions() -> None:
    update = heartbeat_status(credentials_ready(), green(T0), T0)
    assert update.write
    assert update.status["reachability"] == "Reachable"
    assert update.transition == ("Unknown", "Reachable")
    by_type = {c["type"]: c for c in update.status["conditions"]}
    assert by_type["Reachable"]["status"] == "True"
    assert by_type["Ready"]["status"] == "True"
    assert by_type["CredentialsReady"]["status"] == "True", "other condition types are carried over"


def test_ready_is_false_while_credentials_are_not_ready_even_if_reachable() -> None:
    update = heartbeat_status({}, green(T0), T0)
    ready = next(c for c in update.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CredentialsNotReady")


def test_steady_green_pings_write_only_every_refresh_interval() -> None:
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0), T0).status)
    writes = 0
    now = T0
    for _ in range(40):  # 20 minutes of pings every 30 s, latency jittering inside one bucket
        now += timedelta(seconds=30)
        update = heartbeat_status(status, green(now, ms=20 + (writes % 3) * 7), now)
        if update.write:
            writes += 1
            status = apply(status, update.status)
    # The first ping more than 5 minutes after the last write refreshes: 5m30s, 11m, 16m30s.
    assert writes == 3
    assert status["lastProbeTime"] == "2026-01-01T12:16:30Z"


def test_with_the_interval_known_the_refresh_is_every_eleventh_ping_whatever_the_jitter() -> None:
    """Pings every 30 s on a grid, each stamped up to 200 ms late (scheduling and round trip): the
    10th ping after a write lands at 5 min give or take the noise, so only the half interval makes
    the refresh independent of it: always the 11th, 10.9 writes per hour against 120 pings."""
    interval = timedelta(seconds=30)
    rng = random.Random(7)
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0), T0).status)
    pings_since_write, spacings = 0, []
    for number in range(1, 241):  # two hours
        now = T0 + number * interval + timedelta(milliseconds=rng.uniform(0, 200))
        update = heartbeat_status(status, green(now, interval=interval), now)
        pings_since_write += 1
        if update.write:
            spacings.append(pings_since_write)
            pings_since_write = 0
            status = apply(status, update.status)
    assert set(spacings) == {11}
    assert len(spacings) == 240 // 11


def test_latency_crossing_a_bucket_is_written_when_two_pings_in_a_row_confirm_it() -> None:
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0, ms=20), T0).status)
    later = T0 + timedelta(seconds=30)
    within_margin = green(later, ms=55, previous_latency=timedelta(milliseconds=58))
    assert not heartbeat_status(status, within_margin, later).write
    one_spike = green(later, ms=80, previous_latency=timedelta(milliseconds=20))
    assert not heartbeat_status(status, one_spike, later).write
    confirmed = green(later, ms=80, previous_latency=timedelta(milliseconds=75))
    update = heartbeat_status(status, confirmed, later)
    assert update.write
    assert update.changed == ("latency",)
    assert update.status["latencyMilliseconds"] == 80


def test_slow_reply_changes_state_and_is_written() -> None:
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0), T0).status)
    later = T0 + timedelta(seconds=30)
    update = heartbeat_status(status, green(later, ms=1500), later)
    assert update.write
    assert update.transition == ("Reachable", "Slow")


def test_repeated_identical_failure_is_not_rewritten_but_a_new_factor_is() -> None:
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0), T0).status)
    t1 = T0 + timedelta(seconds=30)
    first = heartbeat_status(status, red(t1, last_success=T0), t1)
    assert first.write
    assert first.transition == ("Reachable", "Degraded")
    assert first.status["lastFailure"]["factor"] == "Network"
    status = apply(status, first.status)
    t2 = t1 + timedelta(seconds=30)
    assert not heartbeat_status(status, red(t2, last_success=T0), t2).write
    other = heartbeat_status(status, red(t2, last_success=T0, factor="TLS", message="bad"), t2)
    assert other.write
    assert "lastFailure" in other.changed


def test_degraded_becomes_unreachable_five_minutes_after_the_last_success() -> None:
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0), T0).status)
    status = apply(
        status,
        heartbeat_status(
            status, red(T0 + timedelta(seconds=30), last_success=T0), T0 + timedelta(seconds=30)
        ).status,
    )
    at_limit = T0 + GIVE_UP_AFTER
    assert (
        heartbeat_status(status, red(at_limit, last_success=T0), at_limit).reachability
        is Reachability.DEGRADED
    )
    after = at_limit + timedelta(seconds=30)
    update = heartbeat_status(status, red(after, last_success=T0), after)
    assert update.transition == ("Degraded", "Unreachable")
    assert update.write
    reachable = next(c for c in update.status["conditions"] if c["type"] == "Reachable")
    assert (reachable["status"], reachable["reason"]) == ("False", "Network")


def test_success_time_from_memory_wins_over_a_lagging_stored_one() -> None:
    # Stored lastSuccessTime is 4m59s old (refresh lag) but the heartbeat saw a success 30 s ago.
    stored = {
        "reachability": "Reachable",
        "lastSuccessTime": "2026-01-01T12:00:00Z",
        "lastProbeTime": "2026-01-01T12:00:00Z",
    }
    now = T0 + timedelta(minutes=5, seconds=30)
    update = heartbeat_status(stored, red(now, last_success=now - timedelta(seconds=30)), now)
    assert update.reachability is Reachability.DEGRADED


def test_who_the_remote_is_is_written_but_its_view_of_the_link_only_rides_along() -> None:
    """The remote's reachability of us moves with its own pings: written on change, every flap on
    one side would cost a write on the other (the echo). Who it is (site, the peer standing for us,
    its fingerprints) is written at once; its view of the link is carried by the next write."""
    remote = {
        "site": "us",
        "peerName": "eu",
        "peerNamespace": "fed",
        "reachability": "Reachable",
        "time": "2026-01-01T12:00:00Z",
        "latencyMilliseconds": 3,
        "inboundFingerprint": "aaaaaaaaaaaa",
    }
    status = apply(
        credentials_ready(), heartbeat_status(credentials_ready(), green(T0, remote=remote), T0).status
    )
    assert status["remote"] == remote
    later = T0 + timedelta(seconds=30)
    ticking = {**remote, "time": "2026-01-01T12:00:30Z", "latencyMilliseconds": 9}
    assert not heartbeat_status(status, green(later, remote=ticking), later).write
    flapping = {**ticking, "reachability": "Degraded", "lastFailure": {"factor": "Network"}}
    assert not heartbeat_status(status, green(later, remote=flapping), later).write
    for identity in ({"site": "us-2"}, {"peerName": "eu-2"}, {"inboundFingerprint": "bbbbbbbbbbbb"}):
        moved = heartbeat_status(status, green(later, remote={**flapping, **identity}), later)
        assert moved.changed == ("remote",)
        assert moved.status["remote"]["reachability"] == "Degraded", "the link view rides along"
    # Any other write carries the remote's latest view of the link.
    down = heartbeat_status(status, red(later, last_success=T0), later)
    assert down.write
    slow = heartbeat_status(status, green(later, ms=1500, remote=flapping), later)
    assert slow.write
    assert slow.status["remote"]["reachability"] == "Degraded"


def test_a_saturated_operator_does_not_call_a_slow_ping_slow_nor_rewrite_the_latency() -> None:
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0, ms=20), T0).status)
    later = T0 + timedelta(seconds=30)
    slow_ping = green(later, ms=1500, previous_latency=timedelta(milliseconds=1400), operator_saturated=True)
    update = heartbeat_status(status, slow_ping, later)
    assert update.reachability is Reachability.REACHABLE
    assert not update.write, "no state change and no latency move claimed"
    assert update.status["latencyMilliseconds"] == 20, "the latency we trust is kept"
    # Not saturated, the same ping is evidence: Slow.
    assert heartbeat_status(status, green(later, ms=1500), later).reachability is Reachability.SLOW
    # A peer already Slow stays Slow; a fast ping is believed (our lag only adds to a latency).
    slow_status = apply(status, heartbeat_status(status, green(later, ms=1500), later).status)
    again = later + timedelta(seconds=30)
    kept = heartbeat_status(slow_status, green(again, ms=1500, operator_saturated=True), again)
    assert kept.reachability is Reachability.SLOW
    fast = heartbeat_status(slow_status, green(again, ms=20, operator_saturated=True), again)
    assert fast.reachability is Reachability.REACHABLE
    assert fast.write


def test_the_refresh_also_waits_for_eleven_pings_so_fewer_pings_never_mean_more_writes_per_ping() -> None:
    """An operator that sends fewer pings than are due (saturated) refreshes per pings, not per
    time: one write in 11 pings at most, however far apart they are."""
    interval = timedelta(seconds=30)
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0), T0).status)
    pings, spacings, now = 0, [], T0
    for _ in range(100):
        now += 3 * interval  # two of every three slots skipped
        pings += 1
        update = heartbeat_status(status, green(now, interval=interval, pings_since_write=pings), now)
        if update.write:
            spacings.append(pings)
            pings = 0
            status = apply(status, update.status)
    assert set(spacings) == {11}


def test_accepted_fingerprint_and_presented_certificate_changes_are_written() -> None:
    cert = {"name": "eu-a", "thumbprint": "sha256:" + "a" * 64, "notAfter": "2026-04-01T00:00:00Z"}
    first = green(T0, accepted_fingerprint="aaaaaaaaaaaa", presented_certificate=cert)
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), first, T0).status)
    later = T0 + timedelta(seconds=30)
    same = green(later, accepted_fingerprint="aaaaaaaaaaaa", presented_certificate=cert)
    assert not heartbeat_status(status, same, later).write
    rotated = green(
        later, accepted_fingerprint="bbbbbbbbbbbb", presented_certificate={**cert, "name": "eu-b"}
    )
    assert set(heartbeat_status(status, rotated, later).changed) == {
        "acceptedFingerprint",
        "presentedCertificate",
    }


def test_suspended_peer_is_unknown_with_reason_suspended_and_keeps_its_history() -> None:
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0), T0).status)
    later = T0 + timedelta(minutes=1)
    update = heartbeat_status(status, Observation(result=None, slow_threshold=SLOW, suspended=True), later)
    assert update.write
    assert update.status["reachability"] == "Unknown"
    assert update.status["lastSuccessTime"] == "2026-01-01T12:00:00Z"
    reachable = next(c for c in update.status["conditions"] if c["type"] == "Reachable")
    assert (reachable["status"], reachable["reason"]) == ("Unknown", "Suspended")
    ready = next(c for c in update.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    status = apply(status, update.status)
    assert not heartbeat_status(
        status, Observation(result=None, slow_threshold=SLOW, suspended=True), later + REFRESH_INTERVAL * 2
    ).write


def test_insecure_skip_verify_is_flagged_in_the_reason_column() -> None:
    update = heartbeat_status(credentials_ready(), green(T0, insecure=True), T0)
    ready = next(c for c in update.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InsecureSkipVerify"
    assert "NOT verified" in ready["message"]


def test_restart_remembers_first_failed_probe_from_the_reachable_condition() -> None:
    status = heartbeat_status({}, red(T0, last_success=None, first_probe=T0), T0).status
    assert remembered(status) == (None, T0)
    assert remembered({"lastSuccessTime": "2026-01-01T12:00:00Z"}) == (T0, None)
    assert remembered({}) == (None, None)


def test_status_never_holds_more_than_the_failure_message_given() -> None:
    update = heartbeat_status({}, red(T0, last_success=None, message="remote says: bad token"), T0)
    assert update.status["lastFailure"]["message"] == "remote says: bad token"
