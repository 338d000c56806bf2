"""RBAC is proven, not guessed: every API call the operator and the federation server make in a
representative run is allowed by the rules the Helm chart gives their ServiceAccounts.

The run is the product's whole life cycle on two linked sites (EU and US, each a `LocalSite`:
sandbox API, operator, federation server on real TLS): FederationCerts, a FederationPeer, export
and apply, heartbeats both ways, an inbound rotation with a second export, the Envoy Gateway
provider objects, kopf peering, then deletion of everything. It runs twice, configured like the
chart's two shapes: cluster-wide (default values: ClusterRoles) and namespaced
(`ci/envoy-gateway-namespaced-values.yaml`: Roles in the watched namespace and the Gateway's).

The sandbox records each request as a `Call` with the caller's User-Agent; the sandbox cannot
authenticate, so callers are told apart by it: kopf sends `kopf/...`, the operator's own client
(`k8s.client.Kube`) the kubernetes client's `OpenAPI-Generator/...`, the federation server's
watches aiohttp's `Python/... aiohttp/...`. The test's own calls (the admin's kubectl, the
plugin, the driver) are relabelled so that they can never be mistaken for the operator's.
A call from an unknown agent fails the test rather than being skipped.
"""

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation_devkit import demo
from federation_devkit.demo import CERTS, PEERS, Site, export, is_gone, rotate
from federation_devkit.localsite import LocalSite
from federation_devkit.sandbox.faults import Call
from federation_operator.adapters.k8s.resources import NAMESPACES, Resource
from federation_operator.domain import api
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.plugin import check, connection, ping, status
from federation_operator.plugin import export as export_command
from federation_operator.plugin import rotate as rotate_command
from federation_operator.server.main import ServerConfig
from tests.harness import rbac
from tests.harness.chart import CHART, RELEASE_NAMESPACE, render
from tests.harness.plugin import link, run_plugin
from tests.harness.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.helm]

OPERATOR, SERVER, USER = "operator", "server", "user"
DRIVER_AGENT = "rbac-proof-driver"
HOST = "federation.example"
GATEWAY = "eg"
PEERING = "federation-operator"
KOPF_PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings", "KopfPeering")
CLUSTER_KOPF_PEERINGS = Resource(
    "kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False
)


@dataclasses.dataclass(frozen=True)
class Shape:
    """One way the chart is installed, and the same configuration for the local run."""

    id: str
    values: Path | None
    sets: tuple[str, ...]
    namespace: str  # where the peers live
    watch: tuple[str, ...]  # the operator's and server's namespaces; () = all
    gateway_namespace: str | None


SHAPES = [
    Shape(
        id="cluster-wide",
        values=None,
        sets=(f"ingress.host={HOST}", f"ingress.gateway.name={GATEWAY}"),
        namespace="default",
        watch=(),
        gateway_namespace=None,
    ),
    Shape(
        id="namespaced",
        values=CHART / "ci" / "envoy-gateway-namespaced-values.yaml",
        sets=(),
        namespace="federation",
        watch=("federation",),
        gateway_namespace="envoy-gateway-system",
    ),
]


def caller(call: Call) -> str:
    agent = call.user_agent
    if agent.startswith(("kopf/", "federation-operator/")):
        return OPERATOR
    if agent.startswith("federation-server/"):
        return SERVER
    if agent == DRIVER_AGENT or agent.startswith(("kubectl/", "kubectl-federation/")):
        return USER
    raise AssertionError(f"a call from an unknown User-Agent {agent!r}: {call}")


def request_of(call: Call) -> rbac.Request:
    return rbac.Request(
        verb=call.verb,
        group=call.group,
        resource=call.resource,
        subresource=call.subresource,
        namespace=call.namespace,
    )


class ProofSite(LocalSite):
    """A LocalSite whose federation server watches only the chart's namespaces."""

    watch: tuple[str, ...] = ()

    def server_config(self) -> ServerConfig:
        return dataclasses.replace(super().server_config(), namespaces=self.watch)


def relabel(site: Site) -> None:
    # The driver is the test, acting as an admin: its requests must not pass for the operator's.
    site.kube._api.user_agent = DRIVER_AGENT


