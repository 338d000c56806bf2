"""The resource types the sandbox serves, and the discovery documents clients read to find them.

kopf and kubectl both start by reading discovery (`/api`, `/apis`, `/apis/<group>/<version>`) and
trust what it says: whether a kind is namespaced, its short names and categories, whether it has a
`status` subresource. One registry feeds discovery, routing and storage, so they cannot disagree:
built-in kinds are declared here, custom kinds come from CRD documents (ours at start, any other
created through the API). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

VERBS: Final = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
# Columns of built-in kinds whose NAME and AGE alone say nothing: `kubectl get events` is read for
# what happened to which object (the API server's OBJECT column says kind/name; a column here
# holds one JSONPath, so it is the name, with the kind beside it).
BUILTIN_PRINTER_COLUMNS: Final[Mapping[str, list[Mapping[str, Any]]]] = {
    "events": [
        {"name": "Last Seen", "type": "date", "jsonPath": ".lastTimestamp"},
        {"name": "Type", "type": "string", "jsonPath": ".type"},
        {"name": "Reason", "type": "string", "jsonPath": ".reason"},
        {"name": "Kind", "type": "string", "jsonPath": ".involvedObject.kind"},
        {"name": "Object", "type": "string", "jsonPath": ".involvedObject.name"},
        {"name": "Message", "type": "string", "jsonPath": ".message"},
    ],
}
CRD_GROUP: Final = "apiextensions.k8s.io"


@dataclass(frozen=True)
class ResourceType:
    """One served `group/version/plural`; `crd` is the defining CRD for custom kinds."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    crd: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_plural(self) -> str:
        """The storage identity: objects of every version of a kind share it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def printer_columns(self) -> list[Mapping[str, Any]]:
        for version in (self.crd or {}).get("spec", {}).get("versions", []):
            if version.get("name") == self.version:
                return list(version.get("additionalPrinterColumns", []))
        return list(BUILTIN_PRINTER_COLUMNS.get(self.group_plural, []))

    def discovery_entries(self) -> list[dict[str, Any]]:
        """Entries of the legacy `APIResourceList` for this type and its subresources."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(VERBS),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return entries


def _builtin(
    api_version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    status: bool = False,
) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=short,
        categories=categories,
        status_subresource=status,
    )


# What the operator, kopf, the federation server and the ingress providers read or write.
BUILTIN_TYPES: Final[tuple[ResourceType, ...]] = (
    _builtin("v1", "namespaces", "Namespace", namespaced=False, short=("ns",), status=True),
    _builtin("v1", "secrets", "Secret"),
    _builtin("v1", "configmaps", "ConfigMap", short=("cm",)),
    _builtin("v1", "events", "Event", short=("ev",)),
    _builtin("v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _builtin("v1", "services", "Service", short=("svc",), categories=("all",), status=True),
    _builtin("v1", "pods", "Pod", short=("po",), categories=("all",), status=True),
    _builtin("events.k8s.io/v1", "events", "Event", short=("ev",)),
    _builtin("coordination.k8s.io/v1", "leases", "Lease"),
    _builtin(
        f"{CRD_GROUP}/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        categories=("api-extensions",),
        status=True,
    ),
    _builtin("kopf.dev/v1", "kopfpeerings", "KopfPeering"),
    _builtin("kopf.dev/v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False),
    _builtin("networking.k8s.io/v1", "ingresses", "Ingress", short=("ing",), status=True),
    _builtin("networking.k8s.io/v1", "ingressclasses", "IngressClass", namespaced=False),
)


# Kinds an ingress provider brings with its CRDs. A real API server serves them only once those
# CRDs are installed, so the sandbox installs them as CRDs too (deletable, and 404 when absent),
# never as built-ins: that is how the operator's behaviour on a cluster without them is tested.
PROVIDER_TYPES: Final[dict[str, tuple[ResourceType, ...]]] = {
    "gateway-api": (
        _builtin(
            "gateway.networking.k8s.io/v1",
            "gatewayclasses",
            "GatewayClass",
            namespaced=False,
            short=("gc",),
            categories=("gateway-api",),
            status=True,
        ),
        _builtin(
            "gateway.networking.k8s.io/v1",
            "gateways",
            "Gateway",
            short=("gtw",),
            categories=("gateway-api",),
            status=True,
        ),
        _builtin(
            "gateway.networking.k8s.io/v1",
            "httproutes",
            "HTTPRoute",
            categories=("gateway-api",),
            status=True,
        ),
    ),
    "envoy-gateway": (
        _builtin(
            "gateway.envoyproxy.io/v1alpha1",
            "clienttrafficpolicies",
            "ClientTrafficPolicy",
            short=("ctp",),
            categories=("envoy-gateway",),
            status=True,
        ),
        _builtin(
            "gateway.envoyproxy.io/v1alpha1",
            "securitypolicies",
            "SecurityPolicy",
            short=("sp",),
            categories=("envoy-gateway",),
            status=True,
        ),
    ),
}
DEFAULT_PROVIDERS: Final = tuple(PROVIDER_TYPES)


def crd_of(rt: ResourceType) -> dict[str, Any]:
    """A minimal CRD serving `rt` (any content accepted: the provider's own schema is not ours)."""
    names: dict[str, Any] = {"plural": rt.plural, "singular": rt.singular, "kind": rt.kind}
    if rt.short_names:
        names["shortNames"] = list(rt.short_names)
    if rt.categories:
        names["categories"] = list(rt.categories)
    version: dict[str, Any] = {
        "name": rt.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    if rt.status_subresource:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": rt.group_plural},
        "spec": {
            "group": rt.group,
            "names": names,
            "scope": "Namespaced" if rt.namespaced else "Cluster",
            "versions": [version],
        },
    }


def provider_crds(providers: Iterable[str]) -> list[dict[str, Any]]:
    """The CRDs of the named ingress providers (`gateway-api`, `envoy-gateway`)."""
    return [crd_of(rt) for name in providers for rt in PROVIDER_TYPES[name]]


def types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One `ResourceType` per served version of a CRD document."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    result = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames", [])),
                categories=tuple(names.get("categories", [])),
                status_subresource="status" in (version.get("subresources") or {}),
                crd=crd,
            )
        )
    return result


