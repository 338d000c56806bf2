"""A sandbox as a user starts it: the `federation-operator sandbox` command in its own process.

Tests that drive the product the way the docs say (the README walkthrough, the kubectl gaps listed
in docs/sandbox.md) start it through the installed command, read the endpoint and CA it prints,
and stop it with Ctrl-C (SIGINT), as a user would.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


@dataclass
class Sandbox:
    name: str
    process: subprocess.Popen[str]
    kubeconfig: Path
    endpoint: str
    ca_file: Path


def _lines(process: subprocess.Popen[str]) -> "queue.Queue[str]":
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def start_sandbox(name: str, directory: Path) -> Sandbox:
    directory.mkdir()
    kubeconfig = directory / "kubeconfig"
    process = subprocess.Popen(
        [str(BIN / "federation-operator"), "sandbox", "--kubeconfig", str(kubeconfig), "--site", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = _lines(process)
    seen: list[str] = []
    server: re.Match[str] | None = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        server = server or re.match(r"Federation server: (https://\S+) \(CA: (.+)\)", line)
        if line.startswith("Operator running") and server:
            return Sandbox(name, process, kubeconfig, server[1], Path(server[2]))
    process.kill()
    raise AssertionError(f"sandbox {name} did not start:\n{''.join(seen)}")


def stop_sandbox(sandbox: Sandbox) -> None:
    sandbox.process.send_signal(signal.SIGINT)
    try:
        sandbox.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        sandbox.process.kill()
        sandbox.process.wait()


def run(command: str, sandbox: Sandbox, workdir: Path) -> subprocess.CompletedProcess[str]:
    """`command` in bash as its user would type it: kubectl pointed at `sandbox`, the plugin on PATH."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig), "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
