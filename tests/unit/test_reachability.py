"""The reachability table and the write decision, with `now` injected (no waiting five minutes)."""

import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from federation_operator.domain.reachability import (
    CREDIT_CAP,
    GIVE_UP_AFTER,
    REFRESH_INTERVAL,
    REFRESH_PINGS,
    ROUTINE_WRITE_COST,
    Failure,
    Observation,
    PingResult,
    Reachability,
    StatusUpdate,
    heartbeat_status,
    latency_bucket,
    latency_moved,
    reachability,
    remembered,
    restart_phase,
    timeout_of_own_lag,
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
    [
        (9, 55, False),
        (9, 60, True),
        (20, 41, False),
        (70, 41, False),
        (70, 34, True),
        (120, 301, True),
        # Out of the bucket by the margin, but by less than LATENCY_FACTOR: not news.
        (70, 39, False),
        (400, 700, False),
        (400, 800, True),
    ],
)
def test_latency_must_leave_its_bucket_by_a_margin_and_move_by_a_factor_to_count(
    old: int, new: int, moved: bool
) -> None:
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


INTERVAL = timedelta(seconds=30)


@dataclass
class Peer:
    """One peer's heartbeat over many pings: carries what controller/handlers/heartbeat.py
    remembers between cycles (write credit, pings since the last write, the previous latency, the
    last success) and applies each write, so a test drives only the pings."""

    status: dict[str, object] = field(default_factory=credentials_ready)
    interval: timedelta = INTERVAL
    credit: timedelta = timedelta()
    pings_since_write: int = 0
    previous: timedelta | None = None
    last_success: datetime | None = None
    first_probe: datetime | None = None
    last_probe: datetime | None = None  # None: the first ping after a start earns no credit

    def ping(
        self,
        at: datetime,
        ms: float = 20,
        *,
        ok: bool = True,
        saturated: bool = False,
        failure: Failure | None = None,
    ) -> StatusUpdate:
        self.pings_since_write += 1
        if self.first_probe is None and self.last_success is None:
            self.first_probe = at
        if ok:
            self.last_success = at
        latency = timedelta(milliseconds=ms)
        observation = Observation(
            result=PingResult(ok=ok, time=at, latency=latency),
            slow_threshold=SLOW,
            last_success=self.last_success,
            first_probe=self.first_probe,
            failure=None if ok else failure or Failure("Network", "refused"),
            previous_latency=self.previous,
            interval=self.interval,
            pings_since_write=self.pings_since_write,
            write_credit=self.credit,
            previous_probe=self.last_probe,
            operator_saturated=saturated,
        )
        update = heartbeat_status(self.status, observation, at)
        self.credit = update.write_credit
        self.last_probe = at
        self.previous = latency if ok else None
        if update.write:
            self.status = apply(self.status, update.status)
            self.pings_since_write = 0
        return update


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
    peer, writes, now = Peer(), 0, T0
    peer.ping(now)
    for _ in range(40):  # 20 minutes of pings every 30 s, latency jittering inside one bucket
        now += INTERVAL
        writes += peer.ping(now, ms=20 + (writes % 3) * 7).write
    # The first ping more than 5 minutes and half an interval after the last write refreshes: the
    # 11th, at 5m30s, 11m, 16m30s.
    assert writes == 3
    assert peer.status["lastProbeTime"] == "2026-01-01T12:16:30Z"


def test_with_the_interval_known_the_refresh_is_every_eleventh_ping_whatever_the_jitter() -> None:
    """Pings every 30 s on a grid, each stamped up to 200 ms late (scheduling and round trip): the
    10th ping after a write lands at 5 min give or take the noise, so only the half interval makes
    the refresh independent of it: the 11th, 10.9 writes per hour against 120 pings. (A ping more
    than 30 s after the previous one earns 30 s: the noise costs a little credit at each late
    ping, so once in a few hours the credit carried over runs out and the refresh is the 12th.)"""
    rng = random.Random(7)
    peer = Peer()
    peer.ping(T0)
    spacings = []
    for number in range(1, 241):  # two hours
        now = T0 + number * INTERVAL + timedelta(milliseconds=rng.uniform(0, 200))
        pings = peer.pings_since_write + 1
        if peer.ping(now).write:
            spacings.append(pings)
    assert spacings.count(11) >= len(spacings) - 1
    assert set(spacings) <= {11, 12}
    assert len(spacings) == 240 // 11


