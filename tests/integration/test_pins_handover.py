"""A new peer's `PinsUsable` comes with its credentials' status write, and only once the edge is written.

The namespace's edge pass hands its verdict to the peer's credentials pass, which carries it in
its own status write (handlers/pins_handover.py): one status write and one watch event per new
peer instead of two. What that must not change: `PinsUsable=True` means the edge objects are
written, a peer whose edge pass fails never shows it, no writer's condition is lost to the
other's, and a verdict whose credentials pass never writes still reaches the peer.
"""

import itertools
from typing import Any

from federation_devkit.sandbox.emulator import SandboxAPI
from federation_operator.domain import api, condition_types
from tests.harness.edge import BUNDLE, CONDITION, PEERS, client_cert, edge_objects, ingress_site, peer_spec
from tests.harness.recorder import Recorder
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

HEARTBEAT = {"interval": "2s", "timeout": "1s", "slowThreshold": "500ms"}
# Once a status shows one of these, every later status shows it (a writer that clobbered
# another's conditions would drop one). `Reconciling` and `Stalled` are removed by design.
KEPT = (condition_types.CREDENTIALS_READY, CONDITION, "Reachable", "Ready")


def types_in(version: dict[str, Any]) -> dict[str, str]:
    conditions = (version.get("status") or {}).get("conditions") or []
    return {condition["type"]: condition["status"] for condition in conditions}


def fail_creates(resource: str) -> Any:
    def inject(api_: SandboxAPI) -> None:
        api_.faults.add(verb="create", resource=resource, status=500)

    return inject


def creates_of(site: Site, resource: str) -> int:
    return sum(call.verb == "create" and call.resource == resource for call in list(site.sandbox.api.calls))


def test_new_peers_get_the_edge_verdict_in_their_credentials_write_and_lose_no_condition(
    site_factory: SiteFactory,
) -> None:
    site = ingress_site(site_factory, "envoy-gateway")
    names = ("us-east", "ap-south", "sa-east")
    with Recorder(site) as recorder:
        for name in names:
            site.create(PEERS, name, peer_spec(client_cert(name).pin, heartbeat=HEARTBEAT))
        for name in names:
            site.wait_condition(PEERS, name, CONDITION, "True", reason="Enforced")
            site.wait_condition(PEERS, name, "Ready", "False")  # the heartbeat judged the closed port

    for name in names:
        history = [types_in(version) for version in recorder.versions(PEERS, name)]
        judged = [types for types in history if condition_types.CREDENTIALS_READY in types]
        assert judged, f"{name}: no status with CredentialsReady recorded"
        assert judged[0].get(CONDITION) == "True", f"{name}: credentials written without the edge's verdict"
        early = [
            types
            for types in history
            if CONDITION in types and condition_types.CREDENTIALS_READY not in types
        ]
        assert not early, f"{name}: the edge wrote its verdict in a status write of its own"
        for earlier, later in itertools.pairwise(history):
            lost = {kind for kind in KEPT if kind in earlier and kind not in later}
            assert not lost, f"{name}: {lost} lost between two versions"


def test_a_peer_whose_edge_pass_fails_never_shows_pins_usable_true(site_factory: SiteFactory) -> None:
    site = ingress_site(site_factory, "envoy-gateway", operator={"ingress_check_interval": 0.5})
    site.sandbox.call(fail_creates("configmaps"), site.sandbox.api)  # the trust bundle's first write
    cert = client_cert("us-east")
    with Recorder(site) as recorder:
        site.create(PEERS, "us-east", peer_spec(cert.pin))
        site.wait_condition(PEERS, "us-east", condition_types.CREDENTIALS_READY, "True")
        # Passes after the credentials were written fail too.
        after = creates_of(site, "configmaps")
        wait_for(lambda: creates_of(site, "configmaps") >= after + 2, message="two more failed edge passes")
        assert edge_objects(site, "envoy-gateway") is None
        shown = [types_in(version).get(CONDITION) for version in recorder.versions(PEERS, "us-east")]
        assert "True" not in shown

        site.sandbox.call(site.sandbox.api.faults.clear)
        site.wait_condition(PEERS, "us-east", CONDITION, "True", reason="Enforced")
    assert edge_objects(site, "envoy-gateway") is not None


def test_a_verdict_whose_credentials_pass_never_writes_still_reaches_the_peer(
    site_factory: SiteFactory,
) -> None:
    """The credentials pass of a new peer fails before its status write on every try (its Secrets
    cannot be created): the edge takes its verdict back after one check interval and writes it."""
    site = ingress_site(site_factory, "envoy-gateway", operator={"ingress_check_interval": 0.5})
    # The edge's own Secret exists already (the edge rewrites it): only the peer's Secrets are created.
    bundle = {"name": BUNDLE, "labels": api.managed_labels(role=api.ROLE_TRUST_BUNDLE)}
    site.core.create_namespaced_secret(site.namespace, {"metadata": bundle, "type": "Opaque"})
    site.sandbox.call(fail_creates("secrets"), site.sandbox.api)
    site.create(PEERS, "us-east", peer_spec(client_cert("us-east").pin))
    site.wait_condition(PEERS, "us-east", CONDITION, "True", reason="Enforced")
    assert site.condition(PEERS, "us-east", condition_types.CREDENTIALS_READY) is None
    assert edge_objects(site, "envoy-gateway") is not None
