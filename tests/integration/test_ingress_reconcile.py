"""The operator keeps each namespace's edge in line with its peers, against the sandbox API.

For every provider: pinned PEMs become the trust bundle and the provider's objects (validated
offline like the unit tests validate the pure builders), a suspended or deleted peer leaves them,
the last peer takes everything with it. Pins the edge cannot enforce are flagged on their peer.
"""

import base64

import pytest

from federation_devkit.sandbox.emulator import SandboxAPI
from federation_devkit.sandbox.faults import TIMEOUT
from federation_operator.controller.runner import ingress_config_from_env
from federation_operator.domain import api
from tests.harness.edge import (
    BUNDLE,
    CONDITION,
    GATEWAY_PORT,
    HOST,
    PEERS,
    PROVIDER_OBJECTS,
    assert_valid,
    client_cert,
    edge_objects,
    gateway_frontend,
    ingress_site,
    peer_spec,
    peer_uids,
    read,
    split_pems,
    thumbprint,
    wait_bundle,
)
from tests.harness.kopf_state import change_spec_behind_kopfs_back
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for


@pytest.mark.parametrize("provider", sorted(PROVIDER_OBJECTS))
def test_each_provider_publishes_the_pinned_pems_and_removes_everything_with_the_last_peer(
    site_factory: SiteFactory, provider: str
) -> None:
    site = ingress_site(site_factory, provider)
    us, ap = client_cert("us-east"), client_cert("ap-south")
    site.create(PEERS, "us-east", peer_spec(us.pin))
    site.create(PEERS, "ap-south", peer_spec(ap.pin, us.pin))  # us pinned twice: bundled once

    wait_bundle(site, {us.pem, ap.pem})
    objects = wait_for(lambda: edge_objects(site, provider), message="the bundle and the provider's objects")
    owners = peer_uids(site, "us-east", "ap-south")
    for obj in objects:
        assert_valid(obj)
        labels = obj["metadata"]["labels"]
        assert labels[api.LABEL_MANAGED_BY] == api.MANAGER
        assert labels[api.LABEL_ROLE] in (api.ROLE_INGRESS, api.ROLE_TRUST_BUNDLE)
        refs = obj["metadata"]["ownerReferences"]
        assert {ref["uid"] for ref in refs} == owners
        assert not any(ref.get("controller") for ref in refs)
    secret = read(site, "v1", "secrets", BUNDLE)
    assert secret is not None
    assert split_pems(base64.b64decode(secret["data"]["ca.crt"]).decode()) == {us.pem, ap.pem}
    if provider == "gateway-api":
        frontend = wait_for(lambda: gateway_frontend(site), message="Gateway frontend validation")
        (entry,) = frontend["perPort"]
        assert entry["port"] == GATEWAY_PORT
        assert entry["tls"]["validation"]["caCertificateRefs"][0]["name"] == BUNDLE
        gateway = read(site, "gateway.networking.k8s.io/v1", "gateways", "edge")
        assert gateway is not None
        gateway.pop("status", None)
        assert_valid(gateway)
    for name in ("us-east", "ap-south"):
        site.wait_condition(PEERS, name, CONDITION, "True", reason="Enforced")

    site.delete(PEERS, "us-east")
    site.delete(PEERS, "ap-south")
    wait_bundle(site, None)
    wait_for(
        lambda: (
            read(site, "v1", "secrets", BUNDLE) is None
            and not any(read(site, v, p, n) for v, p, _, n in PROVIDER_OBJECTS[provider])
        ),
        message="every edge object removed",
    )
    if provider == "gateway-api":
        wait_for(lambda: gateway_frontend(site) is None, message="our frontend validation removed")


def test_the_envoy_policy_pins_exactly_the_bundled_hashes(site_factory: SiteFactory) -> None:
    site = ingress_site(site_factory, "envoy-gateway")
    us = client_cert("us-east")
    site.create(PEERS, "us-east", peer_spec(us.pin))

    def hashes() -> list[str] | None:
        policy = read(site, "gateway.envoyproxy.io/v1alpha1", "clienttrafficpolicies", "federation-mtls")
        return (
            None if policy is None else list(policy["spec"]["tls"]["clientValidation"]["certificateHashes"])
        )

    assert wait_for(hashes) == [thumbprint(us).removeprefix("sha256:")]
    ap = client_cert("ap-south")
    site.patch(PEERS, "us-east", {"spec": {"remoteCertificates": [us.pin, ap.pin]}})
    wait_for(
        lambda: sorted(hashes() or []) == sorted(thumbprint(c).removeprefix("sha256:") for c in (us, ap))
    )


