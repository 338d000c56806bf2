"""The Helm chart, rendered by a real helm and checked offline.

Every rendered document is validated against the Kubernetes 1.32 schemas, and the properties the
chart promises (restricted pods, NetworkPolicy on the forward-auth port, Roles instead of
ClusterRoles when namespaced, a strict values schema) are checked on the rendered objects.
"""

import argparse
import dataclasses
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from federation_operator.server.main import add_listener_arguments
from federation_operator.server.protocol import ConnectionLimits
from tests.harness.chart import (
    CHART,
    RELEASE_NAMESPACE,
    REQUIRED_SETS,
    ROOT,
    Doc,
    render,
    run_helm,
    template_args,
)

pytestmark = pytest.mark.helm

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.32"
# Kinds from CRDs kubernetes-validate has no schema for: checked by the tests below instead.
NOT_IN_KUBERNETES_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("kopf.dev/v1", "ClusterKopfPeering"),
    ("kopf.dev/v1", "KopfPeering"),
}
AGGREGATED_CLUSTER_ROLES = {"federation-admin", "federation-viewer"}


SCENARIOS = [None, *CI_VALUES]
SCENARIO_IDS = ["defaults", *(path.name.removesuffix("-values.yaml") for path in CI_VALUES)]


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def pod_specs(docs: tuple[Doc, ...]) -> list[Doc]:
    return [doc["spec"]["template"]["spec"] for doc in of_kind(docs, "Deployment")]


def deployment(docs: tuple[Doc, ...], component: str) -> Doc:
    (found,) = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"].endswith(f"-{component}")]
    return found


def ci_values(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


def rules_of(docs: tuple[Doc, ...], kind: str, name: str) -> list[Doc]:
    return [rule for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name for rule in doc["rules"]]


def test_representative_values_files_exist() -> None:
    assert len(CI_VALUES) >= 3, "charts/federation-operator/ci/ lost its representative values files"


@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_chart_passes_strict_lint(helm: str, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--set", REQUIRED_SETS[0]] + (
        ["--values", str(values)] if values else []
    )
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_every_rendered_document_is_valid_kubernetes(helm: str, values: Path | None) -> None:
    docs = render(helm, values)
    validated = 0
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in NOT_IN_KUBERNETES_SCHEMAS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        validated += 1
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "ServiceAccount", "CustomResourceDefinition"} <= kinds
    assert validated >= 10


@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_every_container_runs_restricted(helm: str, values: Path | None) -> None:
    specs = pod_specs(render(helm, values))
    assert specs
    for spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["runAsUser"] == 65532
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]


def server_policy(docs: tuple[Doc, ...]) -> Doc:
    (policy,) = [doc for doc in of_kind(docs, "NetworkPolicy") if doc["metadata"]["name"].endswith("-server")]
    return policy


def test_network_policy_admits_only_the_proxy_to_the_http_port(helm: str) -> None:
    policy = server_policy(render(helm, None))
    by_port = {rule["ports"][0]["port"]: rule for rule in policy["spec"]["ingress"]}
    assert set(by_port) == {8080, 9090}, "behind a proxy (the default) nothing needs 8443"
    assert by_port[9090]["from"] == [{"namespaceSelector": {}}], "metrics and readiness: in-cluster only"
    assert by_port[8080]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "envoy"}},
        }
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    server = deployment(render(helm, None), "server")
    assert policy["spec"]["podSelector"]["matchLabels"] == server["spec"]["selector"]["matchLabels"]


def test_network_policy_adds_extra_peers_for_the_http_port(helm: str) -> None:
    policy = server_policy(render(helm, ci_values("gateway-api-servicemonitor")))
    (http_rule,) = [rule for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == 8080]
    assert len(http_rule["from"]) == 2
    assert http_rule["from"][1]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}


