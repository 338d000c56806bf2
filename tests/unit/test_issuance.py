from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from federation_operator.domain import api, certs, issuance
from federation_operator.domain.issuance import Action, SecretObservation

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SPEC = issuance.parse_cert_spec({}, name="eu", namespace="fed")
ISSUED = certs.issue_certificate(subject="fed/eu", validity=SPEC.validity, now=NOW)


def secret(
    *, uid: str = "uid-1", issued: certs.IssuedCertificate = ISSUED, **overrides: Any
) -> dict[str, Any]:
    body = issuance.build_cert_secret(spec=SPEC, cert_name="eu", cert_uid=uid, namespace="fed", issued=issued)
    body.update(overrides)
    return body


def observe(body: dict[str, Any] | None) -> SecretObservation:
    return issuance.observe_cert_secret(body, cert_name="eu", cert_uid="uid-1")


def test_spec_defaults_follow_the_design() -> None:
    assert SPEC.validity == timedelta(hours=2160)
    assert SPEC.algorithm is certs.Algorithm.ECDSA
    assert SPEC.secret_name == "eu-tls"
    assert SPEC.subject == "fed/eu"
    assert SPEC.renew_before is None


@pytest.mark.parametrize(
    "spec",
    [{"duration": "90d"}, {"duration": "1h", "renewBefore": "2h"}, {"privateKey": {"algorithm": "DSA"}}],
)
def test_invalid_specs_are_reported_not_raised_elsewhere(spec: dict[str, Any]) -> None:
    with pytest.raises(issuance.InvalidCertSpec):
        issuance.parse_cert_spec(spec, name="eu", namespace="fed")


def test_first_time_with_no_secret_issues() -> None:
    result = issuance.assess(spec=SPEC, status={}, observed=observe(None), reissue_request=None)
    assert result.action is Action.ISSUE


def test_our_secret_is_adopted_even_when_status_was_lost() -> None:
    result = issuance.assess(spec=SPEC, status={}, observed=observe(secret()), reissue_request=None)
    assert result.action is Action.REPORT
    assert result.info is not None
    assert result.info.thumbprint == ISSUED.info.thumbprint


def test_a_deleted_secret_is_reported_and_not_silently_reissued() -> None:
    status = {"thumbprint": ISSUED.info.thumbprint}
    result = issuance.assess(spec=SPEC, status=status, observed=observe(None), reissue_request=None)
    assert (result.action, result.reason) == (Action.BLOCKED, "SecretMissing")
    assert api.ANNOTATION_REISSUE in result.message
    again = issuance.assess(spec=SPEC, status=status, observed=observe(None), reissue_request="r1")
    assert again.action is Action.ISSUE


def test_a_secret_of_someone_else_is_never_overwritten() -> None:
    foreign = secret(uid="other-uid")
    result = issuance.assess(spec=SPEC, status={}, observed=observe(foreign), reissue_request="r1")
    assert (result.action, result.reason) == (Action.BLOCKED, "SecretConflict")


def test_one_reissue_request_is_answered_exactly_once() -> None:
    done = secret(issued=ISSUED)
    done["metadata"]["annotations"][api.ANNOTATION_REISSUED_FOR] = "r1"
    status = {"thumbprint": ISSUED.info.thumbprint}
    again = issuance.assess(spec=SPEC, status=status, observed=observe(done), reissue_request="r1")
    assert again.action is Action.REPORT
    fresh = issuance.assess(spec=SPEC, status=status, observed=observe(done), reissue_request="r2")
    assert fresh.action is Action.ISSUE


def test_a_stale_status_thumbprint_does_not_make_our_secret_look_tampered() -> None:
    stale = {"thumbprint": "sha256:" + "0" * 64}
    result = issuance.assess(spec=SPEC, status=stale, observed=observe(secret()), reissue_request=None)
    assert result.action is Action.REPORT


def test_tampering_is_detected() -> None:
    other = certs.issue_certificate(subject="x", validity=timedelta(days=1), now=NOW)
    swapped_key = secret()
    swapped_key["data"]["tls.key"] = secret(issued=other)["data"]["tls.key"]
    swapped_pair = secret()
    swapped_pair["data"] = secret(issued=other)["data"]  # a consistent pair, but not the one we issued
    status = {"thumbprint": ISSUED.info.thumbprint}
    for body in (swapped_key, secret(type="Opaque"), swapped_pair):
        result = issuance.assess(spec=SPEC, status=status, observed=observe(body), reissue_request=None)
        assert (result.action, result.reason) == (Action.BLOCKED, "SecretTampered"), body.get("type")
        assert "PRIVATE KEY" not in result.message


def test_status_publishes_public_facts_only_and_is_stable() -> None:
    report = issuance.assess(spec=SPEC, status={}, observed=observe(secret()), reissue_request=None)
    status = issuance.cert_status(old={}, spec=SPEC, assessment=report, generation=1, now=NOW)
    assert status["thumbprint"] == ISSUED.info.thumbprint
    assert status["certificate"] == ISSUED.info.pem
    # A third of the whole lifetime (90 days plus the 5-minute backdate) before notAfter.
    assert status["renewalTime"] == "2027-01-27T11:58:20Z"
    assert status["observedGeneration"] == 1
    assert "PRIVATE" not in repr(status)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    later = issuance.cert_status(
        old=status, spec=SPEC, assessment=report, generation=1, now=NOW + timedelta(hours=1)
    )
    assert later == status  # nothing a reader sees changed: no write


def test_expiring_turns_true_after_renewal_time_and_ready_false_after_not_after() -> None:
    report = issuance.assess(spec=SPEC, status={}, observed=observe(secret()), reissue_request=None)
    due = issuance.cert_status(
        old={}, spec=SPEC, assessment=report, generation=1, now=NOW + timedelta(days=61)
    )
    conditions = {c["type"]: c for c in due["conditions"]}
    assert (conditions["Expiring"]["status"], conditions["Ready"]["status"]) == ("True", "True")
    gone = issuance.cert_status(
        old=due, spec=SPEC, assessment=report, generation=1, now=NOW + timedelta(days=91)
    )
    conditions = {c["type"]: c for c in gone["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "Expired")
