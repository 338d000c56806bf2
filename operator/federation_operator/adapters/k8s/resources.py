"""Addresses of the resources the operator reads and writes (pure)."""

from dataclasses import dataclass

from federation_operator.domain import api


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource is not None:
                base += f"/{subresource}"
        return base


SECRETS = Resource("", "v1", "secrets", "Secret")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
EVENTS = Resource("", "v1", "events", "Event")
FEDERATION_CERTS = Resource(api.GROUP, api.VERSION, api.CERT_PLURAL, api.CERT_KIND)
FEDERATION_PEERS = Resource(api.GROUP, api.VERSION, api.PEER_PLURAL, api.PEER_KIND)
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
GATEWAYS = Resource("gateway.networking.k8s.io", "v1", "gateways", "Gateway")
HTTPROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
CLIENT_TRAFFIC_POLICIES = Resource(
    "gateway.envoyproxy.io", "v1alpha1", "clienttrafficpolicies", "ClientTrafficPolicy"
)
SECURITY_POLICIES = Resource("gateway.envoyproxy.io", "v1alpha1", "securitypolicies", "SecurityPolicy")

BY_KIND: dict[tuple[str, str], Resource] = {
    (resource.api_version, resource.kind): resource
    for resource in (
        SECRETS,
        CONFIGMAPS,
        NAMESPACES,
        FEDERATION_CERTS,
        FEDERATION_PEERS,
        INGRESSES,
        GATEWAYS,
        HTTPROUTES,
        CLIENT_TRAFFIC_POLICIES,
        SECURITY_POLICIES,
    )
}


def resource_of(obj: dict[str, object]) -> Resource:
    return BY_KIND[(str(obj.get("apiVersion")), str(obj.get("kind")))]
