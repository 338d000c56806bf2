"""An API server that holds the heartbeat's status writes does not hold its pings.

One operator with a single heartbeat worker and four peers pinging every second: one peer
("changing") at a remote of its own, three ("steady") at another. Once every link is up, the API
server starts holding every write to a FederationPeer (as a stuck or overloaded API server does:
the request hangs, then 504) and the changing peer's remote starts refusing, so that peer has a
change of state to write. The single worker must go on pinging the steady peers at their rhythm
while that write waits: a worker that waited for its cycle's write would send no ping until the
API server answered. The changing peer itself makes no new ping while its write waits (its next
ping could only replace it): at most one ping per status write. Once the API server answers again,
its newest state is written.

A write judged when its turn comes is judged as of its ping: a green ping whose write waited
longer than a green ping stays fresh must still be written `Reachable`, not `Unknown`.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from federation_devkit.sandbox.emulator import SandboxAPI
from federation_devkit.sandbox.faults import TIMEOUT
from federation_operator.controller.registration import heartbeat as heartbeat_registration
from federation_operator.domain import api
from tests.harness.clock import Clock
from tests.harness.heartbeat import clocked_site, pinging, remote_keys, scrape
from tests.harness.net import free_port
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

PEERS = api.PEER_PLURAL
HEARTBEAT = {"interval": "1s", "timeout": "800ms", "slowThreshold": "500ms"}
STEADY = ["steady-0", "steady-1", "steady-2"]
# Longer than the window the test watches the pings in: no held write comes back within it.
HANG_SECONDS = 20.0


def _hold_peer_writes(api_: SandboxAPI) -> None:
    api_.faults.hang_seconds = HANG_SECONDS
    api_.faults.add(verb="patch", resource=PEERS, status=TIMEOUT)


def test_a_held_status_write_holds_no_other_peers_pings(site_factory: SiteFactory, tmp_path: Path) -> None:
    port = free_port()
    site = site_factory("eu", heartbeat_workers=1, metrics_port=port, metrics_host="127.0.0.1")
    remotes = remote_keys(site, tmp_path)
    pem = remotes.pem
    steady = remotes.remote()
    changing = remotes.remote()
    steady.start()
    changing.start()
    try:
        for name, remote in [("changing", changing)] + [(name, steady) for name in STEADY]:
            site.create(
                PEERS,
                name,
                pinging(remote.url, pem, HEARTBEAT),
            )

        def states() -> dict[str, object]:
            items = site.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, site.namespace, PEERS)
            return {
                peer["metadata"]["name"]: (peer.get("status") or {}).get("reachability")
                for peer in items["items"]
            }

        wait_for(
            lambda: set(states().values()) == {"Reachable"} and len(states()) == 1 + len(STEADY),
            timeout=60,
            message="every link up",
        )

        site.sandbox.call(_hold_peer_writes, site.sandbox.api)
        changing.reply(status=401, body={"error": "unauthorized"})
        refused_before = len(changing.handshakes)
        wait_for(
            lambda: len(changing.handshakes) > refused_before,
            timeout=HANG_SECONDS / 4,
            message="the changing peer's refused ping",
        )
        pinged = len(steady.handshakes)
        # The one worker goes on: three more pings per steady peer while the write is held.
        wait_for(
            lambda: len(steady.handshakes) >= pinged + 3 * len(STEADY),
            timeout=HANG_SECONDS / 2,
            message="the steady peers' pings go on while a status write is held",
        )
        samples = scrape(port)
        assert samples["federation_heartbeat_write_wait_cycles_total"] > 0, "slots of the held peer skipped"
        # The changing peer pinged for the write that waits (and maybe one in flight as it was
        # queued), not at every slot since.
        assert len(changing.handshakes) - refused_before <= 2
        # The held write has not landed: every stored status is still the old one.
        assert set(states().values()) == {"Reachable"}

        site.sandbox.call(site.sandbox.api.faults.clear)
        # The newest observation is written once the API server answers (refused: not Reachable).
        wait_for(
            lambda: states()["changing"] != "Reachable",
            timeout=3 * HANG_SECONDS,
            message="the changing peer's state written once the API server answers",
        )
        assert {states()[name] for name in STEADY} == {"Reachable"}
    finally:
        site.stop_operator()  # before the remotes, so that no ping is cut off by its loop closing
        steady.stop()
        changing.stop()


def test_a_write_that_waited_is_judged_as_of_its_ping(
    site_factory: SiteFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One status writer, held by peer "a"'s write; peer "b"'s green ping with news (its remote
    moved to another site) waits behind it while the operator's clock moves on by minutes. When
    its turn comes, b is written `Reachable` with the new site: judged as of its ping, not as a
    green ping minutes old (`Unknown`, then a second write to say `Reachable` again)."""
    monkeypatch.setattr(heartbeat_registration, "STATUS_WRITERS", 1)
    port = free_port()
    clock = Clock()
    site = clocked_site(site_factory, clock, metrics_port=port)
    keys = remote_keys(site, tmp_path)
    pem = keys.pem
    remotes = {name: keys.remote() for name in ("a", "b")}
    for remote in remotes.values():
        remote.start()
    try:
        for name, remote in remotes.items():
            site.create(PEERS, name, pinging(remote.url, pem, HEARTBEAT))

        def status(name: str) -> dict[str, Any]:
            return dict((site.get(PEERS, name) or {}).get("status") or {})

        wait_for(
            lambda: all(status(name).get("reachability") == "Reachable" for name in remotes),
            timeout=60,
            message="both links up",
        )
        site.sandbox.call(_hold_peer_writes, site.sandbox.api)
        remotes["a"].reply(status=401, body={"error": "unauthorized"})
        wait_for(
            lambda: scrape(port).get("federation_heartbeat_write_wait_cycles_total", 0) > 0,
            timeout=HANG_SECONDS / 2,
            message="a's write held in the one writer",
        )
        moved = {"ok": True, "site": "moved", "peer": {"name": "eu", "namespace": "default"}, "link": {}}
        remotes["b"].reply(body=moved)
        wait_for(
            lambda: scrape(port).get("federation_heartbeat_status_writes_pending", 0) >= 1,
            timeout=HANG_SECONDS / 2,
            message="b's write waiting behind a's",
        )
        clock.advance(timedelta(minutes=3))
        site.sandbox.call(site.sandbox.api.faults.clear)

        written = wait_for(
            lambda: (current := status("b")).get("remote", {}).get("site") == "moved" and current,
            timeout=3 * HANG_SECONDS,
            message="b's news written once a's held write is done",
        )
        assert written["reachability"] == "Reachable", written
        assert not [e for e in site.events() if e.involved_object.name == "b" and e.reason == "Unknown"]
    finally:
        site.stop_operator()
        for remote in remotes.values():
            remote.stop()
