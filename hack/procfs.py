"""What the benchmarks read of a process from /proc (Linux): CPU seconds, resident memory, and
whether a local HTTP endpoint answers 200. One copy for every benchmark in hack/."""

import os
import urllib.error
import urllib.request
from pathlib import Path


def cpu_seconds(stat: Path) -> float:
    """utime + stime of a process or a thread (`/proc/PID/stat`, `/proc/PID/task/TID/stat`), in seconds."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, its threads included."""
    return cpu_seconds(Path(f"/proc/{pid}/stat"))


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """The process's resident memory (`VmHWM`: its peak so far), KiB; 0 when the field is absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def answers_ok(url: str) -> bool:
    """Whether a GET of `url` (our own server on loopback) answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:  # noqa: S310 - loopback, our own server
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False
