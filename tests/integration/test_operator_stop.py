"""An operator stops at once when told to, even while its objects keep changing.

kopf stops the daemons and timers it knows, but its watch workers handle events for a moment
longer and each event spawns the object's daemons and timers afresh; kopf then waits its 5 s
hung-task timeout for those before it cancels them. The operator filters its daemons and timers
out once it is stopping (`config.running`), so none is spawned and the stop takes no timeout.
"""

import threading
import time

from federation_operator.domain import api
from tests.harness.site import SiteFactory

PEERS, CERTS = api.PEER_PLURAL, api.CERT_PLURAL
PEER_COUNT = 8
# kopf's hung-task timeout is 5 s; a stop that waited it out takes longer than this.
PROMPT = 3.0


def test_an_operator_stops_promptly_while_its_peers_keep_changing(site_factory: SiteFactory) -> None:
    site = site_factory("eu", peer_check_interval=0.3)
    site.create(CERTS, "eu-client", {"subject": "eu-client"})
    for number in range(PEER_COUNT):
        site.create(
            PEERS,
            f"peer-{number}",
            {
                "endpoint": "https://127.0.0.1:9",
                "remoteCertificates": [{"thumbprint": "sha256:" + "1" * 64}],
                "clientCertificateRef": {"name": "eu-client"},
                "heartbeat": {"interval": "1s", "timeout": "500ms", "slowThreshold": "200ms"},
            },
        )
    for number in range(PEER_COUNT):
        site.wait_condition(PEERS, f"peer-{number}", "CredentialsReady", "True")

    done = threading.Event()

    def keep_changing() -> None:
        # Events for every peer, before, during and after the stop: what respawns daemons.
        touch = 0
        while not done.is_set():
            touch += 1
            for number in range(PEER_COUNT):
                site.patch(PEERS, f"peer-{number}", {"metadata": {"annotations": {"touch": str(touch)}}})

    changer = threading.Thread(target=keep_changing, daemon=True)
    changer.start()
    try:
        started = time.monotonic()
        site.stop_operator()
        took = time.monotonic() - started
    finally:
        done.set()
        changer.join(timeout=10)
    assert took < PROMPT, f"the operator took {took:.1f}s to stop"
