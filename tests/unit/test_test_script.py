"""hack/test.sh (the README's test command, what CI runs) stops at the first check that fails.

Run on a copy of the script beside stub tools that record their calls: a lint or type check that
fails must fail the script before pytest runs, whichever check it is.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each stubbed command as the script calls it, and the stub's name.
CHECKS = [
    ("ruff check .", "ruff"),
    ("ruff format --check .", "ruff"),
    ("mypy", "mypy"),
    ("mypy --strict", "mypy"),
    ("lint-imports", "lint-imports"),
]


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _tree(tmp_path: Path, failing: str | None) -> Path:
    """A copy of hack/test.sh with stubs: bootstrap, the tools, python; `failing` exits 1."""
    (tmp_path / "hack").mkdir()
    shutil.copy(ROOT / "hack" / "test.sh", tmp_path / "hack" / "test.sh")
    _stub(tmp_path / "hack" / "bootstrap.sh", "exit 0\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    calls = tmp_path / "calls"
    for name in ("ruff", "mypy", "lint-imports", "python"):
        line = f'echo "{name} $*" >> "{calls}"\n'
        if failing is not None and failing.split()[0] == name:
            line += f'[[ "{name} $*" == "{failing}"* ]] && exit 1\n'
        _stub(bin_dir / name, line + "exit 0\n")
    return tmp_path


@pytest.mark.parametrize(("failing", "_tool"), CHECKS)
def test_a_failing_check_fails_the_script_before_pytest(tmp_path: Path, failing: str, _tool: str) -> None:
    tree = _tree(tmp_path, failing)
    result = subprocess.run(
        ["bash", str(tree / "hack" / "test.sh")],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        check=False,
    )
    calls = (tree / "calls").read_text()
    assert result.returncode != 0, f"{failing} failed and the script went on:\n{calls}"
    assert "python -m pytest" not in calls


def test_the_script_runs_pytest_when_every_check_passes(tmp_path: Path) -> None:
    tree = _tree(tmp_path, None)
    result = subprocess.run(
        ["bash", str(tree / "hack" / "test.sh"), "-q"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        check=False,
    )
    calls = (tree / "calls").read_text().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert [call.split()[0] for call in calls[:5]] == [tool for _, tool in CHECKS]
    assert calls[-1].startswith("python -m pytest")
    assert calls[-1].endswith("-q"), "the script's arguments reach pytest"
