"""Pins: how a FederationPeer names the remote's client certificate.

A pin is `{pem: ...}` or `{thumbprint: "sha256:<hex>"}`. Everything that checks a pin (the
federation server, the trust bundle, the ingress providers, the claims registry, the plugin's
`pin` and `check`) compares normalised thumbprints: lowercase hex SHA-256 of the DER certificate
with the `sha256:` prefix.

`spec.remoteCertificates` is parsed once, by `parse_pins`, into a `PinSet` every consumer uses.
The one error policy: parsing never raises; a pin that is not exactly one of `pem` (exactly one
PEM certificate) or `thumbprint` (64 hex digits of SHA-256, `sha256:` prefix, openssl's colons
and upper case accepted) pins nothing, and carries a `problem` naming `remoteCertificates[i]`
that the consumers report (the trust bundle as an `InvalidPin` warning on `PinsUsable`, `kubectl
federation check` as a failed check) while the valid pins beside it keep working. Expiry is not a
parse error: an expired PEM pin still names its certificate (`not_after`); whoever enforces pins
decides what an expired one means (the trust bundle leaves it out).
"""

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography import x509

from federation_operator.domain.certs import THUMBPRINT_PREFIX, describe

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


@dataclass(frozen=True)
class Pin:
    """One entry of `spec.remoteCertificates`, parsed; `problem` is None exactly when it pins."""

    index: int
    thumbprint: str | None = None  # sha256:<hex>
    pem: str | None = None  # the certificate re-encoded, for a PEM pin
    not_after: datetime.datetime | None = None  # for a PEM pin
    problem: str | None = None

    @property
    def where(self) -> str:
        return f"remoteCertificates[{self.index}]"

    @property
    def hex(self) -> str:
        """The bare lowercase hex thumbprint, as Envoy's certificateHashes and XFCC `Hash=` use it."""
        assert self.thumbprint is not None, "an invalid pin has no thumbprint"
        return self.thumbprint[len(THUMBPRINT_PREFIX) :]


@dataclass(frozen=True)
class PinSet:
    """A peer's pins in spec order, valid and invalid alike."""

    pins: tuple[Pin, ...] = ()

    @property
    def valid(self) -> tuple[Pin, ...]:
        return tuple(pin for pin in self.pins if pin.problem is None)

    @property
    def invalid(self) -> tuple[Pin, ...]:
        return tuple(pin for pin in self.pins if pin.problem is not None)

    @property
    def thumbprints(self) -> frozenset[str]:
        """Every certificate the valid pins name (sha256:<hex>)."""
        return frozenset(pin.thumbprint for pin in self.valid if pin.thumbprint is not None)

    @property
    def pems(self) -> tuple[str, ...]:
        """The certificates of the valid PEM pins, in spec order."""
        return tuple(pin.pem for pin in self.valid if pin.pem is not None)

    def __len__(self) -> int:
        return len(self.pins)


def parse_pin(value: object, *, index: int = 0) -> Pin:
    """One pin; never raises (the module docstring is the error policy)."""
    if not isinstance(value, Mapping):
        return Pin(index, problem=f"remoteCertificates[{index}] is not a {{pem}} or {{thumbprint}} object")
    pem, thumbprint = value.get("pem"), value.get("thumbprint")
    if isinstance(pem, str) and thumbprint is None:
        try:
            parsed = x509.load_pem_x509_certificates(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            parsed = []
        if len(parsed) != 1:
            return Pin(index, problem=f"remoteCertificates[{index}].pem is not exactly one PEM certificate")
        info = describe(parsed[0])
        return Pin(index, thumbprint=info.thumbprint, pem=info.pem, not_after=info.not_after)
    if isinstance(thumbprint, str) and pem is None:
        try:
            return Pin(index, thumbprint=normalize_thumbprint(thumbprint))
        except InvalidPin as error:
            return Pin(index, problem=f"remoteCertificates[{index}].thumbprint: {error}")
    return Pin(
        index,
        problem=f"remoteCertificates[{index}] has exactly one of pem or thumbprint: not both, not neither",
    )


def parse_pins(value: object) -> PinSet:
    """`spec.remoteCertificates` (anything: a sandbox does not validate) as a PinSet."""
    if not isinstance(value, list | tuple):
        return PinSet()
    return PinSet(tuple(parse_pin(item, index=index) for index, item in enumerate(value)))
