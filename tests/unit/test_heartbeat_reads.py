"""What a heartbeat cycle reads from the API: a peer's first cycle (every peer's, right after a
restart) takes its outbound token from the operator's Secret watch and the client certificate from
the cache all peers share; a suspected change reads afresh."""

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from federation_operator.adapters.k8s.ping_credentials import CredentialCache, Credentials, HeartbeatReads
from federation_operator.adapters.k8s.resources import Resource
from federation_operator.controller.handlers.secret_cache import SecretCache
from federation_operator.domain import api, certs, tokens
from federation_operator.domain.factors import Factor
from federation_operator.domain.issuance import build_cert_secret, parse_cert_spec

NAMESPACE = "default"


class ReadingKube:
    """An API holding a few objects; counts the GETs by (plural, name)."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.gets: dict[tuple[str, str], int] = {}

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (resource.plural, name)
        self.gets[key] = self.gets.get(key, 0) + 1
        return self.objects.get(key)


def outbound_secret(peer: str) -> dict[str, Any]:
    token = tokens.generate_token().reveal()
    return {
        "metadata": {
            "name": f"{peer}-outbound",
            "namespace": NAMESPACE,
            "uid": f"uid-{peer}",
            "resourceVersion": "7",
            "labels": api.managed_labels(role=api.ROLE_OUTBOUND) | {api.LABEL_PEER: peer},
        },
        "data": {api.OUTBOUND_TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def peer_body(name: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NAMESPACE, "name": name},
        "spec": {"endpoint": "https://us.example", "clientCertificateRef": {"name": "client"}},
        "status": {"outbound": {"fingerprint": "0123456789ab"}},
    }


def site(peers: list[str]) -> tuple[ReadingKube, SecretCache]:
    spec = parse_cert_spec({"subject": "eu"}, name="client", namespace=NAMESPACE)
    issued = certs.issue_certificate(subject="eu", validity=timedelta(days=30), now=datetime.now(UTC))
    tls = build_cert_secret(spec=spec, cert_name="client", cert_uid="u1", namespace=NAMESPACE, issued=issued)
    objects = {
        (api.CERT_PLURAL, "client"): {"metadata": {"name": "client"}, "spec": {"subject": "eu"}},
        ("secrets", spec.secret_name): tls,
    }
    watched = SecretCache()
    listed = [outbound_secret(peer) for peer in peers]
    watched.prime(None, listed)
    objects.update({("secrets", str(secret["metadata"]["name"])): secret for secret in listed})
    return ReadingKube(objects), watched


async def test_first_cycles_read_the_outbound_token_from_the_watch_and_the_certificate_once() -> None:
    peers = [f"us-{number}" for number in range(50)]
    kube, watched = site(peers)
    cache = CredentialCache(kube)  # type: ignore[arg-type]
    for peer in peers:
        loaded = await HeartbeatReads(cache, watched=watched).load(peer_body(peer), last_failure_factor=None)
        assert isinstance(loaded, Credentials), loaded
        assert loaded.outbound.current is not None
    assert kube.gets == {(api.CERT_PLURAL, "client"): 1, ("secrets", "client-tls"): 1}


async def test_a_suspected_change_reads_the_outbound_secret_and_the_certificate_afresh() -> None:
    kube, watched = site(["us"])
    reads = HeartbeatReads(CredentialCache(kube), watched=watched)  # type: ignore[arg-type]
    body = peer_body("us")
    assert isinstance(await reads.load(body, last_failure_factor=None), Credentials)
    assert isinstance(await reads.load(body, last_failure_factor=Factor.SECRET), Credentials)
    assert kube.gets[("secrets", "us-outbound")] == 1
    assert kube.gets[(api.CERT_PLURAL, "client")] == 2
    rotated = peer_body("us")
    rotated["status"]["outbound"]["fingerprint"] = "ba9876543210"
    assert isinstance(await reads.load(rotated, last_failure_factor=None), Credentials)
    assert kube.gets[("secrets", "us-outbound")] == 2, "the watch may trail the status that announced it"


async def test_a_fresh_read_keeps_no_copy_of_an_outbound_secret_the_watch_holds() -> None:
    """One copy per peer for the operator's life, never read again: the next cycles take the
    Secret from the watch. Only the objects all peers share stay cached."""
    peers = [f"us-{number}" for number in range(20)]
    kube, watched = site(peers)
    cache = CredentialCache(kube)  # type: ignore[arg-type]
    for peer in peers:
        reads = HeartbeatReads(cache, watched=watched)
        assert isinstance(await reads.load(peer_body(peer), last_failure_factor=Factor.SECRET), Credentials)
        assert isinstance(await reads.load(peer_body(peer), last_failure_factor=None), Credentials)
        assert kube.gets[("secrets", f"{peer}-outbound")] == 1
    assert len(cache) == 2, "the FederationCert and its Secret"


async def test_a_fresh_read_of_an_outbound_secret_the_watch_does_not_hold_stays_cached() -> None:
    kube, _ = site(["us"])
    cache = CredentialCache(kube)  # type: ignore[arg-type]
    reads = HeartbeatReads(cache, watched=SecretCache())  # a scope the watch has not listed
    for _ in range(3):
        assert isinstance(await reads.load(peer_body("us"), last_failure_factor=Factor.SECRET), Credentials)
        assert isinstance(await reads.load(peer_body("us"), last_failure_factor=None), Credentials)
    assert kube.gets[("secrets", "us-outbound")] == 3, "one GET per fresh cycle; the others use its copy"


async def test_without_the_watch_the_outbound_secret_is_read_from_the_api() -> None:
    kube, _ = site(["us"])
    reads = HeartbeatReads(CredentialCache(kube))  # type: ignore[arg-type]
    assert isinstance(await reads.load(peer_body("us"), last_failure_factor=None), Credentials)
    assert kube.gets[("secrets", "us-outbound")] == 1


async def test_an_object_found_missing_is_asked_for_again_by_the_next_reader() -> None:
    kube, watched = site([])
    cache = CredentialCache(kube)  # type: ignore[arg-type]
    del kube.objects[(api.CERT_PLURAL, "client")]
    missing = await HeartbeatReads(cache, watched=watched).load(peer_body("us"), last_failure_factor=None)
    assert not isinstance(missing, Credentials)
    assert missing.factor == Factor.CERTIFICATE
    kube.objects[(api.CERT_PLURAL, "client")] = {"metadata": {"name": "client"}, "spec": {"subject": "eu"}}
    again = await HeartbeatReads(cache, watched=watched).load(peer_body("us"), last_failure_factor=None)
    assert not isinstance(again, Credentials)
    assert again.factor == Factor.SECRET, "the certificate was found this time; no outbound Secret exists"
    assert kube.gets[(api.CERT_PLURAL, "client")] == 2
