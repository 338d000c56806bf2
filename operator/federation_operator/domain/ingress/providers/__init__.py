"""The ingress providers, registered by the name the operator setting uses.

A provider is one function `build_<provider>_objects(*, namespace, bundle, config)` returning
plain manifests, plus whether it verifies against PEM certificates (so that a thumbprint-only
pin is flagged on its peer). Adding a provider is one new module and one entry below.
Pure: no I/O.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from federation_operator.domain.ingress.bundle import TrustBundle
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.domain.ingress.providers.envoy_gateway import build_envoy_gateway_objects
from federation_operator.domain.ingress.providers.gateway_api import (
    GatewayPatch,
    build_gateway_api_objects,
    build_gateway_frontend_patch,
)
from federation_operator.domain.ingress.providers.ingress_nginx import build_ingress_nginx_objects


class BuildObjects(Protocol):
    def __call__(
        self, *, namespace: str, bundle: TrustBundle, config: IngressConfig
    ) -> list[dict[str, Any]]: ...


class BuildGatewayPatch(Protocol):
    def __call__(
        self, *, namespace: str, config: IngressConfig, gateway: Mapping[str, Any], enabled: bool = True
    ) -> GatewayPatch | None: ...


def build_no_objects(*, namespace: str, bundle: TrustBundle, config: IngressConfig) -> list[dict[str, Any]]:
    """Provider `none`: the user wires the edge; the operator writes only the trust bundle."""
    return []


@dataclass(frozen=True, kw_only=True)
class Provider:
    """One ingress provider.

    `needs_pem`: the proxy verifies against the PEM bundle, so a pin given only by thumbprint
    cannot be enforced. Envoy Gateway checks hashes too, but only after the chain check against
    `caCertificateRefs`, so it needs the PEM as well.
    `gateway_patch`: set when the provider also patches a Gateway it does not own.
    """

    name: str
    build_objects: BuildObjects
    needs_pem: bool
    gateway_patch: BuildGatewayPatch | None = None


PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        "envoy-gateway": Provider(
            name="envoy-gateway", build_objects=build_envoy_gateway_objects, needs_pem=True
        ),
        "ingress-nginx": Provider(
            name="ingress-nginx", build_objects=build_ingress_nginx_objects, needs_pem=True
        ),
        "gateway-api": Provider(
            name="gateway-api",
            build_objects=build_gateway_api_objects,
            needs_pem=True,
            gateway_patch=build_gateway_frontend_patch,
        ),
        "none": Provider(name="none", build_objects=build_no_objects, needs_pem=False),
    }
)

__all__ = [
    "PROVIDERS",
    "BuildGatewayPatch",
    "BuildObjects",
    "GatewayPatch",
    "Provider",
    "build_envoy_gateway_objects",
    "build_gateway_api_objects",
    "build_gateway_frontend_patch",
    "build_ingress_nginx_objects",
    "build_no_objects",
]
