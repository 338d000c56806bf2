"""A ping that timed out while the operator's own event loop ran late does not make a healthy link
Degraded; a minute after the last success it does, however late the loop keeps running.

The loop-lag rule's measurement (`LoopLag`) is replaced by one the test sets, so "the loop was late
during this ping" is a fact of the test, not of the machine's load: the rule's decision is what is
under test (the measurement has its own tests, tests/unit/test_loop_lag.py). The remote is a
stand-in that answers at once, then slower than the peer's timeout.
"""

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from federation_operator.controller.handlers.saturation import LoopLag
from federation_operator.controller.registration import heartbeat as heartbeat_registration
from federation_operator.domain import api
from tests.harness.clock import Clock
from tests.harness.heartbeat import StandInRemote, clocked_site, pinging, remote_keys, scrape
from tests.harness.net import free_port
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

PEERS = api.PEER_PLURAL
HEARTBEAT = {"interval": "1s", "timeout": "500ms", "slowThreshold": "400ms"}
OWN_LAG = "federation_heartbeat_own_lag_timeouts_total"


class SetLoopLag(LoopLag):
    """The loop is late while `late` is set, on time otherwise: what the heartbeat asks of it."""

    late = threading.Event()

    def worst_since(self, since: float) -> float:
        return 10.0 if self.late.is_set() else 0.0


@dataclass
class Link:
    """An operator whose clock and loop lag the test sets, and one peer "us" at a stand-in remote."""

    site: Site
    remote: StandInRemote
    clock: Clock
    metrics_port: int

    def status(self) -> dict[str, Any]:
        return dict((self.site.get(PEERS, "us") or {}).get("status") or {})

    def own_lag_timeouts(self) -> float:
        return scrape(self.metrics_port).get(OWN_LAG, 0.0)


@contextlib.contextmanager
def reachable_link(
    site_factory: SiteFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Link]:
    SetLoopLag.late.clear()
    monkeypatch.setattr(heartbeat_registration, "LoopLag", SetLoopLag)
    port = free_port()
    clock = Clock()
    site = clocked_site(site_factory, clock, metrics_port=port)
    remotes = remote_keys(site, tmp_path)
    pem = remotes.pem
    remote = remotes.remote()
    remote.start()
    try:
        site.create(
            PEERS,
            "us",
            pinging(remote.url, pem, HEARTBEAT),
        )
        link = Link(site=site, remote=remote, clock=clock, metrics_port=port)
        wait_for(lambda: link.status().get("reachability") == "Reachable", timeout=30, message="the link up")
        yield link
    finally:
        SetLoopLag.late.clear()
        site.stop_operator()  # before the remote, so that no ping is cut off by its loop closing
        remote.stop()


def test_a_timeout_while_the_loop_ran_late_keeps_the_link_until_a_minute_without_success(
    site_factory: SiteFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with reachable_link(site_factory, tmp_path, monkeypatch) as link:
        # The remote now answers after the timeout, and the loop "was late" during every ping.
        SetLoopLag.late.set()
        link.remote.delay = 2.0
        wait_for(
            lambda: link.own_lag_timeouts() >= 3 or link.status().get("reachability") != "Reachable",
            timeout=30,
            message="three timeouts while the loop ran late",
        )
        kept = link.status()
        assert kept.get("reachability") == "Reachable", f"a timeout of our own lag was written: {kept}"
        assert "lastFailure" not in kept

        # A minute after the last success, the loop's lateness no longer excuses a timeout.
        link.clock.advance(timedelta(minutes=2))
        written = wait_for(
            lambda: (now := link.status()).get("reachability") == "Degraded" and now,
            timeout=30,
            message="Degraded once the last success is more than a minute old",
        )
        assert written["lastFailure"]["factor"] == "Timeout"


def test_one_timeout_while_the_loop_ran_late_right_after_a_green_ping_is_excused_however_long_ago(
    site_factory: SiteFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saturated operator pings each peer less than once a minute, so its last success is more
    than a minute old whenever a ping times out for its own lag (here: the operator's clock jumps
    two minutes while that ping is in flight). One such timeout right after a green ping writes
    nothing; the next ping is green again and the link never showed a failure."""
    with reachable_link(site_factory, tmp_path, monkeypatch) as link:
        SetLoopLag.late.set()
        before = link.own_lag_timeouts()
        link.remote.on_slow_reply = lambda: link.clock.advance(timedelta(minutes=2))
        link.remote.slow_delay = 2.0
        wait_for(lambda: link.remote.slow_delay is None, timeout=30, message="the slow reply's request")
        slow = len(link.remote.handshakes)
        # A peer runs one cycle at a time: the ping after the slow one starts once the slow one's
        # status decision is made (and written, if it was).
        wait_for(lambda: len(link.remote.handshakes) >= slow + 2, timeout=30, message="two pings after it")
        status = link.status()
        assert "lastFailure" not in status, f"a timeout of our own lag was written: {status}"
        assert status.get("reachability") == "Reachable"
        assert link.own_lag_timeouts() >= before + 1
