"""Heartbeat metrics: one state series per peer, counts per state, results by factor."""

from federation_operator.adapters.metrics import HeartbeatMetrics
from federation_operator.domain.factors import Factor


def sample(metrics: HeartbeatMetrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_state_changes_move_the_single_series_and_the_counts() -> None:
    metrics = HeartbeatMetrics()
    metrics.set_state(namespace="fed", peer="us", state="Reachable")
    metrics.set_state(namespace="fed", peer="us", state="Degraded")
    labels = {"namespace": "fed", "peer": "us"}
    assert sample(metrics, "federation_heartbeat_peer_state", {**labels, "state": "Reachable"}) is None
    assert sample(metrics, "federation_heartbeat_peer_state", {**labels, "state": "Degraded"}) == 1
    assert sample(metrics, "federation_heartbeat_peers", {"state": "Degraded"}) == 1
    assert sample(metrics, "federation_heartbeat_peers", {"state": "Reachable"}) == 0
    metrics.forget(namespace="fed", peer="us")
    assert sample(metrics, "federation_heartbeat_peers", {"state": "Degraded"}) == 0


def test_each_peer_has_its_last_latency_as_a_series_until_it_is_forgotten() -> None:
    """The status shows the latency only when it moves by 2x or at a refresh; the metric has every
    green ping's."""
    metrics = HeartbeatMetrics()
    labels = {"namespace": "fed", "peer": "us"}
    metrics.forget(namespace="fed", peer="us")  # never pinged: nothing to remove, no error
    metrics.set_latency(namespace="fed", peer="us", seconds=0.02)
    metrics.set_latency(namespace="fed", peer="us", seconds=0.031)
    assert sample(metrics, "federation_heartbeat_peer_latency_seconds", labels) == 0.031
    metrics.forget(namespace="fed", peer="us")
    assert sample(metrics, "federation_heartbeat_peer_latency_seconds", labels) is None


def test_pings_are_counted_by_factor_and_timed_by_result() -> None:
    metrics = HeartbeatMetrics()
    metrics.observe_ping(seconds=0.02, factor=None)
    metrics.observe_ping(seconds=0.5, factor="Secret")
    assert sample(metrics, "federation_heartbeat_pings_total", {"factor": "ok"}) == 1
    assert sample(metrics, "federation_heartbeat_pings_total", {"factor": "Secret"}) == 1
    assert sample(metrics, "federation_heartbeat_ping_duration_seconds_count", {"result": "failed"}) == 1


def test_two_operators_in_one_process_have_separate_registries() -> None:
    first, second = HeartbeatMetrics(), HeartbeatMetrics()
    first.observe_ping(seconds=0.01, factor=None)
    assert sample(first, "federation_heartbeat_pings_total", {"factor": "ok"}) == 1
    assert sample(second, "federation_heartbeat_pings_total", {"factor": "ok"}) == 0


def test_every_factor_has_a_series_before_its_first_failure() -> None:
    metrics = HeartbeatMetrics()
    for factor in ("ok", *Factor):
        assert sample(metrics, "federation_heartbeat_pings_total", {"factor": factor}) == 0