def test_a_suspended_peer_leaves_the_bundle_and_comes_back_on_resume(site_factory: SiteFactory) -> None:
    site = ingress_site(site_factory, "ingress-nginx")
    us, ap = client_cert("us-east"), client_cert("ap-south")
    site.create(PEERS, "us-east", peer_spec(us.pin))
    site.create(PEERS, "ap-south", peer_spec(ap.pin))
    wait_bundle(site, {us.pem, ap.pem})

    site.patch(PEERS, "ap-south", {"spec": {"suspend": True}})
    wait_bundle(site, {us.pem})
    site.wait_condition(PEERS, "ap-south", CONDITION, "Unknown", reason="Suspended")
    secret = read(site, "v1", "secrets", BUNDLE)
    assert secret is not None
    assert split_pems(base64.b64decode(secret["data"]["ca.crt"]).decode()) == {us.pem}

    site.patch(PEERS, "ap-south", {"spec": {"suspend": False}})
    wait_bundle(site, {us.pem, ap.pem})
    site.wait_condition(PEERS, "ap-south", CONDITION, "True", reason="Enforced")


@pytest.mark.parametrize("change", ["suspend", "pins"])
def test_a_spec_change_kopf_believes_handled_still_reaches_the_edge(
    site_factory: SiteFactory, change: str
) -> None:
    """kopf drops a change that returns to the last handled spec while its handlers are in progress.

    When a spec goes A -> B -> A fast, kopf finishes B's handlers only partly, then compares A with
    the A it last handled and runs nothing; the edge may show B by then. Here the same state is
    made at once: the spec changes together with kopf's diff-base, so kopf finds nothing to do.
    The edge must follow the spec anyway (the 60 s periodic check must not be what fixes it).
    """
    site = ingress_site(site_factory, "ingress-nginx")
    us, ap, extra = client_cert("us-east"), client_cert("ap-south"), client_cert("extra")
    site.create(PEERS, "us-east", peer_spec(us.pin))
    site.create(PEERS, "ap-south", peer_spec(ap.pin, extra.pin))
    wait_bundle(site, {us.pem, ap.pem, extra.pem})
    new_spec = {"suspend": True} if change == "suspend" else {"remoteCertificates": [ap.pin]}
    change_spec_behind_kopfs_back(site, PEERS, "ap-south", new_spec)
    wait_bundle(site, {us.pem} if change == "suspend" else {us.pem, ap.pem})


def test_unusable_pins_are_flagged_on_their_peer_and_left_out(site_factory: SiteFactory) -> None:
    site = ingress_site(site_factory, "envoy-gateway")
    good, expired, unseen = client_cert("good"), client_cert("expired", expired=True), client_cert("unseen")
    site.create(PEERS, "good", peer_spec(good.pin))
    site.create(PEERS, "stale", peer_spec(expired.pin, good.pin))
    site.create(PEERS, "hash-only", peer_spec({"thumbprint": thumbprint(unseen)}))
    # A thumbprint another active peer supplies the PEM for is enforceable after all.
    site.create(PEERS, "hash-covered", peer_spec({"thumbprint": thumbprint(good)}))

    wait_bundle(site, {good.pem})
    expired_condition = site.wait_condition(PEERS, "stale", CONDITION, "False", reason="CertificateExpired")
    assert thumbprint(expired) in expired_condition["message"]
    pem_condition = site.wait_condition(PEERS, "hash-only", CONDITION, "False", reason="PemRequired")
    assert thumbprint(unseen) in pem_condition["message"]
    site.wait_condition(PEERS, "hash-covered", CONDITION, "True")
    site.wait_condition(PEERS, "good", CONDITION, "True")
    warnings = wait_for(
        lambda: [
            e for e in site.events() if e.reason == "PemRequired" and e.involved_object.name == "hash-only"
        ],
        message="a PemRequired Warning event",
    )
    assert warnings[0].type == "Warning"
    # Other helpers' conditions on the same status survive ours.
    stale = site.get(PEERS, "stale")
    assert stale is not None
    assert CONDITION in {c["type"] for c in stale["status"]["conditions"]}


