"""The conditions the credentials handler owns on a FederationPeer, its status patch, and when
its periodic check must read the peer again.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from federation_operator.domain import api, condition_types, conditions
from federation_operator.domain.times import parse_rfc3339

# A peer: (namespace, name).
Key = tuple[str, str]

# The conditions this handler owns on a FederationPeer; `Ready` and `Reachable` are the heartbeat's.
OWNED_CONDITIONS: Final = condition_types.owned_by(api.PEER_KIND, "credentials")


def kstatus_conditions(
    items: Sequence[Mapping[str, object]], *, generation: int | None, now: datetime
) -> list[conditions.Condition]:
    """`Stalled` while the credentials need the user (every credential problem does: a Secret to
    create, fix or give back); otherwise `Reconciling` until the heartbeat has judged the link once
    (it writes `Ready` and `status.observedGeneration`, and removes `Reconciling`)."""
    credentials = conditions.get_condition(items, condition_types.CREDENTIALS_READY) or {}
    stalled = credentials.get("status") == "False"
    result = conditions.set_or_remove(
        items,
        kind=api.PEER_KIND,
        owner="credentials",
        type_=condition_types.STALLED,
        active=stalled,
        reason=str(credentials.get("reason")),
        message=str(credentials.get("message")),
        generation=generation,
        now=now,
    )
    return conditions.set_or_remove(
        result,
        kind=api.PEER_KIND,
        owner="credentials",
        type_=condition_types.RECONCILING,
        # Stalled wins: nothing is in progress until the user acts.
        active=not stalled and not _ready_for(result, generation),
        reason="WaitingForPing",
        message="waiting for the heartbeat to judge the link under this spec",
        generation=generation,
        now=now,
    )


def _ready_for(items: Sequence[Mapping[str, object]], generation: int | None) -> bool:
    ready = conditions.get_condition(items, condition_types.READY)
    return ready is not None and (generation is None or ready.get("observedGeneration") == generation)


def rebase_owned_conditions(
    fresh: Sequence[Mapping[str, object]], ours: Sequence[Mapping[str, object]], *, generation: int | None
) -> list[conditions.Condition]:
    """Our conditions onto a fresh read; `Reconciling` goes if the heartbeat has judged this
    generation meanwhile (a fresh `Ready` is only ever newer than the one ours was computed from)."""
    merged = conditions.merge_owned(fresh, ours, types=OWNED_CONDITIONS)
    if _ready_for(fresh, generation):
        return conditions.remove_condition(merged, condition_types.RECONCILING)
    return merged


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning `old` into `new` for the keys in `new` (None removes); empty if equal."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if value == before or (value is None and before is None):
            continue
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = {k: None for k in before if k not in value}
            nested.update({k: v for k, v in value.items() if before.get(k) != v})
            patch[key] = nested
        else:
            patch[key] = value
    return patch


# `check_deadline`'s answer for "due on every check": earlier than any clock reading.
DUE_NOW: Final = datetime.min.replace(tzinfo=UTC)


def check_deadline(status: Mapping[str, Any], *, generation: int | None) -> datetime | None:
    """When a peer's credentials next need a look, from its status alone (None: not until the safety net).

    Changes announce themselves: a spec or annotation edit runs the update handler, a Secret edit
    or deletion the Secret event handler. What no event announces is time passing: a handoff's
    TTL and a rotation overlap ending. So a steady, Ready peer is due at the earliest of those
    deadlines (as its status shows them); a peer whose credentials are not Ready, or not judged
    for its current generation, or whose status holds an unreadable deadline, is due on every
    check (`DUE_NOW`). The periodic sweep keeps only this one value per peer, not its status.
    """
    ready = conditions.get_condition(status.get("conditions") or [], condition_types.CREDENTIALS_READY) or {}
    if ready.get("status") != "True" or ready.get("observedGeneration") != generation:
        return DUE_NOW
    texts = (
        (status.get("handoff") or {}).get("expiresAt"),
        (status.get("inbound") or {}).get("previousExpiresAt"),
        (status.get("outbound") or {}).get("previousExpiresAt"),
    )
    earliest: datetime | None = None
    for text in texts:
        if text is None:
            continue
        deadline = parse_rfc3339(str(text))
        if deadline is None:
            return DUE_NOW
        earliest = deadline if earliest is None else min(earliest, deadline)
    return earliest


def check_due(
    status: Mapping[str, Any],
    *,
    generation: int | None,
    now: datetime,
    last_full: datetime | None,
    full_every: timedelta,
) -> bool:
    """Whether the periodic credentials check must read the peer and its Secrets now: when
    `check_deadline` has passed, and at least every `full_every` in case an event was missed.
    Reading every steady peer on every check would cost several GETs per peer per interval for
    nothing (docs/credentials.md)."""
    deadline = check_deadline(status, generation=generation)
    return due_by(deadline, now=now, last_full=last_full, full_every=full_every)


def due_by(
    deadline: datetime | None, *, now: datetime, last_full: datetime | None, full_every: timedelta
) -> bool:
    """`check_due` from a deadline `check_deadline` computed earlier."""
    if last_full is None or now - last_full >= full_every:
        return True
    return deadline is not None and deadline <= now


def pick_due(
    peers: Mapping[Key, tuple[datetime, datetime | None]],
    *,
    now: datetime,
    interval: timedelta,
    full_every: timedelta,
) -> list[tuple[Key, bool]]:
    """Which peers the periodic sweep reads now, each with whether to read it from the API
    (`fresh`: past the safety net) rather than the watch's cache.

    `peers` maps each peer to (when it was last read in full, its `check_deadline`). A peer
    read less than one `interval` ago waits (its status event may not have arrived yet). A peer
    whose deadline passed is read. Of the peers due by the safety net alone, the oldest
    1/(full_every/interval) are read: peers read together at startup would otherwise all come
    back in one sweep, a burst every period instead of an even trickle.
    """
    picked: list[tuple[Key, bool]] = []
    overdue: list[tuple[datetime, Key]] = []
    for key, (last, deadline) in peers.items():
        if now - last < interval:
            continue
        fresh = now - last >= full_every
        if deadline is not None and deadline <= now:
            picked.append((key, fresh))
        elif fresh:
            overdue.append((last, key))
    sweeps = max(1, round(full_every / interval))
    share = -(-len(peers) // sweeps)
    picked.extend((key, True) for _, key in sorted(overdue)[:share])
    return picked
