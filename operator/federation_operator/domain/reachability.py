"""The reachability state table and the status it produces, as pure functions.

Why pure: `kubectl get federationpeers` must tell the truth, and the truth here is a function of a
few times and one ping result. Keeping it free of I/O lets the unit tests walk the 5-minute rule
with an injected `now` instead of waiting five minutes, and lets the heartbeat decide whether a
status write is needed at all.

Why a write decision: a status write on every ping is the Submariner anti-pattern (one object at
generation 67,293). Following Kubernetes node heartbeats (KEP-589), a change of state (reachability,
failure factor or message, who the remote is, the presented certificate, the accepted token, the
conditions) is written at once; everything else is a routine write (the refresh of the probe
times every `REFRESH_INTERVAL`, a latency move) and is paid for from a per-peer write credit that
each ping earns, so routine writes stay within a budget whatever the pings show: one per 11
pings and 10.9 per hour on average (docs/reachability.md, "The write budget"). `lastProbeTime` and
`lastSuccessTime` may lag by up to the refresh period while the link is steady; reachability
itself is current to within one interval.
"""

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from federation_operator.domain import api, condition_types, conditions
from federation_operator.domain.factors import Factor
from federation_operator.domain.times import parse_rfc3339

# DESIGN.md's table: "Reachable: 200 within the last minute", "Unreachable: no success for more
# than 5 minutes (or never, 5 minutes after the first ping)".
FRESH_FOR: Final = timedelta(minutes=1)
GIVE_UP_AFTER: Final = timedelta(minutes=5)
# KEP-589: the full status only on change or every 5 minutes. Here: on the first ping more than
# 5 minutes and half a ping interval after the last write. Pings land on a grid, so without the
# half interval the ping due exactly 5 minutes later (the 10th at 30 s) would refresh or not
# depending on milliseconds of scheduling noise; with it, it is always the next one (the 11th).
REFRESH_INTERVAL: Final = timedelta(minutes=5)
# Latency bucket edges in milliseconds; the slow threshold is added as the last edge, so a reader
# sees the latency move only when it moves by an amount that matters. No edge below 50 ms: under
# that, the spread is the host's scheduling noise (a loaded loopback varies from 3 to 30 ms), not
# the link.
LATENCY_EDGES_MS: Final = (50, 100, 250, 500, 1000)
# A refresh also waits for this many pings since the last write, so that an operator that sends
# fewer pings than are due (saturated: docs/reachability.md) still writes at most one in 11 pings.
# At the default 30 s interval the time rule above already means the 11th ping.
REFRESH_PINGS: Final = 11
HYSTERESIS: Final = 0.2
# A latency move a reader should see is one by at least this factor (and out of its bucket):
# smaller swings are the spread of a shared host, and the next refresh shows them anyway.
LATENCY_FACTOR: Final = 2.0
# The write budget. Every ping earns the time elapsed on the operator's clock since the peer's
# previous ping, at most `CREDIT_PER_PING` (nothing for the first ping after a start); a routine
# write (refresh or latency move) costs `ROUTINE_WRITE_COST`. The credit earned in an hour is then
# at most an hour whenever the pings come (late, early, or on a clock that is not the scheduler's),
# and at most 30 s a ping: routine writes are at most one per 11 pings and 10.9 per hour on
# average, whatever the interval, the latencies or the saturation. (Earning the configured
# interval instead overpays pings that come early and underpays late ones: a saturated operator
# at a 10 s interval sending a ping every 30 s would refresh every 33 pings, not 11.) That is the
# refresh's own rate at the default interval, so a latency move that keeps coming back takes the
# refresh's place instead of adding to it (a budget of one write per 10 pings is reached whenever
# the latency keeps swinging: no margin under the 10x target of issue 17). Credit is kept up to
# `CREDIT_CAP` (one write beyond the next): a state change restarts the refresh period but not the
# credit, which is what pays for a latency move before the next refresh.
CREDIT_PER_PING: Final = timedelta(seconds=30)
ROUTINE_WRITE_COST: Final = timedelta(minutes=5, seconds=30)
CREDIT_CAP: Final = 2 * ROUTINE_WRITE_COST

REASON_SUSPENDED: Final = "Suspended"
REASON_INSECURE: Final = "InsecureSkipVerify"
REASON_NO_PING: Final = "NoPingYet"


class Reachability(enum.StrEnum):
    UNKNOWN = "Unknown"
    REACHABLE = "Reachable"
    SLOW = "Slow"
    DEGRADED = "Degraded"
    UNREACHABLE = "Unreachable"


