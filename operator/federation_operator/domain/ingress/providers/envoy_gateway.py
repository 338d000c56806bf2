"""Envoy Gateway: the first-class provider, because Envoy pins certificates natively.

Three objects make the edge enforce both factors before a request reaches the server:
- a ClientTrafficPolicy on the Gateway (or one listener) verifying the client certificate
  against the trust bundle AND its SHA-256 against `certificateHashes`: a leaf pin, even if a
  pinned PEM were a CA; it also forwards the verified certificate in `x-forwarded-client-cert`;
- the HTTPRoute for `/api/federation/`;
- a SecurityPolicy on that route calling the server's forward-auth endpoint, which checks that
  the certificate and the shared secret belong to the same peer.
Pure: no I/O.
"""

from typing import Any

from federation_operator.domain import api
from federation_operator.domain.ingress.bundle import TrustBundle
from federation_operator.domain.ingress.config import (
    ENVOY_GATEWAY_VERSION,
    GATEWAY_API_GROUP,
    GATEWAY_API_VERSION,
    TRUST_BUNDLE_NAME,
    IngressConfig,
    object_metadata,
)
from federation_operator.domain.ingress.providers.base import Provider
from federation_operator.domain.ingress.providers.routes import (
    build_http_route,
    route_name,
    server_backend_ref,
)

# Envoy sends the ext-auth backend only Host, Method, Path, Content-Length and Authorization by
# default; the forward-auth endpoint also needs the certificate Envoy verified.
XFCC_HEADER = "x-forwarded-client-cert"
AUTHORIZATION_HEADER = "authorization"


def build_envoy_gateway_objects(
    *, namespace: str, bundle: TrustBundle, config: IngressConfig
) -> list[dict[str, Any]]:
    """ClientTrafficPolicy, HTTPRoute and SecurityPolicy; nothing when no certificate is pinned.

    `certificateHashes` are lowercase hex without colons: the simple form Envoy documents for
    `verify_certificate_hash` (it also accepts colons) and the form its XFCC `Hash` carries, so
    an operator can compare them by eye.

    The ext-auth call uses `pathOverride`, not `path`: Envoy appends the original request path
    to `path` (`/api/federation/auth` + `/api/federation/ping`), so only `pathOverride` makes
    the server receive exactly its forward-auth path. The original path is not needed there:
    forward-auth decides on the peer (certificate + secret), not on the URL.
    """
    if not bundle.certificates:
        return []
    gateway_namespace = config.gateway_ns(namespace)
    target: dict[str, Any] = {"group": GATEWAY_API_GROUP, "kind": "Gateway", "name": config.gateway_name}
    if config.section_name:
        target["sectionName"] = config.section_name
    ca_ref: dict[str, Any] = {"group": "", "kind": "ConfigMap", "name": TRUST_BUNDLE_NAME}
    if gateway_namespace != namespace:
        # Needs a ReferenceGrant in the peers' namespace (see docs/ingress.md).
        ca_ref["namespace"] = namespace
    client_traffic_policy = {
        "apiVersion": ENVOY_GATEWAY_VERSION,
        "kind": "ClientTrafficPolicy",
        "metadata": object_metadata(
            name=f"{config.name_prefix}-mtls",
            namespace=gateway_namespace,
            labels=config.labels,
            # Policies attach to a Gateway in its own namespace; an owner there is impossible.
            owner_references=config.owner_references if gateway_namespace == namespace else (),
        ),
        "spec": {
            "targetRefs": [target],
            "tls": {
                "clientValidation": {
                    "caCertificateRefs": [ca_ref],
                    "certificateHashes": list(bundle.certificate_hashes),
                    "mode": "RequireAndVerify",
                }
            },
            "headers": {"xForwardedClientCert": {"mode": "SanitizeSet", "certDetailsToAdd": ["Cert"]}},
        },
    }
    backend = server_backend_ref(namespace=namespace, config=config)
    security_policy = {
        "apiVersion": ENVOY_GATEWAY_VERSION,
        "kind": "SecurityPolicy",
        "metadata": object_metadata(
            name=f"{config.name_prefix}-ext-auth",
            namespace=namespace,
            labels=config.labels,
            owner_references=config.owner_references,
        ),
        "spec": {
            "targetRefs": [{"group": GATEWAY_API_GROUP, "kind": "HTTPRoute", "name": route_name(config)}],
            "extAuth": {
                "http": {
                    "backendRefs": [backend],
                    "pathOverride": api.FORWARD_AUTH_PATH,
                    "headersToBackend": [api.HEADER_PEER, api.HEADER_NAMESPACE],
                },
                "headersToExtAuth": [XFCC_HEADER, AUTHORIZATION_HEADER],
                "failOpen": False,
            },
        },
    }
    return [client_traffic_policy, build_http_route(namespace=namespace, config=config), security_policy]


PROVIDER = Provider(
    name="envoy-gateway",
    build_objects=build_envoy_gateway_objects,
    needs_pem=True,
    writes=frozenset(
        {
            (ENVOY_GATEWAY_VERSION, "ClientTrafficPolicy"),
            (ENVOY_GATEWAY_VERSION, "SecurityPolicy"),
            (GATEWAY_API_VERSION, "HTTPRoute"),
        }
    ),
    route_kinds=frozenset({"HTTPRoute"}),
    certificate_source="ConfigMap",
)
