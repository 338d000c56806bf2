"""`federation-operator run` exits at once on SIGTERM when nothing of its own is left running.

kopf takes SIGTERM over from our handler (in the main thread it installs its own), so the stop
flag we pass kopf is not set by the signal, and kopf's waiter on it is left over; kopf waits a
fixed 5 s for leftover tasks before it exits, unless the runner reaps them
(`runner.reap_leftovers`). Run against an API server holding no objects: the heartbeat
scheduler's own stop is tested in tests/unit/test_heartbeat_scheduler.py.

The stop is timed on the operator's own log, from kopf's "Signal SIGTERM is received" to its
last word ("Hung tasks ..."), where the 5 s grace would be spent. The process's exit after that
(the interpreter's finalization, a few tenths of a second of CPU) is not what is tested, and on a
loaded two-core machine it alone took 2 to 4.6 s of wall time. Only where something after kopf's
last word could hold the exit (the Kubernetes client's threads, in a call the API server does not
answer) is the wall time to the process's exit bounded too, loosely, far below what it waited.
"""

import re
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from federation_devkit.sandbox.emulator import SandboxAPI
from federation_devkit.sandbox.faults import TIMEOUT
from federation_operator.adapters.k8s.client import OPERATOR_AGENT
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

# kopf's grace for leftover tasks is 5 s: a stop within 4 s means it did not wait for one.
STOP_WITHIN = 4.0
SIGNALLED = "Signal SIGTERM is received"
# kopf's last step of a stop: the leftover ("hung") tasks awaited, cancelled, or none left.
STOPPED = re.compile(r"kopf\._core\.reactor\.running: Hung tasks ")


def _logged_at(log: str, pattern: str | re.Pattern[str]) -> datetime:
    """When the operator logged the first line matching `pattern` (its format: `%(asctime)s ...`)."""
    for line in log.splitlines():
        if re.search(pattern, line):
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    raise AssertionError(f"the operator never logged {pattern!r}:\n{log[-3000:]}")


def _run_then_sigterm(site: Site, log: Path, work: Callable[[], None], *, exit_within: float = 30.0) -> float:
    """Start `federation-operator run` against the site, do `work` once it watches, then SIGTERM
    it (whatever happened); it must exit cleanly within `exit_within` seconds of the signal.
    Returns how long kopf took to stop, by its log."""
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
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=exit_within)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
            raise AssertionError(
                f"the operator had not exited {exit_within:.0f}s after SIGTERM:\n{log.read_text()[-3000:]}"
            ) from None
    text = log.read_text()
    assert operator.returncode == 0, text[-3000:]
    return (_logged_at(text, STOPPED) - _logged_at(text, re.escape(SIGNALLED))).total_seconds()


def test_sigterm_exits_without_waiting_for_kopfs_grace(site_factory: SiteFactory, tmp_path: Path) -> None:
    site = site_factory("eu", operator=False)
    took = _run_then_sigterm(site, tmp_path / "operator.log", lambda: None)
    assert took < STOP_WITHIN, f"kopf took {took:.1f}s to stop after SIGTERM"


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
    assert took < STOP_WITHIN, f"kopf took {took:.1f}s to stop after SIGTERM\n{log.read_text()[-3000:]}"


# A stuck API server holds each call this long before its 504: longer than the request timeouts of
# kopf and of the operator's own client (30 s each), as a real API server's (60 s) is.
HANG_SECONDS = 60.0
# Far below what one stuck call held the exit for (30 s, and urllib3 retries a read that timed
# out); the rest is the interpreter's finalization on a loaded machine (2-4.6 s measured).
EXIT_WITHIN = 20.0
# The operator's calls the API server holds: the credentials pass and the heartbeat read and
# write peers and Secrets, kopf patches the peers (its finalizer) and posts Events.
HUNG_CALLS = (
    ("create", "secrets"),
    ("get", "secrets"),
    ("list", "secrets"),
    ("create", "events"),
    ("get", "federationpeers"),
    ("patch", "federationpeers"),
)
# Peers created while the API hangs: their handlers' calls are on the wire when the signal comes.
STUCK_PEERS = 12


