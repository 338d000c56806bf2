"""The heartbeat of one FederationPeer: one cycle (credentials, ping, status), run by the scheduler.

The schedule is not here: `controller/scheduler.py` runs every peer's cycles from one heap with a
bounded pool of workers (jittered first ping, drift-free grid, missed slots skipped), and the kopf
handlers in `registration/heartbeat.py` only add, update and remove peers in it. This object is
what the scheduler runs for one peer: it holds the peer's latest body (every watch event replaces
it) and what the heartbeat remembers between cycles.

Suspension is a state of the cycle, not a stop: a suspended peer's cycles make no ping and only
assert the `Suspended` status. A ping in flight when `spec.suspend` is set finishes (within its
timeout) and none follows; the status shows it within one interval.

Each cycle: credentials (cached, see `ping_credentials.HeartbeatReads`), one ping (two when the
current outbound token is refused and a previous one is still valid: `outbound_ping`), metrics,
then `reachability.heartbeat_status` decides whether the status changes for a reader. Most pings
change nothing and end there. A change goes to the operator's status write queue
(`controller/write_queue.py`) and the worker is free for the next ping; when the write's turn
comes it is decided again from the freshest status and written on condition that the status is
still the one it was decided from (`status.guarded_status_write`: a change outside the status,
such as kopf's own patches, does not fail it), so that another writer's conditions are never
clobbered. While a peer's write waits, its cycles make no ping: a peer pings at most once per
status write when the API server is behind, and the CPU of the pings it would have wasted goes
to the writes.
"""

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, cast

import kopf

from federation_operator.adapters.k8s import client as k8s
from federation_operator.adapters.k8s.ping_credentials import CredentialCache, HeartbeatReads, WatchedSecrets
from federation_operator.adapters.k8s.resources import FEDERATION_PEERS
from federation_operator.adapters.k8s.status import guarded_status_write
from federation_operator.adapters.metrics import HeartbeatMetrics
from federation_operator.adapters.outbound_ping import TokenPreference, ping_with_fallback
from federation_operator.adapters.probe import Pinger, PingOutcome
from federation_operator.controller.config import OperatorContext
from federation_operator.controller.handlers.events import EventType, post_event
from federation_operator.controller.handlers.saturation import LOOP_LAG_TOLERANCE, LoopLag, SaturationWatch
from federation_operator.controller.write_queue import WriteQueue
from federation_operator.domain import api, conditions, objects
from federation_operator.domain.factors import Factor
from federation_operator.domain.heartbeat_schedule import (
    Settings,
    awaits_credentials,
    credentials_judged,
    settings_of,
)
from federation_operator.domain.probe_classify import unexpected
from federation_operator.domain.reachability import (
    Failure,
    Observation,
    PingResult,
    StatusUpdate,
    heartbeat_status,
    remembered,
    restart_phase,
    timeout_of_own_lag,
)

_STATUS_ATTEMPTS: Final = 3
# What a cycle reads of the peer's metadata (its Events name the peer by these too).
_META_KEPT: Final = ("name", "namespace", "uid", "generation", "resourceVersion", "deletionTimestamp")


