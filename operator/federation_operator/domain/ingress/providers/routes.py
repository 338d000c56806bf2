"""The HTTPRoute both Gateway API based providers publish the federation API with.

Envoy Gateway and plain Gateway API route the same way; only how client certificates are
verified differs, so the route is built once here. Pure: no I/O.
"""

from typing import Any

from federation_operator.domain.ingress.config import (
    FEDERATION_PATH_PREFIX,
    GATEWAY_API_GROUP,
    GATEWAY_API_VERSION,
    IngressConfig,
    object_metadata,
)


def server_backend_ref(*, namespace: str, config: IngressConfig) -> dict[str, Any]:
    """The federation server's plain-HTTP Service port as a Gateway API backend reference.

    Across namespaces it needs a ReferenceGrant in the server's namespace (shipped by the chart).
    """
    backend: dict[str, Any] = {
        "group": "",
        "kind": "Service",
        "name": config.server_service,
        "port": config.server_http_port,
    }
    if config.server_ns(namespace) != namespace:
        backend["namespace"] = config.server_ns(namespace)
    return backend


def route_name(config: IngressConfig) -> str:
    """Name of the HTTPRoute, which policies target."""
    return f"{config.name_prefix}-api"


def build_http_route(*, namespace: str, config: IngressConfig) -> dict[str, Any]:
    """HTTPRoute: `config.host` + PathPrefix `/api/federation/` to the server's HTTP port."""
    parent: dict[str, Any] = {"group": GATEWAY_API_GROUP, "kind": "Gateway", "name": config.gateway_name}
    if config.gateway_ns(namespace) != namespace:
        parent["namespace"] = config.gateway_ns(namespace)
    if config.section_name:
        parent["sectionName"] = config.section_name
    backend = server_backend_ref(namespace=namespace, config=config)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": object_metadata(
            name=route_name(config),
            namespace=namespace,
            labels=config.labels,
            owner_references=config.owner_references,
        ),
        "spec": {
            "parentRefs": [parent],
            "hostnames": [config.host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": FEDERATION_PATH_PREFIX}}],
                    "backendRefs": [backend],
                }
            ],
        },
    }