@dataclass(frozen=True)
class PingResult:
    """One finished ping: green (`ok`) or not, when it finished and how long it took."""

    ok: bool
    time: datetime
    latency: timedelta


def reachability(
    *,
    last_result: PingResult | None,
    last_success: datetime | None,
    first_probe: datetime | None,
    now: datetime,
    slow_threshold: timedelta,
) -> Reachability:
    """DESIGN.md's table, made total.

    Where the table is silent: a green ping older than `FRESH_FOR` (the heartbeat stalled) is
    `Unknown`, since nothing recent backs any claim; a peer that has failed every ping so far is
    `Degraded` until `GIVE_UP_AFTER` has passed since its first ping, then `Unreachable`.
    """
    if last_result is None:
        return Reachability.UNKNOWN
    if last_result.ok:
        if now - last_result.time > FRESH_FOR:
            return Reachability.UNKNOWN
        return Reachability.SLOW if last_result.latency > slow_threshold else Reachability.REACHABLE
    if last_success is not None:
        return Reachability.DEGRADED if now - last_success <= GIVE_UP_AFTER else Reachability.UNREACHABLE
    started = first_probe if first_probe is not None else last_result.time
    return Reachability.DEGRADED if now - started <= GIVE_UP_AFTER else Reachability.UNREACHABLE


def _edges(slow_threshold: timedelta) -> list[float]:
    slow_ms = slow_threshold.total_seconds() * 1000
    return sorted({float(edge) for edge in LATENCY_EDGES_MS if edge < slow_ms} | {slow_ms})


def latency_bucket(latency_ms: int, *, slow_threshold: timedelta) -> int:
    """Index of the latency bucket: <50, <100, <250, <500, <1000 ms, < slowThreshold, beyond."""
    return sum(1 for edge in _edges(slow_threshold) if latency_ms >= edge)


def latency_moved(old_ms: int, new_ms: int, *, slow_threshold: timedelta) -> bool:
    """Whether the latency left the old bucket by more than `HYSTERESIS` and changed by at least
    `LATENCY_FACTOR`.

    Without the margin, a link whose latency hovers around an edge (45 ms, 55 ms, 45 ms on a busy
    loopback) would be rewritten on every ping; without the factor, 90 ms against 130 ms (a busy
    remote host) would count as news.
    """
    edges = _edges(slow_threshold)
    bucket = latency_bucket(old_ms, slow_threshold=slow_threshold)
    lower = edges[bucket - 1] if bucket > 0 else 0.0
    upper = edges[bucket] if bucket < len(edges) else float("inf")
    left = new_ms < lower * (1 - HYSTERESIS) or new_ms >= upper * (1 + HYSTERESIS)
    return left and max(old_ms, new_ms) >= LATENCY_FACTOR * max(1, min(old_ms, new_ms))


@dataclass(frozen=True)
class Failure:
    """Which factor failed and one human line about it. Never holds a token or a key."""

    factor: str
    message: str


def timeout_of_own_lag(
    *,
    failure: Failure | None,
    loop_lagged: bool,
    last_success: datetime | None,
    previous_green: bool,
    now: datetime,
) -> bool:
    """Whether a failed ping is no evidence against the remote: it timed out while the operator's
    event loop ran late (the loop-lag rule), and either the last success is recent enough
    (`FRESH_FOR`) that the stored reachability still stands on its own, or the peer's previous
    ping was green (`previous_green`).

    An operator short of CPU reads replies late: a remote that answered in time can still run
    out of our timeout while the reply waits for the loop. Such a ping is retried at the next slot
    instead of writing `Degraded` (Timeout). Bounded: a timeout is written whatever the loop did
    once the last success is older than `FRESH_FOR` and the ping before was not green either, so
    a remote that really stopped answering is reported by the later of a minute (plus one ping)
    and its second ping, even by an overloaded operator. The second ping matters when the
    operator is saturated: it then pings each peer less often than every interval, often less
    than once a minute, and a minute alone would write every timeout of its own lag as a failure
    (`Degraded`, or `Unreachable` five minutes after the last success) of a healthy remote.
    """
    return (
        failure is not None
        and failure.factor == Factor.TIMEOUT
        and loop_lagged
        and last_success is not None
        and (now - last_success <= FRESH_FOR or previous_green)
    )


