"""Our Argo CD health checks, run as Argo CD's own test runs them: every case of every
`health_test.yaml`, through a real Lua 5.1 interpreter, status and message compared exactly.

The tree under argocd/resource_customizations/ is laid out as the argo-cd repository expects
(`<group>/<kind>/health.lua`, `health_test.yaml`, `testdata/`), so it can be contributed upstream
or copied into `argocd-cm` unchanged (docs/gitops.md).
"""

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from tests.harness.argocd_health import CUSTOMIZATIONS, GROUP, ROOT, evaluate, run

KINDS = ("FederationCert", "FederationPeer")
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _tests(kind: str) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(
        (CUSTOMIZATIONS / GROUP / kind / "health_test.yaml").read_text()
    )["tests"]
    return tests


def _cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        folder = CUSTOMIZATIONS / GROUP / kind
        for test in _tests(kind):
            cases.append(
                pytest.param(kind, folder / test["inputPath"], test["healthStatus"], id=test["inputPath"])
            )
    return cases


@pytest.mark.parametrize(("kind", "input_path", "expected"), _cases())
def test_health_script_gives_the_expected_status_and_message(
    kind: str, input_path: Path, expected: dict[str, str]
) -> None:
    obj = yaml.safe_load(input_path.read_text())
    assert obj["kind"] == kind
    health = evaluate(kind, obj)
    assert health.status in ARGO_STATUSES
    assert (health.status, health.message) == (expected["status"], expected["message"])


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file_is_a_case_and_the_layout_is_argo_cds(kind: str) -> None:
    folder = CUSTOMIZATIONS / GROUP / kind
    assert sorted(path.name for path in folder.iterdir()) == ["health.lua", "health_test.yaml", "testdata"]
    listed = {
        test["inputPath"] for test in yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]
    }
    on_disk = {f"testdata/{path.name}" for path in (folder / "testdata").iterdir()}
    assert listed == on_disk


def test_the_peer_cases_cover_every_argo_status_we_map_to() -> None:
    statuses = {test["healthStatus"]["status"] for test in _tests("FederationPeer")}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_condition_order_does_not_change_the_verdict() -> None:
    folder = CUSTOMIZATIONS / GROUP / "FederationPeer"
    obj = yaml.safe_load((folder / "testdata" / "degraded_pins.yaml").read_text())
    before = evaluate("FederationPeer", obj)
    obj["status"]["conditions"].reverse()
    assert evaluate("FederationPeer", obj) == before


@pytest.mark.parametrize("library_call", ["os.date()", "string.format('%d', 1)", "math.floor(1.5)"])
def test_a_script_that_needs_a_library_argo_cd_withholds_fails_here(library_call: str) -> None:
    script = f'local hs = {{}}\nhs.status = "Healthy"\nhs.message = tostring({library_call})\nreturn hs\n'
    with pytest.raises(lua51.LuaError, match="a nil value"):
        run(script, {})


def _documented_argocd_cm() -> dict[str, str]:
    text = (ROOT / "docs" / "gitops.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
        document = yaml.safe_load(block)
        if document.get("kind") == "ConfigMap" and document["metadata"]["name"] == "argocd-cm":
            data: dict[str, str] = document["data"]
            return data
    raise AssertionError("docs/gitops.md shows no argocd-cm snippet")


def _scripts() -> dict[str, str]:
    return {
        f"resource.customizations.health.{GROUP}_{kind}": (
            CUSTOMIZATIONS / GROUP / kind / "health.lua"
        ).read_text()
        for kind in KINDS
    }


def test_the_argocd_cm_snippet_in_the_docs_is_the_scripts_verbatim() -> None:
    assert _documented_argocd_cm() == _scripts()


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_the_documented_kubectl_command_builds_the_same_keys(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "gitops.md").read_text()
    command = re.search(r"(kubectl create configmap argocd-cm .*?)\s+>", text, flags=re.DOTALL)
    assert command is not None
    argv = shlex.split(command.group(1).replace("\\\n", " ").rstrip(" \\"))
    built = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60).stdout
    assert yaml.safe_load(built)["data"] == _scripts()
