"""The reliability tier is selected, or left out, by its marker alone."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _collected(marker: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", marker],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_the_reliability_marker_selects_exactly_the_reliability_folder() -> None:
    selected = _collected("reliability")
    left = _collected("not reliability")
    assert selected
    assert all(test.startswith("tests/reliability/") for test in selected)
    assert not any(test.startswith("tests/reliability/") for test in left)
