"""An operator stops at once when told to: while its objects keep changing, and while it starts.

kopf waits a fixed 5 s for "hung" tasks on every stop before it cancels them. Two kinds came up:
daemons and timers respawned by watch events after kopf's daemon killer ran (the operator filters
them out once it is stopping, `config.running`), and kopf's own litter, such as the requests of a
discovery still running when an operator is stopped right after its start (`runner.reap_leftovers`
cancels kopf's tasks that outlive its root tasks).
"""

import threading
import time

from federation_operator.domain import api
from tests.harness.site import SiteFactory

PEERS, CERTS = api.PEER_PLURAL, api.CERT_PLURAL
PEER_COUNT = 8
# kopf's hung-task timeout is 5 s; a stop that waited it out takes longer than this.
PROMPT = 3.0
# A stop during discovery lands in the window about one time in three: several starts make
# missing it unlikely.
STARTS = 6


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


def test_an_operator_stopped_right_after_its_start_stops_promptly(site_factory: SiteFactory) -> None:
    site = site_factory("eu", operator=False)
    site.create(CERTS, "eu-client", {"subject": "eu-client"})
    slowest = 0.0
    for _ in range(STARTS):
        site.start_operator()
        started = time.monotonic()
        site.stop_operator()
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < PROMPT, f"the slowest stop took {slowest:.1f}s"
