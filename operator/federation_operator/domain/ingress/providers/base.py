"""What an ingress provider is: its builder, the kinds it writes and routes, its certificate source.

Apart from the registry (`providers/__init__.py`) so that each provider module can declare its
own `PROVIDER` without importing the registry that imports it. Pure: no I/O.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from federation_operator.domain.ingress.bundle import TrustBundle
from federation_operator.domain.ingress.config import IngressConfig

# (apiVersion, kind), as the objects carry them.
Kind = tuple[str, str]


@dataclass(frozen=True, kw_only=True)
class GatewayPatch:
    """A JSON merge patch (`application/merge-patch+json`) for a Gateway the operator does not own.

    `body` carries `metadata.resourceVersion` when known, so a concurrent edit of the Gateway
    makes the patch fail with 409 instead of being overwritten (merge patches replace lists,
    and `perPort` is a list).
    """

    name: str
    namespace: str
    body: Mapping[str, Any]


class BuildObjects(Protocol):
    def __call__(
        self, *, namespace: str, bundle: TrustBundle, config: IngressConfig
    ) -> list[dict[str, Any]]: ...


class BuildGatewayPatch(Protocol):
    def __call__(
        self, *, namespace: str, config: IngressConfig, gateway: Mapping[str, Any], enabled: bool = True
    ) -> GatewayPatch | None: ...


@dataclass(frozen=True, kw_only=True)
class Provider:
    """One ingress provider.

    `needs_pem`: the proxy verifies against the PEM bundle, so a pin given only by thumbprint
    cannot be enforced. Envoy Gateway checks hashes too, but only after the chain check against
    `caCertificateRefs`, so it needs the PEM as well.
    `gateway_patch`: set when the provider also patches a Gateway it does not own.

    Each provider module defines its own `PROVIDER`; `providers/__init__.py` lists them.
    """

    name: str
    build_objects: BuildObjects
    needs_pem: bool
    # The kinds `build_objects` returns, as (apiVersion, kind): the operator reads, writes and
    # checks discovery for exactly these (tests/unit/test_ingress_registry.py holds them to it).
    writes: frozenset[Kind] = frozenset()
    # The kinds among `writes` that route traffic. Fail-closed order: they are written after
    # everything they rely on and removed before it, so a route never exists without verification.
    route_kinds: frozenset[str] = frozenset()
    # Which trust-bundle object the edge verifies against: "ConfigMap" or "Secret" (both are
    # written, with the same PEMs); None when the provider configures no verification itself.
    certificate_source: str | None = None
    gateway_patch: BuildGatewayPatch | None = None
