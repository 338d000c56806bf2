"""How the edge is wired: one frozen value every provider builds its objects from.

The operator setting (later a Helm value) names the provider; this value says where its objects
point: the public host, the Gateway and listener the federation endpoint sits on, the federation
server's Service, and the labels and owners to stamp. Keeping it in one value lets a provider be
one pure function of (namespace, trust bundle, config). Pure: no I/O.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Name of the ConfigMap and the Secret that hold `ca.crt` in each namespace with peers.
TRUST_BUNDLE_NAME = "federation-trust-bundle"
CA_CRT_KEY = "ca.crt"

# The path every provider routes to the federation server (ping and friends live below it).
FEDERATION_PATH_PREFIX = "/api/federation/"

GATEWAY_API_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_VERSION = f"{GATEWAY_API_GROUP}/v1"
ENVOY_GATEWAY_VERSION = "gateway.envoyproxy.io/v1alpha1"


@dataclass(frozen=True, kw_only=True)
class IngressConfig:
    """Where the federation endpoint lives at the edge.

    - `host`: the public hostname of the federation endpoint (a dedicated host: client
      certificate verification applies to a whole host or listener, never to one path).
    - `gateway_name`, `gateway_namespace`, `section_name`, `listener_port`: the Gateway and its
      HTTPS listener (Gateway API kinds). `gateway_namespace` None means the peers' namespace.
      `listener_port` is the port whose frontend validation `gateway-api` sets; None means
      the Gateway-wide `default`.
    - `server_service`, `server_namespace`, `server_http_port`: the federation server's Service
      and its plain-HTTP port (forward-auth and traffic from a TLS-terminating proxy).
      `server_namespace` None means the peers' namespace.
    - `ingress_class_name`, `tls_secret_name`: the IngressClass and the server certificate
      Secret of the host (ingress-nginx profile).
    - `name_prefix`: prefix of every provider object's name.
    - `labels`: stamped on every provider object (`api.managed_labels(role=api.ROLE_INGRESS)`).
    - `owner_references`: stamped on objects in the peers' namespace (owners cannot cross
      namespaces, so objects in the Gateway's namespace carry none).
    """

    host: str
    labels: Mapping[str, str]
    gateway_name: str = "federation"
    gateway_namespace: str | None = None
    section_name: str | None = None
    listener_port: int | None = None
    server_service: str = "federation-server"
    server_namespace: str | None = None
    server_http_port: int = 8080
    ingress_class_name: str = "nginx"
    tls_secret_name: str | None = None
    name_prefix: str = "federation"
    owner_references: Sequence[Mapping[str, Any]] = field(default=())

    def gateway_ns(self, namespace: str) -> str:
        """The Gateway's namespace, given the peers' namespace."""
        return self.gateway_namespace or namespace

    def server_ns(self, namespace: str) -> str:
        """The federation server Service's namespace, given the peers' namespace."""
        return self.server_namespace or namespace


def object_metadata(
    *,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner_references: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Metadata of a generated object: only the fields the operator owns."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if owner_references:
        metadata["ownerReferences"] = [dict(ref) for ref in owner_references]
    return metadata
