"""Replay the heartbeat's status write rule on generated pings: writes against pings, by cause.

Why: `hack/bench_heartbeat.py` measures the rule inside a whole operator on a shared machine,
where one run takes ten minutes and the latencies are whatever the machine's load makes them.
This drives `reachability.heartbeat_status` alone (pure, no I/O) the way the heartbeat does
(carrying its memory between pings: write credit when the rule has one, the previous ping's time
when the rule earns credit from it, pings since the last write, the previous latency), on the same
seeded ping sequences, in seconds. To compare two
versions of the rule, run it once per checkout: `PYTHONPATH=<other checkout>/operator python
hack/replay_write_rule.py`.

Every ping is green and below the slow threshold, so no write is a change of state: what is
counted is the rule's routine writes (the refresh, latency moves). Interval 30 s; a tenth of the
slots skipped and a share of pings flagged as taken while the operator was saturated, as under
`bench_heartbeat.py --peers 1000`. `--interval 6 --clock 5` replays that benchmark's time
compression: a 6 s interval on the scheduler, pings 30 s apart on the operator's clock.

`--own-lag-timeouts P` makes a share P of the pings time out while the operator's loop ran late
(the remote healthy, as in a saturated `bench_heartbeat.py`): each goes through the rule's
`timeout_of_own_lag` (where the checkout has one) as the heartbeat does, and is either excused
(no status decision, nothing written) or written as the failure it looks like. With `--clock 5.5`
(a saturated operator sending one ping in 5.5 slots, as that benchmark measured) it replays why
healthy remotes were written `Degraded` and `Unreachable`.
"""

import argparse
import collections
import inspect
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from federation_operator.domain import reachability

SLOW = timedelta(milliseconds=1500)
START = datetime(2026, 1, 1, tzinfo=UTC)
READY: dict[str, Any] = {
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


def steady(rng: random.Random) -> float:
    return rng.uniform(10, 30)


def bimodal(rng: random.Random) -> float:
    """A loopback beside a busy co-located server: mostly fast, often several times slower."""
    return rng.uniform(5, 45) if rng.random() < 0.6 else rng.uniform(60, 400)


def lognormal(rng: random.Random) -> float:
    return min(1400.0, rng.lognormvariate(4.0, 0.9))


LATENCIES: dict[str, Callable[[random.Random], float]] = {
    "steady": steady,
    "bimodal": bimodal,
    "lognormal": lognormal,
}


def merged(status: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of the heartbeat's fields, as the API server applies it."""
    result = dict(status)
    for key, value in patch.items():
        old = result.get(key)
        result[key] = {**old, **value} if isinstance(value, dict) and isinstance(old, dict) else value
    return result


def replay(
    latency: Callable[[random.Random], float],
    *,
    pings: int,
    seed: int,
    skipped: float,
    saturated: float,
    interval: timedelta,
    clock: float,
    own_lag_timeouts: float = 0.0,
) -> tuple[int, collections.Counter[str]]:
    """(pings after the first, writes after the first by what changed) for one peer; timeouts of
    our own lag the rule excused are counted under "(excused, not written)"."""
    rng = random.Random(seed)
    own_lag = getattr(reachability, "timeout_of_own_lag", None)
    own_lag_takes = inspect.signature(own_lag).parameters if own_lag is not None else {}
    last_success: datetime | None = None
    last_green = False
    timeout = reachability.Failure("Timeout", "no reply within the 1.5 s timeout")
    status, now, since = dict(READY), START, 0
    memory: dict[str, Any] = {}
    previous: timedelta | None = None
    causes: collections.Counter[str] = collections.Counter()
    known = reachability.Observation.__dataclass_fields__
    for number in range(pings):
        now += interval * clock * (2 if rng.random() < skipped else 1)
        took = timedelta(milliseconds=latency(rng))
        timed_out = own_lag_timeouts > 0 and number > 0 and rng.random() < own_lag_timeouts
        if timed_out and own_lag is not None:
            asked: dict[str, Any] = {"failure": timeout, "loop_lagged": True, "last_success": last_success}
            if "previous_green" in own_lag_takes:
                asked["previous_green"] = last_green
            if own_lag(now=now, **asked):
                last_green = False
                causes["(excused, not written)"] += 1
                continue
        since += 1
        if not timed_out:
            last_success = now
        last_green = not timed_out
        fields: dict[str, Any] = {
            "result": reachability.PingResult(ok=not timed_out, time=now, latency=took),
            "slow_threshold": SLOW,
            "last_success": last_success,
            "previous_latency": previous,
            "interval": interval,
            "pings_since_write": since,
            "operator_saturated": timed_out or rng.random() < saturated,
        }
        if timed_out:
            fields["failure"] = timeout
        if "write_credit" in known:
            fields["write_credit"] = memory.get("write_credit", timedelta())
        if "previous_probe" in known:
            fields["previous_probe"] = memory.get("previous_probe")
        update = reachability.heartbeat_status(status, reachability.Observation(**fields), now)
        memory["write_credit"] = getattr(update, "write_credit", None)
        memory["previous_probe"] = now
        previous = None if timed_out else took
        if update.write:
            if number:
                causes[", ".join(update.changed) or "refresh"] += 1
            status = merged(status, update.status)
            since = 0
    return pings - 1, causes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pings", type=int, default=1200, help="per peer (1,200 = 10 hours at 30 s)")
    parser.add_argument("--peers", type=int, default=20, help="seeds per latency model")
    parser.add_argument("--skipped", type=float, default=0.1, help="share of slots skipped (saturated)")
    parser.add_argument("--saturated", type=float, default=0.3, help="share of pings taken while saturated")
    parser.add_argument("--interval", type=float, default=30.0, help="spec.heartbeat.interval, seconds")
    parser.add_argument(
        "--clock", type=float, default=1.0, help="operator-clock seconds per scheduler second (bench: 5)"
    )
    parser.add_argument(
        "--own-lag-timeouts", type=float, default=0.0, help="share of pings timing out for the operator's lag"
    )
    args = parser.parse_args()
    interval = timedelta(seconds=args.interval)
    print(f"rule: {reachability.__file__}; interval {args.interval:g} s, operator clock x{args.clock:g}")
    for name, latency in LATENCIES.items():
        total_pings = 0
        total: collections.Counter[str] = collections.Counter()
        for seed in range(args.peers):
            pings, causes = replay(
                latency,
                pings=args.pings,
                seed=seed,
                skipped=args.skipped,
                saturated=args.saturated,
                interval=interval,
                clock=args.clock,
                own_lag_timeouts=args.own_lag_timeouts,
            )
            total_pings += pings
            total.update(causes)
        writes = sum(count for cause, count in total.items() if not cause.startswith("("))
        fewer = total_pings / writes if writes else float("inf")
        by_cause = dict(total.most_common())
        print(f"{name:>9}: {total_pings} pings, {writes} writes ({fewer:.1f}x fewer); {by_cause}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