def test_many_peers_changing_at_once_end_in_one_consistent_bundle(site_factory: SiteFactory) -> None:
    site = ingress_site(site_factory, "envoy-gateway")
    certs = {f"peer-{index}": client_cert(f"peer-{index}") for index in range(8)}
    for name, cert in certs.items():
        site.create(PEERS, name, peer_spec(cert.pin))
    wait_bundle(site, {cert.pem for cert in certs.values()})
    for name in list(certs)[:4]:
        site.delete(PEERS, name)
    wait_bundle(site, {cert.pem for cert in list(certs.values())[4:]})
    refs = (read(site, "v1", "configmaps", BUNDLE) or {})["metadata"]["ownerReferences"]
    wait_for(
        lambda: (
            {r["name"] for r in (read(site, "v1", "configmaps", BUNDLE) or {})["metadata"]["ownerReferences"]}
            == set(list(certs)[4:])
        ),
        message=f"owners of the remaining peers only (had {refs})",
    )


def test_the_charts_environment_becomes_the_ingress_config() -> None:
    config = ingress_config_from_env(
        "envoy-gateway",
        {
            "FEDERATION_HOST": HOST,
            "FEDERATION_GATEWAY": "gateways/edge",
            "FEDERATION_SERVER_SERVICE": "fo-server",
            "POD_NAMESPACE": "federation-system",
            "FEDERATION_INGRESS_CLASS": "nginx-internal",
        },
    )
    assert (config.host, config.gateway_namespace, config.gateway_name) == (HOST, "gateways", "edge")
    assert (config.server_service, config.server_namespace) == ("fo-server", "federation-system")
    assert config.ingress_class_name == "nginx-internal"
    assert config.labels == api.managed_labels(role=api.ROLE_INGRESS)
    same_namespace = ingress_config_from_env(
        "gateway-api", {"FEDERATION_HOST": HOST, "FEDERATION_GATEWAY": "edge"}
    )
    assert (same_namespace.gateway_namespace, same_namespace.gateway_name) == (None, "edge")
    assert ingress_config_from_env("none", {}).host == ""
    with pytest.raises(SystemExit, match="FEDERATION_HOST"):
        ingress_config_from_env("ingress-nginx", {})


# Longer than the operator's request timeout (30 s), as a stuck API server's 60 s is: the edge's
# pass is still waiting on its read when the credentials must already be done.
EDGE_HANG_SECONDS = 45.0


def _hang_the_gateway_reads(api_: SandboxAPI) -> None:
    """Hold every GET of a Gateway (only the edge's pass reads it) before a 504."""
    api_.faults.hang_seconds = EDGE_HANG_SECONDS
    api_.faults.add(verb="get", resource="gateways", status=TIMEOUT)


def test_an_edge_the_api_server_hangs_holds_back_no_peers_credentials(site_factory: SiteFactory) -> None:
    """The edge and the credentials are separate: a namespace's edge pass stuck on the API server
    (one read held for longer than the client's timeout) must not hold any peer's credentials
    pass, on the event that created the peer or on any later one; the edge catches up once the
    API server answers again."""
    site = ingress_site(site_factory, "gateway-api")
    site.sandbox.call(_hang_the_gateway_reads, site.sandbox.api)
    certs = {name: client_cert(name) for name in ("us-east", "ap-south", "sa-east")}
    for name, cert in certs.items():
        site.create(PEERS, name, peer_spec(cert.pin))

    for name in certs:
        site.wait_condition(PEERS, name, "CredentialsReady", "True", timeout=EDGE_HANG_SECONDS / 3)
    # The edge's pass was held all along: no peer has its edge condition yet.
    assert all(site.condition(PEERS, name, CONDITION) is None for name in certs)

    site.sandbox.call(site.sandbox.api.faults.clear)
    for name in certs:
        site.wait_condition(PEERS, name, CONDITION, "True", reason="Enforced", timeout=3 * EDGE_HANG_SECONDS)
    wait_bundle(site, {cert.pem for cert in certs.values()})
