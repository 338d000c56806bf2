"""The trust bundle: the exact set of client certificates the edge proxy lets through.

Every provider enforces pinning at the edge from the same input: the PEM certificates pinned by
the active peers of one namespace (the proxy's CA file, an allow-list because each pinned
certificate is self-signed) and their SHA-256 thumbprints (Envoy's native hash pinning). This
module computes that input once, deterministically, so that rewriting it for an unchanged set
of peers yields byte-identical objects and the operator never writes for nothing.

Pins that cannot be enforced are not silently dropped: each one yields a `PeerWarning` for the
peer that owns it, which the handler turns into a condition on that peer. Pure: no I/O.
"""

import base64
import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federation_operator.domain import certs, pinning
from federation_operator.domain.ingress.config import CA_CRT_KEY, TRUST_BUNDLE_NAME, object_metadata
from federation_operator.domain.times import rfc3339

# Reasons carried by `PeerWarning.reason` (CamelCase, as Kubernetes condition reasons are).
REASON_CERTIFICATE_EXPIRED = "CertificateExpired"
REASON_PEM_REQUIRED = "PemRequired"
REASON_INVALID_PIN = "InvalidPin"


@dataclass(frozen=True, kw_only=True)
class PeerPins:
    """What the bundle needs to know about one FederationPeer.

    `pins` is `spec.remoteCertificates` as `pinning.parse_pins` reads it.
    """

    name: str
    namespace: str
    pins: pinning.PinSet = field(default_factory=pinning.PinSet)
    suspended: bool = False


@dataclass(frozen=True, kw_only=True)
class PeerWarning:
    """A pin of one peer that the edge cannot enforce; becomes a condition on that peer."""

    peer: str
    namespace: str
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True)
class BundledCertificate:
    """One certificate in the bundle: its canonical PEM, thumbprint (lowercase hex) and expiry."""

    thumbprint: str
    pem: str
    not_after: datetime.datetime


@dataclass(frozen=True, kw_only=True)
class TrustBundle:
    """The enforceable pins of one namespace.

    `certificates` is sorted by thumbprint; `thumbprints` (lowercase hex, sorted) covers every
    enforceable pin, thumbprint-only ones included; `warnings` is sorted by peer, then reason.
    """

    certificates: tuple[BundledCertificate, ...] = ()
    thumbprints: tuple[str, ...] = ()
    warnings: tuple[PeerWarning, ...] = field(default=())

    @property
    def ca_crt(self) -> str:
        """The `ca.crt` file: the pinned PEM certificates, concatenated in thumbprint order."""
        return "".join(cert.pem for cert in self.certificates)

    @property
    def certificate_hashes(self) -> tuple[str, ...]:
        """Thumbprints of the certificates in `ca_crt`, in the same order."""
        return tuple(cert.thumbprint for cert in self.certificates)


def _warning(peer: PeerPins, *, reason: str, message: str) -> PeerWarning:
    return PeerWarning(peer=peer.name, namespace=peer.namespace, reason=reason, message=message)


def _bundle_pem_pin(
    peer: PeerPins, pin: pinning.Pin, *, now: datetime.datetime
) -> BundledCertificate | PeerWarning:
    assert pin.pem is not None
    assert pin.not_after is not None
    if pin.not_after <= now:
        return _warning(
            peer,
            reason=REASON_CERTIFICATE_EXPIRED,
            message=(
                f"certificate {pin.thumbprint} expired at {rfc3339(pin.not_after)}; "
                "left out of the trust bundle"
            ),
        )
    return BundledCertificate(thumbprint=pin.hex, pem=pin.pem, not_after=pin.not_after)


def build_trust_bundle(
    peers: Sequence[PeerPins], *, now: datetime.datetime, needs_pem: bool = False
) -> TrustBundle:
    """Compute the trust bundle of the active `peers` at `now`.

    Suspended peers contribute nothing (the edge refuses them). A PEM pin whose certificate has
    expired is left out with a `CertificateExpired` warning naming its thumbprint and notAfter.
    When the provider verifies against the PEM bundle (`needs_pem`), a thumbprint-only pin that
    no PEM pin of an active peer covers cannot be enforced and yields `PemRequired`.
    """
    certificates: dict[str, BundledCertificate] = {}
    thumbprints: set[str] = set()
    thumbprint_only: list[tuple[PeerPins, str]] = []
    warnings: list[PeerWarning] = []

    for peer in peers:
        if peer.suspended:
            continue
        for pin in peer.pins.pins:
            if pin.problem is not None:
                warnings.append(_warning(peer, reason=REASON_INVALID_PIN, message=pin.problem))
            elif pin.pem is not None:
                outcome = _bundle_pem_pin(peer, pin, now=now)
                if isinstance(outcome, PeerWarning):
                    warnings.append(outcome)
                else:
                    certificates[outcome.thumbprint] = outcome
                    thumbprints.add(outcome.thumbprint)
            else:
                thumbprints.add(pin.hex)
                thumbprint_only.append((peer, pin.hex))

    if needs_pem:
        # Checked after the loop: another peer (or the same one) may pin the same certificate
        # by PEM, in which case the thumbprint pin is enforced after all.
        for peer, thumbprint in thumbprint_only:
            if thumbprint not in certificates:
                warnings.append(
                    _warning(
                        peer,
                        reason=REASON_PEM_REQUIRED,
                        message=(
                            f"pin {certs.THUMBPRINT_PREFIX}{thumbprint} is a thumbprint only; the ingress "
                            "provider verifies against PEM certificates, so add the certificate's PEM"
                        ),
                    )
                )

    return TrustBundle(
        certificates=tuple(certificates[key] for key in sorted(certificates)),
        thumbprints=tuple(sorted(thumbprints)),
        warnings=tuple(sorted(warnings, key=lambda w: (w.namespace, w.peer, w.reason, w.message))),
    )


def build_trust_bundle_objects(
    *,
    namespace: str,
    bundle: TrustBundle,
    labels: Mapping[str, str],
    owner_references: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The ConfigMap and the Secret `federation-trust-bundle`, each with `ca.crt`.

    Both exist because consumers differ: Gateway API and Envoy Gateway read a ConfigMap,
    ingress-nginx's `auth-tls-secret` only a Secret. The Secret carries `data` (base64), never
    `stringData`, so that it compares equal to what the API server returns. An empty bundle
    yields no objects: with no certificate to allow, the edge objects go away too (fail closed).
    Pass one owner reference per peer of the namespace: the garbage collector then removes the
    bundle with the last of them.
    """
    if not bundle.certificates:
        return []
    ca_crt = bundle.ca_crt
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": object_metadata(
                name=TRUST_BUNDLE_NAME, namespace=namespace, labels=labels, owner_references=owner_references
            ),
            "data": {CA_CRT_KEY: ca_crt},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": object_metadata(
                name=TRUST_BUNDLE_NAME, namespace=namespace, labels=labels, owner_references=owner_references
            ),
            "type": "Opaque",
            "data": {CA_CRT_KEY: base64.b64encode(ca_crt.encode("ascii")).decode("ascii")},
        },
    ]
