"""Every generated edge object is valid against its upstream schema and says what it must."""

import base64
import datetime
from typing import Any

import kubernetes_validate
import pytest

from federation_operator.domain import api
from federation_operator.domain.ingress.bundle import (
    PeerPins,
    TrustBundle,
    build_trust_bundle,
    build_trust_bundle_objects,
)
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.domain.ingress.providers import PROVIDERS
from federation_operator.domain.ingress.providers.gateway_api import (
    apply_merge_patch,
    build_gateway_frontend_patch,
)
from federation_operator.domain.pinning import parse_pins
from tests.harness.ingress import make_client_cert, schema_errors

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
CORE_KINDS = {"ConfigMap", "Secret", "Ingress"}
OWNER = {
    "apiVersion": api.API_VERSION,
    "kind": api.PEER_KIND,
    "name": "us-east",
    "uid": "0b7f6c2e-7d1c-4a55-9d8e-5b3b8e0f6a11",
}


@pytest.fixture(scope="module")
def bundle() -> TrustBundle:
    certs = [
        make_client_cert(
            name, not_before=NOW - datetime.timedelta(days=1), not_after=NOW + datetime.timedelta(days=90)
        )
        for name in ("us-east", "ap-south")
    ]
    return build_trust_bundle(
        [
            PeerPins(name="us-east", namespace="federation", pins=parse_pins([certs[0].pin])),
            PeerPins(name="ap-south", namespace="federation", pins=parse_pins([certs[1].pin])),
        ],
        now=NOW,
    )


def _config(**overrides: Any) -> IngressConfig:
    values: dict[str, Any] = {
        "host": "federation.eu.example.com",
        "labels": api.managed_labels(role=api.ROLE_INGRESS),
        "gateway_name": "edge",
        "section_name": "federation",
        "listener_port": 8443,
        "tls_secret_name": "federation-eu-tls",
        "owner_references": [OWNER],
    }
    values.update(overrides)
    return IngressConfig(**values)


SAME_NAMESPACE = _config()
ACROSS_NAMESPACES = _config(gateway_namespace="gateways", server_namespace="federation-system")


def _assert_valid(obj: dict[str, Any]) -> None:
    if obj["kind"] in CORE_KINDS:
        kubernetes_validate.validate(obj, "1.32", strict=True)
    else:
        assert schema_errors(obj) == []


# ingress-nginx refuses a server in another namespace (tested below), so it has no across case.
PROVIDER_CONFIGS = [
    pytest.param(provider, config, id=f"{provider}-{config_id}")
    for provider in sorted(PROVIDERS)
    for config, config_id in [(SAME_NAMESPACE, "same-namespace"), (ACROSS_NAMESPACES, "across-namespaces")]
    if not (provider == "ingress-nginx" and config.server_namespace)
]


@pytest.mark.parametrize(("provider", "config"), PROVIDER_CONFIGS)
def test_every_provider_object_validates_and_is_labelled(
    provider: str, config: IngressConfig, bundle: TrustBundle
) -> None:
    objects = PROVIDERS[provider].build_objects(namespace="federation", bundle=bundle, config=config)
    assert (objects == []) == (provider == "none")
    for obj in objects:
        _assert_valid(obj)
        assert obj["metadata"]["labels"] == api.managed_labels(role=api.ROLE_INGRESS)
        in_peer_namespace = obj["metadata"]["namespace"] == "federation"
        assert ("ownerReferences" in obj["metadata"]) == in_peer_namespace


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_an_empty_bundle_publishes_no_edge_objects(provider: str) -> None:
    assert (
        PROVIDERS[provider].build_objects(namespace="federation", bundle=TrustBundle(), config=SAME_NAMESPACE)
        == []
    )


def test_providers_that_verify_against_pem_say_so() -> None:
    assert {name for name, p in PROVIDERS.items() if p.needs_pem} == {
        "envoy-gateway",
        "ingress-nginx",
        "gateway-api",
    }


