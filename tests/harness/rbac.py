"""A small evaluator of Kubernetes RBAC, for proving the chart's rules against recorded API calls.

The chart's least-privilege claim is only as good as the list of calls it was checked against, so
the proof records what the operator and server really did (the sandbox's `api.calls`) and asks
this evaluator whether the rendered Roles/ClusterRoles allow each one. It follows the API server's
authorizer (`k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac`): a rule matches when verb,
API group and resource (`resource/subresource`, `*`, `*/subresource`) match, and, if it lists
`resourceNames`, the request names one of them; a RoleBinding grants its rules only in its own
namespace (also when it binds a ClusterRole), a ClusterRoleBinding everywhere, including
cluster-scoped resources and requests across all namespaces. Aggregated ClusterRoles are not
expanded (the chart binds none to its ServiceAccounts).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    """One API request in RBAC's terms. `namespace` "" = cluster-scoped or across all namespaces."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""  # unknown for recorded calls: then a rule limited by resourceNames never matches


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, rule: Mapping[str, Any]) -> "Rule":
        return cls(
            verbs=frozenset(rule.get("verbs") or ()),
            api_groups=frozenset(rule.get("apiGroups") or ()),
            resources=frozenset(rule.get("resources") or ()),
            resource_names=frozenset(rule.get("resourceNames") or ()),
        )

    def allows(self, request: Request) -> bool:
        if not ("*" in self.verbs or request.verb in self.verbs):
            return False
        if not ("*" in self.api_groups or request.group in self.api_groups):
            return False
        if request.subresource:
            wanted = {f"{request.resource}/{request.subresource}", f"*/{request.subresource}", "*"}
        else:
            wanted = {request.resource, "*"}
        if not self.resources & wanted:
            return False
        return not self.resource_names or request.name in self.resource_names


@dataclass(frozen=True)
class Grant:
    """Rules bound to a subject, and where: `namespace` None = cluster-wide (ClusterRoleBinding)."""

    role: str
    rules: tuple[Rule, ...]
    namespace: str | None

    def allows(self, request: Request) -> bool:
        if self.namespace is not None and request.namespace != self.namespace:
            return False
        return any(rule.allows(request) for rule in self.rules)


def allowed(grants: Iterable[Grant], request: Request) -> bool:
    return any(grant.allows(request) for grant in grants)


def _binds(binding: Mapping[str, Any], *, account: str, account_namespace: str) -> bool:
    return any(
        subject.get("kind") == "ServiceAccount"
        and subject.get("name") == account
        and subject.get("namespace", binding["metadata"].get("namespace")) == account_namespace
        for subject in binding.get("subjects") or []
    )


def grants_for(docs: Iterable[Mapping[str, Any]], *, account: str, account_namespace: str) -> list[Grant]:
    """The grants the rendered manifests give to ServiceAccount `account_namespace/account`."""
    documents = list(docs)
    roles = {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc
        for doc in documents
        if doc.get("kind") in ("Role", "ClusterRole")
    }
    grants: list[Grant] = []
    for doc in documents:
        kind = doc.get("kind")
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not _binds(doc, account=account, account_namespace=account_namespace):
            continue
        ref = doc["roleRef"]
        where = doc["metadata"].get("namespace") if kind == "RoleBinding" else None
        role_namespace = where if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], role_namespace, ref["name"]))
        if role is None:
            continue  # a binding to a role that is not rendered grants nothing
        rules = tuple(Rule.parse(rule) for rule in role.get("rules") or [])
        grants.append(Grant(role=f"{ref['kind']}/{ref['name']}", rules=rules, namespace=where))
    return grants
