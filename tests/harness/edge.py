"""The edge a running site writes for its peers, read back for the ingress integration tests.

`ingress_site` starts a site with a provider configured (and, for Gateway API, the Gateway it
attaches to); `edge_objects` reads the trust bundle and that provider's objects back as plain
dicts; `assert_valid` checks one the way the unit tests check the pure builders.
"""

import datetime
import hashlib
from collections.abc import Mapping
from typing import Any, cast

import kubernetes_validate
from kubernetes.client.exceptions import ApiException

from federation_operator.domain import api
from federation_operator.domain.condition_types import PINS_USABLE
from federation_operator.domain.ingress.config import IngressConfig
from tests.harness.ingress import ClientCert, make_client_cert, schema_errors
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

PEERS = api.PEER_PLURAL
NAMESPACE = "default"
HOST = "federation.eu.example.test"
BUNDLE = "federation-trust-bundle"
CONDITION = PINS_USABLE
CORE_KINDS = {"ConfigMap", "Secret", "Ingress"}
# (apiVersion, plural, kind, name) of each provider's objects, all in the peers' namespace here.
PROVIDER_OBJECTS: dict[str, list[tuple[str, str, str, str]]] = {
    "envoy-gateway": [
        ("gateway.envoyproxy.io/v1alpha1", "clienttrafficpolicies", "ClientTrafficPolicy", "federation-mtls"),
        ("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute", "federation-api"),
        ("gateway.envoyproxy.io/v1alpha1", "securitypolicies", "SecurityPolicy", "federation-ext-auth"),
    ],
    "ingress-nginx": [("networking.k8s.io/v1", "ingresses", "Ingress", "federation-api")],
    "gateway-api": [("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute", "federation-api")],
    "none": [],
}
GATEWAY_PORT = 8443


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def client_cert(name: str, *, expired: bool = False) -> ClientCert:
    start = now() - datetime.timedelta(days=30 if expired else 1)
    end = now() - datetime.timedelta(days=1) if expired else now() + datetime.timedelta(days=90)
    return make_client_cert(name, not_before=start, not_after=end)


def thumbprint(cert: ClientCert) -> str:
    return "sha256:" + hashlib.sha256(cert.der).hexdigest()


def peer_spec(*pins: dict[str, str], **extra: Any) -> dict[str, Any]:
    # A closed loopback port: the heartbeat pings it, and traffic stays on 127.0.0.1.
    return {"endpoint": "https://127.0.0.1:9", "remoteCertificates": list(pins), **extra}


def ingress_site(
    site_factory: SiteFactory, provider: str, *, operator: Mapping[str, Any] | None = None, **overrides: Any
) -> Site:
    """A site whose operator writes `provider`'s edge (`overrides`: IngressConfig fields; `operator`:
    OperatorConfig fields)."""
    values: dict[str, Any] = {
        "host": HOST,
        "labels": api.managed_labels(role=api.ROLE_INGRESS),
        "gateway_name": "edge",
        "section_name": "federation",
        "listener_port": GATEWAY_PORT if provider == "gateway-api" else None,
    }
    values.update(overrides)
    site = site_factory(
        "eu", operator=False, ingress_provider=provider, ingress=IngressConfig(**values), **(operator or {})
    )
    if provider == "gateway-api":
        create_gateway(site)
    site.start_operator()
    return site


def create_gateway(site: Site) -> None:
    tls = {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": "edge-tls"}]}
    site.custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io",
        "v1",
        NAMESPACE,
        "gateways",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {
                "gatewayClassName": "eg",
                "listeners": [
                    {"name": "web", "port": 443, "protocol": "HTTPS", "tls": tls},
                    {
                        "name": "federation",
                        "port": GATEWAY_PORT,
                        "protocol": "HTTPS",
                        "hostname": HOST,
                        "tls": tls,
                    },
                ],
            },
        },
    )


def read(site: Site, api_version: str, plural: str, name: str) -> dict[str, Any] | None:
    """Any object as the API server returns it, as a plain dict."""
    try:
        if "/" in api_version:
            group, version = api_version.split("/")
            return cast(
                dict[str, Any],
                site.custom.get_namespaced_custom_object(group, version, NAMESPACE, plural, name),
            )
        method = {
            "configmaps": site.core.read_namespaced_config_map,
            "secrets": site.core.read_namespaced_secret,
        }
        obj = method[plural](name, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return cast(dict[str, Any], site.api_client.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]


def bundle_pems(site: Site) -> set[str] | None:
    configmap = read(site, "v1", "configmaps", BUNDLE)
    if configmap is None:
        return None
    return split_pems(configmap["data"]["ca.crt"])


def split_pems(ca_crt: str) -> set[str]:
    marker = "-----END CERTIFICATE-----\n"
    return {part + marker for part in ca_crt.split(marker) if part.strip()}


def wait_bundle(site: Site, expected: set[str] | None) -> None:
    wait_for(
        lambda: bundle_pems(site) == expected, message=f"trust bundle of {len(expected or ())} certificates"
    )


def edge_objects(site: Site, provider: str) -> list[dict[str, Any]] | None:
    """The bundle and the provider's objects, as read back; None while one is missing."""
    found = [read(site, "v1", "configmaps", BUNDLE), read(site, "v1", "secrets", BUNDLE)]
    found += [read(site, version, plural, name) for version, plural, _, name in PROVIDER_OBJECTS[provider]]
    present = [obj for obj in found if obj is not None]
    return present if len(present) == len(found) else None


def assert_valid(obj: dict[str, Any]) -> None:
    """The same offline validation as the unit tests: kubernetes-validate, upstream CRD schemas."""
    if obj["kind"] in CORE_KINDS:
        kubernetes_validate.validate(obj, "1.32", strict=True)
    else:
        assert schema_errors(obj) == []


def gateway_frontend(site: Site) -> Any:
    gateway = read(site, "gateway.networking.k8s.io/v1", "gateways", "edge")
    assert gateway is not None
    return gateway["spec"].get("tls", {}).get("frontend")


def peer_uids(site: Site, *names: str) -> set[str]:
    return {str((site.get(PEERS, name) or {})["metadata"]["uid"]) for name in names}