@dataclass(frozen=True)
class Observation:
    """What the heartbeat saw, plus what it remembers between pings.

    `last_success` and `first_probe` come from the heartbeat's memory, not from the stored
    status: the stored `lastSuccessTime` may lag by up to `REFRESH_INTERVAL`, and judging the
    5-minute rule by it would declare a link Unreachable early.
    """

    result: PingResult | None  # None: no ping was made (suspended)
    slow_threshold: timedelta
    last_success: datetime | None = None
    first_probe: datetime | None = None
    failure: Failure | None = None
    remote: Mapping[str, Any] | None = None  # status.remote from the last green reply
    accepted_fingerprint: str | None = None
    presented_certificate: Mapping[str, Any] | None = None
    insecure: bool = False
    suspended: bool = False
    generation: int | None = None
    # The ping before this one, if it succeeded: a latency move is written only when two pings in
    # a row confirm it, so a single slow handshake on a busy host does not cost a write.
    previous_latency: timedelta | None = None
    # The ping interval (spec.heartbeat.interval): the refresh waits half of it beyond
    # REFRESH_INTERVAL.
    interval: timedelta = timedelta()
    # Pings since the status was last written (None: not counted, the refresh is by time alone).
    pings_since_write: int | None = None
    # Write credit left before this ping (the heartbeat's memory; 0 after a restart): what pays for
    # routine writes. See CREDIT_PER_PING.
    write_credit: timedelta = timedelta()
    # When the peer's previous ping finished, on the operator's clock (the heartbeat's memory; None
    # for the first ping after a start): this ping earns the time elapsed since, at most 30 s.
    previous_probe: datetime | None = None
    # The operator has more pings due than it can send, or its event loop ran late while this ping
    # was in flight: a green ping's latency includes our own queueing, so it is no evidence that
    # the remote is Slow (nor that its latency moved).
    operator_saturated: bool = False


@dataclass(frozen=True)
class StatusUpdate:
    """The heartbeat's part of the status, and whether it must be written."""

    status: dict[str, Any]  # the fields to merge-patch into status (only heartbeat-owned ones)
    write: bool
    reachability: Reachability
    transition: tuple[str, str] | None = None  # (old, new) reachability when it changed
    changed: tuple[str, ...] = field(default=())  # what a reader sees differently, for logs
    write_credit: timedelta = timedelta()  # left after this ping (and this write, if routine)