def confirmed_move(credit: timedelta) -> tuple[dict[str, object], list[StatusUpdate]]:
    """A peer at 20 ms, then two pings at 80 ms and 75 ms (4x, out of the <50 ms bucket) 30 s apart."""
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0, ms=20), T0).status)
    t1, t2 = T0 + INTERVAL, T0 + 2 * INTERVAL
    common: dict[str, Any] = {"interval": INTERVAL, "pings_since_write": 1}
    first = heartbeat_status(status, green(t1, ms=75, write_credit=credit, previous_probe=T0, **common), t1)
    confirming = green(
        t2,
        ms=80,
        previous_latency=timedelta(milliseconds=75),
        write_credit=first.write_credit,
        previous_probe=t1,
        **common,
    )
    second = heartbeat_status(status, confirming, t2)
    return status, [first, second]


def test_a_latency_move_by_a_factor_is_written_when_two_pings_confirm_it_and_credit_pays() -> None:
    status = apply(credentials_ready(), heartbeat_status(credentials_ready(), green(T0, ms=20), T0).status)
    later = T0 + INTERVAL
    full = {"write_credit": CREDIT_CAP, "interval": INTERVAL}
    within_margin = green(later, ms=55, previous_latency=timedelta(milliseconds=58), **full)
    assert not heartbeat_status(status, within_margin, later).write
    one_spike = green(later, ms=80, previous_latency=timedelta(milliseconds=20), **full)
    assert not heartbeat_status(status, one_spike, later).write
    _, (first, second) = confirmed_move(CREDIT_CAP)
    assert not first.write, "one ping is not a move"
    assert second.write
    assert second.changed == ("latency",)
    assert second.status["latencyMilliseconds"] == 80
    assert second.write_credit == CREDIT_CAP - ROUTINE_WRITE_COST, "a latency write spends credit"


def test_a_latency_move_without_credit_waits_until_pings_have_paid_for_it() -> None:
    status, (_, second) = confirmed_move(timedelta())
    assert not second.write, "no credit: the move waits"
    assert second.status["latencyMilliseconds"] == 80
    # Credit saved earlier (a change of state restarts the refresh period, not the credit).
    saved = timedelta(seconds=150)
    peer = Peer(
        status=status,
        credit=saved + second.write_credit,
        previous=timedelta(milliseconds=80),
        last_probe=T0 + 2 * INTERVAL,
    )
    peer.pings_since_write = 2
    now, update = T0 + 2 * INTERVAL, second
    while not update.write:
        now += INTERVAL
        update = peer.ping(now, ms=80)
    # 150 s saved and 30 s a ping (two pings at 30 s, then 30 s elapsed per ping) pay for a routine
    # write (5 min 30 s) at the 6th ping after the last write, long before the refresh (the 11th)
    # would have shown it.
    assert now - T0 == 6 * INTERVAL
    assert update.changed == ("latency",)
    assert peer.status["latencyMilliseconds"] == 80


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


def test_a_timeout_while_the_loop_ran_late_is_no_evidence_for_a_minute_after_the_last_success() -> None:
    timeout = Failure("Timeout", "no reply within the 10 s timeout")
    recent = T0 - timedelta(seconds=30)

    def own_lag(
        failure: Failure | None, *, lagged: bool = True, last_success: datetime | None = recent
    ) -> bool:
        return timeout_of_own_lag(
            failure=failure, loop_lagged=lagged, last_success=last_success, previous_green=False, now=T0
        )

    assert own_lag(timeout)
    assert not own_lag(timeout, lagged=False), "our loop on time: the remote was slow"
    assert not own_lag(Failure("Network", "connection refused")), "only a timeout can be our lag"
    assert not own_lag(None)
    # A minute after the last success the timeout is written whatever the loop did: a remote that
    # stopped answering is reported even by an operator that stays overloaded.
    assert own_lag(timeout, last_success=T0 - timedelta(minutes=1))
    assert not own_lag(timeout, last_success=T0 - timedelta(minutes=1, seconds=1))
    assert not own_lag(timeout, last_success=None), "never succeeded: nothing to keep"


