"""Gateway API (v1.5+): standard frontend client-certificate validation on a user's Gateway.

The Gateway belongs to the user (or the platform team), so the operator does not create it: it
publishes the HTTPRoute and patches only the Gateway's `spec.tls.frontend` so that the
federation listener's port verifies client certificates against the trust bundle ConfigMap.
Gateway API has no hash pinning: the CA bundle made of exactly the pinned self-signed
certificates is the allow-list (OpenSSL accepts a self-signed leaf that is itself a trust
anchor). Pure: no I/O; the caller reads the live Gateway and sends the patch.
"""

import copy
from collections.abc import Mapping
from typing import Any

from federation_operator.domain.ingress.bundle import TrustBundle
from federation_operator.domain.ingress.config import (
    GATEWAY_API_VERSION,
    TRUST_BUNDLE_NAME,
    IngressConfig,
)
from federation_operator.domain.ingress.providers.base import GatewayPatch, Provider
from federation_operator.domain.ingress.providers.routes import build_http_route

# When the operator must create `frontend.default` only because the schema requires it next
# to `perPort`, it allows insecure fallback so the Gateway's other ports keep working as before.
_FALLBACK_MODE = "AllowInsecureFallback"


def build_gateway_api_objects(
    *, namespace: str, bundle: TrustBundle, config: IngressConfig
) -> list[dict[str, Any]]:
    """The HTTPRoute; nothing when no certificate is pinned. The Gateway patch is separate."""
    if not bundle.certificates:
        return []
    return [build_http_route(namespace=namespace, config=config)]


def _ca_refs(*, namespace: str, config: IngressConfig) -> list[dict[str, Any]]:
    ref: dict[str, Any] = {"group": "", "kind": "ConfigMap", "name": TRUST_BUNDLE_NAME}
    if config.gateway_ns(namespace) != namespace:
        # Needs a ReferenceGrant in the peers' namespace (see docs/ingress.md).
        ref["namespace"] = namespace
    return [ref]


def build_gateway_frontend_patch(
    *, namespace: str, config: IngressConfig, gateway: Mapping[str, Any], enabled: bool = True
) -> GatewayPatch | None:
    """The merge patch that makes `gateway` verify client certificates against the trust bundle.

    With `config.listener_port`, the patch sets (or, `enabled=False`, removes) the `perPort`
    entry for that port and keeps every other entry of the live `gateway`; the schema requires
    `frontend.default` beside `perPort`, so a missing default is created with
    `AllowInsecureFallback` (no change for other ports). Without a port, `frontend.default` is
    set to the bundle. Removing the default is done only when it still points at our bundle.
    Returns None when the live Gateway already is as desired (nothing to write).
    """
    frontend = gateway.get("spec", {}).get("tls", {}).get("frontend") or {}
    refs = _ca_refs(namespace=namespace, config=config)
    desired = copy.deepcopy(dict(frontend))
    if config.listener_port is None:
        if enabled:
            desired["default"] = {"validation": {"caCertificateRefs": refs, "mode": "AllowValidOnly"}}
        elif desired.get("default", {}).get("validation", {}).get("caCertificateRefs") == refs:
            desired.pop("default")
    else:
        per_port = [
            entry for entry in desired.get("perPort", []) if entry.get("port") != config.listener_port
        ]
        if enabled:
            per_port.append(
                {
                    "port": config.listener_port,
                    "tls": {"validation": {"caCertificateRefs": refs, "mode": "AllowValidOnly"}},
                }
            )
            desired.setdefault("default", {"validation": {"caCertificateRefs": refs, "mode": _FALLBACK_MODE}})
        per_port.sort(key=lambda entry: int(entry["port"]))
        if per_port:
            desired["perPort"] = per_port
        else:
            desired.pop("perPort", None)
            if desired.get("default") == {"validation": {"caCertificateRefs": refs, "mode": _FALLBACK_MODE}}:
                desired.pop("default")
    if desired == frontend:
        return None
    metadata: dict[str, Any] = {}
    resource_version = gateway.get("metadata", {}).get("resourceVersion")
    if resource_version:
        metadata["resourceVersion"] = resource_version
    # A merge patch deletes a key with null; an empty frontend must go entirely (it requires default).
    body: dict[str, Any] = {"spec": {"tls": {"frontend": desired or None}}}
    if metadata:
        body["metadata"] = metadata
    return GatewayPatch(name=config.gateway_name, namespace=config.gateway_ns(namespace), body=body)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it (for tests and dry runs)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


PROVIDER = Provider(
    name="gateway-api",
    build_objects=build_gateway_api_objects,
    needs_pem=True,
    writes=frozenset({(GATEWAY_API_VERSION, "HTTPRoute")}),
    route_kinds=frozenset({"HTTPRoute"}),
    certificate_source="ConfigMap",
    gateway_patch=build_gateway_frontend_patch,
)
