"""The CPUs this process may use: its affinity mask, capped by its cgroup v2 CPU quota.

Why: `os.cpu_count()` counts the host's CPUs. A container with a CPU limit (a cgroup quota) or a
process pinned to some CPUs (an affinity mask, `taskset`, a cpuset) can use fewer, and whatever is
sized by the CPUs (the heartbeat's workers: handshakes in flight on one event loop) is then sized
for CPU time the process does not have. A quota is CPU time, not CPUs: 150 ms every 100 ms is
rounded up to two CPUs, as the Go runtime and the JVM round it.

Only the cgroup v2 file at the root of the process's cgroup namespace is read (what a container
sees); cgroup v1 quotas are not, so there the affinity mask alone counts.
"""

import math
import os
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def quota_cpus(cpu_max: str) -> int | None:
    """CPUs that a cgroup v2 `cpu.max` ("$MAX $PERIOD") allows, rounded up; None without a quota.

    "max 100000" -> None, "200000 100000" -> 2, "50000 100000" -> 1. Unreadable content counts
    as no quota: a wrong guess here must not shrink the operator."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return math.ceil(quota / period)


def usable_cpus() -> int | None:
    """The CPUs this process may use (affinity mask, then quota if lower); None if unknown."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota = quota_cpus(CPU_MAX.read_text())
    except OSError:
        quota = None
    if quota is None:
        return cpus
    return quota if cpus is None else min(cpus, quota)
