"""A new peer's first written reachability is the link's, not the credentials handler's delay.

The first heartbeat slot of a new peer is jittered within its interval, so it can come before
the credentials handler has created the generated outbound Secret. Pinging then would report
"Secret <peer>-outbound (generated outbound token) not found" (Degraded) for one interval. Here the
credentials handler is held back on purpose (its reconcile waits for the test) while the
heartbeat's slots come and go every second: no reachability may be written meanwhile, and once
the credentials are released the first reachability written is `Reachable`.
"""

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from federation_operator.controller.handlers import peers as peer_handlers
from federation_operator.domain import api
from tests.harness.heartbeat import pinging, remote_keys, scrape
from tests.harness.net import free_port
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

PEERS = api.PEER_PLURAL
HEARTBEAT = {"interval": "1s", "timeout": "800ms", "slowThreshold": "500ms"}
DEFERRED = "federation_heartbeat_deferred_cycles_total"


def test_a_new_peer_is_not_shown_degraded_while_its_credentials_are_being_written(
    site_factory: SiteFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    site = site_factory("eu", metrics_port=port, metrics_host="127.0.0.1")
    remotes = remote_keys(site, tmp_path)
    pem = remotes.pem
    remote = remotes.remote().start()
    release = threading.Event()
    reconcile = peer_handlers.reconcile

    async def held_reconcile(*args: Any, **kwargs: Any) -> None:
        # The credentials handler (create, resume and the periodic check all come here) waits for
        # the test: no outbound Secret, no CredentialsReady until then.
        await asyncio.to_thread(release.wait, 120)
        await reconcile(*args, **kwargs)

    monkeypatch.setattr(peer_handlers, "reconcile", held_reconcile)
    try:
        site.create(
            PEERS,
            "us",
            pinging(remote.url, pem, HEARTBEAT),
        )

        def status() -> dict[str, Any]:
            return dict((site.get(PEERS, "us") or {}).get("status") or {})

        # Three slots of the 1 s interval passed with the credentials held back (or, without the
        # rule, the heartbeat wrote what it found meanwhile).
        wait_for(
            lambda: scrape(port).get(DEFERRED, 0.0) >= 3 or "reachability" in status(),
            timeout=30,
            message="three heartbeat slots while the credentials are held back",
        )
        assert "reachability" not in status(), f"written before the credentials were judged: {status()}"
        assert not remote.handshakes, "no ping before the credentials were judged"

        release.set()
        wait_for(
            lambda: status().get("reachability") == "Reachable", timeout=30, message="the link Reachable"
        )
        degraded = [
            e for e in site.events() if e.involved_object.kind == api.PEER_KIND and e.reason == "Degraded"
        ]
        assert degraded == [], "never Degraded on the way"
        assert (status().get("lastFailure") or {}) == {}, "no failure recorded"
    finally:
        release.set()
        site.stop_operator()  # before the remote, so that no ping is cut off by its loop closing
        remote.stop()
