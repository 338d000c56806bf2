"""The ingress providers, registered by the name the operator setting uses.

A provider is its own module: a pure function `build_<provider>_objects(*, namespace, bundle,
config)` returning plain manifests, and a `PROVIDER` that declares what the rest of the operator
needs to know about it (the kinds it writes, which of them route traffic, the trust-bundle object
the edge verifies against, whether it needs PEM pins, an optional Gateway patch). Adding a
provider is that module plus one entry in `PROVIDERS` below (docs/architecture.md walks through
it). Pure: no I/O.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from federation_operator.domain.ingress.bundle import TrustBundle
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.domain.ingress.providers import envoy_gateway, gateway_api, ingress_nginx
from federation_operator.domain.ingress.providers.base import (
    BuildGatewayPatch,
    BuildObjects,
    GatewayPatch,
    Kind,
    Provider,
)


def build_no_objects(*, namespace: str, bundle: TrustBundle, config: IngressConfig) -> list[dict[str, Any]]:
    """Provider `none`: the user wires the edge; the operator writes only the trust bundle."""
    return []


NONE = Provider(name="none", build_objects=build_no_objects, needs_pem=False)

PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        provider.name: provider
        for provider in (envoy_gateway.PROVIDER, ingress_nginx.PROVIDER, gateway_api.PROVIDER, NONE)
    }
)

__all__ = [
    "NONE",
    "PROVIDERS",
    "BuildGatewayPatch",
    "BuildObjects",
    "GatewayPatch",
    "Kind",
    "Provider",
    "build_no_objects",
]
