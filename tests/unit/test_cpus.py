"""The CPUs the process may use: a cgroup v2 quota's file content, and the affinity mask for real."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from federation_operator.adapters import cpus


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("max 100000\n", None),  # no limit (a Pod without resources.limits.cpu)
        ("200000 100000\n", 2),  # limits.cpu: 2
        ("150000 100000\n", 2),  # 1.5 CPUs of time: rounded up
        ("50000 100000\n", 1),  # limits.cpu: 500m
        ("1000 100000\n", 1),  # 10m: never 0
        ("", None),
        ("garbage\n", None),
        ("0 100000\n", None),
    ],
)
def test_a_cgroup_v2_cpu_max_reads_as_whole_cpus_rounded_up(content: str, expected: int | None) -> None:
    assert cpus.quota_cpus(content) == expected


def test_a_quota_lower_than_the_affinity_mask_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    monkeypatch.setattr(cpus, "CPU_MAX", cpu_max)
    assert cpus.usable_cpus() == 1


def test_a_quota_higher_than_the_affinity_mask_leaves_the_mask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    monkeypatch.setattr(cpus, "CPU_MAX", cpu_max)
    assert cpus.usable_cpus() == len(os.sched_getaffinity(0))
    cpu_max.write_text(f"{1000 * 100000} 100000\n")
    assert cpus.usable_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(cpus, "CPU_MAX", tmp_path / "absent")
    assert cpus.usable_cpus() == len(os.sched_getaffinity(0))


def test_a_process_pinned_to_one_cpu_may_use_one() -> None:
    # In a child process: an affinity mask set here would stay on this test run's thread.
    one = min(os.sched_getaffinity(0))
    code = (
        "import os\n"
        f"os.sched_setaffinity(0, {{{one}}})\n"
        "from federation_operator.adapters.cpus import usable_cpus\n"
        "print(usable_cpus())\n"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert output.strip() == "1"
