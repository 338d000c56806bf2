"""The operator writes an edge object only when a field it owns differs from the live one."""

import copy
import datetime
from typing import Any

import pytest

from federation_operator.domain import api
from federation_operator.domain.ingress.bundle import PeerPins, build_trust_bundle, build_trust_bundle_objects
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.domain.ingress.diffing import needs_write, stale_owners
from federation_operator.domain.ingress.providers import PROVIDERS
from federation_operator.domain.pinning import parse_pins
from tests.harness.ingress import make_client_cert

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
OWNER = {"apiVersion": api.API_VERSION, "kind": api.PEER_KIND, "name": "us-east", "uid": "3f1c9a4e-1b2d"}


def _server_side(obj: dict[str, Any], **extra_spec_defaults: Any) -> dict[str, Any]:
    """What the API server returns for `obj`: bookkeeping, managedFields, status added."""
    live = copy.deepcopy(obj)
    live["metadata"].update(
        {
            "resourceVersion": "918273",
            "uid": "c0ffee00-0000-4000-8000-000000000001",
            "generation": 3,
            "creationTimestamp": "2026-11-28T11:00:00Z",
            "managedFields": [
                {"manager": "federation-operator", "operation": "Apply", "apiVersion": obj["apiVersion"]}
            ],
        }
    )
    live["status"] = {"parents": [{"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}]}
    return live


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    cert = make_client_cert(
        "us-east", not_before=NOW - datetime.timedelta(days=1), not_after=NOW + datetime.timedelta(days=90)
    )
    bundle = build_trust_bundle(
        [PeerPins(name="us-east", namespace="federation", pins=parse_pins([cert.pin]))], now=NOW
    )
    config = IngressConfig(
        host="federation.eu.example.com",
        labels=api.managed_labels(role=api.ROLE_INGRESS),
        gateway_name="edge",
        owner_references=[OWNER],
    )
    generated = build_trust_bundle_objects(
        namespace="federation",
        bundle=bundle,
        labels=api.managed_labels(role=api.ROLE_TRUST_BUNDLE),
        owner_references=[OWNER],
    )
    generated += PROVIDERS["envoy-gateway"].build_objects(
        namespace="federation", bundle=bundle, config=config
    )
    generated += PROVIDERS["ingress-nginx"].build_objects(
        namespace="federation", bundle=bundle, config=config
    )
    return {obj["kind"]: obj for obj in generated}


def test_an_absent_object_is_written(objects: dict[str, dict[str, Any]]) -> None:
    assert needs_write(objects["ConfigMap"], None)


@pytest.mark.parametrize(
    "kind", ["ConfigMap", "Secret", "ClientTrafficPolicy", "HTTPRoute", "SecurityPolicy", "Ingress"]
)
def test_server_bookkeeping_and_status_do_not_cause_a_write(
    objects: dict[str, dict[str, Any]], kind: str
) -> None:
    assert not needs_write(objects[kind], _server_side(objects[kind]))


def test_defaults_the_api_server_fills_in_do_not_cause_a_write(objects: dict[str, dict[str, Any]]) -> None:
    live = _server_side(objects["HTTPRoute"])
    rule = live["spec"]["rules"][0]
    rule["backendRefs"][0]["weight"] = 1
    rule["timeouts"] = {"request": "15s"}
    live["spec"]["parentRefs"][0]["port"] = 8443
    live["spec"]["rules"][0]["matches"][0]["headers"] = []
    assert not needs_write(objects["HTTPRoute"], live)

    live = _server_side(objects["ClientTrafficPolicy"])
    live["spec"]["tls"]["clientValidation"]["caCertificateRefs"][0]["namespace"] = "federation"
    assert not needs_write(objects["ClientTrafficPolicy"], live)


def test_labels_and_annotations_of_other_tools_do_not_cause_a_write(
    objects: dict[str, dict[str, Any]],
) -> None:
    live = _server_side(objects["Ingress"])
    live["metadata"]["labels"]["argocd.argoproj.io/instance"] = "federation"
    live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    live["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "X", "name": "x", "uid": "other"})
    assert not needs_write(objects["Ingress"], live)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("ConfigMap", ("data", "ca.crt"), "-----BEGIN CERTIFICATE-----\nstale\n-----END CERTIFICATE-----\n"),
        ("Secret", ("data", "ca.crt"), "c3RhbGU="),
        (
            "Ingress",
            ("metadata", "annotations", "nginx.ingress.kubernetes.io/auth-tls-verify-client"),
            "optional",
        ),
        ("Ingress", ("metadata", "labels", api.LABEL_ROLE), "something-else"),
        ("ClientTrafficPolicy", ("spec", "tls", "clientValidation", "certificateHashes"), ["00" * 32]),
        ("ClientTrafficPolicy", ("spec", "tls", "clientValidation", "mode"), "VerifyIfGiven"),
        ("SecurityPolicy", ("spec", "extAuth", "failOpen"), True),
        ("HTTPRoute", ("spec", "hostnames"), ["other.example.com"]),
    ],
)
def test_a_changed_field_we_own_causes_a_write(
    objects: dict[str, dict[str, Any]], kind: str, path: tuple[str, ...], value: Any
) -> None:
    live = _server_side(objects[kind])
    target = live
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert needs_write(objects[kind], live)


def test_an_extra_key_in_owned_data_causes_a_write(objects: dict[str, dict[str, Any]]) -> None:
    live = _server_side(objects["ConfigMap"])
    live["data"]["injected.crt"] = "x"
    assert needs_write(objects["ConfigMap"], live)


def test_a_lost_owner_reference_causes_a_write(objects: dict[str, dict[str, Any]]) -> None:
    live = _server_side(objects["Secret"])
    live["metadata"]["ownerReferences"] = []
    assert needs_write(objects["Secret"], live)


def test_reconciling_against_another_controller_writes_once(objects: dict[str, dict[str, Any]]) -> None:
    """Ten passes while another controller keeps annotating and defaulting: one write, no war."""
    store: dict[str, dict[str, Any]] = {}
    writes = 0
    for generation in range(10):
        for kind, desired in objects.items():
            if needs_write(desired, store.get(kind)):
                writes += 1
                store[kind] = _server_side(desired)
            live = store[kind]
            live["metadata"].setdefault("annotations", {})["other-controller/seen"] = str(generation)
            live["metadata"]["resourceVersion"] = str(int(live["metadata"]["resourceVersion"]) + 1)
    assert writes == len(objects)


def test_an_owner_of_our_kind_no_longer_wanted_causes_a_write_and_others_owners_do_not(
    objects: dict[str, dict[str, Any]],
) -> None:
    """A pass that listed a peer just before its deletion can write it back as an owner after the
    garbage collector removed it: the next pass sees that stale owner and writes it out."""
    live = _server_side(objects["ConfigMap"])
    deleted_peer = {**OWNER, "name": "gone", "uid": "uid-of-a-deleted-peer"}
    live["metadata"]["ownerReferences"] = [*live["metadata"]["ownerReferences"], deleted_peer]
    assert needs_write(objects["ConfigMap"], live)
    assert stale_owners(live["metadata"]["ownerReferences"], [OWNER]) == [deleted_peer]
    someone_elses = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": "u-x"}
    live["metadata"]["ownerReferences"] = [
        *objects["ConfigMap"]["metadata"]["ownerReferences"],
        someone_elses,
    ]
    assert not needs_write(objects["ConfigMap"], live)
