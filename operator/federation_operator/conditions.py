"""Kubernetes conditions, computed purely and changed only when something a reader sees changes.

`lastTransitionTime` moves only when `status` flips, as the API conventions ask, so that a
condition rewritten with the same value produces no status write at all.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal, TypedDict

Status = Literal["True", "False", "Unknown"]


class Condition(TypedDict, total=False):
    type: str
    status: Status
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, object]],
    *,
    type_: str,
    status: Status,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return a new list with `type_` set; the transition time is kept when the status is the same."""
    result: list[Condition] = []
    previous: Mapping[str, object] | None = None
    for condition in conditions:
        if condition.get("type") == type_:
            previous = condition
        else:
            result.append(Condition(**condition))  # type: ignore[typeddict-item]
    transition = rfc3339(now)
    if previous is not None and previous.get("status") == status:
        transition = str(previous.get("lastTransitionTime") or transition)
    new = Condition(type=type_, status=status, reason=reason, message=message, lastTransitionTime=transition)
    if generation is not None:
        new["observedGeneration"] = generation
    result.append(new)
    return sorted(result, key=lambda condition: condition.get("type", ""))


def get_condition(conditions: Sequence[Mapping[str, object]], type_: str) -> Mapping[str, object] | None:
    return next((condition for condition in conditions if condition.get("type") == type_), None)


def is_true(conditions: Sequence[Mapping[str, object]], type_: str) -> bool:
    condition = get_condition(conditions, type_)
    return condition is not None and condition.get("status") == "True"
