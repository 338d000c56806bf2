"""The heartbeat of one FederationPeer: a drift-free ping loop run as a kopf daemon.

Why a daemon and not a kopf timer: a timer's interval is fixed per decorator (ours comes from each
peer's `spec.heartbeat.interval`, read again every cycle), and a timer that raises waits kopf's
60 s backoff instead of its interval. Here the schedule is ours: a jittered first ping (so a
restart does not fire every peer at once), then slots on a fixed grid (`next += interval`, missed
slots skipped, so slow pings do not make the schedule drift), every error caught inside the loop,
and the `stopped` flag raced against the ping in flight so that deletion stops it at once (the
finalizer is released as soon as the loop returns).

Suspension is a state of the loop, not a stop: a suspended peer's cycles make no ping and only
assert the `Suspended` status. A ping in flight when `spec.suspend` is set finishes (within its
timeout) and none follows; the status shows it within one interval.

Each cycle: credentials (cached, see `CredentialCache`), one ping (two when the current outbound
token is refused and a previous one is still valid), metrics, then `reachability.heartbeat_status`
decides whether the status changes for a reader; only then is it merge-patched, with the
resourceVersion as precondition, so that another writer's conditions are never clobbered.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import kopf

from federation_operator.adapters.k8s import client as k8s
from federation_operator.adapters.k8s.ping_credentials import (
    CacheReader,
    CredentialCache,
    Credentials,
    load_credentials,
)
from federation_operator.adapters.k8s.resources import (
    FEDERATION_PEERS,
)
from federation_operator.adapters.metrics import HeartbeatMetrics
from federation_operator.adapters.probe import Pinger, PingOutcome
from federation_operator.controller.config import OperatorContext
from federation_operator.controller.handlers.events import EventType, post_event
from federation_operator.domain import api, conditions, tokens
from federation_operator.domain.factors import Factor
from federation_operator.domain.heartbeat_schedule import Settings, next_slot, settings_of
from federation_operator.domain.probe_classify import unexpected
from federation_operator.domain.reachability import (
    REFRESH_INTERVAL,
    Failure,
    Observation,
    PingResult,
    StatusUpdate,
    heartbeat_status,
    remembered,
)
from federation_operator.domain.tokens import SecretText

T = TypeVar("T")

# Credentials are re-read at most this often while pings succeed; at once after a spec change or a
# failure that a credential change could explain. Shared by all peers of the operator, so a
# FederationCert used by a thousand peers is read once per period, not a thousand times.
CREDENTIALS_MAX_AGE: Final = 60.0
# A peer's own outbound Secret changes only with a rotation or an edit, and either changes the
# outbound fingerprint in the peer's status (the credentials handler watches those Secrets), which
# makes the next cycle read it again. This age is only the safety net: at 10,000 peers, re-reading
# each peer's Secret every minute would be ~170 GETs per second for nothing.
OWN_SECRET_MAX_AGE: Final = 1800.0
_CREDENTIAL_FACTORS: Final = frozenset({Factor.SECRET, Factor.CERTIFICATE, Factor.TLS})
_STATUS_ATTEMPTS: Final = 3
# Pings in flight per operator. When the operator is short of CPU, more concurrent handshakes only
# make each one slower, until healthy remotes look Slow or time out: a lie about the remote.
# With a cap, excess cycles wait for a slot (the wait is not part of the ping's timeout or its
# latency) and, if they overrun, skip to the next slot. 128 in flight keeps up with 10,000 peers
# every 30 s at a 350 ms round trip.
MAX_CONCURRENT_PINGS: Final = 128


@dataclass
class Shared:
    """What all heartbeats of one operator share: metrics, the credential cache, ping slots."""

    metrics: HeartbeatMetrics
    cache: CredentialCache
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_PINGS))


@dataclass
class Memory:
    """What the heartbeat remembers between cycles (and rebuilds from status after a restart)."""

    last_success: datetime | None = None
    first_probe: datetime | None = None
    last_failure_factor: str | None = None
    remote: dict[str, Any] | None = None
    accepted_fingerprint: str | None = None
    presented: dict[str, Any] | None = None
    prefer_previous_until: datetime | None = None
    credential_key: tuple[str, ...] = ()
    patched: dict[str, Any] | None = None  # our last write, until the watch brings it back
    patched_over: str | None = None  # the resourceVersion that write replaced
    previous_latency: timedelta | None = None  # of the last ping, when it was green


def _credential_key(body: Mapping[str, Any]) -> tuple[str, ...]:
    """Changes when what we present may have changed: the spec's references, or a token rotation
    (the credentials handler shows the new outbound fingerprint in status)."""
    spec = body.get("spec") or {}
    outbound_status = (body.get("status") or {}).get("outbound") or {}
    return (
        repr(spec.get("clientCertificateRef")),
        repr(spec.get("outbound")),
        repr(spec.get("serverTrust")),
        repr(outbound_status.get("fingerprint")),
        repr(outbound_status.get("previousExpiresAt")),
    )


class _Stopped(Exception):
    pass


async def _unless_stopped(awaitable: Awaitable[T], stopped: kopf.DaemonStopped) -> T:
    """Run `awaitable`, abandoning it the moment the daemon is told to stop."""
    work = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(_wait_stopped(stopped))
    try:
        done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if work in done:
        return work.result()
    work.cancel()
    raise _Stopped


async def _wait_stopped(stopped: kopf.DaemonStopped) -> None:
    await stopped.wait()


async def _unless_stopped_quietly(awaitable: Awaitable[None], stopped: kopf.DaemonStopped) -> None:
    with contextlib.suppress(_Stopped):
        await _unless_stopped(awaitable, stopped)


# What a cycle was doing, and the factor an unexpected error there is blamed on: a malformed
# credential object is a credentials problem; an error inside the ping is one of the link.
STEP_CREDENTIALS: Final = ("reading credentials", Factor.SECRET)
STEP_PING: Final = ("pinging", Factor.NETWORK)
STEP_STATUS: Final = ("writing status", Factor.NETWORK)


class Heartbeat:
    """One peer's heartbeat loop."""

    def __init__(
        self,
        context: OperatorContext,
        *,
        body: kopf.Body,
        shared: Shared,
        logger: kopf.Logger,
        rng: random.Random | None = None,
    ) -> None:
        self.context = context
        self.body = body
        self.shared = shared
        self.logger = logger
        self.namespace = str(body.metadata.namespace)
        self.name = str(body.metadata.name)
        self.pinger = Pinger()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        last_success, first_probe = remembered(body.get("status") or {})
        self.memory = Memory(last_success=last_success, first_probe=first_probe)
        self._step = STEP_CREDENTIALS

    async def run(self, stopped: kopf.DaemonStopped) -> None:
        loop = asyncio.get_running_loop()
        try:
            settings = settings_of(self.body.get("spec") or {})
            next_at = loop.time() + self.rng.uniform(0, settings.interval.total_seconds())
            while not stopped:
                delay = next_at - loop.time()
                if delay > 0:
                    await stopped.wait(delay)
                    if stopped:
                        break
                try:
                    await _unless_stopped(self.cycle(settings, due=next_at), stopped)
                except _Stopped:
                    break
                except Exception as error:  # a cycle must never end the heartbeat, nor fail unseen
                    await _unless_stopped_quietly(self._report_crash(error, settings), stopped)
                settings = settings_of(self.body.get("spec") or {})
                next_at = next_slot(previous=next_at, now=loop.time(), step=settings.interval.total_seconds())
        finally:
            await self.pinger.aclose()
            await self._on_exit(stopped)

    async def _report_crash(self, error: Exception, settings: Settings) -> None:
        """An unexpected error becomes this cycle's failure: in the log (with the object and the
        exception's message) and in status (the factor of the step that failed), so a peer never
        sits at a stale status while every cycle fails."""
        doing, factor = self._step
        described = unexpected(error)
        self.logger.warning(
            "heartbeat cycle of peer %s/%s failed while %s: %s", self.namespace, self.name, doing, described
        )
        if doing == STEP_STATUS[0]:
            return  # writing status is what failed; the next cycle tries again
        failure = Failure(factor, f"the heartbeat failed while {doing}: {described}")
        try:
            await self._record(PingOutcome(False, timedelta(), failure=failure), settings)
        except Exception as again:
            self.logger.warning(
                "status of peer %s/%s not written after a failed cycle: %s",
                self.namespace,
                self.name,
                unexpected(again),
            )

    async def _on_exit(self, stopped: kopf.DaemonStopped) -> None:
        reason = stopped.reason
        deleted = reason is not None and bool(reason & kopf.DaemonStoppingReason.RESOURCE_DELETED)
        if deleted or self.body.metadata.get("deletionTimestamp"):
            self.shared.metrics.forget(namespace=self.namespace, peer=self.name)

    async def cycle(self, settings: Settings, *, due: float | None = None) -> None:
        """One ping and its status. `due`: the slot (loop time) this cycle belongs to; how late the
        ping starts after it is the operator's own lag, recorded apart and never counted in the
        ping's latency, so an operator short of CPU or of ping slots does not call a fast remote Slow.
        """
        self._step = STEP_CREDENTIALS
        spec = self.body.get("spec") or {}
        if spec.get("suspend"):
            # No ping. The status says so, and is re-asserted every cycle (cheaply: it is written
            # only when it differs), so a concurrent writer's stale conditions do not stick.
            self._step = STEP_STATUS
            observation = Observation(
                result=None,
                slow_threshold=settings.slow_threshold,
                suspended=True,
                generation=self.body.metadata.get("generation"),
            )
            update = await self._write(observation)
            self.shared.metrics.set_state(
                namespace=self.namespace, peer=self.name, state=update.reachability.value
            )
            return
        key = _credential_key(self.body)
        fresh = key != self.memory.credential_key or self.memory.last_failure_factor in _CREDENTIAL_FACTORS
        self.memory.credential_key = key
        cache = self.shared.cache
        reader = CacheReader(cache, self.namespace, max_age=0.0 if fresh else CREDENTIALS_MAX_AGE)
        own = CacheReader(cache, self.namespace, max_age=0.0 if fresh else OWN_SECRET_MAX_AGE)
        loaded = await load_credentials(reader, peer_name=self.name, spec=spec, outbound_reader=own)
        if isinstance(loaded, Failure):
            started = time.perf_counter()
            outcome = PingOutcome(False, timedelta(), failure=loaded)
        else:
            self.memory.presented = loaded.presented
            self._step = STEP_PING
            async with self.shared.slots:
                if due is not None:
                    self.shared.metrics.observe_lag(asyncio.get_running_loop().time() - due)
                started = time.perf_counter()
                outcome = await self._ping(loaded, settings)
        self.shared.metrics.observe_ping(
            seconds=time.perf_counter() - started, factor=outcome.failure.factor if outcome.failure else None
        )
        self._step = STEP_STATUS
        await self._record(outcome, settings)

    async def _ping(self, credentials: Credentials, settings: Settings) -> PingOutcome:
        """Current outbound token first; the previous one (still valid) when the remote refuses it
        with factor Secret. While the previous one is what works, it goes first for a while, so
        the remote's failure limiter does not see a refused token every interval."""
        now = self.context.clock()
        outbound = credentials.outbound
        assert outbound.current is not None
        candidates: list[SecretText] = [outbound.current]
        previous = outbound.previous
        if previous is not None and (
            outbound.previous_expires_at is None or outbound.previous_expires_at > now
        ):
            if self.memory.prefer_previous_until is not None and now < self.memory.prefer_previous_until:
                candidates.insert(0, previous)
            else:
                candidates.append(previous)
        budget = settings.timeout.total_seconds()
        started = time.perf_counter()
        outcome = PingOutcome(False, timedelta(), Failure(Factor.SECRET, "no outbound token"))
        for token in candidates:
            remaining = budget - (time.perf_counter() - started)
            if remaining <= 0:
                break
            outcome = await self.pinger.ping(
                endpoint=str((self.body.get("spec") or {}).get("endpoint") or ""),
                material=credentials.material,
                token=token,
                header=credentials.header,
                time_limit=remaining,
            )
            if outcome.ok:
                self.memory.accepted_fingerprint = tokens.fingerprint(tokens.hash_token(token))
                if token is previous:
                    self.memory.prefer_previous_until = now + REFRESH_INTERVAL
                elif self.memory.prefer_previous_until is not None:
                    self.memory.prefer_previous_until = None
                return outcome
            if outcome.failure is None or outcome.failure.factor != Factor.SECRET:
                break
        if outcome.failure is not None and outcome.failure.factor == Factor.TIMEOUT:
            # The attempt's own limit is what was left of the budget; the reader knows the setting.
            failure = Failure(
                Factor.TIMEOUT, f"no complete reply within {budget:g}s (spec.heartbeat.timeout)"
            )
            return PingOutcome(False, outcome.latency, failure)
        return outcome

    async def _record(self, outcome: PingOutcome, settings: Settings) -> None:
        now = self.context.clock()
        if self.memory.first_probe is None and self.memory.last_success is None:
            self.memory.first_probe = now
        if outcome.ok:
            self.memory.last_success = now
            if outcome.reply is not None:
                self.memory.remote = dict(outcome.reply)
        self.memory.last_failure_factor = outcome.failure.factor if outcome.failure else None
        observation = Observation(
            result=PingResult(ok=outcome.ok, time=now, latency=outcome.latency),
            slow_threshold=settings.slow_threshold,
            last_success=self.memory.last_success,
            first_probe=self.memory.first_probe,
            failure=outcome.failure,
            remote=self.memory.remote if outcome.ok else None,
            accepted_fingerprint=self.memory.accepted_fingerprint if outcome.ok else None,
            presented_certificate=self.memory.presented,
            insecure=bool(((self.body.get("spec") or {}).get("serverTrust") or {}).get("insecureSkipVerify")),
            generation=self.body.metadata.get("generation"),
            previous_latency=self.memory.previous_latency,
            interval=settings.interval,
        )
        self.memory.previous_latency = outcome.latency if outcome.ok else None
        update = await self._write(observation)
        self.shared.metrics.set_state(
            namespace=self.namespace, peer=self.name, state=update.reachability.value
        )

    def _current(self) -> tuple[Mapping[str, Any], str | None]:
        """The freshest status we know: the live body, or our own write the watch has not shown yet."""
        live_rv = self.body.metadata.get("resourceVersion")
        if self.memory.patched is not None and live_rv == self.memory.patched_over:
            patched = self.memory.patched
            return patched.get("status") or {}, (patched.get("metadata") or {}).get("resourceVersion")
        self.memory.patched = None
        return self.body.get("status") or {}, live_rv

    async def _write(self, observation: Observation) -> StatusUpdate:
        kube: k8s.Kube = self.context.kube
        status, resource_version = self._current()
        update = heartbeat_status(status, observation, self.context.clock())
        for _ in range(_STATUS_ATTEMPTS):
            if not update.write:
                return update
            patch: dict[str, Any] = {"status": update.status}
            if resource_version is not None:
                patch["metadata"] = {"resourceVersion": resource_version}
            try:
                written = await kube.patch(
                    FEDERATION_PEERS, self.namespace, self.name, patch, subresource="status"
                )
            except k8s.Conflict:
                # Another writer (the credentials handler) changed the status: judge again from it.
                fresh = await kube.get(FEDERATION_PEERS, self.namespace, self.name)
                if fresh is None:
                    return update
                status = fresh.get("status") or {}
                resource_version = fresh["metadata"].get("resourceVersion")
                update = heartbeat_status(status, observation, self.context.clock())
                continue
            self.shared.metrics.status_writes.inc()
            self.logger.debug("heartbeat status written: %s", ", ".join(update.changed) or "refresh")
            self.memory.patched = written
            self.memory.patched_over = self.body.metadata.get("resourceVersion")
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
