"""Heartbeat metrics: what every ping did, for dashboards and alerts that need no status writes.

Why here and not in the status: the status is written only when a reader would see a change, so
the per-ping detail (every duration, every failure) lives in Prometheus instead, as Linkerd
does with its probe results. One `CollectorRegistry` per operator instance (two operators can
share a process in tests and the demo, and Prometheus refuses duplicate names in one registry).

Cardinality: one state series and one latency series per peer (the old state's is removed when
the state changes) plus a count of peers per state; durations and results are not labelled by
peer. Beside the heartbeat, the same registry carries each FederationCert's expiry (for the
expiry alerts) and the handler failures kopf reports (for "failing to reconcile").
"""

import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from federation_operator.domain.factors import Factor
from federation_operator.domain.times import parse_rfc3339

STATES: Final = ("Unknown", "Reachable", "Slow", "Degraded", "Unreachable")
DURATION_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Lag runs from "on time" to "a whole interval or more behind" (30 s by default).
LAG_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OK: Final = "ok"


class HeartbeatMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.duration = Histogram(
            "federation_heartbeat_ping_duration_seconds",
            "Duration of heartbeat pings, connect to last byte, by result.",
            ["result"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.lag = Histogram(
            "federation_heartbeat_lag_seconds",
            "How late heartbeat cycles start after their slot (the operator's own scheduling and the wait "
            "for a free heartbeat worker): the operator's lag, never part of a ping's latency.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.pending = Gauge(
            "federation_heartbeat_pending_cycles",
            "Heartbeat cycles that are due and wait for a free worker (0 while the operator keeps up).",
            registry=self.registry,
        )
        self.saturated = Gauge(
            "federation_heartbeat_saturated",
            "1 while more heartbeat pings are due than the workers can send (the operator is the "
            "bottleneck, not the remotes), else 0.",
            registry=self.registry,
        )
        self.workers = Gauge(
            "federation_heartbeat_workers",
            "Heartbeat workers: how many pings the operator runs at once at most.",
            registry=self.registry,
        )
        self.results = Counter(
            "federation_heartbeat_pings",
            "Heartbeat pings by result factor (ok, or the failed factor).",
            ["factor"],
            registry=self.registry,
        )
        self.own_lag_timeouts = Counter(
            "federation_heartbeat_own_lag_timeouts",
            "Pings that timed out while the operator's event loop ran late, not taken as evidence "
            "against the remote (the previous reachability kept, retried at the next slot).",
            registry=self.registry,
        )
        self.deferred = Counter(
            "federation_heartbeat_deferred_cycles",
            "Heartbeat cycles skipped because the peer's credentials were not judged yet for its "
            "current spec (a new peer before the credentials handler wrote its Secrets and status).",
            registry=self.registry,
        )
        self.status_writes = Counter(
            "federation_heartbeat_status_writes",
            "Status writes made by the heartbeat (only when a reader sees a change, or a refresh).",
            registry=self.registry,
        )
        self.write_queue = Gauge(
            "federation_heartbeat_status_writes_pending",
            "Heartbeat status writes that wait for a writer, at most one per peer (0 while the API "
            "server keeps up).",
            registry=self.registry,
        )
        self.write_waits = Counter(
            "federation_heartbeat_write_wait_cycles",
            "Heartbeat cycles that made no ping because the peer's previous status write was not made "
            "yet (a peer pings at most once per status write while the API server is behind).",
            registry=self.registry,
        )
        self.peer_state = Gauge(
            "federation_heartbeat_peer_state",
            "1 for the current reachability of each peer (one series per peer).",
            ["namespace", "peer", "state"],
            registry=self.registry,
        )
        self.peer_latency = Gauge(
            "federation_heartbeat_peer_latency_seconds",
            "Latency of each peer's last green ping, connect to last byte, as measured (the status "
            "shows it only when it moves by a factor, and with every refresh).",
            ["namespace", "peer"],
            registry=self.registry,
        )
        self.peers = Gauge(
            "federation_heartbeat_peers",
            "Number of peers in each reachability state.",
            ["state"],
            registry=self.registry,
        )
        self._states: dict[tuple[str, str], str] = {}
        for state in STATES:
            self.peers.labels(state).set(0)
        # Every factor's series exists from the start (at 0), so an alert on one need not wait for
        # its first failure to have something to compare against.
        for result in (OK, *Factor):
            self.results.labels(result)

    def observe_ping(self, *, seconds: float, factor: str | None) -> None:
        result = OK if factor is None else "failed"
        self.duration.labels(result).observe(seconds)
        self.results.labels(factor or OK).inc()

    def observe_lag(self, seconds: float) -> None:
        self.lag.observe(max(seconds, 0.0))

    def set_pending(self, cycles: int) -> None:
        self.pending.set(cycles)

    def set_state(self, *, namespace: str, peer: str, state: str) -> None:
        key = (namespace, peer)
        old = self._states.get(key)
        if old == state:
            return
        if old is not None:
            self.peer_state.remove(namespace, peer, old)
            self.peers.labels(old).dec()
        self.peer_state.labels(namespace, peer, state).set(1)
        self.peers.labels(state).inc()
        self._states[key] = state

    def set_latency(self, *, namespace: str, peer: str, seconds: float) -> None:
        self.peer_latency.labels(namespace, peer).set(seconds)

    def forget(self, *, namespace: str, peer: str) -> None:
        old = self._states.pop((namespace, peer), None)
        if old is not None:
            self.peer_state.remove(namespace, peer, old)
            self.peers.labels(old).dec()
        with contextlib.suppress(KeyError):  # no green ping yet
            self.peer_latency.remove(namespace, peer)


class CredentialMetrics:
    """`federation_credentials_passes_total`: how often peers' credentials were judged (a pass per
    create, update, restart, Secret change and safety-net read), whether or not it wrote anything.
    After a restart it reaches the number of peers once every peer has been judged again."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.passes = Counter(
            "federation_credentials_passes",
            "Credential passes completed, one per peer judged (create, update, resume, a Secret change, "
            "the periodic check).",
            registry=registry,
        )


class CertificateMetrics:
    """`notAfter` and `renewalTime` of every FederationCert, as Unix times, mirrored from its status.

    Alerts compare them with `time()`, so they fire on schedule even when no status is written.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.not_after = Gauge(
            "federation_certificate_not_after_timestamp_seconds",
            "FederationCert notAfter (status.notAfter), as a Unix time.",
            ["namespace", "name"],
            registry=registry,
        )
        self.renewal = Gauge(
            "federation_certificate_renewal_timestamp_seconds",
            "FederationCert renewal time (status.renewalTime: when Expiring turns True), as a Unix time.",
            ["namespace", "name"],
            registry=registry,
        )

    def observe(self, *, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        not_after = parse_rfc3339(status.get("notAfter"))
        renewal = parse_rfc3339(status.get("renewalTime"))
        if not_after is None or renewal is None:
            self.forget(namespace=namespace, name=name)
            return
        self.not_after.labels(namespace, name).set(not_after.timestamp())
        self.renewal.labels(namespace, name).set(renewal.timestamp())

    def forget(self, *, namespace: str, name: str) -> None:
        for gauge in (self.not_after, self.renewal):
            with contextlib.suppress(KeyError):  # never observed, or already forgotten
                gauge.remove(namespace, name)


class RequestGateReading(Protocol):
    waiting: int
    in_flight: int


class ApiGateMetrics:
    """kopf's requests at the operator's in-flight gate (adapters/k8s/kopf_session.py), read at
    each scrape: requests waiting there for long mean the API server sets the pace."""

    def __init__(self, registry: CollectorRegistry, gate: RequestGateReading) -> None:
        waiting = Gauge(
            "federation_operator_api_requests_waiting",
            "kopf's API requests waiting for a slot under --api-max-in-flight (their timeout not started).",
            registry=registry,
        )
        waiting.set_function(lambda: gate.waiting)
        in_flight = Gauge(
            "federation_operator_api_requests_in_flight",
            "kopf's API requests sent and not yet answered (at most --api-max-in-flight; watches apart).",
            registry=registry,
        )
        in_flight.set_function(lambda: gate.in_flight)


class HandlerErrors(logging.Handler):
    """`federation_operator_handler_errors_total{kind}`: the handler failures kopf reports.

    kopf reports a failed handler (and each retry) as an ERROR on its per-object logger, which
    carries the object's reference; counting those records is the one place every failure passes.
    Attach to `logging.getLogger("kopf.objects")`. Kinds other than ours count as `other`.
    """

    KINDS: Final = ("FederationCert", "FederationPeer")

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(level=logging.ERROR)
        self.errors = Counter(
            "federation_operator_handler_errors",
            "Handler failures kopf reported (logged at ERROR for an object), by the object's kind.",
            ["kind"],
            registry=registry,
        )
        for kind in (*self.KINDS, "other"):
            self.errors.labels(kind)  # every series exists from the start: rate() needs no first error

    def emit(self, record: logging.LogRecord) -> None:
        kind = str((getattr(record, "k8s_ref", None) or {}).get("kind") or "")
        self.errors.labels(kind if kind in self.KINDS else "other").inc()


async def serve_metrics(registry: CollectorRegistry, *, host: str, port: int) -> web.AppRunner:
    """`GET /metrics` in Prometheus text format on `host:port`; stop with `await runner.cleanup()`."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
