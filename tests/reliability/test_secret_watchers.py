"""Which peers a Secret event re-reconciles: the operator's own map, not a kopf index.

Found by hack/bench_scale.py: with `kopf.index`, kopf held every handler until the index was
filled and woke every held object on each change, so 3 000 peers had none reconciled after 100 s.
"""

import base64

from tests.harness.reliability import PEERS, peer_spec
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for

from federation_operator.controller.handlers.peers import SecretWatchers


def test_watchers_follow_spec_changes_and_deletion() -> None:
    watchers = SecretWatchers()
    watchers.watch("ns", "us", {"us-inbound", "shared"})
    watchers.watch("ns", "ap", {"ap-inbound", "shared"})
    assert watchers.peers_of("ns", "shared") == ["ap", "us"]
    assert watchers.peers_of("other", "shared") == []
    watchers.watch("ns", "us", {"us-inbound"})
    assert watchers.peers_of("ns", "shared") == ["ap"]
    watchers.forget("ns", "ap")
    assert watchers.peers_of("ns", "shared") == []
    assert watchers.peers_of("ns", "us-inbound") == ["us"]


def test_a_peers_own_secrets_reach_it_while_it_is_known_and_are_not_stored() -> None:
    """Own Secrets follow from the peer's name; only the users' Secrets a peer names are stored."""
    watchers = SecretWatchers()
    watchers.watch("ns", "us", {"us-inbound", "us-outbound", "us-handoff"})
    watchers.watch("ns", "us-inbound", {"us-inbound-inbound", "us-inbound-outbound", "us-inbound-handoff"})
    assert watchers.peers_of("ns", "us-outbound") == ["us"]
    assert watchers.peers_of("ns", "us-inbound") == ["us"], "us-inbound's own are us-inbound-*"
    assert watchers.peers_of("ns", "us-inbound-handoff") == ["us-inbound"]
    assert watchers.peers_of("ns", "ap-outbound") == [], "no peer ap is known"
    assert watchers.peers_of("other", "us-outbound") == []
    assert watchers.peers_of("ns", "-inbound") == []
    assert not watchers._of_secret, "nothing stored for own Secrets"
    watchers.watch("ns", "ap", {"ap-inbound", "ap-outbound", "ap-handoff", "us-outbound"})
    assert watchers.peers_of("ns", "us-outbound") == ["ap", "us"], "ap names us's Secret as its own ref"
    watchers.forget("ns", "us")
    assert watchers.peers_of("ns", "us-outbound") == ["ap"]
    assert watchers.peers_of("ns", "us-handoff") == []


def test_a_users_secret_change_reaches_its_peer_by_event_not_by_the_periodic_check(
    site_factory: SiteFactory,
) -> None:
    """The periodic check is left at its 30 s default, so only the Secret event can be this fast."""
    site = site_factory("eu")

    def put(value: str) -> None:
        body = {"metadata": {"name": "byo"}, "data": {"token": base64.b64encode(value.encode()).decode()}}
        if site.secret("byo") is None:
            site.core.create_namespaced_secret(site.namespace, body)
        else:
            site.core.replace_namespaced_secret("byo", site.namespace, body)

    put("a" * 43)
    site.create(PEERS, "us", peer_spec(outbound={"secretRef": {"name": "byo", "key": "token"}}))
    first = site.wait_condition(PEERS, "us", "CredentialsReady", "True")
    put("b" * 43)

    def changed() -> bool:
        condition = site.condition(PEERS, "us", "CredentialsReady") or {}
        return condition.get("status") == "True" and condition.get("message") != first.get("message")

    wait_for(changed, timeout=10, message="the outbound fingerprint followed the user's Secret")