def test_namespaced_watch_grants_roles_and_no_cluster_role(helm: str) -> None:
    docs = render(helm, ci_values("ingress-nginx-namespaced"))
    cluster_roles = {doc["metadata"]["name"] for doc in of_kind(docs, "ClusterRole")}
    assert cluster_roles == AGGREGATED_CLUSTER_ROLES
    assert not of_kind(docs, "ClusterRoleBinding")
    role_namespaces = {doc["metadata"]["namespace"] for doc in of_kind(docs, "Role")}
    assert role_namespaces == {"federation", "federation-staging", RELEASE_NAMESPACE}
    # In its own namespace the operator may only post Events (heartbeat saturation, about its Pod).
    (own,) = [doc for doc in of_kind(docs, "Role") if doc["metadata"]["namespace"] == RELEASE_NAMESPACE]
    assert own["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]
    role_namespaces -= {RELEASE_NAMESPACE}
    for doc in of_kind(docs, "RoleBinding"):
        (subject,) = doc["subjects"]
        assert subject["namespace"] == RELEASE_NAMESPACE
    operator_args = deployment(docs, "operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=federation" in operator_args
    assert "--namespace=federation-staging" in operator_args
    assert "--all-namespaces" not in operator_args
    assert {doc["metadata"]["namespace"] for doc in of_kind(docs, "KopfPeering")} == role_namespaces


def test_gateway_namespace_gets_only_the_provider_rules(helm: str) -> None:
    docs = render(helm, ci_values("envoy-gateway-namespaced"))
    (gateway_role,) = [
        r for r in of_kind(docs, "Role") if r["metadata"]["namespace"] == "envoy-gateway-system"
    ]
    groups = {group for rule in gateway_role["rules"] for group in rule["apiGroups"]}
    assert groups == {"gateway.networking.k8s.io", "gateway.envoyproxy.io"}


def test_cluster_wide_watch_uses_cluster_roles_with_only_the_selected_provider(helm: str) -> None:
    docs = render(helm, None)
    assert not of_kind(docs, "Role")
    operator_rules = rules_of(docs, "ClusterRole", f"{RELEASE_NAMESPACE}-fed-federation-operator-operator")
    groups = {group for rule in operator_rules for group in rule["apiGroups"]}
    assert "gateway.envoyproxy.io" in groups
    assert "networking.k8s.io" not in groups, "ingress-nginx rules granted without that provider"
    server_rules = rules_of(docs, "ClusterRole", f"{RELEASE_NAMESPACE}-fed-federation-operator-server")
    assert {verb for rule in server_rules for verb in rule["verbs"]} == {"get", "list", "watch"}
    assert of_kind(docs, "ClusterKopfPeering")[0]["metadata"]["name"] == "federation-operator"


def test_least_privilege_the_server_reads_no_secret_and_only_the_operator_writes_peer_status(
    helm: str,
) -> None:
    for docs in (render(helm, None), render(helm, ci_values("ingress-nginx-namespaced"))):
        server = [
            rule
            for doc in of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
            if doc["metadata"]["name"].endswith("-server")
            for rule in doc["rules"]
        ]
        assert {resource for rule in server for resource in rule["resources"]} == {"federationpeers"}
        operator = [
            rule
            for doc in of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
            if doc["metadata"]["name"].endswith("-operator")
            for rule in doc["rules"]
        ]
        secret_rules = [rule for rule in operator if "secrets" in rule["resources"]]
        assert secret_rules
        for rule in secret_rules:
            assert set(rule["verbs"]) == {"get", "list", "watch", "create", "update", "delete"}
    by_name = {doc["metadata"]["name"]: doc for doc in of_kind(render(helm, None), "ClusterRole")}
    status_rules = [
        rule for rule in by_name["federation-admin"]["rules"] if "federationpeers/status" in rule["resources"]
    ]
    assert [rule["verbs"] for rule in status_rules] == [["get"]], "people cannot write accepted hashes"


def test_listing_peers_is_an_admin_right(helm: str) -> None:
    docs = render(helm, None)
    by_name = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "ClusterRole")}
    viewer, admin = by_name["federation-viewer"], by_name["federation-admin"]
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert admin["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in admin["metadata"]["labels"]
    viewer_resources = {resource for rule in viewer["rules"] for resource in rule["resources"]}
    assert not any(resource.startswith("federationpeers") for resource in viewer_resources)
    assert "federationpeers" in {resource for rule in admin["rules"] for resource in rule["resources"]}


def test_operator_is_one_recreated_replica_with_peering_and_liveness(helm: str) -> None:
    docs = render(helm, None)
    operator = deployment(docs, "operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["run", "--all-namespaces"]
    assert "--peering=federation-operator" in container["args"]
    assert "--priority=100" in container["args"]
    assert "--ingress-provider=envoy-gateway" in container["args"]
    assert "--site=fed" in container["args"], "site defaults to the release name"
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["image"] == "ghcr.io/ampora/federation-operator:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_standby_operator_has_a_strictly_lower_priority(helm: str) -> None:
    docs = render(helm, ci_values("ingress-nginx-namespaced"))
    for component, priority in [("operator", "--priority=100"), ("operator-standby", "--priority=10")]:
        args = deployment(docs, component)["spec"]["template"]["spec"]["containers"][0]["args"]
        assert [arg for arg in args if arg.startswith("--priority=")] == [priority]
    equal = ("operator.standby.enabled=true", "operator.standby.priority=100")
    result = run_helm(helm, *template_args(values=None, sets=equal))
    assert result.returncode != 0
    assert "equal priorities freeze" in result.stderr


@pytest.mark.parametrize(
    ("sets", "source"),
    [
        ((), "xfcc"),
        (("ingress.provider=ingress-nginx",), "nginx"),
        (("ingress.provider=gateway-api", "server.tls.secretName=tls"), "direct"),
        (("server.clientCertSource=traefik",), "traefik"),
    ],
)
def test_server_client_certificate_source_follows_the_provider(
    helm: str, sets: tuple[str, ...], source: str
) -> None:
    server = deployment(render(helm, None, sets), "server")
    container = server["spec"]["template"]["spec"]["containers"][0]
    assert f"--client-cert-source={source}" in container["args"]
    trusts_proxies = any(arg.startswith("--trusted-proxy=") for arg in container["args"])
    assert trusts_proxies is (source != "direct")
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert server["spec"]["replicas"] == 2


def test_header_modes_trust_no_proxy_by_default_and_close_8443(helm: str) -> None:
    result = run_helm(helm, *template_args(values=None, sets=("server.trustedProxies=null",)))
    assert result.returncode != 0
    assert "server.trustedProxies" in result.stderr
    docs = render(helm, None)
    args = deployment(docs, "server")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [arg for arg in args if arg.startswith("--trusted-proxy=")] == ["--trusted-proxy=10.244.0.0/16"]
    policy = server_policy(docs)
    assert [port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]] == [8080, 9090]
    direct = render(helm, None, ("ingress.provider=gateway-api", "server.tls.secretName=tls"))
    policy = server_policy(direct)
    open_to_all = [rule for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == 8443]
    assert open_to_all
    assert "from" not in open_to_all[0], "direct mode: 8443 enforces mTLS itself"


def test_direct_mode_requires_a_server_certificate(helm: str) -> None:
    result = run_helm(helm, *template_args(values=None, sets=("ingress.provider=none",)))
    assert result.returncode != 0
    assert "server.tls.secretName" in result.stderr


def test_service_monitor_is_rendered_only_when_enabled(helm: str) -> None:
    assert not of_kind(render(helm, None), "ServiceMonitor")
    (monitor,) = of_kind(render(helm, ci_values("gateway-api-servicemonitor")), "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]


def test_the_operators_metrics_port_is_kept_in_cluster(helm: str) -> None:
    docs = render(helm, ci_values("ingress-nginx-namespaced"))  # with a standby operator
    (policy,) = [
        doc for doc in of_kind(docs, "NetworkPolicy") if doc["metadata"]["name"].endswith("-operator")
    ]
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": 9090, "protocol": "TCP"}], "from": [{"namespaceSelector": {}}]}
    ]
    selector = policy["spec"]["podSelector"]
    for component in ("operator", "operator-standby"):
        labels = deployment(docs, component)["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(key) == value for key, value in selector["matchLabels"].items())
        (expression,) = selector["matchExpressions"]
        assert labels[expression["key"]] in expression["values"]


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("ingress.provider=traefik-mesh", "provider"),
        ("server.clientCertSource=header", "clientCertSource"),
        ("operator.replicas=2", "replicas"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
    ],
)
def test_values_schema_rejects_bad_values(helm: str, assignment: str, complaint: str) -> None:
    result = run_helm(helm, *template_args(values=None, sets=(assignment,)))
    assert result.returncode != 0, f"{assignment} was accepted"
    assert complaint in result.stderr


def test_chart_crds_are_the_top_level_crds_plus_kopf_peering() -> None:
    top_level = {path.name: path.read_bytes() for path in (ROOT / "crds").glob("*.yaml")}
    in_chart = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert set(in_chart) == set(top_level) | {"kopf-peering.yaml"}
    stale = [name for name, content in top_level.items() if in_chart[name] != content]
    assert not stale, f"chart CRDs differ from crds/ (run hack/sync-crds.py): {stale}"


def test_kopf_peering_crds_have_the_scopes_kopf_expects() -> None:
    docs = list(yaml.safe_load_all((CHART / "crds" / "kopf-peering.yaml").read_text()))
    scopes = {doc["metadata"]["name"]: doc["spec"]["scope"] for doc in docs if doc}
    assert scopes == {"clusterkopfpeerings.kopf.dev": "Cluster", "kopfpeerings.kopf.dev": "Namespaced"}


def test_the_public_host_is_required_unless_the_provider_is_none(helm: str) -> None:
    bare = ["template", "fed", str(CHART), "--namespace", RELEASE_NAMESPACE]
    missing = run_helm(helm, *bare)
    assert missing.returncode != 0
    assert "host" in missing.stderr
    without_edge = ("--set", "ingress.provider=none", "--set", "server.tls.secretName=federation-tls")
    assert run_helm(helm, *bare, *without_edge).returncode == 0


def test_the_charts_connection_limits_are_the_servers_defaults_and_reach_its_arguments(helm: str) -> None:
    docs = render(helm, None, ("ingress.provider=gateway-api", "server.tls.secretName=tls"))
    args = deployment(docs, "server")["spec"]["template"]["spec"]["containers"][0]["args"]
    parser = argparse.ArgumentParser()
    add_listener_arguments(parser)
    parsed, _ = parser.parse_known_args([arg for arg in args if arg.startswith("--")])
    rendered = {field.name: getattr(parsed, field.name) for field in dataclasses.fields(ConnectionLimits)}
    assert rendered == dataclasses.asdict(ConnectionLimits())
    for field in dataclasses.fields(ConnectionLimits):
        flag = "--" + field.name.replace("_", "-")
        assert any(arg.startswith(flag + "=") for arg in args), f"{flag} is set by the chart"
    changed = render(helm, None, ("server.connectionLimits.connectionRatePerSecond=0",))
    args = deployment(changed, "server")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--connection-rate=0" in args
