"""ingress-nginx: the legacy profile, an annotated Ingress on a dedicated host.

ingress-nginx was retired in March 2026, but clusters still run it and Traefik's nginx
provider reads the same annotations, so the profile stays. nginx verifies the client
certificate against the trust bundle Secret (an allow-list: every pinned certificate is
self-signed, and depth 1 forbids chains), passes it upstream in `ssl-client-cert`, and asks the
server's forward-auth endpoint before proxying. Client-certificate auth is per host in
ingress-nginx, hence the dedicated host. Pure: no I/O.
"""

from typing import Any

from federation_operator.domain import api
from federation_operator.domain.ingress.bundle import TrustBundle
from federation_operator.domain.ingress.config import (
    FEDERATION_PATH_PREFIX,
    TRUST_BUNDLE_NAME,
    IngressConfig,
    object_metadata,
)
from federation_operator.domain.ingress.providers.base import Provider

ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"


def nginx_annotations(*, namespace: str, config: IngressConfig) -> dict[str, str]:
    """The ingress-nginx annotations of the profile (also what tests render nginx.conf from)."""
    server_ns = config.server_ns(namespace)
    auth_url = (
        f"http://{config.server_service}.{server_ns}.svc.cluster.local:"
        f"{config.server_http_port}{api.FORWARD_AUTH_PATH}"
    )
    return {
        f"{ANNOTATION_PREFIX}auth-tls-secret": f"{namespace}/{TRUST_BUNDLE_NAME}",
        f"{ANNOTATION_PREFIX}auth-tls-verify-client": "on",
        f"{ANNOTATION_PREFIX}auth-tls-verify-depth": "1",
        f"{ANNOTATION_PREFIX}auth-tls-pass-certificate-to-upstream": "true",
        f"{ANNOTATION_PREFIX}auth-url": auth_url,
        f"{ANNOTATION_PREFIX}auth-response-headers": f"{api.HEADER_PEER},{api.HEADER_NAMESPACE}",
    }


def build_ingress_nginx_objects(
    *, namespace: str, bundle: TrustBundle, config: IngressConfig
) -> list[dict[str, Any]]:
    """The annotated Ingress; nothing when no certificate is pinned.

    An Ingress backend can only be a Service of its own namespace, so the federation server
    must run in the peers' namespace for this profile.
    """
    if not bundle.certificates:
        return []
    if config.server_ns(namespace) != namespace:
        raise ValueError(
            f"ingress-nginx needs the federation server Service in namespace {namespace!r} "
            f"(an Ingress backend cannot cross namespaces), not {config.server_ns(namespace)!r}"
        )
    metadata = object_metadata(
        name=f"{config.name_prefix}-api",
        namespace=namespace,
        labels=config.labels,
        owner_references=config.owner_references,
    )
    metadata["annotations"] = nginx_annotations(namespace=namespace, config=config)
    spec: dict[str, Any] = {
        "ingressClassName": config.ingress_class_name,
        "rules": [
            {
                "host": config.host,
                "http": {
                    "paths": [
                        {
                            "path": FEDERATION_PATH_PREFIX,
                            "pathType": "Prefix",
                            "backend": {
                                "service": {
                                    "name": config.server_service,
                                    "port": {"number": config.server_http_port},
                                }
                            },
                        }
                    ]
                },
            }
        ],
    }
    if config.tls_secret_name:
        spec["tls"] = [{"hosts": [config.host], "secretName": config.tls_secret_name}]
    return [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}]


PROVIDER = Provider(
    name="ingress-nginx",
    build_objects=build_ingress_nginx_objects,
    needs_pem=True,
    writes=frozenset({("networking.k8s.io/v1", "Ingress")}),
    route_kinds=frozenset({"Ingress"}),
    certificate_source="Secret",
)
