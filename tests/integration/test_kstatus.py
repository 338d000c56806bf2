"""Every status the operator writes follows kstatus (tests/harness/kstatus.py, docs/gitops.md).

A watch records every version of every FederationCert and FederationPeer while the operator
issues certificates, meets a Secret it may not touch, sets up credentials in each mode, meets a
missing Secret, suspends a peer and follows a spec edit; each recorded status is checked, and the
final ones are judged as Flux (kstatus) and Argo CD (our health.lua) would judge them.
"""

import functools
from typing import Any

import pytest

from federation_operator.domain import api
from tests.harness import kstatus
from tests.harness.argocd_health import evaluate
from tests.harness.recorder import Recorder
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

PIN = {"thumbprint": "sha256:" + "4f" * 32}
HEARTBEAT = {"interval": "2s", "timeout": "1s", "slowThreshold": "500ms"}
HASH = "sha256:" + "9c" * 32


@pytest.fixture
def site(site_factory: SiteFactory) -> Site:
    return site_factory("eu", peer_check_interval=0.5)


def peer(site: Site, name: str, **spec: Any) -> None:
    site.create(
        api.PEER_PLURAL,
        name,
        {
            "endpoint": "https://127.0.0.1:9",
            "remoteCertificates": [PIN],
            "clientCertificateRef": {"name": "eu-client"},
            "heartbeat": HEARTBEAT,
            **spec,
        },
    )


def judged(site: Site, plural: str, name: str, expected: str, generation: int = 1) -> dict[str, Any] | None:
    obj = site.get(plural, name)
    if obj and obj["metadata"].get("generation") == generation and kstatus.compute(obj) == expected:
        ready = kstatus.conditions_of(obj).get("Ready") or {}
        return obj if ready.get("observedGeneration") == generation else None
    return None


def test_every_status_written_follows_kstatus_and_ends_as_flux_and_argo_cd_expect(site: Site) -> None:
    token = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "out"}, "type": "Opaque"}
    site.core.create_namespaced_secret(site.namespace, token | {"stringData": {"token": "x" * 43}})
    taken = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "taken-tls"}, "type": "Opaque"}
    site.core.create_namespaced_secret(site.namespace, taken | {"stringData": {"note": "not yours"}})

    with Recorder(site) as recorder:
        site.create(api.CERT_PLURAL, "eu-client", {"subject": "eu"})
        site.create(api.CERT_PLURAL, "taken", {"subject": "taken"})
        peer(site, "generated")
        peer(site, "hashed", inbound={"secretHash": HASH}, outbound={"secretRef": {"name": "out"}})
        peer(site, "missing", outbound={"secretRef": {"name": "absent"}})
        peer(site, "paused", suspend=True)
        expectations = {
            (api.CERT_PLURAL, "eu-client"): kstatus.CURRENT,
            (api.CERT_PLURAL, "taken"): kstatus.FAILED,
            (api.PEER_PLURAL, "hashed"): kstatus.CURRENT,
            (api.PEER_PLURAL, "missing"): kstatus.FAILED,
            (api.PEER_PLURAL, "paused"): kstatus.CURRENT,
            (api.PEER_PLURAL, "generated"): kstatus.CURRENT,
        }
        for (plural, name), expected in expectations.items():
            wait_for(functools.partial(judged, site, plural, name, expected), timeout=30, message=name)
        site.patch(api.PEER_PLURAL, "generated", {"spec": {"heartbeat": {**HEARTBEAT, "interval": "3s"}}})
        edited = site.get(api.PEER_PLURAL, "generated") or {}
        assert kstatus.compute(edited) == kstatus.IN_PROGRESS  # the status describes generation 1
        final = {
            key: wait_for(
                functools.partial(judged, site, *key, expected, 2 if key[1] == "generated" else 1), timeout=30
            )
            for key, expected in expectations.items()
        }

    with_status = [(plural, obj) for plural, obj in recorder.seen if obj.get("status")]
    assert len(with_status) >= 12, "the watches saw the operator's writes"
    for plural, obj in with_status:
        problems = kstatus.violations(obj)
        assert problems == [], (
            f"{plural}/{obj['metadata']['name']} rv {obj['metadata']['resourceVersion']}: {problems}"
        )

    argo = {
        key: evaluate("FederationCert" if key[0] == api.CERT_PLURAL else "FederationPeer", obj)
        for key, obj in final.items()
    }
    assert argo[(api.CERT_PLURAL, "eu-client")].status == "Healthy"
    assert argo[(api.CERT_PLURAL, "taken")].status == "Degraded"
    assert argo[(api.PEER_PLURAL, "missing")].status == "Degraded"
    assert argo[(api.PEER_PLURAL, "paused")].status == "Suspended"
    # Never reached: Flux sees a reconciled object (Ready=False says why), Argo CD a link coming up.
    assert argo[(api.PEER_PLURAL, "generated")].status == "Progressing"
    stalled = kstatus.conditions_of(final[(api.PEER_PLURAL, "missing")])["Stalled"]
    assert stalled["reason"] == "SecretNotFound"
