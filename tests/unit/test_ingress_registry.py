"""Each ingress provider's declaration (`PROVIDER` in its module) is true to the objects it builds.

The operator trusts these declarations: it checks discovery for `writes`, orders writes and
deletes by `route_kinds` (fail closed) and offers `PROVIDERS` as `--ingress-provider` choices. A
provider whose builder writes a kind it did not declare, or a routing kind it did not mark as a
route, fails here instead of silently breaking the write order.
"""

import datetime
from typing import Any

import pytest

from federation_operator.adapters.k8s.resources import BY_KIND
from federation_operator.cli import build_parser
from federation_operator.domain import api
from federation_operator.domain.ingress.bundle import PeerPins, build_trust_bundle
from federation_operator.domain.ingress.config import TRUST_BUNDLE_NAME, IngressConfig
from federation_operator.domain.ingress.providers import PROVIDERS, Provider
from federation_operator.domain.pinning import parse_pins
from tests.harness.ingress import make_client_cert

# The Kubernetes kinds that route requests to a backend.
ROUTING_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TLSRoute", "Ingress"})
NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
CONFIG = IngressConfig(
    host="federation.example.com",
    labels=api.managed_labels(role=api.ROLE_INGRESS),
    section_name="federation",
    listener_port=8443,
    server_namespace="fed",
)


def _objects(provider: Provider) -> list[dict[str, Any]]:
    cert = make_client_cert(
        "us", not_before=NOW - datetime.timedelta(days=1), not_after=NOW + datetime.timedelta(days=90)
    )
    peers = [PeerPins(name="us", namespace="fed", pins=parse_pins([cert.pin]))]
    pinned = build_trust_bundle(peers, now=NOW, needs_pem=provider.needs_pem)
    return provider.build_objects(namespace="fed", bundle=pinned, config=CONFIG)


def _trust_bundle_references(value: Any) -> set[str]:
    """The kinds of trust-bundle object a manifest points the edge at (refs, or a ns/name annotation)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if value.get("name") == TRUST_BUNDLE_NAME and isinstance(value.get("kind"), str):
            found.add(value["kind"])
        for key, item in value.items():
            if key.endswith("auth-tls-secret") and str(item).endswith(f"/{TRUST_BUNDLE_NAME}"):
                found.add("Secret")
            found |= _trust_bundle_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _trust_bundle_references(item)
    return found


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_a_provider_writes_exactly_the_kinds_it_declares(name: str) -> None:
    provider = PROVIDERS[name]
    written = {(obj["apiVersion"], obj["kind"]) for obj in _objects(provider)}
    assert written == provider.writes


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_routing_kind_a_provider_writes_is_ordered_as_a_route(name: str) -> None:
    provider = PROVIDERS[name]
    assert provider.route_kinds == {kind for _, kind in provider.writes} & ROUTING_KINDS


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_a_provider_verifies_against_the_trust_bundle_object_it_declares(name: str) -> None:
    provider = PROVIDERS[name]
    sources = _trust_bundle_references(_objects(provider))
    if provider.gateway_patch is not None:
        gateway = {"metadata": {"name": CONFIG.gateway_name, "namespace": "fed"}, "spec": {"listeners": []}}
        patch = provider.gateway_patch(namespace="fed", config=CONFIG, gateway=gateway)
        sources |= _trust_bundle_references(patch.body if patch is not None else {})
    assert sources == ({provider.certificate_source} if provider.certificate_source else set())


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_the_operator_can_address_every_kind_a_provider_writes(name: str) -> None:
    assert PROVIDERS[name].writes <= BY_KIND.keys()


def test_the_command_line_offers_exactly_the_registered_providers() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    [option] = [action for action in run._actions if "--ingress-provider" in action.option_strings]
    assert set(option.choices or ()) == set(PROVIDERS)
