"""The README's main job: `federation-operator demo` runs the whole mission and cleans up."""

import re
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_demo_links_two_sites_survives_an_outage_and_a_rotation_and_leaves_nothing_behind() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "federation_operator", "demo", "--no-color"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert elapsed < 120
    for expected in (
        "EU outbound",  # the fingerprints matched across the link
        "Reachable",
        "EU sees Degraded",
        "Unreachable",
        "EU sees Reachable again",
        "no ping was refused",  # the rotation kept the link green
        "no peer Secret left",
        "nothing left running",
    ):
        assert expected in out, expected
    ports = {int(port) for port in re.findall(r"https://127\.0\.0\.1:(\d+)", out)}
    assert ports
    assert not [port for port in ports if listening(port)]
    # The demo prints fingerprints, never a token (a token is 43 base64url characters).
    assert not re.search(r"\b[A-Za-z0-9_-]{43}\b", out + result.stderr)
