"""One vocabulary of failure factors: the CRDs' enum, the server's refusals and the docs' tables
all equal `Factor`, so a factor added in one place and forgotten in another fails here."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation_operator.domain.factors import REFUSALS, Factor
from federation_operator.server.decision import STATUS_OF_FACTOR

ROOT = Path(__file__).resolve().parents[2]
PEER_CRDS = [
    ROOT / "crds" / "federationpeers.yaml",
    ROOT / "charts" / "federation-operator" / "crds" / "federationpeers.yaml",
]
# The tables that explain every factor to a person: (page, how a row starts).
DOC_TABLES = [
    ("docs/operations.md", r"^\| `([A-Za-z]+)` \|"),
    ("docs/plugin.md", r"^\| ([A-Za-z]+) \|"),
    ("docs/reachability.md", r"^\| ((?:`[A-Za-z]+`(?:, )?)+) \|"),
]


def _status_schema(path: Path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


@pytest.mark.parametrize("path", PEER_CRDS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_crd_enum_of_last_failure_factor_is_the_factor_enum(path: Path) -> None:
    last_failure = _status_schema(path)["properties"]["lastFailure"]["properties"]
    assert last_failure["factor"]["enum"] == [factor.value for factor in Factor]


def test_the_server_answers_every_refusal_with_a_status_and_nothing_else() -> None:
    assert set(STATUS_OF_FACTOR) == REFUSALS


@pytest.mark.parametrize(("page", "row"), DOC_TABLES, ids=[page for page, _ in DOC_TABLES])
def test_every_factor_has_its_line_in_the_docs_tables(page: str, row: str) -> None:
    named = set()
    for match in re.finditer(row, (ROOT / page).read_text(), re.M):
        named |= set(re.findall(r"[A-Za-z]+", match.group(1)))
    assert {factor.value for factor in Factor} <= named
