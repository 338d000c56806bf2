"""`federation-operator run` exits at once on SIGTERM when nothing of its own is left running.

kopf takes SIGTERM over from our handler (in the main thread it installs its own), so the stop
flag we pass kopf is not set by the signal, and kopf's waiter on it is left over; kopf waits a
fixed 5 s for leftover tasks before it exits, unless the runner reaps them
(`runner.reap_leftovers`). Run against an API server holding no objects: the heartbeat
scheduler's own stop is tested in tests/unit/test_heartbeat_scheduler.py.
"""

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

# kopf's grace for leftover tasks is 5 s: an exit within it means it did not wait the grace out.
# The log says so exactly (kopf logs this line only when no task outlived the grace); the time
# bound is the grace itself, not a speed target, so that a loaded machine does not fail it.
KOPF_GRACE = 5.0
NO_TASK_OUTLIVED_THE_GRACE = "Hung tasks stopping is skipped: no tasks given."


def _run_then_sigterm(site: Site, log: Path, work: Callable[[], None]) -> float:
    """Start `federation-operator run` against the site, do `work` once it watches, then SIGTERM
    it (whatever happened) and return how long it took to exit; it must exit cleanly."""
    with log.open("w") as out:  # a file, not a pipe nobody reads until the end (it would fill)
        operator = subprocess.Popen(
            [sys.executable, "-m", "federation_operator", "run", "--kubeconfig", str(site.kubeconfig), "-v"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "Starting the watch-stream for federationpeers" in log.read_text(),
            timeout=30,
            message="operator started",
        )
        work()
    finally:
        stopping = time.monotonic()
        operator.send_signal(signal.SIGTERM)
        operator.wait(timeout=30)
        took = time.monotonic() - stopping
    assert operator.returncode == 0, log.read_text()[-3000:]
    return took


def test_sigterm_exits_without_waiting_for_kopfs_grace(site_factory: SiteFactory, tmp_path: Path) -> None:
    site = site_factory("eu", operator=False)
    log = tmp_path / "operator.log"
    took = _run_then_sigterm(site, log, lambda: None)
    assert NO_TASK_OUTLIVED_THE_GRACE in log.read_text(), log.read_text()[-3000:]
    assert took < KOPF_GRACE, f"exit took {took:.1f}s after SIGTERM"


def test_sigterm_exits_at_once_while_peers_are_created_and_changed(
    site_factory: SiteFactory, tmp_path: Path
) -> None:
    """The same, with work in flight: 8 peers created (their credentials written, their Secret
    events arriving) and each changed right before the signal, so kopf is still handling events
    while it winds down."""
    site = site_factory("eu", operator=False)
    log = tmp_path / "operator.log"
    spec = {"endpoint": "https://127.0.0.1:9", "remoteCertificates": [{"thumbprint": "sha256:" + "1" * 64}]}

    def create_and_change_peers() -> None:
        for number in range(8):
            site.create("federationpeers", f"peer-{number}", spec)
        site.wait_condition("federationpeers", "peer-0", "CredentialsReady", "True", timeout=30)
        for number in range(8):
            site.patch("federationpeers", f"peer-{number}", {"spec": {"suspend": True}})

    took = _run_then_sigterm(site, log, create_and_change_peers)
    assert NO_TASK_OUTLIVED_THE_GRACE in log.read_text(), log.read_text()[-3000:]
    assert took < KOPF_GRACE, f"exit took {took:.1f}s after SIGTERM\n{log.read_text()[-3000:]}"