def _hang_the_operators_calls(api: SandboxAPI) -> int:
    """Make the calls of HUNG_CALLS hang; returns how many calls the API had seen before."""
    api.faults.hang_seconds = HANG_SECONDS
    for verb, resource in HUNG_CALLS:
        api.faults.add(verb=verb, resource=resource, status=TIMEOUT)
    return len(api.calls)


def test_sigterm_exits_in_seconds_while_the_api_hangs_the_operators_calls(
    site_factory: SiteFactory, tmp_path: Path
) -> None:
    """An operator stopped while the API server answers none of its calls: the stop neither waits
    for the calls on the wire nor sends those still queued (before: the process exited only once
    every call in flight had timed out, 88 s here; at 10,000 peers 72-145 s)."""
    site = site_factory("eu", operator=False)
    log = tmp_path / "operator.log"
    # Suspended: a new peer's heartbeat otherwise makes no call until the credentials pass has
    # judged it (docs/reachability.md), which the hanging API never lets happen; a suspended
    # peer's heartbeat writes its status at its first slot (within 2 s), and that write hangs.
    spec = {
        "endpoint": "https://127.0.0.1:9",
        "remoteCertificates": [{"thumbprint": "sha256:" + "1" * 64}],
        "suspend": True,
        "heartbeat": {"interval": "2s", "timeout": "1s", "slowThreshold": "500ms"},
    }

    def stuck_calls(since: int) -> int:
        """Calls of the operator's own client (not kopf's) that the API server holds."""
        calls = site.sandbox.call(lambda: site.sandbox.api.calls[since:])
        return sum(
            1
            for call in calls
            if (call.verb, call.resource) in HUNG_CALLS and call.user_agent.startswith(OPERATOR_AGENT)
        )

    def create_peers_on_a_hanging_api() -> None:
        since = site.sandbox.call(_hang_the_operators_calls, site.sandbox.api)
        for number in range(STUCK_PEERS):
            site.create("federationpeers", f"peer-{number}", spec)
        # One is enough to hold the exit for the client's 30 s timeout; which calls come first
        # (a peer's Secrets, or the namespace's ingress pass that every peer's handler then waits
        # for) depends on the order kopf hands the events over.
        wait_for(lambda: stuck_calls(since) >= 1, timeout=60, message="the operator's calls hang")

    took = _run_then_sigterm(site, log, create_peers_on_a_hanging_api, exit_within=EXIT_WITHIN)
    assert took < STOP_WITHIN, f"kopf took {took:.1f}s to stop after SIGTERM\n{log.read_text()[-3000:]}"


def test_a_stop_that_cancels_many_handlers_says_so_in_one_line_and_a_count(
    site_factory: SiteFactory, tmp_path: Path
) -> None:
    """kopf warns for every handler a stop cancels: at 10,000 peers, thousands of lines on each
    rolling update. Here the API server holds the credentials' Secret creates, so every peer's
    handler is in flight when the signal comes: one warning is logged, and the count."""
    site = site_factory("eu", operator=False)
    log = tmp_path / "operator.log"
    spec = {"endpoint": "https://127.0.0.1:9", "remoteCertificates": [{"thumbprint": "sha256:" + "1" * 64}]}

    def hang_secret_creates(api: SandboxAPI) -> int:
        api.faults.hang_seconds = HANG_SECONDS
        api.faults.add(verb="create", resource="secrets", status=TIMEOUT)
        return len(api.calls)

    def handlers_in_flight() -> None:
        since = site.sandbox.call(hang_secret_creates, site.sandbox.api)
        for number in range(STUCK_PEERS):
            site.create("federationpeers", f"peer-{number}", spec)

        def held() -> int:
            calls = site.sandbox.call(lambda: site.sandbox.api.calls[since:])
            return sum(1 for call in calls if (call.verb, call.resource) == ("create", "secrets"))

        wait_for(lambda: held() >= 3, timeout=60, message="three peers' Secret creates held")

    _run_then_sigterm(site, log, handlers_in_flight, exit_within=EXIT_WITHIN)
    text = log.read_text()
    assert len(re.findall(r"is cancelled\. Will escalate", text)) == 1, text[-3000:]
    (count,) = re.findall(r"the stop cancelled (\d+) kopf handler\(s\) in flight", text)
    assert int(count) >= 3, text[-3000:]