def _remote_identity(remote: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """The parts of the remote's view that are about the remote itself: which site, which of its
    peers stands for us, which tokens it holds. Only these force a write.

    The rest (its reachability of us, its last failure, latency and clock) is its view of the
    link, which moves whenever its own pings do: written on change, it would make every flap of
    one side cost a write on the other too (the echo). It is carried along by our other writes
    and the refresh, so it is at most one refresh period old."""
    if not remote:
        return ()
    return (
        remote.get("site"),
        remote.get("peerName"),
        remote.get("peerNamespace"),
        remote.get("inboundFingerprint"),
        remote.get("outboundFingerprint"),
    )


def _reachable_condition(state: Reachability, observation: Observation) -> tuple[conditions.Status, str, str]:
    if observation.suspended:
        return "Unknown", REASON_SUSPENDED, "spec.suspend is true: the heartbeat does not ping"
    if state in (Reachability.REACHABLE, Reachability.SLOW):
        # No number here: the latency has its own field, and a message that moved with it would
        # force a write on every ping.
        slow_ms = observation.slow_threshold.total_seconds() * 1000
        message = "ping answered 200" + (
            f", slower than the {slow_ms:g} ms slowThreshold" if state is Reachability.SLOW else ""
        )
        if observation.insecure:
            return "True", REASON_INSECURE, message + "; server certificate NOT verified (insecureSkipVerify)"
        return "True", state.value, message
    if state is Reachability.UNKNOWN:
        return "Unknown", REASON_NO_PING, "no ping has finished recently"
    failure = observation.failure or Failure(Factor.NETWORK, "ping failed")
    return "False", failure.factor, failure.message


def _ready_condition(
    old_conditions: Sequence[Mapping[str, object]], reachable: tuple[conditions.Status, str, str]
) -> tuple[conditions.Status, str, str]:
    credentials = conditions.get_condition(old_conditions, condition_types.CREDENTIALS_READY)
    if credentials is None or credentials.get("status") != "True":
        reason = str((credentials or {}).get("reason") or "")
        if reason not in condition_types.reasons(api.PEER_KIND, condition_types.READY):
            # Another writer's reason, read back from the object (an older operator's, or a
            # hand edit): Ready carries only reasons of its own row.
            reason = "CredentialsNotReady"
        message = str((credentials or {}).get("message") or "credentials are not ready yet")
        return "False", reason, message
    status, reason, message = reachable
    if reason == REASON_SUSPENDED:
        # Suspended on purpose: not measured, and inbound calls are refused too, so not ready.
        return "False", reason, message
    return status, reason, message


def heartbeat_status(old_status: Mapping[str, Any], observation: Observation, now: datetime) -> StatusUpdate:
    """The new heartbeat-owned status fields, and whether a reader would see a difference.

    Owned fields: reachability, lastProbeTime, lastSuccessTime, latencyMilliseconds, lastFailure,
    remote, presentedCertificate, outbound.acceptedFingerprint, observedGeneration and the
    `Reachable` and `Ready` conditions; it removes `Reconciling` (other condition types are
    carried over untouched).
    """
    result = observation.result
    last_success = observation.last_success or parse_rfc3339(old_status.get("lastSuccessTime"))
    if observation.suspended:
        state = Reachability.UNKNOWN
    else:
        state = reachability(
            last_result=result,
            last_success=last_success,
            first_probe=observation.first_probe,
            now=now,
            slow_threshold=observation.slow_threshold,
        )

    old_state = str(old_status.get("reachability") or Reachability.UNKNOWN.value)
    if observation.operator_saturated and state is Reachability.SLOW and old_state != state.value:
        # Our own queueing may be all that made this ping slow: no claim about the remote. (A fast
        # ping while saturated is believed: our lag only ever adds to a latency.)
        state = Reachability.REACHABLE
    new: dict[str, Any] = {"reachability": state.value}
    changed: list[str] = []
    if old_state != state.value or "reachability" not in old_status:
        changed.append("reachability")

    if result is not None:
        new["lastProbeTime"] = conditions.rfc3339(result.time)
    if last_success is not None:
        new["lastSuccessTime"] = conditions.rfc3339(last_success)

    latency_move = False
    if result is not None and result.ok:
        latency_ms = round(result.latency.total_seconds() * 1000)
        old_latency = old_status.get("latencyMilliseconds")
        trusted = not observation.operator_saturated or not isinstance(old_latency, int)
        new["latencyMilliseconds"] = latency_ms if trusted else old_latency
        previous_ms = (
            round(observation.previous_latency.total_seconds() * 1000)
            if observation.previous_latency is not None
            else None
        )
        if not isinstance(old_latency, int):
            changed.append("latency")  # the first latency: no value to keep
        else:
            latency_move = (
                trusted
                and previous_ms is not None
                and latency_moved(old_latency, latency_ms, slow_threshold=observation.slow_threshold)
                and latency_moved(old_latency, previous_ms, slow_threshold=observation.slow_threshold)
            )

    old_failure = old_status.get("lastFailure") or {}
    if result is not None and not result.ok and observation.failure is not None:
        failure = observation.failure
        if (old_failure.get("factor"), old_failure.get("message")) != (failure.factor, failure.message):
            changed.append("lastFailure")
            new["lastFailure"] = {
                "factor": failure.factor,
                "message": failure.message,
                "time": conditions.rfc3339(result.time),
            }
        else:
            new["lastFailure"] = {**old_failure, "time": conditions.rfc3339(result.time)}

    if observation.remote is not None:
        new["remote"] = dict(observation.remote)
        if _remote_identity(observation.remote) != _remote_identity(old_status.get("remote")):
            changed.append("remote")

    if observation.presented_certificate is not None:
        new["presentedCertificate"] = dict(observation.presented_certificate)
        if dict(observation.presented_certificate) != dict(old_status.get("presentedCertificate") or {}):
            changed.append("presentedCertificate")

    if observation.accepted_fingerprint is not None:
        new["outbound"] = {"acceptedFingerprint": observation.accepted_fingerprint}
        if (old_status.get("outbound") or {}).get("acceptedFingerprint") != observation.accepted_fingerprint:
            changed.append("acceptedFingerprint")

    old_conditions: Sequence[Mapping[str, object]] = old_status.get("conditions") or []
    reachable = _reachable_condition(state, observation)
    ready = _ready_condition(old_conditions, reachable)
    new_conditions: Sequence[Mapping[str, object]] = old_conditions
    for type_, (status, reason, message) in (
        (condition_types.REACHABLE, reachable),
        (condition_types.READY, ready),
    ):
        new_conditions = conditions.set_condition(
            new_conditions,
            kind=api.PEER_KIND,
            owner="heartbeat",
            type_=type_,
            status=status,
            reason=reason,
            message=message,
            generation=observation.generation,
            now=now,
        )
    # Ready now describes this generation: kstatus' Reconciling, set by the credentials handler
    # until the link is judged under the current spec, is done (unless set for a newer spec).
    reconciling = conditions.get_condition(new_conditions, condition_types.RECONCILING)
    observed = old_status.get("observedGeneration")
    if observation.generation is not None:
        if reconciling is not None and _int(reconciling.get("observedGeneration")) <= observation.generation:
            new_conditions = conditions.remove_condition(new_conditions, condition_types.RECONCILING)
        if not isinstance(observed, int) or observation.generation > observed:
            new["observedGeneration"] = observation.generation
            changed.append("observedGeneration")
    if _condition_view(new_conditions) != _condition_view(old_conditions):
        changed.append("conditions")
    new["conditions"] = list(new_conditions)

    credit = observation.write_credit
    if result is not None:
        credit = min(CREDIT_CAP, credit + earned_credit(result.time, previous=observation.previous_probe))
    last_probe = parse_rfc3339(old_status.get("lastProbeTime"))
    refresh_due = REFRESH_INTERVAL + observation.interval / 2
    pinged_enough = observation.pings_since_write is None or observation.pings_since_write >= REFRESH_PINGS
    if result is not None and last_probe is None:
        changed.append("lastProbeTime")  # the first probe time a reader sees
    stale = result is not None and last_probe is not None and now - last_probe > refresh_due and pinged_enough
    # A change of state is written at once, whatever the credit: it is what the status is for.
    # A latency move or the refresh only when the credit pays for it; a latency move the credit
    # cannot pay for yet is carried by the next write (the refresh at the latest).
    write = bool(changed)
    if not write and (latency_move or stale) and credit >= ROUTINE_WRITE_COST:
        credit -= ROUTINE_WRITE_COST
        write = True
        if latency_move:
            changed.append("latency")
    transition = (old_state, state.value) if old_state != state.value else None
    return StatusUpdate(
        status=new,
        write=write,
        reachability=state,
        transition=transition,
        changed=tuple(changed),
        write_credit=credit,
    )


def earned_credit(probe: datetime, *, previous: datetime | None) -> timedelta:
    """The write credit a ping earns: the time since the peer's previous ping, at most
    `CREDIT_PER_PING`; nothing for the first ping after a start (no previous ping in memory) or
    when the clock went back."""
    if previous is None:
        return timedelta()
    return max(timedelta(), min(CREDIT_PER_PING, probe - previous))


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _condition_view(items: Sequence[Mapping[str, object]]) -> list[tuple[object, ...]]:
    """What a reader of the conditions sees, by type (order does not matter)."""
    return sorted(
        (
            str(item.get("type")),
            item.get("status"),
            item.get("reason"),
            item.get("message"),
            item.get("observedGeneration"),
        )
        for item in items
    )


def restart_phase(old_status: Mapping[str, Any], draw: float) -> tuple[int, timedelta]:
    """Pings since the last write and write credit to start from, for a peer whose status the
    operator finds already written by a ping (`lastProbeTime`) when it starts: as if that write
    were `k` pings ago, `k` = `draw` (uniform in [0, 1)) x `REFRESH_PINGS`, at most 10: its
    first refresh comes at ping 11 - `k`.

    Started from zero, the peers of a restart reach their refresh at the same ping: at 10,000
    peers, 5,737 status writes in one minute (docs/benchmarks.md, "Steady state at 10,000 peers").
    Drawn, their first refreshes spread over one refresh period. The cost: after each start a peer
    may refresh once up to 10 pings early. A peer never pinged writes its first ping anyway.
    """
    if parse_rfc3339(old_status.get("lastProbeTime")) is None:
        return 0, timedelta()
    pings = min(REFRESH_PINGS - 1, max(0, int(draw * REFRESH_PINGS)))
    # One ping's more credit: the first ping after a start earns none (no previous ping).
    return pings, (pings + 1) * CREDIT_PER_PING


def remembered(old_status: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """(last success, first probe) to start from after a restart, read back from the status.

    When no ping ever succeeded, the `Reachable` condition went False at the first failed ping,
    so its transition time is when the 5-minute clock of "never reachable" started.
    """
    last_success = parse_rfc3339(old_status.get("lastSuccessTime"))
    if last_success is not None:
        return last_success, None
    condition = conditions.get_condition(old_status.get("conditions") or [], condition_types.REACHABLE)
    if condition is not None and condition.get("status") == "False":
        return None, parse_rfc3339(condition.get("lastTransitionTime"))
    return None, None
