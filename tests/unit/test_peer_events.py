"""Every FederationPeer event reaches each concern that watches them through one kopf handler."""

import logging

import pytest

from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.registration.peer_events import PeerEvents
from federation_operator.controller.runner import build_registry
from federation_operator.domain import api
from federation_operator.domain.ingress.config import IngressConfig

LOG = logging.getLogger(__name__)


def test_one_kopf_event_handler_watches_the_peers() -> None:
    """kopf's machinery runs once per handler per event: three handlers on every peer event
    tripled it (docs/benchmarks.md, "A bulk apply")."""
    ingress = IngressConfig(host="fed.example", labels=api.managed_labels(role=api.ROLE_INGRESS))
    registry = build_registry(OperatorConfig(ingress_provider="envoy-gateway", ingress=ingress))
    handlers = [
        handler.id
        for handler in registry._watching.get_all_handlers()
        if handler.selector is not None and handler.selector.any_name == api.PEER_PLURAL
    ]
    assert handlers == ["peer-events"]


async def test_each_watcher_gets_the_event_in_order_and_one_failing_stops_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []
    events = PeerEvents()

    async def credentials(type: str, name: str, **_: object) -> None:
        seen.append(("credentials", name))

    async def heartbeat(type: str, name: str, **_: object) -> None:
        seen.append(("heartbeat", name))
        raise RuntimeError("heartbeat broke")

    async def edge(type: str, name: str, logger: logging.Logger, **_: object) -> None:
        seen.append(("edge", name))

    events.add("credentials", credentials)
    events.add("heartbeat", heartbeat)
    events.add("edge", edge)
    await events.dispatch(LOG, type="MODIFIED", name="us-east")
    assert seen == [("credentials", "us-east"), ("heartbeat", "us-east"), ("edge", "us-east")]
    assert "heartbeat failed on a MODIFIED event: heartbeat broke; ignored" in caplog.text
