"""A cluster without the ingress provider's CRDs: the sandbox answers as a real API server does
(404, and discovery agrees), and the operator says what to install, keeps the rest going, does not
retry noisily, and writes the edge within one check interval once the CRDs appear."""

import logging
import time
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from federation_operator.controller.registration import ingress as ingress_registration
from federation_operator.domain import api
from federation_operator.domain.ingress.config import IngressConfig
from tests.harness.edge import (
    HOST,
    client_cert,
    peer_spec,
    read,
)
from tests.harness.ingress import SCHEMAS
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

ENVOY = "gateway.envoyproxy.io"
ENVOY_CRDS = ("clienttrafficpolicies", "securitypolicies")
CHECK_INTERVAL = 1.0


def without_envoy_crds(site: Site) -> None:
    extensions = k8s_client.ApiextensionsV1Api(site.api_client)
    for plural in ENVOY_CRDS:
        extensions.delete_custom_resource_definition(f"{plural}.{ENVOY}")


def pins_usable(site: Site, peer: str) -> dict[str, Any] | None:
    return site.condition(api.PEER_PLURAL, peer, "PinsUsable")


def test_a_kind_without_its_crd_is_404_and_absent_from_discovery(site_factory: SiteFactory) -> None:
    site = site_factory("eu", operator=False)
    assert read(site, f"{ENVOY}/v1alpha1", "clienttrafficpolicies", "any") is None  # served: 404 for the name
    without_envoy_crds(site)
    body = {"apiVersion": f"{ENVOY}/v1alpha1", "kind": "ClientTrafficPolicy", "metadata": {"name": "x"}}
    with pytest.raises(ApiException) as refused:
        site.custom.create_namespaced_custom_object(
            ENVOY, "v1alpha1", "default", "clienttrafficpolicies", body
        )
    assert refused.value.status == 404
    groups = k8s_client.ApisApi(site.api_client).get_api_versions().groups
    assert ENVOY not in {group.name for group in groups}
    assert "gateway.networking.k8s.io" in {group.name for group in groups}, "only what was deleted is gone"


def test_the_operator_names_the_missing_kinds_keeps_working_and_recovers_when_they_appear(
    site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The periodic check says each pass at DEBUG: once a minute per namespace is not news.
    caplog.set_level(logging.DEBUG, logger=ingress_registration.__name__)
    site = site_factory(
        "eu",
        operator=False,
        ingress_provider="envoy-gateway",
        ingress=IngressConfig(host=HOST, labels=api.managed_labels(role=api.ROLE_INGRESS)),
        ingress_check_interval=CHECK_INTERVAL,
    )
    without_envoy_crds(site)
    site.start_operator()
    site.create(api.PEER_PLURAL, "us", peer_spec(client_cert("us").pin))

    condition = wait_for(
        lambda: (c := pins_usable(site, "us")) and c["reason"] == "ProviderNotInstalled" and c,
        timeout=15.0,
        message="PinsUsable ProviderNotInstalled",
    )
    assert condition["status"] == "False"
    assert "ClientTrafficPolicy, SecurityPolicy (gateway.envoyproxy.io/v1alpha1)" in condition["message"]
    assert "install Envoy Gateway" in condition["message"]
    # The rest goes on: the trust bundle follows the peer, the credentials are made; no route is
    # written without the verification it relies on.
    assert read(site, "v1", "configmaps", "federation-trust-bundle") is not None
    site.wait_condition(api.PEER_PLURAL, "us", "CredentialsReady", "True")
    assert read(site, "gateway.networking.k8s.io/v1", "httproutes", "federation-api") is None

    # Quiet while it waits: the periodic check runs every interval, the warning is logged once.
    def checks() -> int:
        return sum(
            "ingress-check" in r.getMessage() and "succeeded" in r.getMessage() for r in caplog.records
        )

    wait_for(lambda: checks() >= 3, timeout=15.0, message="three periodic checks")
    warnings = [r for r in caplog.records if "not enforced" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no handler error, no retry storm"

    extensions = k8s_client.ApiextensionsV1Api(site.api_client)
    for plural in ENVOY_CRDS:
        document = yaml.safe_load((SCHEMAS / "envoy-gateway" / f"{ENVOY}_{plural}.yaml").read_text())
        extensions.create_custom_resource_definition(document)
    installed = time.monotonic()
    wait_for(
        lambda: (c := pins_usable(site, "us")) and c["reason"] == "Enforced" and c,
        timeout=CHECK_INTERVAL + 5.0,
        message="PinsUsable Enforced after the CRDs appear",
    )
    recovered = time.monotonic() - installed
    assert read(site, f"{ENVOY}/v1alpha1", "clienttrafficpolicies", "federation-mtls") is not None
    assert read(site, "gateway.networking.k8s.io/v1", "httproutes", "federation-api") is not None
    print(f"edge written {recovered:.2f}s after the CRDs appeared (check interval {CHECK_INTERVAL}s)")
