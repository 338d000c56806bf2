"""kstatus, the status reading Flux (and `kubectl wait`-style tools built on cli-utils) apply to
custom resources, written from its contract (sigs.k8s.io/cli-utils, pkg/kstatus/status, generic
rules) and not from our code:

1. `metadata.deletionTimestamp` set: Terminating;
2. `status.observedGeneration` present and not `metadata.generation`: InProgress;
3. a condition `Reconciling` with status True: InProgress; `Stalled` True: Failed;
4. otherwise: Current.

`violations` lists what our statuses promise beyond that (docs/gitops.md, "Flux and kstatus").
"""

from collections.abc import Mapping
from typing import Any

TERMINATING, IN_PROGRESS, FAILED, CURRENT = "Terminating", "InProgress", "Failed", "Current"


def conditions_of(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or []}


def compute(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return TERMINATING
    status = obj.get("status") or {}
    generation = metadata.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return IN_PROGRESS
    found = conditions_of(obj)
    if (found.get("Reconciling") or {}).get("status") == "True":
        return IN_PROGRESS
    if (found.get("Stalled") or {}).get("status") == "True":
        return FAILED
    return CURRENT


def violations(obj: Mapping[str, Any]) -> list[str]:
    """Our promises on any status the operator wrote (an object with a non-empty status)."""
    problems = []
    status = obj.get("status") or {}
    found = conditions_of(obj)
    reconciling = (found.get("Reconciling") or {}).get("status") == "True"
    if not isinstance(status.get("observedGeneration"), int) and not reconciling:
        problems.append("status.observedGeneration is missing and Reconciling is not True")
    for type_, condition in found.items():
        if not isinstance(condition.get("observedGeneration"), int):
            problems.append(f"condition {type_} has no observedGeneration")
        if condition.get("status") not in ("True", "False", "Unknown"):
            problems.append(f"condition {type_} has status {condition.get('status')!r}")
        if not condition.get("reason") or not condition.get("lastTransitionTime"):
            problems.append(f"condition {type_} lacks a reason or lastTransitionTime")
    stalled = (found.get("Stalled") or {}).get("status") == "True"
    ready = (found.get("Ready") or {}).get("status")
    if reconciling and stalled:
        problems.append("Reconciling and Stalled are both True")
    if stalled and ready == "True":
        problems.append("Stalled is True while Ready is True")
    if reconciling and ready == "True":
        problems.append("Reconciling is True while Ready is True")
    if compute(obj) == CURRENT and "Ready" not in found:
        problems.append("kstatus Current without a Ready condition")
    return problems
