"""The saturation watch: the gauge and one Event per change, about the operator's Pod."""

import asyncio
from datetime import UTC, datetime
from typing import Any

from federation_operator.adapters.k8s.resources import EVENTS, Resource
from federation_operator.adapters.metrics import HeartbeatMetrics
from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.handlers.saturation import SaturationWatch, operator_pod
from federation_operator.domain.heartbeat_schedule import CALM_FOR


class RecordingKube:
    """Records what is created; refuses when told to (an operator without RBAC for Events)."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.created: list[tuple[Resource, str | None, dict[str, Any]]] = []
        self.refuse = refuse

    async def create(self, resource: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if self.refuse:
            raise PermissionError("events is forbidden")
        self.created.append((resource, namespace, body))
        return body


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)  # let the posting tasks run; no time passes


async def test_saturation_sets_the_gauge_and_posts_one_event_each_way_about_the_operator_pod() -> None:
    kube, clock, metrics = RecordingKube(), Clock(), HeartbeatMetrics()
    config = OperatorConfig(pod_name="federation-operator-7d9f", pod_namespace="federation-system")
    watch = SaturationWatch(
        config=config,
        kube=kube,  # type: ignore[arg-type]
        metrics=metrics,
        workers=4,
        clock=clock,
        wall=lambda: datetime(2026, 12, 1, tzinfo=UTC),
    )
    gauge = "federation_heartbeat_saturated"
    assert metrics.registry.get_sample_value(gauge) == 0
    watch.cycle_started(0.2, 10)
    watch.cycle_started(3.0, 0)
    assert not watch.saturated, "late without a queue, or a queue on time: keeping up"
    for _ in range(3):
        watch.cycle_started(3.0, 12)
    await settle()
    assert watch.saturated
    assert metrics.registry.get_sample_value(gauge) == 1
    assert len(kube.created) == 1, "one Event for the change, not one per late cycle"
    resource, namespace, event = kube.created[0]
    assert (resource, namespace) == (EVENTS, "federation-system")
    assert event["type"] == "Warning"
    assert event["reason"] == "HeartbeatSaturated"
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "federation-operator-7d9f",
        "namespace": "federation-system",
    }
    assert "4 workers" in event["message"]
    assert event["metadata"]["name"].startswith("federation-operator-7d9f.")
    clock.now += CALM_FOR
    watch.cycle_started(0.1, 0)
    await settle()
    assert not watch.saturated
    assert metrics.registry.get_sample_value(gauge) == 0
    assert [body["reason"] for _, _, body in kube.created] == ["HeartbeatSaturated", "HeartbeatCaughtUp"]
    assert kube.created[1][2]["type"] == "Normal"
    assert "worst lag while saturated: 3.0s" in kube.created[1][2]["message"]


async def test_an_event_that_cannot_be_posted_leaves_the_gauge_and_the_heartbeat_alone() -> None:
    kube, metrics = RecordingKube(refuse=True), HeartbeatMetrics()
    watch = SaturationWatch(config=OperatorConfig(), kube=kube, metrics=metrics, workers=1)  # type: ignore[arg-type]
    watch.cycle_started(5.0, 3)
    await settle()
    assert watch.saturated
    assert metrics.registry.get_sample_value("federation_heartbeat_saturated") == 1


def test_outside_a_pod_the_host_name_and_the_first_watched_namespace_stand_in() -> None:
    namespace, name = operator_pod(OperatorConfig(namespaces=("tenant-a", "tenant-b")))
    assert namespace == "tenant-a"
    assert name
    assert operator_pod(OperatorConfig())[0] == "default"
    assert operator_pod(OperatorConfig(pod_name="op-1", pod_namespace="fed")) == ("fed", "op-1")