@contextlib.contextmanager
def proof_sites(workdir: Path, shape: Shape, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Site, Site]]:
    monkeypatch.setattr(demo, "NAMESPACE", shape.namespace)
    original_connect = connection.connect

    def connect_as_user(args: Any) -> Any:
        kube = original_connect(args)
        kube._api.user_agent = DRIVER_AGENT
        return kube

    for module in (check, export_command, ping, rotate_command, status):
        monkeypatch.setattr(module, "connect", connect_as_user)
    ingress = IngressConfig(
        host=HOST,
        labels=api.managed_labels(role=api.ROLE_INGRESS),
        gateway_name=GATEWAY,
        gateway_namespace=shape.gateway_namespace,
    )
    locals_: list[ProofSite] = []
    sites: list[Site] = []
    try:
        for name in ("eu", "us"):
            local = ProofSite(
                name,
                workdir / name,
                operator_overrides={
                    "namespaces": shape.watch,
                    "peering": PEERING,
                    "priority": 100,
                    "ingress_provider": "envoy-gateway",
                    "ingress": ingress,
                },
            )
            local.watch = shape.watch
            locals_.append(local)
            local.start(operator=False)
            assert local.sandbox is not None
            local.sandbox.write_kubeconfig(local.kubeconfig, namespace=shape.namespace)
            site = Site(local)
            relabel(site)
            sites.append(site)
            prepare(site, shape)
            local.start_operator()
        yield sites[0], sites[1]
    finally:
        for site in sites:
            site.close()
        for local in reversed(locals_):
            local.close()


def prepare(site: Site, shape: Shape) -> None:
    """What the chart and the cluster provide before the operator starts: namespaces, peering."""
    for namespace in {shape.namespace, shape.gateway_namespace} - {None, "default"}:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        site.call(site.kube.create(NAMESPACES, None, body))
    if shape.watch:
        for namespace in shape.watch:
            body = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
            site.call(site.kube.create(KOPF_PEERINGS, namespace, body))
    else:
        body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}}
        site.call(site.kube.create(CLUSTER_KOPF_PEERINGS, None, body))


def life_cycle(eu: Site, us: Site) -> None:
    """Link, ping, rotate, check, delete: what the operator and server do in a link's life."""
    link(eu, us)
    assert run_plugin(eu, "ping", "us-region").code == 0
    before = eu.status(PEERS, "us-region")["inbound"]["fingerprint"]
    rotate(eu, "us-region", "inbound")
    wait_for(
        lambda: eu.status(PEERS, "us-region").get("inbound", {}).get("fingerprint") not in (None, before),
        timeout=30,
        interval=0.1,
        message="inbound rotation",
    )
    bundle = export(
        eu, "us-region", name="eu-region", endpoint=eu.local.endpoint, client_certificate="us-client"
    )
    us.replace_secret_from(bundle)
    after = eu.status(PEERS, "us-region")["inbound"]["fingerprint"]
    wait_for(
        lambda: us.status(PEERS, "eu-region").get("outbound", {}).get("acceptedFingerprint") == after,
        timeout=30,
        interval=0.1,
        message="US presenting the rotated token",
    )
    assert run_plugin(eu, "check").code == 0
    for site, peer in ((eu, "us-region"), (us, "eu-region")):
        site.delete(PEERS, peer)
    for site, peer in ((eu, "us-region"), (us, "eu-region")):
        wait_for(
            functools.partial(is_gone, site, PEERS, peer), timeout=30, interval=0.1, message="peer deletion"
        )
    for site in (eu, us):
        site.delete(CERTS, f"{site.name}-client")
        wait_for(
            functools.partial(is_gone, site, CERTS, f"{site.name}-client"),
            timeout=30,
            interval=0.1,
            message="cert deletion",
        )


