"""CI's skip gate (tests/harness/skip_policy.py), run on a throwaway test module in a child pytest."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MODULE = """
import pytest

def test_runs():
    pass

def test_needs_docker():
    pytest.skip("kind e2e needs Docker and kind: no Docker engine")

def test_needs_a_tool():
    pytest.skip("frobnicate is not installed")
"""


def _run(tmp_path: Path, allowed: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_module.py").write_text(MODULE)
    (tmp_path / "allowed").write_text(allowed)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.harness.skip_policy",
            "--allowed-skips",
            str(tmp_path / "allowed"),
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            *extra,
            str(tmp_path / "test_module.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# hack/test.sh runs the suite on parallel workers: the gate must see their skips too.
@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "parallel"])
def test_a_skip_whose_reason_is_not_allowed_fails_the_run_and_is_named(
    tmp_path: Path, workers: tuple[str, ...]
) -> None:
    result = _run(tmp_path, "# CI has no Docker engine\nkind e2e needs Docker and kind: \n", *workers)
    assert result.returncode == 1, result.stdout
    assert "test_needs_a_tool: frobnicate is not installed" in result.stdout
    assert "test_needs_docker" not in result.stdout.split("skips not in the allow-list")[1]


def test_a_run_whose_skips_are_all_allowed_passes(tmp_path: Path) -> None:
    result = _run(tmp_path, "kind e2e needs Docker\nfrobnicate is not installed\n")
    assert result.returncode == 0, result.stdout
    assert "skips not in the allow-list" not in result.stdout