def test_a_timeout_while_the_loop_ran_late_right_after_a_green_ping_is_no_evidence_however_long_ago() -> None:
    """A saturated operator pings each peer less than once a minute: the last success is always
    more than a minute old when the next ping times out, so the minute alone would write every
    timeout of its own lag as `Degraded` (or `Unreachable`) for a healthy remote. One such timeout
    right after a green ping is excused; the second in a row is written."""
    timeout = Failure("Timeout", "no reply within the 10 s timeout")
    long_ago = T0 - timedelta(minutes=3)

    def own_lag(*, previous_green: bool, lagged: bool = True) -> bool:
        return timeout_of_own_lag(
            failure=timeout, loop_lagged=lagged, last_success=long_ago, previous_green=previous_green, now=T0
        )

    assert own_lag(previous_green=True)
    assert not own_lag(previous_green=False), "two timeouts in a row: the remote may really be gone"
    assert not own_lag(previous_green=True, lagged=False), "our loop on time: the remote was slow"
    assert not timeout_of_own_lag(
        failure=Failure("Network", "connection refused"),
        loop_lagged=True,
        last_success=long_ago,
        previous_green=True,
        now=T0,
    ), "only a timeout can be our lag"


def test_the_refresh_also_waits_for_eleven_pings_so_fewer_pings_never_mean_more_writes_per_ping() -> None:
    """An operator that sends fewer pings than are due (saturated) refreshes per pings, not per
    time: one write in 11 pings at most, however far apart they are."""
    peer, spacings, now = Peer(), [], T0
    peer.ping(now)
    for _ in range(100):
        now += 3 * INTERVAL  # two of every three slots skipped
        pings = peer.pings_since_write + 1
        if peer.ping(now).write:
            spacings.append(pings)
    assert set(spacings) == {11}


def test_pings_that_come_late_against_their_interval_earn_the_time_that_passed() -> None:
    """At a 10 s interval an operator that sends one ping in three (saturated: 30 s apart) has
    waited 5 min 30 s after 11 pings, and each of them earned the 30 s that passed: the refresh is
    every 11 pings, as at 30 s (earning the configured 10 s, it waited 33 pings, 16 min 30 s).
    The same when the operator's clock runs faster than the scheduler's (`bench_heartbeat.py`'s
    time compression: a 6 s interval, 30 s apart on the operator's clock)."""
    for interval in (timedelta(seconds=10), timedelta(seconds=6)):
        peer, spacings, now = Peer(interval=interval), [], T0
        peer.ping(now)
        for _ in range(100):
            now += timedelta(seconds=30)
            pings = peer.pings_since_write + 1
            if peer.ping(now).write:
                spacings.append(pings)
        assert set(spacings) == {11}, interval


