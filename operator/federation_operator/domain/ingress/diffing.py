"""Write only when something we own differs: no write war with other controllers.

A live object carries much the operator never set: `resourceVersion`, `uid`, `managedFields`,
`status`, defaults the API server filled in (an HTTPRoute backend's `weight: 1`, a policy
reference's `group`), labels and annotations other tools add. Comparing whole objects would make
the operator rewrite on every pass, and fight any controller that annotates our objects.
So only the fields we set are compared: our labels, annotations and owner references (a reference
of our owners' kind that we no longer want is stale: it goes), and the body. Payloads we own
whole (`data`, `binaryData`, `type`) must be equal; in `spec` a live field we did not set is a
default and ignored. Pure: no I/O.
"""

from collections.abc import Mapping, Sequence
from typing import Any

# Owned whole: an extra key in the live object is drift, not a default.
_EXACT_FIELDS = frozenset({"data", "binaryData", "stringData", "type", "immutable"})
# Never ours: written by the API server or by controllers.
_IGNORED_FIELDS = frozenset({"apiVersion", "kind", "metadata", "status"})


def _covers(live: Any, desired: Any) -> bool:
    """True when `live` holds every value of `desired` (extra live mapping keys are defaults)."""
    if isinstance(desired, Mapping):
        if live is None:
            return not desired
        if not isinstance(live, Mapping):
            return False
        return all(_covers(live.get(key), value) for key, value in desired.items())
    if isinstance(desired, list):
        if live is None:
            return not desired
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(_covers(item, wanted) for item, wanted in zip(live, desired, strict=True))
    return bool(live == desired)


def _owners_present(live: list[Mapping[str, Any]], desired: list[Mapping[str, Any]]) -> bool:
    # Owners are matched by uid: the garbage collector and other controllers may add theirs.
    live_uids = {ref.get("uid"): ref for ref in live}
    return all(ref.get("uid") in live_uids and _covers(live_uids[ref.get("uid")], ref) for ref in desired)


def stale_owners(
    live: Sequence[Mapping[str, Any]], desired: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Live owner references of a kind we set that we no longer want: ours, gone stale.

    A pass that listed a peer just before it was deleted can write that peer back as an owner
    after the garbage collector removed it; the next pass must take it out again, or it stays.
    References of other kinds are someone else's and are left alone.
    """
    kinds = {(ref.get("apiVersion"), ref.get("kind")) for ref in desired}
    wanted = {ref.get("uid") for ref in desired}
    return [
        ref
        for ref in live
        if (ref.get("apiVersion"), ref.get("kind")) in kinds and ref.get("uid") not in wanted
    ]


def needs_write(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """True when `live` (None: absent) lacks something `desired` sets."""
    if live is None:
        return True
    desired_meta: Mapping[str, Any] = desired.get("metadata", {})
    live_meta: Mapping[str, Any] = live.get("metadata") or {}
    for key in ("labels", "annotations"):
        if not _covers(live_meta.get(key) or {}, desired_meta.get(key) or {}):
            return True
    live_owners, desired_owners = (
        live_meta.get("ownerReferences") or [],
        desired_meta.get("ownerReferences") or [],
    )
    if not _owners_present(live_owners, desired_owners) or stale_owners(live_owners, desired_owners):
        return True
    for key, value in desired.items():
        if key in _IGNORED_FIELDS:
            continue
        if key in _EXACT_FIELDS:
            if live.get(key) != value:
                return True
        elif not _covers(live.get(key), value):
            return True
    return False
