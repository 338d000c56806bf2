"""`PinsUsable` handed from the edge pass to the peer's credentials pass: one status write, not two.

A new peer (or a peer whose spec changed) gets `PinsUsable` from its namespace's edge pass and
`CredentialsReady` from its own credentials pass, each once it knows: the edge after its objects
are written, the credentials after its Secrets are. Written apart, that is two status writes and
two watch events per new peer, and at creation they raced each other, kopf's finalizer and
the first heartbeat, all on one object within a second (docs/benchmarks.md, "A bulk apply").

So the edge pass hands its verdict over while the peer's credentials have not been judged under
its current generation: a credentials pass is then still to come, or in flight, and it carries
the verdict in its own status write (`carried`, asked again on every attempt of that write) or,
if the verdict came while its write was in flight, writes it right after (`wrote`). The edge
pass writes the verdict itself when no credentials pass is coming: the credentials were judged
for this generation already (in the listed status, or by a write since the pass listed), or a
verdict handed over was not delivered within `patience` (a credentials pass that keeps failing
before it writes). The meaning is the edge's alone either way: a verdict exists only once the
pass that decided it has written the edge objects.

Stale writes cannot win: both writers patch with the resourceVersion their status came from,
and a write computed before the other one landed fails with 409 and is computed again.
"""

import datetime
import enum
from collections.abc import Mapping
from typing import Any

from federation_operator.adapters.k8s import client as k8s
from federation_operator.adapters.k8s.resources import FEDERATION_PEERS
from federation_operator.adapters.k8s.status import patch_status
from federation_operator.domain.heartbeat_schedule import credentials_judged
from federation_operator.domain.ingress import pins_usable
from federation_operator.domain.ingress.pins_usable import Verdict

# A peer: (namespace, name).
Key = tuple[str, str]


class Handed(enum.Enum):
    """What the edge pass does with a verdict its peer's status does not show yet."""

    NOW = "handed over now"  # the credentials pass writes it; the edge announces it
    BEFORE = "handed over before"  # an earlier pass handed it over; still to be delivered
    DELIVERED = "delivered"  # a credentials write since the pass listed the peer carried it
    NO = "not handed over"  # the edge writes it and announces it
    TAKEN_BACK = "taken back"  # handed over and announced, not delivered in time: the edge writes it


class PinsHandover:
    """The verdicts handed over and not yet delivered, for one operator instance."""

    def __init__(self, *, patience: datetime.timedelta) -> None:
        self.patience = patience
        self._pending: dict[Key, Verdict] = {}
        # Peers whose credentials this operator wrote for (uid, generation) since their namespace's
        # edge pass last listed them (a pass that lists them judged drops them), with the verdict
        # that write delivered: no credentials pass is coming for that generation.
        self._judged: dict[Key, tuple[str, int | None, Verdict | None]] = {}

    def hand_over(
        self, key: Key, verdict: Verdict, *, listed: Mapping[str, Any], now: datetime.datetime
    ) -> Handed:
        """The edge pass decided `verdict`, which `listed` (the peer's status as the pass listed
        it) does not show: hand it to the credentials pass, or write it?"""
        pending = self._pending.pop(key, None)
        if credentials_judged(listed, generation=verdict.generation):
            self._judged.pop(key, None)
            return Handed.NO
        judged = self._judged.get(key)
        if judged is not None and judged[:2] == (verdict.uid, verdict.generation):
            # The pass listed the peer before its credentials were written.
            return Handed.DELIVERED if judged[2] == verdict else Handed.NO
        if pending is not None and pending == verdict:
            if now - pending.decided >= self.patience:
                return Handed.TAKEN_BACK
            self._pending[key] = pending
            return Handed.BEFORE
        self._pending[key] = verdict
        return Handed.NOW

    def settle(self, key: Key, *, listed: Mapping[str, Any], generation: int | None) -> None:
        """The edge pass found its verdict shown on the peer: nothing is owed for it any more."""
        self._pending.pop(key, None)
        if credentials_judged(listed, generation=generation):
            self._judged.pop(key, None)

    def carried(self, key: Key, *, uid: str, generation: int | None) -> Verdict | None:
        """The verdict a credentials write of this peer (computed for uid and generation) carries."""
        verdict = self._pending.get(key)
        if verdict is None or (verdict.uid, verdict.generation) != (uid, generation):
            return None
        return verdict

    def wrote(
        self, key: Key, *, uid: str, generation: int | None, delivered: Verdict | None
    ) -> Verdict | None:
        """A credentials write of this peer (uid, generation) succeeded, carrying `delivered`;
        the verdict it still owes (handed over while that write was in flight), if any."""
        owed = None
        pending = self._pending.get(key)
        # Another generation's verdict stays: its own credentials pass carries it, or the edge's
        # next pass decides again.
        if pending is not None and (pending.uid, pending.generation) == (uid, generation):
            del self._pending[key]
            owed = None if pending == delivered else pending
        self._judged[key] = (uid, generation, owed or delivered)
        return owed

    def forget(self, key: Key) -> None:
        """The peer is gone."""
        self._pending.pop(key, None)
        self._judged.pop(key, None)


async def write_verdict(
    kube: k8s.Kube, peer: Mapping[str, Any], verdict: Verdict, *, attempts: int
) -> k8s.Obj | None:
    """`PinsUsable` alone, onto the peer's freshest status; None when it was shown already."""
    return await patch_status(
        kube,
        FEDERATION_PEERS,
        peer,
        lambda fresh: pins_usable.status_patch(fresh, verdict),
        attempts=attempts,
    )
