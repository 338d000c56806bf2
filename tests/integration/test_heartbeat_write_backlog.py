"""An API server that holds the heartbeat's status writes does not hold its pings.

One operator with a single heartbeat worker and four peers pinging a stand-in remote every second.
Once every link is up, the API server starts holding every write to a FederationPeer (as a stuck
or overloaded API server does: the request hangs, then 504) and the remote starts refusing, so
every peer's next ping has a change of state to write. The single worker must go on pinging at the
peers' rhythm while those writes wait: a worker that waited for its cycle's write would send no
ping until the API server answered. The waiting writes show on /metrics (one per peer at most, the
newer replacing the older), and once the API server answers again the newest state is written.
"""

from pathlib import Path

import pytest

from federation_devkit.sandbox.emulator import SandboxAPI
from federation_devkit.sandbox.faults import TIMEOUT
from federation_operator.domain import api
from tests.harness.heartbeat import StandInRemote, scrape
from tests.harness.net import free_port
from tests.harness.server import Keys
from tests.harness.site import SiteFactory, issued_pem
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

PEERS = api.PEER_PLURAL
HEARTBEAT = {"interval": "1s", "timeout": "800ms", "slowThreshold": "500ms"}
TRUST = {"caBundleRef": {"kind": "ConfigMap", "name": "federation-ca"}}
COUNT = 4
# Longer than the whole window the test watches the pings in: no held write comes back in it.
HANG_SECONDS = 20.0


def _hold_peer_writes(api_: SandboxAPI) -> None:
    api_.faults.hang_seconds = HANG_SECONDS
    api_.faults.add(verb="patch", resource=PEERS, status=TIMEOUT)


def test_held_status_writes_do_not_hold_the_pings(site_factory: SiteFactory, tmp_path: Path) -> None:
    port = free_port()
    site = site_factory("eu", heartbeat_workers=1, metrics_port=port, metrics_host="127.0.0.1")
    keys = Keys.create(tmp_path)
    site.core.create_namespaced_config_map(
        site.namespace, {"metadata": {"name": "federation-ca"}, "data": {"ca.crt": keys.ca.read_text()}}
    )
    pem = issued_pem(site, "eu-client")
    remote = StandInRemote(
        server_cert=keys.server_cert, server_key=keys.server_key, client_pems=[pem]
    ).start()
    try:
        names = [f"peer-{number}" for number in range(COUNT)]
        for name in names:
            site.create(
                PEERS,
                name,
                {
                    "endpoint": remote.url,
                    "remoteCertificates": [{"pem": pem}],
                    "clientCertificateRef": {"name": "eu-client"},
                    "heartbeat": HEARTBEAT,
                    "serverTrust": TRUST,
                },
            )

        def states() -> list[object]:
            items = site.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, site.namespace, PEERS)
            return sorted(str((peer.get("status") or {}).get("reachability")) for peer in items["items"])

        wait_for(lambda: states() == ["Reachable"] * COUNT, timeout=60, message="every link up")

        site.sandbox.call(_hold_peer_writes, site.sandbox.api)
        remote.reply(status=401, body={"error": "unauthorized"})
        handshakes = len(remote.handshakes)
        # Every peer's next ping is refused: a change of state whose write the API server holds.
        # The one worker goes on: three more pings per peer while no write can finish.
        wait_for(
            lambda: len(remote.handshakes) >= handshakes + 3 * COUNT,
            timeout=HANG_SECONDS / 2,
            message="pings go on while every status write is held",
        )
        samples = wait_for(
            lambda: (
                (metrics := scrape(port)).get("federation_heartbeat_status_writes_coalesced_total", 0) > 0
                and metrics
            ),
            timeout=HANG_SECONDS / 4,
            message="a newer write replaces a waiting one",
        )
        # At most one waiting write per peer, however many pings wait behind the held ones.
        assert 0 < samples["federation_heartbeat_status_writes_pending"] <= COUNT
        # None of the held writes has landed: every stored status is still the old one.
        assert states() == ["Reachable"] * COUNT

        site.sandbox.call(site.sandbox.api.faults.clear)
        # The newest observation is written once the API server answers (refused: not Reachable).
        wait_for(
            lambda: "Reachable" not in states(),
            timeout=3 * HANG_SECONDS,
            message="the newest state written once the API server answers",
        )
    finally:
        site.stop_operator()  # before the remote, so that no ping is cut off by its loop closing
        remote.stop()