def test_pings_that_come_early_against_their_interval_earn_only_the_time_that_passed() -> None:
    """Pings closer together than the configured interval (a shortened interval, a clock slower
    than the scheduler's) earn the seconds that passed, not the interval: routine writes stay at
    10.9 per hour of elapsed time, however many pings come. A latency that keeps swinging by 2x
    would otherwise be written every 11 pings: every 55 s here."""
    peer, writes, now = Peer(interval=timedelta(seconds=30)), [], T0
    peer.ping(now)
    for number in range(720):  # an hour, a ping every 5 s
        now += timedelta(seconds=5)
        ms = 20 if (number // 2) % 2 else 80  # 20, 20, 80, 80, ...: a confirmed 4x move every other ping
        update = peer.ping(now, ms)
        if update.write:
            writes.append(now)
    assert 9 <= len(writes) <= 11, "an hour's credit: 10 routine writes of 5 min 30 s"


def test_the_first_ping_after_a_start_earns_no_credit() -> None:
    """No previous ping in memory (a restart): nothing has been seen to pass, so nothing is earned,
    and a restart never adds routine writes."""
    first = heartbeat_status(credentials_ready(), green(T0, interval=INTERVAL), T0)
    assert first.write_credit == timedelta()
    later = T0 + INTERVAL
    second = heartbeat_status(credentials_ready(), green(later, previous_probe=T0, interval=INTERVAL), later)
    assert second.write_credit == INTERVAL
    long_after = T0 + timedelta(hours=1)
    capped = heartbeat_status(credentials_ready(), green(long_after, previous_probe=T0), long_after)
    assert capped.write_credit == timedelta(seconds=30), "at most 30 s a ping"


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


# One ping of a generated sequence: how far after the previous one it comes, in intervals (below 1:
# early, as after a shortened interval; above 1: slots skipped), its latency, green or not, the
# failed factor, and whether the operator was saturated or its loop late.
PINGS = st.lists(
    st.tuples(
        st.sampled_from([0.1, 0.25, 0.5, 1.0, 1.0, 2.0, 3.0, 4.0]),
        # Mostly green and below the slow threshold: runs of pings without a change of state are
        # where routine writes (what the budget bounds) happen.
        st.integers(min_value=1, max_value=999) | st.integers(min_value=1, max_value=3000),
        st.sampled_from([True, True, True, False]),
        st.sampled_from(["Network", "Timeout", "TLS"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=400,
)
# Generating 400 pings takes long on a loaded 2-core machine; what is checked does not depend on it.
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INTERVALS = st.sampled_from([1, 5, 10, 30, 60, 300]).map(lambda seconds: timedelta(seconds=seconds))
# Seconds of the operator's clock (which stamps the pings) per second of the scheduler's: 1 in
# production; `bench_heartbeat.py` runs the operator's 5x faster; 0.2 stands for pings that keep
# coming sooner than the configured interval says.
CLOCKS = st.sampled_from([0.2, 1.0, 1.0, 5.0])


Ping = tuple[float, int, bool, str, bool]


def drive(
    interval: timedelta, pings: list[Ping], *, start_credit: timedelta = timedelta(), clock: float = 1.0
) -> list[tuple[datetime, dict[str, object], StatusUpdate]]:
    """Every ping of a sequence through `Peer`: (time, the status before it, its update)."""
    peer, now, seen = Peer(interval=interval, credit=start_credit), T0, []
    rng = random.Random(len(pings))
    for after, ms, ok, factor, saturated in pings:
        now += (after * interval + timedelta(milliseconds=rng.uniform(0, 200))) * clock
        before = peer.status
        update = peer.ping(now, ms, ok=ok, saturated=saturated, failure=Failure(factor, f"{factor} failed"))
        seen.append((now, before, update))
    return seen


def routine(update: StatusUpdate) -> bool:
    """A write that changed nothing but the latency (or nothing: the refresh)."""
    return update.write and set(update.changed) <= {"latency"}


@PROPERTY
@given(interval=INTERVALS, pings=PINGS, start_credit=st.sampled_from([timedelta(), CREDIT_CAP]), clock=CLOCKS)
# Pings 6 s apart on the operator's clock at a 30 s interval, the latency swinging 4x every two
# pings: generated sequences find this seldom, and earning the configured interval breaks it.
@example(
    interval=INTERVAL,
    pings=[(1.0, 20 if (number // 2) % 2 else 80, True, "Network", False) for number in range(120)],
    start_credit=timedelta(),
    clock=0.2,
)
def test_routine_writes_stay_within_the_budget_whatever_the_pings(
    interval: timedelta, pings: list[Ping], start_credit: timedelta, clock: float
) -> None:
    """The budget of docs/reachability.md: routine writes (latency moves, the refresh) are paid
    from credit, each ping earning the time since the previous ping (at most 30 s, nothing for the
    first) and each write costing 5 min 30 s: never more than the time that passed, at most one per
    11 pings and 10.9 per hour beyond the credit held at the start (at most two writes' worth),
    whether the pings come on their interval, early or late."""
    seen = drive(interval, pings, start_credit=start_credit, clock=clock)
    writes = [at for at, _, update in seen if routine(update)]
    times = [at for at, _, _ in seen]
    earned = sum((min(b - a, timedelta(seconds=30)) for a, b in itertools.pairwise(times)), timedelta())
    assert len(writes) * ROUTINE_WRITE_COST <= start_credit + earned
    assert len(writes) <= start_credit / ROUTINE_WRITE_COST + len(seen) / 11
    for index, first in enumerate(writes):
        within_an_hour = [at for at in writes[index:] if at - first < timedelta(hours=1)]
        # An hour's credit (3,600 s + one ping's, as pings sit on a grid: 11 writes) and the two
        # writes' worth the cap lets a peer hold.
        assert len(within_an_hour) <= 11 + 2


@PROPERTY
@given(interval=INTERVALS, pings=PINGS)
def test_a_change_of_state_is_written_on_the_ping_that_shows_it(
    interval: timedelta, pings: list[Ping]
) -> None:
    """Whatever the credit and the pings before: a new reachability, or a new failure factor or
    message, is written by the very ping that shows it."""
    for _, before, update in drive(interval, pings):
        if update.reachability.value != before.get("reachability"):
            assert update.write, f"{before.get('reachability')} -> {update.reachability.value} not written"
        failure = update.status.get("lastFailure")
        old_failure = before.get("lastFailure") or {}
        if failure and (failure["factor"], failure["message"]) != (
            old_failure.get("factor"),  # type: ignore[attr-defined]
            old_failure.get("message"),  # type: ignore[attr-defined]
        ):
            assert update.write


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(latencies=st.lists(st.integers(min_value=1, max_value=999), min_size=120, max_size=120))
def test_a_healthy_link_at_the_default_interval_is_written_at_least_ten_times_less_than_it_is_pinged(
    latencies: list[int],
) -> None:
    """An hour of green pings every 30 s below the slow threshold, latencies anywhere: at most 11
    writes besides the first (10.9x fewer than pings), and every write carries the latency of its
    own ping."""
    seen = drive(INTERVAL, [(1, ms, True, "Network", False) for ms in latencies])
    writes = 0
    for (_, _, update), ms in zip(seen[1:], latencies[1:], strict=True):
        if update.write:
            writes += 1
            assert update.status["latencyMilliseconds"] == ms
    assert writes <= 11


def _first_refresh(peer: Peer, start: datetime) -> int:
    """The ping (1-based, every 30 s from `start`) at which a settled green peer first writes."""
    for number in range(1, 40):
        if peer.ping(start + number * INTERVAL).write:
            return number
    raise AssertionError("no refresh within 40 pings")


def _settled(at: datetime) -> dict[str, object]:
    """A green status as a ping wrote it at `at`."""
    peer = Peer()
    peer.ping(at)
    return peer.status


def test_peers_restarted_together_spread_their_first_refresh_over_the_refresh_period() -> None:
    # 110 green peers whose status was last written 20 minutes before the restart: every one is
    # due for a refresh, and what spreads them is where each starts in the refresh period.
    restart = T0 + timedelta(minutes=20)
    status = _settled(T0)
    draws = [number / 110 for number in range(110)]

    def first_refreshes(phase: bool) -> list[int]:
        found = []
        for draw in draws:
            pings, credit = restart_phase(status, draw) if phase else (0, timedelta())
            peer = Peer(status=dict(status), pings_since_write=pings, credit=credit)
            found.append(_first_refresh(peer, restart))
        return found

    # From zero: all at the same ping (the first ping after a start earns no credit: the 12th).
    assert set(first_refreshes(phase=False)) == {REFRESH_PINGS + 1}
    spread = first_refreshes(phase=True)
    assert set(spread) == set(range(1, REFRESH_PINGS + 1)), "one refresh period, every ping of it"
    assert max(spread.count(number) for number in set(spread)) == 10, "10 peers a ping, not 110"


def test_a_restart_phase_costs_at_most_one_early_refresh() -> None:
    status = _settled(T0)
    pings, credit = restart_phase(status, 0.999)
    assert (pings, credit) == (REFRESH_PINGS - 1, ROUTINE_WRITE_COST)
    peer = Peer(status=dict(status), pings_since_write=pings, credit=credit)
    start = T0 + timedelta(minutes=20)
    writes = [number for number in range(1, 121) if peer.ping(start + number * INTERVAL).write]
    # An hour of pings: the early first refresh, then one every 11 pings as without the phase.
    assert writes[0] == 1
    assert all(later - earlier >= REFRESH_PINGS for earlier, later in itertools.pairwise(writes))
    assert len(writes) <= 120 // REFRESH_PINGS + 1


def test_a_peer_never_pinged_starts_its_refresh_period_from_zero() -> None:
    assert restart_phase(credentials_ready(), 0.5) == (0, timedelta())
