"""What an operator instance is configured with and what its handlers share (a leaf module).

Everything in the operator imports this and it imports nothing of the operator, so the handlers
can read their configuration without importing the module that registers and runs them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from federation_operator.domain import certs
from federation_operator.domain.ingress.config import IngressConfig


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: Path | None = None
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    site: str = "federation"
    ingress_provider: str = "none"
    # Where the edge objects point (docs/ingress.md); None: the operator writes no ingress object at all.
    ingress: IngressConfig | None = None
    peering: str | None = None
    priority: int = 0
    liveness: str | None = None
    # How often a FederationCert is re-checked (its Secret still there and intact, expiry close).
    cert_check_interval: float = 60.0
    # The operator's own metrics (ping durations, results by factor, states, status writes).
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a pod's listener; the chart's NetworkPolicy narrows it
    metrics_port: int | None = None
    # How often each peer is re-checked for an expired handoff or rotation overlap (seconds).
    peer_check_interval: float = 30.0
    # How often each peer's namespace edge objects are re-checked: pins expire without an event.
    ingress_check_interval: float = 60.0
    # Heartbeat workers: pings in flight at most (None: scheduler.default_workers of the CPUs the
    # process may use, adapters/cpus.py).
    heartbeat_workers: int | None = None
    # Credentials passes of kopf's peer handlers (create, update, resume) in flight at most: a
    # start over thousands of peers otherwise runs them all at once (registration/peers.py).
    reconcile_concurrency: int = 64
    # kopf's API requests in flight at most (adapters/k8s/kopf_session.py): the rest wait their turn
    # before their timeout starts. The operator's own client is bounded by its thread pools. 32
    # keeps a real API server's pipeline full (at 10 ms a request, 3,200 a second) and well under
    # its default in-flight limits (400 reads, 200 writes), shared with every client of the cluster.
    api_max_in_flight: int = 32
    # The operator's own Pod (downward API: POD_NAME, POD_NAMESPACE), which operator-wide Events
    # are about (heartbeat saturation). None outside a Pod: the host name and the first watched
    # namespace stand in (docs/reachability.md, "Saturation").
    pod_name: str | None = None
    pod_namespace: str | None = None


@dataclass
class OperatorContext:
    """What every handler needs, handed over through kopf's memo."""

    config: OperatorConfig
    kube: Any  # federation_operator.adapters.k8s.client.Kube; typed loosely to keep import time low here
    clock: Callable[[], datetime] = certs.utcnow


def context_of(memo: Any) -> OperatorContext:
    context: OperatorContext = memo["context"]
    return context


EXITING_KEY = "exiting"
# The operator's one `RequestGate` for kopf's requests (adapters/k8s/kopf_session.py): kopf's login
# handler builds sessions behind it, the metrics read it.
API_GATE_KEY = "api-gate"


def running(memo: Any, **_: Any) -> bool:
    """kopf's `when=` of every daemon and timer: False once the operator is stopping.

    kopf stops the daemons it knows when it exits, but its watch workers keep handling events
    for a moment after that, and each event spawns the daemons and timers of its object afresh;
    those orphans then hold the exit up for kopf's hung-task timeout (5 s). Filtered out, they
    are never spawned. `run_operator` sets the flag just before kopf's own stop flag.
    """
    exiting = memo.get(EXITING_KEY)
    return exiting is None or not exiting.is_set()
