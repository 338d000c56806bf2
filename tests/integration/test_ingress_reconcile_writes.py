"""The edge is written only when it differs: no rewrite on repeat, restart or another actor's edits.

Passes run directly (`reconcile_namespace` with a Kube of the test's own, whose `writes` count
every non-GET) beside the running operator; restarts are judged from the sandbox's call records.
Races are made real, not injected: another writer changes the object between our read and write,
and the result must hold both writers' parts.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from federation_operator.adapters.k8s.client import Kube, load_api_client
from federation_operator.adapters.k8s.resources import FEDERATION_PEERS, GATEWAYS, Resource
from federation_operator.controller.config import OperatorContext
from federation_operator.controller.handlers.ingress import NamespaceLocks, reconcile_namespace
from federation_operator.domain import api
from federation_operator.domain.condition_types import PINS_USABLE as CONDITION
from tests.harness.edge import (
    BUNDLE,
    NAMESPACE,
    PEERS,
    PROVIDER_OBJECTS,
    client_cert,
    edge_objects,
    gateway_frontend,
    ingress_site,
    peer_spec,
    read,
    wait_bundle,
)
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

log = logging.getLogger(__name__)
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
# Nobody but the edge handler writes these in these tests (Secrets: the credentials handler does).
EDGE_PLURALS = {
    "configmaps",
    "httproutes",
    "clienttrafficpolicies",
    "securitypolicies",
    "ingresses",
    "gateways",
}


def passes(site: Site, count: int, *, kube: Kube | None = None) -> int:
    """Run `count` edge passes of the namespace with a fresh connection; return its writes."""

    async def run() -> int:
        connection = kube or Kube.from_kubeconfig(site.kubeconfig)
        context = OperatorContext(config=site.config, kube=connection)
        locks = NamespaceLocks()
        try:
            for _ in range(count):
                await reconcile_namespace(context, namespace=NAMESPACE, locks=locks, logger=log)
        finally:
            connection.close()
        return connection.writes

    return asyncio.run(run())


def settled_site(site_factory: SiteFactory, provider: str) -> Site:
    site = ingress_site(site_factory, provider)
    us, ap = client_cert("us-east"), client_cert("ap-south")
    site.create(PEERS, "us-east", peer_spec(us.pin))
    site.create(PEERS, "ap-south", peer_spec(ap.pin))
    wait_bundle(site, {us.pem, ap.pem})
    wait_for(lambda: edge_objects(site, provider), message="the edge objects")
    for name in ("us-east", "ap-south"):
        site.wait_condition(PEERS, name, CONDITION, "True")
    if provider == "gateway-api":
        wait_for(lambda: gateway_frontend(site), message="Gateway frontend validation")
    return site


def versions(site: Site, provider: str) -> dict[str, str]:
    objects = edge_objects(site, provider) or []
    if provider == "gateway-api":
        objects.append(read(site, "gateway.networking.k8s.io/v1", "gateways", "edge") or {})
    return {f"{obj['kind']}/{obj['metadata']['name']}": obj["metadata"]["resourceVersion"] for obj in objects}


def handler_ran(caplog: pytest.LogCaptureFixture, handler_id: str, count: int) -> bool:
    # kopf appends the field to the id of a field handler: 'ingress-update/spec'.
    done = [r.getMessage() for r in caplog.records if r.getMessage().endswith("succeeded.")]
    return sum(f"Handler '{handler_id}" in message for message in done) >= count


@pytest.mark.parametrize("provider", ["envoy-gateway", "gateway-api", "ingress-nginx"])
def test_ten_passes_and_a_restart_write_nothing(
    site_factory: SiteFactory, provider: str, captured_logs: pytest.LogCaptureFixture
) -> None:
    site = settled_site(site_factory, provider)
    before = versions(site, provider)

    assert passes(site, 10) == 0

    site.stop_operator()
    captured_logs.clear()
    mark = len(site.sandbox.api.calls)
    site.start_operator()
    wait_for(lambda: handler_ran(captured_logs, "ingress-resume", 2), message="both peers resumed")
    writes = [
        call
        for call in site.sandbox.api.calls[mark:]
        if call.verb in WRITE_VERBS and call.resource in EDGE_PLURALS
    ]
    assert writes == []
    assert versions(site, provider) == before


def test_another_controller_annotating_our_objects_causes_no_rewrite(
    site_factory: SiteFactory, captured_logs: pytest.LogCaptureFixture
) -> None:
    provider = "envoy-gateway"
    site = settled_site(site_factory, provider)
    touched = {"metadata": {"annotations": {"example.com/seen-by": "policy-bot"}, "labels": {"team": "edge"}}}
    site.core.patch_namespaced_config_map(BUNDLE, NAMESPACE, touched)
    site.core.patch_namespaced_secret(BUNDLE, NAMESPACE, touched)
    for version, plural, _, name in PROVIDER_OBJECTS[provider]:
        group, version_only = version.split("/")
        site.custom.patch_namespaced_custom_object(group, version_only, NAMESPACE, plural, name, touched)
    before = versions(site, provider)

    assert passes(site, 10) == 0
    # The operator's own pass, started by a spec change that does not touch the pins.
    captured_logs.clear()
    site.patch(PEERS, "us-east", {"spec": {"heartbeat": {"interval": "31s"}}})
    wait_for(lambda: handler_ran(captured_logs, "ingress-update", 1), message="the operator's edge pass")
    assert versions(site, provider) == before

    # A real change rewrites our part and keeps the other controller's.
    extra = client_cert("eu-west")
    us = site.get(PEERS, "us-east") or {}
    site.patch(
        PEERS, "us-east", {"spec": {"remoteCertificates": [*us["spec"]["remoteCertificates"], extra.pin]}}
    )
    wait_for(lambda: extra.pem in (read(site, "v1", "configmaps", BUNDLE) or {})["data"]["ca.crt"])
    for obj in edge_objects(site, provider) or []:
        assert obj["metadata"]["annotations"]["example.com/seen-by"] == "policy-bot"
        assert obj["metadata"]["labels"]["team"] == "edge"


class RacingKube(Kube):
    """A Kube after whose first read of `resource` another writer acts (once), as in a real race."""

    def __init__(self, site: Site, *, resource: Resource, rival: Callable[[], Any]) -> None:
        super().__init__(load_api_client(site.kubeconfig))
        self._resource = resource
        self._rival: Callable[[], Any] | None = rival

    async def _after_read(self, resource: Resource) -> None:
        if resource == self._resource and self._rival is not None:
            rival, self._rival = self._rival, None
            await asyncio.to_thread(rival)

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = await super().get(resource, namespace, name)
        await self._after_read(resource)
        return found

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        found = await super().list(resource, namespace, label_selector=label_selector)
        await self._after_read(resource)
        return found


def test_a_gateway_edited_while_we_patch_keeps_both_edits(site_factory: SiteFactory) -> None:
    site = ingress_site(site_factory, "gateway-api")
    site.stop_operator()  # only the direct pass below writes
    us = client_cert("us-east")
    site.create(PEERS, "us-east", peer_spec(us.pin))

    user_port = {
        "port": 443,
        "tls": {"validation": {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "corp-ca"}]}},
    }

    def user_edits_the_gateway() -> None:
        # perPort is a list: a merge patch computed before this edit would drop the user's entry.
        site.custom.patch_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            NAMESPACE,
            "gateways",
            "edge",
            {
                "spec": {
                    "tls": {
                        "frontend": {
                            "default": {"validation": {"mode": "AllowInsecureFallback"}},
                            "perPort": [user_port],
                        }
                    }
                }
            },
        )

    kube = RacingKube(site, resource=GATEWAYS, rival=user_edits_the_gateway)
    passes(site, 1, kube=kube)
    per_port = gateway_frontend(site)["perPort"]
    assert [entry["port"] for entry in per_port] == [443, 8443]
    assert per_port[0] == user_port
    assert per_port[1]["tls"]["validation"]["caCertificateRefs"][0]["name"] == BUNDLE


def test_a_condition_written_while_we_set_ours_survives(site_factory: SiteFactory) -> None:
    site = ingress_site(site_factory, "none")
    site.stop_operator()  # only the direct pass below writes
    us = client_cert("us-east")
    site.create(PEERS, "us-east", peer_spec(us.pin))

    def another_handler_sets_reachable() -> None:
        site.custom.patch_namespaced_custom_object_status(
            api.GROUP,
            api.VERSION,
            NAMESPACE,
            PEERS,
            "us-east",
            {
                "status": {
                    "conditions": [
                        {
                            "type": "Reachable",
                            "status": "False",
                            "reason": "Unknown",
                            "message": "no ping yet",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                        }
                    ]
                }
            },
        )

    kube = RacingKube(site, resource=FEDERATION_PEERS, rival=another_handler_sets_reachable)
    passes(site, 1, kube=kube)
    peer = site.get(PEERS, "us-east") or {}
    assert {c["type"]: c["status"] for c in peer["status"]["conditions"]} == {
        "Reachable": "False",
        CONDITION: "True",
    }


def test_triggers_that_find_a_pass_queued_join_it_instead_of_listing_again(site_factory: SiteFactory) -> None:
    """At startup every peer's resume handler triggers its namespace: 20 triggers at once run
    2 passes (the one running and the one queued behind it, which reads every peer the others
    could add), not 20 passes that each list all peers."""
    site = settled_site(site_factory, "envoy-gateway")

    class Counting(Kube):
        peer_lists = 0

        async def list(
            self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
        ) -> list[dict[str, Any]]:
            if resource is FEDERATION_PEERS:
                self.peer_lists += 1
            return await super().list(resource, namespace, label_selector=label_selector)

    async def run() -> int:
        connection = Counting(load_api_client(site.kubeconfig))
        context = OperatorContext(config=site.config, kube=connection)
        locks = NamespaceLocks()
        try:
            await asyncio.gather(
                *(
                    reconcile_namespace(context, namespace=NAMESPACE, locks=locks, logger=log)
                    for _ in range(20)
                )
            )
        finally:
            connection.close()
        assert not locks.queued, "nothing left queued"
        return connection.peer_lists

    assert asyncio.run(run()) == 2