def test_trust_bundle_objects_validate_and_carry_the_same_ca_crt(bundle: TrustBundle) -> None:
    labels = api.managed_labels(role=api.ROLE_TRUST_BUNDLE)
    objects = build_trust_bundle_objects(
        namespace="federation", bundle=bundle, labels=labels, owner_references=[OWNER]
    )
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ConfigMap", "federation-trust-bundle"),
        ("Secret", "federation-trust-bundle"),
    ]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.32", strict=True)
        assert obj["metadata"]["labels"] == labels
        assert obj["metadata"]["ownerReferences"] == [OWNER]
    configmap, secret = objects
    assert configmap["data"]["ca.crt"] == bundle.ca_crt
    assert base64.b64decode(secret["data"]["ca.crt"]).decode() == bundle.ca_crt
    assert build_trust_bundle_objects(namespace="federation", bundle=TrustBundle(), labels=labels) == []


def test_envoy_gateway_pins_hashes_forwards_the_cert_and_asks_forward_auth(bundle: TrustBundle) -> None:
    objects = PROVIDERS["envoy-gateway"].build_objects(
        namespace="federation", bundle=bundle, config=ACROSS_NAMESPACES
    )
    by_kind = {obj["kind"]: obj for obj in objects}
    ctp, route, policy = by_kind["ClientTrafficPolicy"], by_kind["HTTPRoute"], by_kind["SecurityPolicy"]

    assert ctp["metadata"]["namespace"] == "gateways"
    assert ctp["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "sectionName": "federation"}
    ]
    validation = ctp["spec"]["tls"]["clientValidation"]
    assert validation["mode"] == "RequireAndVerify"
    assert validation["caCertificateRefs"] == [
        {"group": "", "kind": "ConfigMap", "name": "federation-trust-bundle", "namespace": "federation"}
    ]
    assert validation["certificateHashes"] == list(bundle.certificate_hashes)
    assert all(len(h) == 64 and h == h.lower() and ":" not in h for h in validation["certificateHashes"])
    assert ctp["spec"]["headers"]["xForwardedClientCert"] == {
        "mode": "SanitizeSet",
        "certDetailsToAdd": ["Cert"],
    }

    assert route["spec"]["hostnames"] == ["federation.eu.example.com"]
    assert route["spec"]["rules"][0]["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/api/federation/"}}
    ]
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {
            "group": "",
            "kind": "Service",
            "name": "federation-server",
            "namespace": "federation-system",
            "port": 8080,
        }
    ]

    assert policy["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route["metadata"]["name"]}
    ]
    ext_auth = policy["spec"]["extAuth"]
    # pathOverride, never path: Envoy would append the original path to `path`.
    assert ext_auth["http"]["pathOverride"] == api.FORWARD_AUTH_PATH
    assert "path" not in ext_auth["http"]
    assert ext_auth["http"]["headersToBackend"] == [api.HEADER_PEER, api.HEADER_NAMESPACE]
    assert {"x-forwarded-client-cert", "authorization"} <= set(ext_auth["headersToExtAuth"])
    assert ext_auth["failOpen"] is False


def test_ingress_nginx_profile_annotations(bundle: TrustBundle) -> None:
    [ingress] = PROVIDERS["ingress-nginx"].build_objects(
        namespace="federation", bundle=bundle, config=SAME_NAMESPACE
    )
    prefix = "nginx.ingress.kubernetes.io/"
    assert ingress["metadata"]["annotations"] == {
        f"{prefix}auth-tls-secret": "federation/federation-trust-bundle",
        f"{prefix}auth-tls-verify-client": "on",
        f"{prefix}auth-tls-verify-depth": "1",
        f"{prefix}auth-tls-pass-certificate-to-upstream": "true",
        f"{prefix}auth-url": "http://federation-server.federation.svc.cluster.local:8080/api/federation/auth",
        f"{prefix}auth-response-headers": "X-Federation-Peer,X-Federation-Namespace",
    }
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["federation.eu.example.com"], "secretName": "federation-eu-tls"}]
    [rule] = spec["rules"]
    assert rule["host"] == "federation.eu.example.com"
    assert rule["http"]["paths"] == [
        {
            "path": "/api/federation/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "federation-server", "port": {"number": 8080}}},
        }
    ]


def test_ingress_nginx_refuses_a_server_in_another_namespace(bundle: TrustBundle) -> None:
    with pytest.raises(ValueError, match="cannot cross namespaces"):
        PROVIDERS["ingress-nginx"].build_objects(
            namespace="federation", bundle=bundle, config=ACROSS_NAMESPACES
        )


