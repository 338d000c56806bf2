"""Condition types live in one table (`domain/condition_types.py`), and nothing writes outside it.

The writer refuses a type, a reason or an owner the table does not list, so every handler test
that reaches a condition write fails on an unlisted one. Here: that refusal itself; that every
reason a writer can produce (read from the source: credential problems, issuance assessments,
ingress warnings, failure factors) is listed for the condition it lands on; and that docs/api.md
shows the table as it is.
"""

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from federation_operator.domain import api, condition_types, conditions, reachability
from federation_operator.domain.condition_types import TABLE, UnknownCondition
from federation_operator.domain.factors import Factor

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "federation_operator"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def reasons_of(kind: str, type_: str) -> frozenset[str]:
    return next(row.reasons for row in TABLE if (row.kind, row.type) == (kind, type_))


def write(*, kind: str, owner: condition_types.Owner, type_: str, reason: str) -> list[conditions.Condition]:
    return conditions.set_condition(
        [],
        kind=kind,
        owner=owner,
        type_=type_,
        status="True",
        reason=reason,
        message="",
        generation=1,
        now=NOW,
    )


def test_the_writer_writes_what_the_table_lists() -> None:
    written = write(kind=api.PEER_KIND, owner="ingress", type_="PinsUsable", reason="Enforced")
    assert [(c["type"], c["reason"]) for c in written] == [("PinsUsable", "Enforced")]


@pytest.mark.parametrize(
    ("kind", "owner", "type_", "reason", "complaint"),
    [
        (api.PEER_KIND, "ingress", "EdgeReady", "Enforced", "no condition type"),
        (api.PEER_KIND, "ingress", "PinsUsable", "Fine", "no reason"),
        (api.PEER_KIND, "credentials", "Ready", "Reachable", "written by heartbeat"),
        (api.CERT_KIND, "heartbeat", "Reachable", "Reachable", "no condition type"),
    ],
)
def test_the_writer_refuses_a_type_reason_or_owner_not_in_the_table(
    kind: str, owner: condition_types.Owner, type_: str, reason: str, complaint: str
) -> None:
    with pytest.raises(UnknownCondition, match=complaint):
        write(kind=kind, owner=owner, type_=type_, reason=reason)


def test_set_or_remove_refuses_too_but_removing_needs_no_reason() -> None:
    with pytest.raises(UnknownCondition):
        conditions.set_or_remove(
            [], kind=api.PEER_KIND, owner="credentials", type_="Stalled", active=True,
            reason="Whatever", message="", generation=1, now=NOW,
        )  # fmt: skip
    assert conditions.set_or_remove(
        [], kind=api.PEER_KIND, owner="credentials", type_="Stalled", active=False,
        reason="", message="", generation=1, now=NOW,
    ) == []  # fmt: skip


def test_each_type_has_one_writer_per_kind() -> None:
    keys = [(row.kind, row.type) for row in TABLE]
    assert len(keys) == len(set(keys))


def _string_args(path: Path, call: str, position: int) -> set[str]:
    """Literal strings passed at `position` to calls of `call` in `path` (found by reading the source)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == call:
            args = node.args
            if len(args) > position and isinstance(args[position], ast.Constant):
                found.add(str(args[position].value))
    return found


def test_every_credential_problem_is_a_reason_of_credentials_ready_stalled_and_ready() -> None:
    problems = set()
    for path in (PACKAGE / "domain" / "credentials").glob("*.py"):
        problems |= _string_args(path, "Problem", 0)
    assert problems  # the scan found the problems
    for type_ in ("CredentialsReady", "Stalled", "Ready"):
        assert problems <= reasons_of(api.PEER_KIND, type_), type_


def test_every_issuance_assessment_is_a_reason_of_the_certificates_ready() -> None:
    reasons = _string_args(PACKAGE / "domain" / "issuance.py", "Assessment", 1)
    reasons |= _string_args(PACKAGE / "controller" / "handlers" / "certs.py", "Assessment", 1)
    assert {"Issuing", "Issued", "SecretTampered", "InvalidSpec"} <= reasons
    assert reasons <= reasons_of(api.CERT_KIND, "Ready")


def test_every_ingress_warning_and_failure_factor_is_listed() -> None:
    source = (PACKAGE / "domain" / "ingress" / "bundle.py").read_text()
    source += (PACKAGE / "domain" / "ingress" / "pins_usable.py").read_text()
    warnings = set(re.findall(r'^REASON_\w+ = "(\w+)"', source, re.M))
    assert len(warnings) >= 6
    assert warnings <= reasons_of(api.PEER_KIND, "PinsUsable")
    assert {factor.value for factor in Factor} <= reasons_of(api.PEER_KIND, "Reachable")


def test_docs_api_shows_the_table_as_it_is() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in (api.CERT_KIND, api.PEER_KIND):
            reasons = frozenset(re.findall(r"`(\w+)`", cells[3]))
            rows[(cells[0], cells[1].strip("`"))] = (cells[2], reasons)
    assert rows == {(row.kind, row.type): (row.owner, row.reasons) for row in TABLE}


def test_ready_never_copies_a_credentials_reason_it_does_not_list() -> None:
    """The heartbeat's Ready repeats CredentialsReady's reason as read back from the object, which
    an older operator (or a hand edit) may have written with a reason no longer in the table."""
    old = {
        "conditions": [
            {"type": "CredentialsReady", "status": "False", "reason": "SomethingOld", "message": "m"}
        ]
    }
    observation = reachability.Observation(result=None, slow_threshold=timedelta(seconds=1), suspended=True)
    update = reachability.heartbeat_status(old, observation, NOW)
    ready = conditions.get_condition(update.status["conditions"], "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "CredentialsNotReady", "m")
