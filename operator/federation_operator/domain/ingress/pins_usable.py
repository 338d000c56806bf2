"""`PinsUsable`: what an edge pass found about one peer's pins, and that condition on its status.

An edge pass decides a `Verdict` for each peer of its namespace once the namespace's edge objects
are written (so `True` always means "enforced by objects that exist"). Whoever writes it, the edge
pass itself or the peer's credentials pass it handed the verdict to
(controller/handlers/pins_handover.py), sets the condition with `with_verdict`, so both write the
same condition from the same decision. Pure: no I/O.
"""

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federation_operator.domain import api, condition_types, conditions
from federation_operator.domain.ingress.bundle import PeerWarning

REASON_ENFORCED = "Enforced"
REASON_SUSPENDED = "Suspended"
REASON_NOT_INSTALLED = "ProviderNotInstalled"


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """`PinsUsable` of one peer (its uid and generation) as one edge pass decided it.

    `decided` (the pass's clock) becomes the condition's transition time when the status flips;
    two verdicts that say the same about the same peer are equal whenever they were decided.
    """

    uid: str
    generation: int | None
    status: conditions.Status
    reason: str
    message: str
    decided: datetime.datetime = field(compare=False)


def decide(
    *,
    peer: Mapping[str, Any],
    warnings: Sequence[PeerWarning],
    unserved: str | None,
    now: datetime.datetime,
) -> Verdict:
    """The verdict for one peer: its warnings (those the bundle raised for its pins), whether it is
    suspended, and `unserved` (the message when the provider's kinds are not installed)."""
    meta: Mapping[str, Any] = peer["metadata"]
    suspended = bool((peer.get("spec") or {}).get("suspend"))
    status: conditions.Status
    if unserved is not None:
        status, reason, message = "False", REASON_NOT_INSTALLED, unserved
    elif suspended:
        status, reason = "Unknown", REASON_SUSPENDED
        message = "suspended: the edge refuses this peer and its pins are not bundled"
    elif warnings:
        status, reason = "False", warnings[0].reason
        message = "; ".join(warning.message for warning in warnings)
    else:
        status, reason, message = "True", REASON_ENFORCED, "every pin is enforced at the edge"
    return Verdict(
        uid=str(meta.get("uid")),
        generation=meta.get("generation"),
        status=status,
        reason=reason,
        message=message,
        decided=now,
    )


def shown(status: Mapping[str, Any], verdict: Verdict) -> bool:
    """Whether the peer's status already says `verdict` (status, reason, message, generation)."""
    old = conditions.get_condition(status.get("conditions") or [], condition_types.PINS_USABLE) or {}
    said = (old.get("status"), old.get("reason"), old.get("message"), old.get("observedGeneration"))
    return said == (verdict.status, verdict.reason, verdict.message, verdict.generation)


def with_verdict(items: Sequence[Mapping[str, object]], verdict: Verdict) -> list[conditions.Condition]:
    """`items` with `PinsUsable` set to `verdict`; every other condition as it was."""
    return conditions.set_condition(
        items,
        kind=api.PEER_KIND,
        owner="ingress",
        type_=condition_types.PINS_USABLE,
        status=verdict.status,
        reason=verdict.reason,
        message=verdict.message,
        generation=verdict.generation,
        now=verdict.decided,
    )


def status_patch(status: Mapping[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The status merge patch that shows `verdict` on a peer whose status is `status`; empty if it does."""
    if shown(status, verdict):
        return {}
    return {"conditions": with_verdict(list(status.get("conditions") or []), verdict)}
