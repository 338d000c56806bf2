"""The edge's `PinsUsable` verdict handed to the peer's credentials pass (handlers/pins_handover.py).

Who writes the verdict, decided from what the edge pass listed and what the credentials passes
wrote since: every verdict is written by exactly one of them, a credentials write carries only a
verdict for the peer as it computed it, and no verdict handed over is lost.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from federation_operator.controller.handlers.pins_handover import Handed, PinsHandover
from federation_operator.domain import condition_types
from federation_operator.domain.ingress import pins_usable
from federation_operator.domain.ingress.bundle import PeerWarning

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
PATIENCE = timedelta(seconds=60)
KEY = ("default", "us-east")
UID = "uid-1"
NEW: dict[str, Any] = {}  # a new peer's status: its credentials not judged yet


def peer(
    *, generation: int = 1, suspend: bool = False, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    meta = {"name": KEY[1], "namespace": KEY[0], "uid": UID, "generation": generation}
    return {"metadata": meta, "spec": {"suspend": suspend}, "status": status or {}}


def verdict(*, generation: int = 1, expired: bool = False, at: datetime = NOW) -> pins_usable.Verdict:
    warnings = (
        [PeerWarning(peer=KEY[1], namespace=KEY[0], reason="CertificateExpired", message="pin 0 expired")]
        if expired
        else []
    )
    return pins_usable.decide(peer=peer(generation=generation), warnings=warnings, unserved=None, now=at)


def judged(generation: int = 1) -> dict[str, Any]:
    """A status whose credentials were judged under `generation`."""
    ready = {"type": condition_types.CREDENTIALS_READY, "status": "True", "observedGeneration": generation}
    return {"conditions": [ready]}


def test_a_new_peers_verdict_is_handed_over_and_carried_by_its_credentials_write() -> None:
    handover = PinsHandover(patience=PATIENCE)
    enforced = verdict()
    assert handover.hand_over(KEY, enforced, listed=NEW, now=NOW) is Handed.NOW
    assert handover.carried(KEY, uid=UID, generation=1) == enforced
    assert handover.wrote(KEY, uid=UID, generation=1, delivered=enforced) is None
    # Delivered: nothing is carried any more, and a pass that listed the peer before that write
    # does not write it again.
    assert handover.carried(KEY, uid=UID, generation=1) is None
    assert handover.hand_over(KEY, enforced, listed=NEW, now=NOW) is Handed.DELIVERED


def test_the_edge_writes_itself_once_the_credentials_were_judged_for_this_generation() -> None:
    handover = PinsHandover(patience=PATIENCE)
    assert handover.hand_over(KEY, verdict(), listed=judged(1), now=NOW) is Handed.NO
    assert handover.carried(KEY, uid=UID, generation=1) is None
    # Judged for an older generation only: its credentials pass for this one is still to come.
    assert handover.hand_over(KEY, verdict(generation=2), listed=judged(1), now=NOW) is Handed.NOW


def test_a_credentials_write_since_the_edge_listed_the_peer_leaves_a_new_verdict_to_the_edge() -> None:
    handover = PinsHandover(patience=PATIENCE)
    assert handover.wrote(KEY, uid=UID, generation=1, delivered=None) is None
    # The pass listed the peer before that write: no credentials pass follows to carry this.
    assert handover.hand_over(KEY, verdict(), listed=NEW, now=NOW) is Handed.NO
    assert handover.carried(KEY, uid=UID, generation=1) is None


def test_a_verdict_handed_over_during_a_credentials_write_is_owed_by_that_write() -> None:
    handover = PinsHandover(patience=PATIENCE)
    enforced, expired = verdict(), verdict(expired=True)
    handover.hand_over(KEY, enforced, listed=NEW, now=NOW)
    carried = handover.carried(KEY, uid=UID, generation=1)
    # The write is in flight when the edge's next pass decides otherwise.
    assert handover.hand_over(KEY, expired, listed=NEW, now=NOW) is Handed.NOW
    assert handover.wrote(KEY, uid=UID, generation=1, delivered=carried) == expired
    assert handover.hand_over(KEY, expired, listed=NEW, now=NOW) is Handed.DELIVERED


def test_a_verdict_for_another_generation_is_neither_carried_nor_owed() -> None:
    handover = PinsHandover(patience=PATIENCE)
    handover.hand_over(KEY, verdict(generation=2), listed=NEW, now=NOW)
    assert handover.carried(KEY, uid=UID, generation=1) is None
    assert handover.carried(KEY, uid="another-uid", generation=2) is None
    assert handover.wrote(KEY, uid=UID, generation=1, delivered=None) is None
    assert handover.carried(KEY, uid=UID, generation=2) == verdict(generation=2)


def test_a_verdict_not_delivered_within_the_patience_is_taken_back_by_the_edge() -> None:
    handover = PinsHandover(patience=PATIENCE)
    first = verdict(at=NOW)
    assert handover.hand_over(KEY, first, listed=NEW, now=NOW) is Handed.NOW
    assert handover.hand_over(KEY, verdict(at=NOW + PATIENCE / 2), listed=NEW, now=NOW + PATIENCE / 2) is (
        Handed.BEFORE
    )
    assert handover.carried(KEY, uid=UID, generation=1) is first
    assert handover.hand_over(KEY, verdict(at=NOW + PATIENCE), listed=NEW, now=NOW + PATIENCE) is (
        Handed.TAKEN_BACK
    )
    # Taken back: a credentials write from now on carries nothing the edge writes itself.
    assert handover.carried(KEY, uid=UID, generation=1) is None


def test_a_verdict_shown_on_the_peer_settles_what_was_handed_over() -> None:
    handover = PinsHandover(patience=PATIENCE)
    handover.hand_over(KEY, verdict(expired=True), listed=NEW, now=NOW)
    handover.settle(KEY, listed=judged(1), generation=1)
    assert handover.carried(KEY, uid=UID, generation=1) is None


def test_a_gone_peer_leaves_nothing_behind() -> None:
    handover = PinsHandover(patience=PATIENCE)
    handover.hand_over(KEY, verdict(), listed=NEW, now=NOW)
    handover.forget(KEY)
    assert handover.carried(KEY, uid=UID, generation=1) is None
    handover.wrote(KEY, uid=UID, generation=1, delivered=None)
    handover.forget(KEY)
    # Its credentials write is forgotten too: a peer of the same name starts over.
    assert handover.hand_over(KEY, verdict(), listed=NEW, now=NOW) is Handed.NOW


def test_the_verdict_sets_pins_usable_only_and_keeps_every_other_condition() -> None:
    reachable = {"type": "Reachable", "status": "False", "reason": "Network", "message": "down"}
    status = {"conditions": [reachable, *judged(1)["conditions"]]}
    patch = pins_usable.status_patch(status, verdict(expired=True))
    by_type = {condition["type"]: condition for condition in patch["conditions"]}
    assert by_type["Reachable"] == reachable
    assert by_type[condition_types.CREDENTIALS_READY] == judged(1)["conditions"][0]
    assert by_type[condition_types.PINS_USABLE]["reason"] == "CertificateExpired"
    assert pins_usable.status_patch({"conditions": patch["conditions"]}, verdict(expired=True)) == {}


def test_a_suspended_peer_and_a_missing_provider_have_their_own_verdicts() -> None:
    suspended = pins_usable.decide(peer=peer(suspend=True), warnings=[], unserved=None, now=NOW)
    assert (suspended.status, suspended.reason) == ("Unknown", "Suspended")
    unserved = pins_usable.decide(peer=peer(), warnings=[], unserved="install it", now=NOW)
    assert (unserved.status, unserved.reason, unserved.message) == (
        "False",
        "ProviderNotInstalled",
        "install it",
    )
