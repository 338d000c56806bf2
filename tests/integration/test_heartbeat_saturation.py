"""An operator with more pings due than its workers can send knows it is the bottleneck.

One operator with a single heartbeat worker and eight peers every second against a stand-in remote
that answers in 200 ms: 1.6 s of pinging is due every second. The remote is healthy and fast
(200 ms against a 500 ms slowThreshold), so every peer must stay Reachable however late its pings
start; the saturation is the operator's, shown on its side: the `federation_heartbeat_saturated`
gauge on /metrics and a `HeartbeatSaturated` Event about the operator's Pod, none on the peers.
"""

from pathlib import Path

import pytest

from federation_operator.domain import api
from tests.harness.heartbeat import pinging, remote_keys, scrape
from tests.harness.net import free_port
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

PEERS = api.PEER_PLURAL
HEARTBEAT = {"interval": "1s", "timeout": "800ms", "slowThreshold": "500ms"}
COUNT = 8


def test_a_saturated_operator_says_so_on_its_side_and_keeps_fast_remotes_reachable(
    site_factory: SiteFactory, tmp_path: Path
) -> None:
    port = free_port()
    site = site_factory("eu", heartbeat_workers=1, metrics_port=port, metrics_host="127.0.0.1")
    remotes = remote_keys(site, tmp_path)
    pem = remotes.pem
    remote = remotes.remote(delay=0.2).start()
    try:
        names = [f"peer-{number}" for number in range(COUNT)]
        for name in names:
            site.create(
                PEERS,
                name,
                pinging(remote.url, pem, HEARTBEAT),
            )
        seen: dict[str, set[str]] = {name: set() for name in names}

        def observe() -> dict[str, float]:
            for peer in site.custom.list_namespaced_custom_object(
                api.GROUP, api.VERSION, site.namespace, PEERS
            )["items"]:
                seen[peer["metadata"]["name"]].add(str((peer.get("status") or {}).get("reachability")))
            return scrape(port)

        samples = wait_for(
            lambda: (metrics := observe()).get("federation_heartbeat_saturated") == 1.0 and metrics,
            timeout=30,
            message="the operator reports itself saturated",
        )
        assert samples["federation_heartbeat_workers"] == 1.0
        # Cycles did start late: more than a second after their slot, some of them.
        assert (
            samples["federation_heartbeat_lag_seconds_count"]
            > samples['federation_heartbeat_lag_seconds_bucket{le="1.0"}']
        )
        event = wait_for(
            lambda: next((e for e in site.events() if e.reason == "HeartbeatSaturated"), None),
            message="a HeartbeatSaturated Event",
        )
        assert event.type == "Warning"
        assert event.involved_object.kind == "Pod", "about the operator, not a peer"
        assert "workers" in event.message

        # Once every peer's link is up (credentials written, first green ping), each pings a few
        # more times while the operator stays saturated: all Reachable, none ever Slow.
        def all_reachable() -> bool:
            observe()
            items = site.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, site.namespace, PEERS)
            states = [(peer.get("status") or {}).get("reachability") for peer in items["items"]]
            return states == ["Reachable"] * COUNT

        wait_for(all_reachable, timeout=30, message="every link up")
        for states in seen.values():
            states.clear()
        handshakes = len(remote.handshakes)
        wait_for(
            lambda: observe() and len(remote.handshakes) >= handshakes + 3 * COUNT,
            timeout=60,
            message="three more pings per peer",
        )
        assert observe().get("federation_heartbeat_saturated") == 1.0
        for name in names:
            assert "Slow" not in seen[name], f"{name} looked Slow for the operator's own lag: {seen[name]}"
            assert seen[name] == {"Reachable"}, f"{name} was not steadily Reachable: {seen[name]}"
        peer_events = [e for e in site.events() if e.involved_object.kind == api.PEER_KIND]
        assert not [e for e in peer_events if e.reason in ("HeartbeatSaturated", "Slow")]
    finally:
        site.stop_operator()  # before the remote, so that no ping is cut off by its loop closing
        remote.stop()
