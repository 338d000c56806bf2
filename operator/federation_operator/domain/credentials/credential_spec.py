"""`spec.inbound`, `spec.outbound` and `spec.credentials` of a FederationPeer, parsed and checked.

The parse refuses what the CRD schema would have refused (the sandbox and old API servers do not
validate), so that a plan is only ever made from a spec that means one thing.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from federation_operator.domain import durations, tokens

SOURCE_GENERATED: Final = "Generated"

SOURCE_SECRET_HASH: Final = "SecretHash"

SOURCE_SECRET_REF: Final = "SecretRef"

DEFAULT_HANDOFF_TTL: Final = timedelta(hours=1)

DEFAULT_ROTATION_OVERLAP: Final = timedelta(hours=1)

DEFAULT_REF_KEY: Final = "token"

_ZERO_SPAN_RE: Final = re.compile(r"^(?:0+(?:\.0+)?(?:ms|s|m|h))+$")


class InvalidCredentialSpec(ValueError):
    pass


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True)
class CredentialSpec:
    inbound_hash: str | None
    inbound_ref: SecretRef | None
    outbound_ref: SecretRef | None
    handoff_ttl: timedelta
    rotation_overlap: timedelta

    @property
    def inbound_source(self) -> str:
        if self.inbound_hash is not None:
            return SOURCE_SECRET_HASH
        return SOURCE_SECRET_REF if self.inbound_ref is not None else SOURCE_GENERATED

    @property
    def outbound_source(self) -> str:
        return SOURCE_SECRET_REF if self.outbound_ref is not None else SOURCE_GENERATED


def _parse_span(text: str, *, field_name: str, allow_zero: bool) -> timedelta:
    # The CRD pattern allows "0s"; parse_duration refuses non-positive spans, and an overlap of
    # zero is meaningful here (the previous token stops working at once).
    if allow_zero and _ZERO_SPAN_RE.match(text):
        return timedelta(0)
    try:
        return durations.parse_duration(text)
    except durations.InvalidDuration as error:
        raise InvalidCredentialSpec(f"spec.credentials.{field_name}: {error}") from None


def _ref(value: Any, *, where: str) -> SecretRef | None:
    if not value:
        return None
    name = str(value.get("name") or "")
    if not name:
        raise InvalidCredentialSpec(f"{where}.name is required")
    return SecretRef(name=name, key=str(value.get("key") or DEFAULT_REF_KEY))


def parse_credential_spec(spec: Mapping[str, Any]) -> CredentialSpec:
    inbound = spec.get("inbound") or {}
    outbound = spec.get("outbound") or {}
    secret_hash = inbound.get("secretHash")
    if secret_hash is not None and not tokens.is_hash(str(secret_hash)):
        raise InvalidCredentialSpec("spec.inbound.secretHash must match ^sha256:[0-9a-f]{64}$")
    inbound_ref = _ref(inbound.get("secretRef"), where="spec.inbound.secretRef")
    if secret_hash is not None and inbound_ref is not None:
        raise InvalidCredentialSpec("spec.inbound takes secretHash or secretRef, not both")
    lifetimes = spec.get("credentials") or {}
    return CredentialSpec(
        inbound_hash=str(secret_hash) if secret_hash is not None else None,
        inbound_ref=inbound_ref,
        outbound_ref=_ref(outbound.get("secretRef"), where="spec.outbound.secretRef"),
        handoff_ttl=_parse_span(
            str(lifetimes.get("handoffTTL") or "1h"), field_name="handoffTTL", allow_zero=False
        ),
        rotation_overlap=_parse_span(
            str(lifetimes.get("rotationOverlap") or "1h"), field_name="rotationOverlap", allow_zero=True
        ),
    )


def outbound_ref(spec: Mapping[str, Any]) -> SecretRef | str | None:
    """`spec.outbound.secretRef` as a SecretRef, None when absent, or the problem with it."""
    outbound = spec.get("outbound")
    ref = outbound.get("secretRef") if isinstance(outbound, Mapping) else None
    if not ref:
        return None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if not isinstance(name, str) or not name:
        return "spec.outbound.secretRef.name is required"
    key = ref.get("key")
    return SecretRef(name=name, key=key if isinstance(key, str) and key else DEFAULT_REF_KEY)


def referenced_secret_names(spec: Mapping[str, Any]) -> set[str]:
    """Users' Secrets a peer reads: a change to any of them must re-reconcile the peer."""
    names = set()
    for side in ("inbound", "outbound"):
        ref = (spec.get(side) or {}).get("secretRef") or {}
        if ref.get("name"):
            names.add(str(ref["name"]))
    return names