def account(component: str) -> str:
    return f"fed-federation-operator-{component}"


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.id for shape in SHAPES])
def test_every_call_of_operator_and_server_is_allowed_by_the_chart(
    shape: Shape, helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(helm, shape.values, shape.sets)
    grants = {
        component: rbac.grants_for(docs, account=account(component), account_namespace=RELEASE_NAMESPACE)
        for component in (OPERATOR, SERVER)
    }
    with proof_sites(tmp_path, shape, monkeypatch) as (eu, us):
        life_cycle(eu, us)
        calls = [call for site in (eu, us) for call in site.local.sandbox.api.calls]  # type: ignore[union-attr]

    seen: dict[str, set[rbac.Request]] = {OPERATOR: set(), SERVER: set(), USER: set()}
    for call in calls:
        seen[caller(call)].add(request_of(call))
    # The run exercised what it claims to: both callers, the edge objects, peering, status writes.
    operator_resources = {(request.resource, request.subresource) for request in seen[OPERATOR]}
    assert {("federationpeers", "status"), ("secrets", ""), ("httproutes", ""), ("securitypolicies", "")} <= (
        operator_resources
    )
    assert any(request.resource.endswith("kopfpeerings") for request in seen[OPERATOR])
    assert {request.verb for request in seen[SERVER]} >= {"list", "watch"}

    denied = {
        component: sorted(
            (request for request in seen[component] if not rbac.allowed(grants[component], request)),
            key=repr,
        )
        for component in (OPERATOR, SERVER)
    }
    assert denied == {OPERATOR: [], SERVER: []}, "calls the chart's RBAC does not allow"


# ---- the evaluator itself ----------------------------------------------------------------------


def test_evaluator_denies_a_call_once_its_rule_is_removed() -> None:
    role: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "op", "namespace": "federation"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [api.GROUP], "resources": ["federationpeers/status"], "verbs": ["patch"]},
        ],
    }
    binding = {
        "kind": "RoleBinding",
        "metadata": {"name": "op", "namespace": "federation"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "system"}],
    }
    grants = rbac.grants_for([role, binding], account="op", account_namespace="system")
    status_patch = rbac.Request("patch", api.GROUP, "federationpeers", "status", "federation")
    assert rbac.allowed(grants, status_patch)
    assert not rbac.allowed(grants, rbac.Request("patch", api.GROUP, "federationpeers", "", "federation"))
    assert not rbac.allowed(grants, rbac.Request("get", "", "secrets", "", "default")), "Role is namespaced"
    assert not rbac.allowed(grants, rbac.Request("list", "", "secrets")), "no cluster-wide list from a Role"
    assert not rbac.allowed(grants, rbac.Request("create", "", "secrets", "", "federation"))

    without = {**role, "rules": role["rules"][:1]}
    grants = rbac.grants_for([without, binding], account="op", account_namespace="system")
    assert not rbac.allowed(grants, status_patch)
    assert rbac.grants_for([role, binding], account="other", account_namespace="system") == []


def test_evaluator_wildcards_resource_names_and_cluster_bindings() -> None:
    cluster_role = {
        "kind": "ClusterRole",
        "metadata": {"name": "wide"},
        "rules": [
            {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["one"]},
        ],
    }
    binding = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "wide"},
        "roleRef": {"kind": "ClusterRole", "name": "wide"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}],
    }
    grants = rbac.grants_for([cluster_role, binding], account="sa", account_namespace="ns")
    assert rbac.allowed(grants, rbac.Request("update", "apps", "deployments", "status", "anywhere"))
    assert not rbac.allowed(grants, rbac.Request("update", "apps", "deployments", "", "anywhere"))
    assert rbac.allowed(grants, rbac.Request("get", "", "configmaps", "", "x", name="one"))
    assert not rbac.allowed(grants, rbac.Request("get", "", "configmaps", "", "x", name="two"))
    assert not rbac.allowed(grants, rbac.Request("get", "", "configmaps", "", "x")), "name unknown"

    role_binding = {**binding, "kind": "RoleBinding", "metadata": {"name": "wide", "namespace": "only"}}
    grants = rbac.grants_for([cluster_role, role_binding], account="sa", account_namespace="ns")
    assert rbac.allowed(grants, rbac.Request("patch", "x", "y", "status", "only"))
    assert not rbac.allowed(grants, rbac.Request("patch", "x", "y", "status", "elsewhere"))