def peer_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a peer's body its heartbeat reads: metadata's identity and version, spec, status.

    The heartbeat holds one body per peer for the peer's lifetime; the rest of a watch event's
    body (kopf's annotations, which repeat the whole spec as JSON, labels, finalizers, and on a
    real API server `managedFields`, often larger than the spec) is never read here. The strings
    kept are interned: condition types, reasons, messages and times repeat from peer to peer.
    """
    view = objects.kept_for_reading(body, metadata=_META_KEPT, shared=("spec", "status"))
    view.setdefault("spec", {})
    view.setdefault("status", {})
    return view


def shows_write(body: Mapping[str, Any], written: Mapping[str, Any]) -> bool:
    """Whether a peer's body from the watch shows our status write `written` (its status and
    resourceVersion): it is that write's version, or its status has that write's `lastProbeTime`
    (only the heartbeat writes it, and a write after a ping changes it).

    Not "any other version": a watch event of a write made before ours can arrive after our write's
    reply. While kopf patches a new peer and its watch lags (docs/benchmarks.md, "kopf's own
    patches come back late"), the event of kopf's diff-base patch came after the first heartbeat's
    reply; judged from that body, the next ping found its own first write missing and wrote it
    again, failing its `test` (1,033 of 10,000 new peers).
    """
    version = (written.get("metadata") or {}).get("resourceVersion")
    if version is not None and (body.get("metadata") or {}).get("resourceVersion") == version:
        return True
    probed = (written.get("status") or {}).get("lastProbeTime")
    return probed is not None and (body.get("status") or {}).get("lastProbeTime") == probed


PeerKey = tuple[str, str]  # (namespace, name)


@dataclass
class Shared:
    """What all heartbeats of one operator share: their API lane (`Kube.lane`: their reads and
    status writes never queue behind the reconcilers' calls), the status write queue, metrics, the
    credential cache (on that lane), the saturation, and the credential Secrets the operator's
    watch holds."""

    kube: k8s.Kube
    writes: WriteQueue[PeerKey]
    metrics: HeartbeatMetrics
    cache: CredentialCache
    load: SaturationWatch
    loop_lag: LoopLag
    watched: WatchedSecrets | None = None
    # Whether a peer's credentials pass waits for its turn (handlers.pass_gate.PassGate.waiting).
    credentials_queued: Callable[[PeerKey], bool] = lambda key: False


@dataclass
class Memory:
    """What the heartbeat remembers between cycles (and rebuilds from status after a restart)."""

    last_success: datetime | None = None
    first_probe: datetime | None = None
    last_failure_factor: str | None = None
    remote: dict[str, Any] | None = None
    presented: dict[str, Any] | None = None
    # Our last write (its status and resourceVersion only), until the watch shows it (`shows_write`).
    patched: dict[str, Any] | None = None
    previous_latency: timedelta | None = None  # of the last ping, when it was green
    # Whether the peer's last ping was green (a timeout of our own lag that was not recorded
    # counts as not green): one such timeout after a green ping is excused, two in a row are not.
    last_ping_green: bool = False
    pings_since_write: int = 0
    write_credit: timedelta = timedelta()  # pays for routine writes (reachability.CREDIT_PER_PING)
    last_probe: datetime | None = None  # when the previous ping finished (operator's clock): earns credit
    # Since when cycles have waited for the peer's credentials to be judged (None: not waiting).
    awaiting_credentials_since: datetime | None = None


# What a cycle was doing, and the factor an unexpected error there is blamed on: a malformed
# credential object is a credentials problem; an error inside the ping is one of the link.
STEP_CREDENTIALS: Final = ("reading credentials", Factor.SECRET)
STEP_PING: Final = ("pinging", Factor.NETWORK)
STEP_STATUS: Final = ("recording status", Factor.NETWORK)


class PeerHeartbeat:
    """One peer's heartbeat: what the scheduler runs every interval."""

    def __init__(
        self,
        context: OperatorContext,
        *,
        body: Mapping[str, Any],
        shared: Shared,
        logger: kopf.Logger,
    ) -> None:
        self.context = context
        self.body = peer_view(body)
        self.shared = shared
        self.logger = logger
        meta = body.get("metadata") or {}
        self.namespace = str(meta.get("namespace"))
        self.name = str(meta.get("name"))
        self.pinger = Pinger()
        self.reads = HeartbeatReads(shared.cache, watched=shared.watched)
        self.tokens = TokenPreference()
        status = body.get("status") or {}
        last_success, first_probe = remembered(status)
        # Where this peer starts in the refresh period: drawn, so that the peers of a restart
        # do not all refresh at the same ping (reachability.restart_phase).
        pings, credit = restart_phase(status, random.random())  # noqa: S311 - jitter
        self.memory = Memory(
            last_success=last_success, first_probe=first_probe, pings_since_write=pings, write_credit=credit
        )
        self._step = STEP_CREDENTIALS

    @property
    def meta(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self.body.get("metadata") or {})

    @property
    def spec(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self.body.get("spec") or {})

    def settings(self) -> Settings:
        return settings_of(self.spec)

    def interval(self) -> float:
        return self.settings().interval.total_seconds()

    def observe(self, body: Mapping[str, Any]) -> None:
        """The peer's latest body from the watch. Once it shows our last write, that write's copy is
        not needed any more."""
        self.body = peer_view(body)
        if self.memory.patched is not None and shows_write(self.body, self.memory.patched):
            self.memory.patched = None

    def credentials_arrived(self) -> bool:
        """Cycles have waited for the peer's credentials, and the latest body shows them judged: the
        scheduler may run the next cycle now (`Scheduler.expedite`)."""
        if self.memory.awaiting_credentials_since is None:
            return False
        return credentials_judged(self._current()[0], generation=self.meta.get("generation"))

    @property
    def key(self) -> PeerKey:
        return (self.namespace, self.name)

    def forget(self) -> None:
        """The peer is gone: its waiting status write and its metric series go with it."""
        self.shared.writes.discard(self.key)
        self.shared.metrics.forget(namespace=self.namespace, peer=self.name)

    async def crashed(self, error: Exception) -> None:
        """An unexpected error becomes this cycle's failure: in the log (with the object and the
        exception's message) and in status (the factor of the step that failed), so a peer never
        sits at a stale status while every cycle fails."""
        doing, factor = self._step
        described = unexpected(error)
        self.logger.warning(
            "heartbeat cycle of peer %s/%s failed while %s: %s", self.namespace, self.name, doing, described
        )
        if doing == STEP_STATUS[0]:
            return  # recording the status is what failed; the next cycle tries again
        failure = Failure(factor, f"the heartbeat failed while {doing}: {described}")
        try:
            self._record(PingOutcome(False, timedelta(), failure=failure), self.settings())
        except Exception as again:
            self.logger.warning(
                "status of peer %s/%s not recorded after a failed cycle: %s",
                self.namespace,
                self.name,
                unexpected(again),
            )

    async def cycle(self, *, due: float | None = None) -> None:
        """One ping and its status. `due`: the slot this cycle belongs to (loop time); the
        scheduler reports how late it started (the operator's own lag), which is never part of
        the ping's latency: an operator short of CPU or workers does not call a fast remote Slow.
        """
        self._step = STEP_CREDENTIALS
        settings = self.settings()
        if self.spec.get("suspend"):
            # No ping. The status says so, and is re-asserted every cycle (cheaply: it is written
            # only when it differs), so a concurrent writer's stale conditions do not stick.
            self._step = STEP_STATUS
            observation = Observation(
                result=None,
                slow_threshold=settings.slow_threshold,
                suspended=True,
                generation=self.meta.get("generation"),
            )
            self._submit(observation)
            return
        if self.shared.writes.holds(self.key):
            # The previous ping's status is not written yet (the API server is behind): a ping now
            # would cost a handshake whose result could only replace that write. This slot is
            # skipped, so a peer makes at most one ping per status write while writes wait.
            self.shared.metrics.write_waits.inc()
            return
        now = self.context.clock()
        if awaits_credentials(
            self._current()[0],
            generation=self.meta.get("generation"),
            waiting_since=self.memory.awaiting_credentials_since,
            now=now,
            queued=self.shared.credentials_queued(self.key),
        ):
            # No ping before the credentials handler has judged this spec: its first reachability
            # would be the missing generated Secret's, not the link's (heartbeat_schedule).
            if self.memory.awaiting_credentials_since is None:
                self.memory.awaiting_credentials_since = now
            self.shared.metrics.deferred.inc()
            return
        self.memory.awaiting_credentials_since = None
        loaded = await self.reads.load(self.body, last_failure_factor=self.memory.last_failure_factor)
        started = time.perf_counter()
        loop_since = self.shared.loop_lag.clock()
        if isinstance(loaded, Failure):
            outcome = PingOutcome(False, timedelta(), failure=loaded)
        else:
            self.memory.presented = loaded.presented
            self._step = STEP_PING
            outcome = await ping_with_fallback(
                self.pinger,
                endpoint=str(self.spec.get("endpoint") or ""),
                material=loaded.material,
                outbound=loaded.outbound,
                header=loaded.header,
                budget=settings.timeout,
                preference=self.tokens,
                now=self.context.clock(),
            )
        self.shared.metrics.observe_ping(
            seconds=time.perf_counter() - started, factor=outcome.failure.factor if outcome.failure else None
        )
        if outcome.ok:
            self.shared.metrics.set_latency(
                namespace=self.namespace, peer=self.name, seconds=outcome.latency.total_seconds()
            )
        self._step = STEP_STATUS
        # Our loop ran late while this ping was in flight: part of its latency is ours.
        lagged = self.shared.loop_lag.worst_since(loop_since) > LOOP_LAG_TOLERANCE
        if timeout_of_own_lag(
            failure=outcome.failure,
            loop_lagged=lagged,
            last_success=self.memory.last_success,
            previous_green=self.memory.last_ping_green,
            now=self.context.clock(),
        ):
            # Maybe only our loop was late to read the reply: keep what the status says, and let
            # the next slot's ping decide (reachability.timeout_of_own_lag).
            self.memory.last_ping_green = False
            self.shared.metrics.own_lag_timeouts.inc()
            self.logger.debug("peer %s timed out while the operator's loop ran late: not recorded", self.name)
            return
        self._record(outcome, settings, loop_lagged=lagged)

    def _record(self, outcome: PingOutcome, settings: Settings, *, loop_lagged: bool = False) -> None:
        """Remember the ping, and hand its observation on to be written if it changes anything."""
        now = self.context.clock()
        if self.memory.first_probe is None and self.memory.last_success is None:
            self.memory.first_probe = now
        if outcome.ok:
            self.memory.last_success = now
            if outcome.reply is not None:
                self.memory.remote = dict(outcome.reply)
        self.memory.last_failure_factor = outcome.failure.factor if outcome.failure else None
        self.memory.last_ping_green = outcome.ok
        self.memory.pings_since_write += 1
        observation = Observation(
            result=PingResult(ok=outcome.ok, time=now, latency=outcome.latency),
            slow_threshold=settings.slow_threshold,
            last_success=self.memory.last_success,
            first_probe=self.memory.first_probe,
            failure=outcome.failure,
            remote=self.memory.remote if outcome.ok else None,
            accepted_fingerprint=self.tokens.accepted_fingerprint if outcome.ok else None,
            presented_certificate=self.memory.presented,
            insecure=bool((self.spec.get("serverTrust") or {}).get("insecureSkipVerify")),
            generation=self.meta.get("generation"),
            previous_latency=self.memory.previous_latency,
            interval=settings.interval,
            pings_since_write=self.memory.pings_since_write,  # both read again by `_counted`
            write_credit=self.memory.write_credit,
            previous_probe=self.memory.last_probe,
            operator_saturated=self.shared.load.saturated or loop_lagged,
        )
        self.memory.previous_latency = outcome.latency if outcome.ok else None
        self.memory.last_probe = now
        self._submit(observation)

    def _counted(self, observation: Observation) -> Observation:
        """The observation with the pings counted and the write credit left now: an earlier write
        of this peer may have landed since its ping."""
        if observation.result is None:
            return observation
        return replace(
            observation,
            pings_since_write=self.memory.pings_since_write,
            write_credit=self.memory.write_credit,
        )

    def _judged_at(self, observation: Observation) -> datetime:
        """The moment an observation is judged at: its ping's, however late its write's turn comes
        (judged minutes after, a green ping would look stale, `Unknown`, and cost a second write
        once the next ping says `Reachable` again); now, for a suspension (no ping)."""
        return observation.result.time if observation.result is not None else self.context.clock()

    def _submit(self, observation: Observation) -> None:
        """Settle an observation that changes nothing for a reader at once; queue the others.

        Most pings change nothing: judged here from the freshest status we know, they cost no
        queue and no call. A write is judged again when its turn comes (`_apply`)."""
        if not self.shared.writes.holds(self.key):
            counted = self._counted(observation)
            update = heartbeat_status(self._current()[0], counted, self._judged_at(counted))
            if not update.write:
                self._settle(counted, update)
                return
        self.shared.writes.submit(self.key, lambda: self._apply(observation))

    async def _apply(self, observation: Observation) -> None:
        """A queued status write, when its turn comes: judged from the freshest status and the
        counts of now. Its failure is logged here; the next ping's write tries again."""
        counted = self._counted(observation)
        try:
            update = await self._write(counted)
        except Exception as error:
            self.logger.warning(
                "status of peer %s/%s not written: %s", self.namespace, self.name, unexpected(error)
            )
            return
        self._settle(counted, update)

    def _settle(self, observation: Observation, update: StatusUpdate) -> None:
        if observation.result is not None:
            self.memory.write_credit = update.write_credit
        self.shared.metrics.set_state(
            namespace=self.namespace, peer=self.name, state=update.reachability.value
        )

    def _current(self) -> tuple[Mapping[str, Any], str | None]:
        """The freshest status we know: our own write the watch has not shown yet, or the live body."""
        patched = self.memory.patched
        if patched is not None:
            return patched.get("status") or {}, (patched.get("metadata") or {}).get("resourceVersion")
        return self.body.get("status") or {}, self.meta.get("resourceVersion")

    async def _write(self, observation: Observation) -> StatusUpdate:
        kube = self.shared.kube
        status, resource_version = self._current()
        update = heartbeat_status(status, observation, self._judged_at(observation))
        for _ in range(_STATUS_ATTEMPTS):
            if not update.write:
                return update
            body, kind = guarded_status_write(status, resource_version, update.status)
            try:
                written = await kube.patch(
                    FEDERATION_PEERS, self.namespace, self.name, body, kind=kind, subresource="status"
                )
            except (k8s.Conflict, k8s.Invalid) as error:
                # Another writer (the credentials handler) changed the status: judge again from it.
                fresh = await kube.get(FEDERATION_PEERS, self.namespace, self.name)
                if fresh is None:
                    return update
                fresh_status = fresh.get("status") or {}
                if isinstance(error, k8s.Invalid) and not (kind == "json" and fresh_status != status):
                    raise  # not a failed test: the write itself was refused
                status = fresh_status
                resource_version = fresh["metadata"].get("resourceVersion")
                update = heartbeat_status(status, observation, self._judged_at(observation))
                continue
            self.shared.metrics.status_writes.inc()
            self.logger.debug("heartbeat status written: %s", ", ".join(update.changed) or "refresh")
            self.memory.patched = {
                "status": written.get("status") or {},
                "metadata": {"resourceVersion": (written.get("metadata") or {}).get("resourceVersion")},
            }
            # No ping runs while a peer's write waits or is in flight (`cycle` checks `holds`):
            # every ping counted so far is this write's.
            self.memory.pings_since_write = 0
            self._announce(update)
            return update
        return update

    def _announce(self, update: StatusUpdate) -> None:
        if update.transition is None:
            return
        old, new = update.transition
        reachable = conditions.get_condition(update.status.get("conditions") or [], "Reachable") or {}
        message = f"{old} -> {new}: {reachable.get('message', '')}"
        event_type: EventType = "Normal" if new in {"Reachable", "Unknown"} else "Warning"
        post_event(self.body, kind=api.PEER_KIND, type_=event_type, reason=new, message=message)
        self.logger.info("peer %s is %s (was %s)", self.name, new, old)
