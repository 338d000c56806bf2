"""The GitHub workflows: valid against the GitHub workflow schema (check-jsonschema's vendored
copy, no network), running what the README says, over the Kubernetes versions it supports.

The lowest supported version is derived here from the CEL features the CRDs use, so a new rule
feature that needs a newer API server fails this test until README, chart and matrix follow.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CHECK_JSONSCHEMA = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which(
    "check-jsonschema"
)
# The Kubernetes minor version from which the API server accepts (and enforces by default) each
# CRD validation feature: validation rules are beta and on by default from 1.25 (GA 1.29),
# messageExpression from 1.27, reason and fieldPath from 1.28, optionalOldSelf from 1.30.
RULE_FIELDS = {"rule": (1, 25), "message": (1, 25), "messageExpression": (1, 27), "reason": (1, 28)}
RULE_FIELDS |= {"fieldPath": (1, 28), "optionalOldSelf": (1, 30)}
# Kubernetes CEL libraries beyond the CEL standard library, by the version that added them.
CEL_LIBRARIES = {r"\bisURL\(|\burl\(": (1, 27), r"\bquantity\(|\bisQuantity\(": (1, 29)}
CEL_LIBRARIES |= {r"\bip\(|\bcidr\(|\bisIP\(|\bisCIDR\(": (1, 31), r"\.format\(": (1, 29)}


def workflow(name: str) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return document


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert CHECK_JSONSCHEMA is not None, "check-jsonschema is a dev dependency (requirements/dev.lock)"
    return subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def rules(node: object) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = list(node.get("x-kubernetes-validations") or [])
        return found + [rule for value in node.values() for rule in rules(value)]
    if isinstance(node, list):
        return [rule for item in node for rule in rules(item)]
    return []


def minimum_for(crds: list[object]) -> tuple[int, int]:
    needed = (1, 0)
    for crd in crds:
        for rule in rules(crd):
            unknown = set(rule) - set(RULE_FIELDS)
            assert not unknown, f"teach this test the Kubernetes version of {unknown}"
            needed = max([needed, *(RULE_FIELDS[field] for field in rule)])
            needed = max(
                [needed, *(v for pattern, v in CEL_LIBRARIES.items() if re.search(pattern, rule["rule"]))]
            )
    return needed


def readme_minimum() -> tuple[int, int]:
    match = re.search(r"\*\*Kubernetes 1\.(\d+) and newer\.\*\*", (ROOT / "README.md").read_text())
    assert match, "README states the supported Kubernetes versions"
    return (1, int(match.group(1)))


def test_every_workflow_is_valid_against_the_github_workflow_schema() -> None:
    paths = sorted(WORKFLOWS.glob("*.y*ml"))
    assert {path.name for path in paths} >= {"test.yaml", "e2e.yaml"}
    result = validate(*paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = workflow("test.yaml")
    del broken["jobs"]["test"]["runs-on"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert validate(path).returncode != 0


def test_the_test_job_runs_the_readme_test_command() -> None:
    steps = workflow("test.yaml")["jobs"]["test"]["steps"]
    assert any("bash .ci/run" in step.get("run", "") for step in steps)
    ci_run = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_run[-1].startswith("./hack/test.sh"), ".ci/run ends by running the README's test command"
    assert "./hack/test.sh" in (ROOT / "README.md").read_text()


def test_chart_testing_lints_the_chart() -> None:
    steps = workflow("test.yaml")["jobs"]["chart-lint"]["steps"]
    assert any(step.get("uses", "").startswith("helm/chart-testing-action@") for step in steps)
    assert any("ct lint --charts charts/federation-operator" in step.get("run", "") for step in steps)


def test_the_e2e_matrix_covers_the_supported_versions_with_pinned_kind_images() -> None:
    job = workflow("e2e.yaml")["jobs"]["kind"]
    matrix = job["strategy"]["matrix"]["include"]
    versions = set()
    for entry in matrix:
        image = re.fullmatch(r"kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}", entry["image"])
        assert image, f"{entry['image']} is pinned by digest, as kind asks"
        assert entry["kubernetes"] == f"1.{image.group(1)}"
        assert re.fullmatch(r"v0\.\d+\.\d+", entry["kind"])
        versions.add((1, int(image.group(1))))
    assert min(versions) == readme_minimum()
    assert len(versions) >= 3
    runs = [step for step in job["steps"] if step.get("run", "").strip() == "./hack/kind-e2e.sh"]
    assert len(runs) == 1
    assert runs[0]["env"]["KIND_NODE_IMAGE"] == "${{ matrix.image }}"
    assert "KIND_NODE_IMAGE" in (ROOT / "hack" / "kind-e2e.sh").read_text()


def test_the_supported_versions_are_those_whose_cel_features_the_crds_use() -> None:
    minimum = minimum_for([yaml.safe_load(path.read_text()) for path in (ROOT / "crds").glob("*.yaml")])
    assert readme_minimum() == minimum
    chart = yaml.safe_load((ROOT / "charts" / "federation-operator" / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={minimum[0]}.{minimum[1]}.0-0"


@pytest.mark.parametrize(
    ("rule", "minimum"),
    [
        ({"rule": "self.matches('^a$')"}, (1, 25)),
        ({"rule": "self > 0", "fieldPath": ".x"}, (1, 28)),
        ({"rule": "self == oldSelf", "optionalOldSelf": True}, (1, 30)),
        ({"rule": "isCIDR(self)"}, (1, 31)),
    ],
)
def test_the_minimum_follows_the_newest_feature_a_rule_uses(
    rule: dict[str, Any], minimum: tuple[int, int]
) -> None:
    assert minimum_for([{"spec": {"x-kubernetes-validations": [rule]}}]) == minimum
