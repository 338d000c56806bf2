"""The heartbeat's saturation, made visible on the operator's side: a gauge and an Event.

When more pings are due than the workers can send, the operator, not the remotes, is the
bottleneck. The scheduler reports every cycle's lag and backlog; `judge_saturation` decides; a
change sets `federation_heartbeat_saturated` and posts one Event about the operator's own Pod
(never about a peer: nothing is wrong with the peers). While saturated, the heartbeat does not
take a ping's latency as evidence that a remote is Slow (`Observation.operator_saturated`).

Why the Pod: it is the operator-owned object that exists in every installation and that
`kubectl describe pod` shows. The chart gives its name through the downward API (POD_NAME,
POD_NAMESPACE); outside a Pod (the sandbox, a laptop) the host name stands in (in Kubernetes a
Pod's host name is its name) and the first watched namespace (or `default`) holds the Event.
"""

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from federation_operator.adapters.k8s import client as k8s
from federation_operator.adapters.k8s.resources import EVENTS
from federation_operator.adapters.metrics import HeartbeatMetrics
from federation_operator.controller.config import OperatorConfig
from federation_operator.domain import certs, conditions
from federation_operator.domain.heartbeat_schedule import LATE_AFTER, Saturation, judge_saturation

logger = logging.getLogger(__name__)

REASON_SATURATED: Final = "HeartbeatSaturated"
REASON_CAUGHT_UP: Final = "HeartbeatCaughtUp"
COMPONENT: Final = "federation-operator"


def operator_pod(config: OperatorConfig) -> tuple[str, str]:
    """(namespace, name) of the Pod the operator runs in, or what stands in for it."""
    namespace = config.pod_namespace or (config.namespaces[0] if config.namespaces else "default")
    return namespace, (config.pod_name or socket.gethostname()).lower()


def build_event(
    *, namespace: str, pod: str, type_: str, reason: str, message: str, now: str, serial: int
) -> dict[str, Any]:
    """A core/v1 Event about the operator's Pod."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod}.{serial:x}", "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": namespace},
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class SaturationWatch:
    """Judges saturation from the scheduler's reports; shows it as a gauge and Events."""

    def __init__(
        self,
        *,
        config: OperatorConfig,
        kube: k8s.Kube,
        metrics: HeartbeatMetrics,
        workers: int,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = certs.utcnow,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.workers = workers
        self.clock = clock
        self.wall = wall
        self.namespace, self.pod = operator_pod(config)
        self.state = Saturation()
        self.worst_lag = 0.0
        self._posting: set[asyncio.Task[None]] = set()
        metrics.saturated.set(0)

    @property
    def saturated(self) -> bool:
        return self.state.saturated

    def cycle_started(self, lag: float, waiting: int) -> None:
        """The scheduler's `on_start` hook."""
        self.metrics.observe_lag(lag)
        new = judge_saturation(self.state, lag=lag, waiting=waiting, now=self.clock())
        if new.saturated:
            self.worst_lag = max(self.worst_lag, lag)
        if new.saturated != self.state.saturated:
            self.metrics.saturated.set(1 if new.saturated else 0)
            self._announce(new.saturated, lag=lag, waiting=waiting)
            if not new.saturated:
                self.worst_lag = 0.0
        self.state = new

    def _announce(self, saturated: bool, *, lag: float, waiting: int) -> None:
        if saturated:
            type_, reason = "Warning", REASON_SATURATED
            message = (
                f"more heartbeat pings are due than {self.workers} workers can send: {waiting} due cycles "
                f"wait, one started {lag:.1f}s after its slot. The operator, not the remotes, is behind; "
                "ping latencies are not used to call a peer Slow until it catches up "
                "(--heartbeat-workers, CPU, or fewer peers per operator)"
            )
            logger.warning("heartbeat saturated: %s", message)
        else:
            type_, reason = "Normal", REASON_CAUGHT_UP
            message = (
                f"heartbeat cycles start within {LATE_AFTER:g}s of their slot again "
                f"(worst lag while saturated: {self.worst_lag:.1f}s)"
            )
            logger.info("heartbeat caught up: %s", message)
        body = build_event(
            namespace=self.namespace,
            pod=self.pod,
            type_=type_,
            reason=reason,
            message=message,
            now=conditions.rfc3339(self.wall()),
            serial=time.time_ns(),
        )
        task = asyncio.get_running_loop().create_task(self._post(body))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _post(self, body: dict[str, Any]) -> None:
        try:
            await self.kube.create(EVENTS, self.namespace, body)
        except Exception as error:  # an Event is a courtesy: the gauge and the log already say it
            logger.warning(
                "could not post the %s Event in namespace %s: %s",
                body["reason"],
                self.namespace,
                type(error).__name__,
            )


# How late the loop may run a callback while a ping is in flight before the ping's latency stops
# being evidence about the remote: the smallest latency step a reader is shown (the first edge of
# `reachability.LATENCY_EDGES_MS`). Below it, our own delay cannot move what the status says.
LOOP_LAG_TOLERANCE: Final = 0.05
# How often the watch wakes (a cheap timer), and how much of its history it keeps: longer than
# any ping's timeout, so the worst lag during any ping in flight is still known when it ends.
_LOOP_TICK: Final = 0.02
_LOOP_KEEP: Final = 120.0


class LoopLag:
    """How late the operator's event loop runs what is due, sampled by a timer.

    Cycles that start on time are not enough: with thousands of peers the loop itself (TLS
    handshakes, status decisions, kopf's bookkeeping) can be busy, and a ping in flight then waits
    for its turn to read the reply. Its measured latency is partly ours, so it is not taken as
    evidence that the remote is Slow or that its latency moved (see `PeerHeartbeat`)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque()  # (when, how late), oldest first
        self._task: asyncio.Task[None] | None = None
        self._tick_started: float | None = None  # of the tick in progress
        self.ticks = 0  # samples taken so far

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def worst_since(self, since: float) -> float:
        """The worst lateness seen from `since` (this clock) until now; 0 when none was seen.

        Includes the tick in progress: when the loop was blocked, the caller may run before the
        tick that would record it."""
        worst = 0.0
        if self._tick_started is not None:
            worst = max(0.0, self.clock() - self._tick_started - _LOOP_TICK)
        for when, late in reversed(self._samples):
            if when < since:
                break
            worst = max(worst, late)
        return worst

    async def _watch(self) -> None:
        while True:
            before = self._tick_started = self.clock()
            await asyncio.sleep(_LOOP_TICK)
            now = self.clock()
            self._samples.append((now, max(0.0, now - before - _LOOP_TICK)))
            self.ticks += 1
            while self._samples and self._samples[0][0] < now - _LOOP_KEEP:
                self._samples.popleft()
