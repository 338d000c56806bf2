"""The kstatus conditions the pure status builders write (docs/gitops.md, "Flux and kstatus"),
judged by the kstatus rules in tests/harness/kstatus.py."""

from datetime import UTC, datetime, timedelta

import pytest

from federation_operator.domain import conditions, issuance
from federation_operator.domain.credentials import readiness
from federation_operator.domain.reachability import Observation, PingResult, heartbeat_status
from tests.harness import kstatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SLOW = timedelta(seconds=1)


def with_generation(status: dict[str, object], generation: int) -> dict[str, object]:
    return {"metadata": {"generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("action", "reason", "expected"),
    [
        (issuance.Action.ISSUE, "Issuing", kstatus.IN_PROGRESS),
        (issuance.Action.BLOCKED, "SecretConflict", kstatus.FAILED),
        (issuance.Action.BLOCKED, "SecretMissing", kstatus.FAILED),
    ],
)
def test_certificate_without_a_certificate_is_in_progress_or_failed(
    action: issuance.Action, reason: str, expected: str
) -> None:
    status = issuance.cert_status(
        old={}, spec=None, assessment=issuance.Assessment(action, reason, "why"), generation=3, now=NOW
    )
    obj = with_generation(status, 3)
    assert kstatus.compute(obj) == expected
    assert kstatus.violations(obj) == []
    assert {c["type"] for c in status["conditions"]} == {
        "Ready",
        "Reconciling" if expected == kstatus.IN_PROGRESS else "Stalled",
    }


def test_reconciling_set_for_a_newer_spec_survives_an_older_heartbeat() -> None:
    old = {
        "observedGeneration": 2,
        "conditions": [
            {
                "type": "CredentialsReady",
                "status": "True",
                "reason": "CredentialsReady",
                "observedGeneration": 3,
            },
            {"type": "Reconciling", "status": "True", "reason": "WaitingForPing", "observedGeneration": 3},
        ],
    }
    ping = PingResult(ok=True, time=NOW, latency=timedelta(milliseconds=20))
    stale = heartbeat_status(
        old, Observation(result=ping, slow_threshold=SLOW, last_success=NOW, generation=2), NOW
    )
    assert conditions.get_condition(stale.status["conditions"], "Reconciling") is not None
    assert "observedGeneration" not in stale.status  # never lowered, and 2 is already there
    current = heartbeat_status(
        old, Observation(result=ping, slow_threshold=SLOW, last_success=NOW, generation=3), NOW
    )
    assert conditions.get_condition(current.status["conditions"], "Reconciling") is None
    assert current.status["observedGeneration"] == 3
    assert current.write


def test_the_credentials_handler_drops_reconciling_once_the_heartbeat_judged_this_generation() -> None:
    ours = readiness.kstatus_conditions(
        [
            {
                "type": "CredentialsReady",
                "status": "True",
                "reason": "CredentialsReady",
                "observedGeneration": 4,
            }
        ],
        generation=4,
        now=NOW,
    )
    assert conditions.get_condition(ours, "Reconciling") is not None
    behind = [{"type": "Ready", "status": "True", "reason": "Reachable", "observedGeneration": 3}]
    assert conditions.get_condition(
        readiness.rebase_owned_conditions(behind, ours, generation=4), "Reconciling"
    )
    judged = [{"type": "Ready", "status": "True", "reason": "Reachable", "observedGeneration": 4}]
    assert not conditions.get_condition(
        readiness.rebase_owned_conditions(judged, ours, generation=4), "Reconciling"
    )


def test_a_credential_problem_is_stalled_and_not_reconciling() -> None:
    items = readiness.kstatus_conditions(
        [
            {
                "type": "CredentialsReady",
                "status": "False",
                "reason": "SecretNotFound",
                "message": "m",
                "observedGeneration": 1,
            }
        ],
        generation=1,
        now=NOW,
    )
    assert {c["type"]: c["status"] for c in items} == {"CredentialsReady": "False", "Stalled": "True"}
