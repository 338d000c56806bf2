"""Heartbeat metrics: what every ping did, for dashboards and alerts that need no status writes.

Why here and not in the status: the status is written only when a reader would see a change, so
the per-ping detail (every duration, every failure) lives in Prometheus instead, as Linkerd
does with its probe results. One `CollectorRegistry` per operator instance (two operators can
share a process in tests and the demo, and Prometheus refuses duplicate names in one registry).

Cardinality: one state series per peer (the old one is removed when the state changes) plus a
count of peers per state; durations and results are not labelled by peer.
"""

from typing import Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

STATES: Final = ("Unknown", "Reachable", "Slow", "Degraded", "Unreachable")
DURATION_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
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
        self.results = Counter(
            "federation_heartbeat_pings",
            "Heartbeat pings by result factor (ok, or the failed factor).",
            ["factor"],
            registry=self.registry,
        )
        self.status_writes = Counter(
            "federation_heartbeat_status_writes",
            "Status writes made by the heartbeat (only when a reader sees a change, or a refresh).",
            registry=self.registry,
        )
        self.peer_state = Gauge(
            "federation_heartbeat_peer_state",
            "1 for the current reachability of each peer (one series per peer).",
            ["namespace", "peer", "state"],
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

    def observe_ping(self, *, seconds: float, factor: str | None) -> None:
        result = OK if factor is None else "failed"
        self.duration.labels(result).observe(seconds)
        self.results.labels(factor or OK).inc()

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

    def forget(self, *, namespace: str, peer: str) -> None:
        old = self._states.pop((namespace, peer), None)
        if old is not None:
            self.peer_state.remove(namespace, peer, old)
            self.peers.labels(old).dec()


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