def api_versions() -> dict[str, Any]:
    """`GET /api`."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _preferred(types: Iterable[ResourceType], group: str) -> tuple[list[str], str]:
    versions: list[str] = []
    preferred = ""
    for resource_type in types:
        if resource_type.group != group or resource_type.version in versions:
            continue
        versions.append(resource_type.version)
        storage = _is_storage_version(resource_type)
        if storage or not preferred:
            preferred = resource_type.version
    return versions, preferred


def _is_storage_version(resource_type: ResourceType) -> bool:
    for version in (resource_type.crd or {}).get("spec", {}).get("versions", []):
        if version.get("name") == resource_type.version:
            return bool(version.get("storage"))
    return False


def api_group(types: Iterable[ResourceType], group: str) -> dict[str, Any] | None:
    """`GET /apis/<group>`, or `None` when nothing of the group is served."""
    versions, preferred = _preferred(list(types), group)
    if not versions:
        return None
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{version}", "version": version} for version in versions],
        "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
    }


def api_group_list(types: Iterable[ResourceType]) -> dict[str, Any]:
    """`GET /apis`: every named group, in first-registered order."""
    all_types = list(types)
    groups: list[str] = []
    for resource_type in all_types:
        if resource_type.group and resource_type.group not in groups:
            groups.append(resource_type.group)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [api_group(all_types, group) for group in groups],
    }


def api_resource_list(types: Iterable[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    """`GET /api/v1` or `GET /apis/<group>/<version>`, or `None` when not served."""
    selected = [t for t in types if t.group == group and t.version == version]
    if not selected:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [entry for resource_type in selected for entry in resource_type.discovery_entries()],
    }


def openapi_v3_index(types: Iterable[ResourceType]) -> dict[str, Any]:
    """`GET /openapi/v3`: one document per group/version.

    kubectl's default `--validate=strict` asks this index whether a kind's PATCH takes the
    `fieldValidation` query parameter; if it does, kubectl leaves validation to the server (which
    the sandbox does) instead of validating client-side against `/openapi/v2`, which is not served.
    """
    paths = {}
    for rt in types:
        prefix = f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}"}
    return {"paths": paths}


def openapi_v3_document(types: Iterable[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    """`GET /openapi/v3/apis/<group>/<version>`: the PATCH operations and their parameters, and the
    schemas of custom kinds (for `kubectl explain`); built-in kinds have no schema here."""
    selected = [rt for rt in types if rt.group == group and rt.version == version]
    if not selected:
        return None
    paths: dict[str, Any] = {}
    for rt in selected:
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        paths[f"{prefix}{scope}/{rt.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": _crd_schemas(selected)},
    }


def _crd_schemas(types: Iterable[ResourceType]) -> dict[str, Any]:
    """The structural schema of each custom kind, keyed and tagged as the API server publishes it.

    `kubectl explain` looks a kind up by its `x-kubernetes-group-version-kind` among these, then
    walks the schema's properties and descriptions; the CRD's own schema is exactly that.
    """
    schemas: dict[str, Any] = {}
    for rt in types:
        for version in (rt.crd or {}).get("spec", {}).get("versions", []):
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if version.get("name") != rt.version or not isinstance(schema, Mapping):
                continue
            key = ".".join([*reversed(rt.group.split(".")), rt.version, rt.kind])
            gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
            schemas[key] = {**schema, "x-kubernetes-group-version-kind": [gvk]}
    return schemas
