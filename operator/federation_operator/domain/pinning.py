"""Pins: how a FederationPeer names the remote's client certificate.

A pin is `{pem: ...}` or `{thumbprint: "sha256:<hex>"}`. Everything that checks a pin (the
federation server, the trust bundle, the ingress providers) compares normalised thumbprints:
lowercase hex SHA-256 of the DER certificate with the `sha256:` prefix.
"""

import re
from collections.abc import Iterable, Mapping
from typing import Final

from federation_operator.domain.certs import THUMBPRINT_PREFIX, describe_pem

_HEX64: Final = re.compile(r"^[0-9a-f]{64}$")


class InvalidPin(ValueError):
    pass


def normalize_thumbprint(text: str) -> str:
    """Accept `sha256:<hex>`, openssl's `AB:CD:...` and Envoy's bare hex; return `sha256:<hex>`."""
    value = text.strip()
    if value.lower().startswith(THUMBPRINT_PREFIX):
        value = value[len(THUMBPRINT_PREFIX) :]
    value = value.replace(":", "").lower()
    if not _HEX64.match(value):
        raise InvalidPin("a thumbprint is 64 hex digits of SHA-256, optionally prefixed with sha256:")
    return THUMBPRINT_PREFIX + value


def pin_thumbprint(pin: Mapping[str, object]) -> str:
    pem = pin.get("pem")
    thumbprint = pin.get("thumbprint")
    if isinstance(pem, str) and thumbprint is None:
        return describe_pem(pem).thumbprint
    if isinstance(thumbprint, str) and pem is None:
        return normalize_thumbprint(thumbprint)
    raise InvalidPin("a pin has exactly one of pem or thumbprint")


def pinned_thumbprints(pins: Iterable[Mapping[str, object]]) -> frozenset[str]:
    return frozenset(pin_thumbprint(pin) for pin in pins)


def hex_digest(thumbprint: str) -> str:
    """The bare lowercase hex form, as Envoy's certificateHashes and XFCC `Hash=` use it."""
    return normalize_thumbprint(thumbprint)[len(THUMBPRINT_PREFIX) :]