def _user_gateway(**frontend: Any) -> dict[str, Any]:
    tls_listener = {
        "mode": "Terminate",
        "certificateRefs": [{"group": "", "kind": "Secret", "name": "edge-tls"}],
    }
    gateway: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": "federation", "resourceVersion": "4711", "uid": "u-1"},
        "spec": {
            "gatewayClassName": "eg",
            "listeners": [
                {"name": "web", "port": 443, "protocol": "HTTPS", "tls": tls_listener},
                {
                    "name": "federation",
                    "port": 8443,
                    "protocol": "HTTPS",
                    "hostname": "federation.eu.example.com",
                    "tls": tls_listener,
                },
            ],
        },
        "status": {"conditions": []},
    }
    if frontend:
        gateway["spec"]["tls"] = {"frontend": frontend}
    return gateway


def _patched(
    gateway: dict[str, Any], config: IngressConfig, *, enabled: bool = True
) -> dict[str, Any] | None:
    patch = build_gateway_frontend_patch(
        namespace="federation", config=config, gateway=gateway, enabled=enabled
    )
    if patch is None:
        return None
    assert (patch.name, patch.namespace) == ("edge", "federation")
    assert patch.body["metadata"] == {"resourceVersion": "4711"}
    result: dict[str, Any] = apply_merge_patch(gateway, patch.body)
    result.pop("status")
    return result


OUR_REFS = [{"group": "", "kind": "ConfigMap", "name": "federation-trust-bundle"}]
USER_REFS = [{"group": "", "kind": "ConfigMap", "name": "corporate-ca"}]


def test_gateway_patch_sets_our_port_and_keeps_the_users_entries() -> None:
    user_default = {"validation": {"caCertificateRefs": USER_REFS, "mode": "AllowInsecureFallback"}}
    user_port = {"port": 443, "tls": {"validation": {"caCertificateRefs": USER_REFS}}}
    gateway = _user_gateway(default=user_default, perPort=[user_port])
    patched = _patched(gateway, SAME_NAMESPACE)
    assert patched is not None
    assert schema_errors(patched) == []
    frontend = patched["spec"]["tls"]["frontend"]
    assert frontend["default"] == user_default
    assert frontend["perPort"] == [
        user_port,
        {"port": 8443, "tls": {"validation": {"caCertificateRefs": OUR_REFS, "mode": "AllowValidOnly"}}},
    ]
    # Applied already: nothing to write.
    assert (
        build_gateway_frontend_patch(namespace="federation", config=SAME_NAMESPACE, gateway=patched) is None
    )
    # Removed with the last peer: the user's entries are back as they were.
    restored = _patched(patched | {"status": {}}, SAME_NAMESPACE, enabled=False)
    assert restored is not None
    assert restored["spec"]["tls"]["frontend"] == {"default": user_default, "perPort": [user_port]}


def test_gateway_patch_adds_a_fallback_default_only_because_the_schema_requires_one() -> None:
    patched = _patched(_user_gateway(), SAME_NAMESPACE)
    assert patched is not None
    assert schema_errors(patched) == []
    frontend = patched["spec"]["tls"]["frontend"]
    assert frontend["default"]["validation"]["mode"] == "AllowInsecureFallback"
    restored = _patched(patched | {"status": {}}, SAME_NAMESPACE, enabled=False)
    assert restored is not None
    assert "frontend" not in restored["spec"]["tls"]


def test_gateway_patch_without_a_port_sets_the_gateway_wide_default() -> None:
    config = _config(listener_port=None)
    patched = _patched(_user_gateway(), config)
    assert patched is not None
    assert schema_errors(patched) == []
    assert patched["spec"]["tls"]["frontend"] == {
        "default": {"validation": {"caCertificateRefs": OUR_REFS, "mode": "AllowValidOnly"}}
    }


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert apply_merge_patch(target, {"a": {"b": None, "c": [3]}, "e": {"f": 1}}) == {
        "a": {"c": [3]},
        "d": 1,
        "e": {"f": 1},
    }


def test_schema_check_catches_a_misspelt_field(bundle: TrustBundle) -> None:
    [ctp, *_] = PROVIDERS["envoy-gateway"].build_objects(
        namespace="federation", bundle=bundle, config=SAME_NAMESPACE
    )
    ctp["spec"]["tls"]["clientValidation"]["certificateHash"] = ctp["spec"]["tls"]["clientValidation"].pop(
        "certificateHashes"
    )
    assert any("certificateHash" in error for error in schema_errors(ctp))
