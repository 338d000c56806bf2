"""Kubernetes conditions, computed purely and changed only when something a reader sees changes.

`lastTransitionTime` moves only when `status` flips, as the API conventions ask, so that a
condition rewritten with the same value produces no status write at all.

The conditions follow kstatus (docs/gitops.md): `Ready` carries `observedGeneration`;
`Reconciling` is True while the operator has not yet judged the object under its current spec,
`Stalled` is True while it cannot make progress without the user; both are abnormal-true and
are removed, not set False, when they do not apply.

Every condition is set through `set_condition` (or `set_or_remove`), which refuses a type, reason
or writer that `condition_types.TABLE` does not list.
"""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Literal, TypedDict

from federation_operator.domain import condition_types
from federation_operator.domain.condition_types import Owner
from federation_operator.domain.times import rfc3339 as rfc3339  # re-exported: conditions carry times

Status = Literal["True", "False", "Unknown"]


class Condition(TypedDict, total=False):
    type: str
    status: Status
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


def set_condition(
    conditions: Sequence[Mapping[str, object]],
    *,
    kind: str,
    owner: Owner,
    type_: str,
    status: Status,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return a new list with `type_` set; the transition time is kept when the status is the same.

    Raises condition_types.UnknownCondition unless `owner` owns `type_` on `kind` with `reason`."""
    condition_types.check(kind=kind, owner=owner, type_=type_, reason=reason)
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


def remove_condition(conditions: Sequence[Mapping[str, object]], type_: str) -> list[Condition]:
    """A new list without `type_` (for the abnormal-true kstatus conditions, which go when done)."""
    return [Condition(**condition) for condition in conditions if condition.get("type") != type_]  # type: ignore[typeddict-item]


def set_or_remove(
    conditions: Sequence[Mapping[str, object]],
    *,
    kind: str,
    owner: Owner,
    type_: str,
    active: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """`type_` set True with reason and message when `active`, removed otherwise (kstatus' way)."""
    if not active:
        return remove_condition(conditions, type_)
    return set_condition(
        conditions,
        kind=kind,
        owner=owner,
        type_=type_,
        status="True",
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )


def get_condition(conditions: Sequence[Mapping[str, object]], type_: str) -> Mapping[str, object] | None:
    return next((condition for condition in conditions if condition.get("type") == type_), None)


def is_true(conditions: Sequence[Mapping[str, object]], type_: str) -> bool:
    condition = get_condition(conditions, type_)
    return condition is not None and condition.get("status") == "True"


def merge_owned(
    fresh: Sequence[Mapping[str, object]], ours: Sequence[Mapping[str, object]], *, types: Collection[str]
) -> list[Condition]:
    """`fresh` conditions with those of `types` taken from `ours`: each handler owns its types.

    Several handlers write conditions of one object; a merge patch replaces the whole list, so a
    writer that lost a race rebases its own conditions onto the list it has just re-read.
    """
    kept = [Condition(**condition) for condition in fresh if condition.get("type") not in types]  # type: ignore[typeddict-item]
    mine = [Condition(**condition) for condition in ours if condition.get("type") in types]  # type: ignore[typeddict-item]
    return sorted(kept + mine, key=lambda condition: condition.get("type", ""))
