from datetime import UTC, datetime, timedelta

from federation_operator.domain import api, conditions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_transition_time_moves_only_when_status_flips() -> None:
    first = conditions.set_condition(
        [],
        kind=api.PEER_KIND,
        owner="heartbeat",
        type_="Ready",
        status="True",
        reason="Reachable",
        message="a",
        generation=1,
        now=T0,
    )
    same = conditions.set_condition(
        first,
        kind=api.PEER_KIND,
        owner="heartbeat",
        type_="Ready",
        status="True",
        reason="Slow",
        message="b",
        generation=1,
        now=T0 + timedelta(hours=1),
    )
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["reason"] == "Slow"
    flipped = conditions.set_condition(
        same,
        kind=api.PEER_KIND,
        owner="heartbeat",
        type_="Ready",
        status="False",
        reason="Network",
        message="c",
        generation=1,
        now=T0 + timedelta(hours=2),
    )
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T02:00:00Z"


def test_other_condition_types_are_kept() -> None:
    base = conditions.set_condition(
        [],
        kind=api.PEER_KIND,
        owner="heartbeat",
        type_="Reachable",
        status="True",
        reason="Reachable",
        message="",
        generation=None,
        now=T0,
    )
    both = conditions.set_condition(
        base,
        kind=api.PEER_KIND,
        owner="heartbeat",
        type_="Ready",
        status="False",
        reason="Slow",
        message="",
        generation=2,
        now=T0,
    )
    assert [c["type"] for c in both] == ["Reachable", "Ready"]
    assert conditions.is_true(both, "Reachable")
    assert not conditions.is_true(both, "Ready")


def test_a_writer_rebases_only_its_own_condition_types_onto_a_fresh_list() -> None:
    fresh = conditions.set_condition(
        [],
        kind=api.PEER_KIND,
        owner="heartbeat",
        type_="Reachable",
        status="True",
        reason="Reachable",
        message="",
        generation=1,
        now=T0,
    )
    fresh = conditions.set_condition(
        fresh,
        kind=api.PEER_KIND,
        owner="credentials",
        type_="CredentialsReady",
        status="False",
        reason="SecretMissing",
        message="",
        generation=1,
        now=T0,
    )
    ours = conditions.set_condition(
        [],
        kind=api.PEER_KIND,
        owner="credentials",
        type_="CredentialsReady",
        status="True",
        reason="CredentialsReady",
        message="",
        generation=1,
        now=T0,
    )
    merged = conditions.merge_owned(fresh, ours, types={"CredentialsReady"})
    assert {c["type"]: c["reason"] for c in merged} == {
        "CredentialsReady": "CredentialsReady",
        "Reachable": "Reachable",
    }
