"""Security properties of a running site: no secret leaks anywhere readable, forged certificate
headers from untrusted addresses are refused, and failed authentication is rate-limited per source.

127.0.0.1 and 127.0.0.2 are both loopback on Linux: two source addresses without a network.
"""

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.harness.reliability import (
    CERTS,
    PEERS,
    assert_no_leaks,
    is_true,
    peer_spec,
    readable_texts,
    secret_bytes,
    secret_values,
    stored,
)
from tests.harness.server import AppThread, Identity, Keys, link
from tests.harness.waiting import wait_for

from federation_devkit.localsite import LOOPBACK, LocalSite
from federation_operator.domain import api
from federation_operator.server.clientcert import CertSource, CertSourceConfig, parse_networks

BURST = 5
OTHER_SOURCE = "127.0.0.2"


def xfcc(identity: Identity) -> dict[str, str]:
    return {"x-forwarded-client-cert": f"Hash={identity.thumbprint.removeprefix('sha256:')}"}


def call(url: str, headers: dict[str, str], *, source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, trust_env=False) as client:
        return client.get(url + api.PING_PATH, headers=headers)


def header_server(keys: Keys, trusted: str) -> AppThread:
    sources = CertSourceConfig(
        sources=frozenset({CertSource.XFCC}), trusted_proxies=parse_networks([trusted])
    )
    return AppThread(keys=keys, cert_sources=sources, rate_limit_burst=BURST).start()


@pytest.fixture
def eu(keys: Keys) -> Identity:
    return keys.identity("eu")


def test_a_forwarded_certificate_from_an_untrusted_address_is_refused(keys: Keys, eu: Identity) -> None:
    auth = {"Authorization": "Bearer " + eu.token.reveal(), **xfcc(eu)}
    untrusting = header_server(keys, "10.0.0.0/8")
    trusting = header_server(keys, "127.0.0.1/32")
    try:
        untrusting.call(link, untrusting.index, eu)
        trusting.call(link, trusting.index, eu)
        refused = call(untrusting.http_url, auth)
        accepted = call(trusting.http_url, auth)
    finally:
        untrusting.stop()
        trusting.stop()
    assert refused.status_code == 401
    assert refused.json()["factor"] == "Certificate"
    assert accepted.status_code == 200, "the same header from a trusted proxy passes: the address decided"


def test_failed_authentication_is_rate_limited_per_certificate_else_per_source(
    keys: Keys, eu: Identity
) -> None:
    server = header_server(keys, "127.0.0.0/8")
    good = {"Authorization": "Bearer " + eu.token.reveal(), **xfcc(eu)}
    bad = {"Authorization": "Bearer wrong-token", **xfcc(eu)}
    anonymous = {"Authorization": "Bearer wrong-token"}
    try:
        server.call(link, server.index, eu)
        failures = [call(server.http_url, bad).status_code for _ in range(BURST)]
        limited = call(server.http_url, bad)
        limited_even_with_good_credentials = call(server.http_url, good)
        same_certificate_elsewhere = call(server.http_url, good, source=OTHER_SOURCE)
        anonymous_here = call(server.http_url, anonymous)
        audit = server.audit_lines()
    finally:
        server.stop()
    assert failures == [401] * BURST
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited_even_with_good_credentials.status_code == 429
    assert same_certificate_elsewhere.status_code == 429, "the budget is the certificate's"
    assert anonymous_here.status_code == 401, "a caller without a pinned certificate has its address's"
    assert {line["source"] for line in audit} == {"127.0.0.1", OTHER_SOURCE}


@pytest.fixture
def local_site(tmp_path: Path) -> Iterator[LocalSite]:
    site = LocalSite(name="eu", workdir=tmp_path / "eu").start()
    yield site
    site.close()


def test_no_token_or_key_in_logs_events_status_annotations_audit_or_metrics(
    local_site: LocalSite, operator_logs: pytest.LogCaptureFixture
) -> None:
    sandbox = local_site.sandbox
    assert sandbox is not None
    kube = local_site.kubeconfig
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    custom = k8s_client.CustomObjectsApi(k8s_config.new_client_from_config(config_file=str(kube)))
    for plural, name, spec in [
        (CERTS, "eu-client", {"subject": "eu"}),
        (PEERS, "us", peer_spec("eu-client", endpoint=local_site.endpoint)),
        (PEERS, "ap", peer_spec("eu-client")),
    ]:
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.CERT_KIND if plural == CERTS else api.PEER_KIND,
            "metadata": {"name": name},
            "spec": spec,
        }
        custom.create_namespaced_custom_object(api.GROUP, api.VERSION, "default", plural, body)
    wait_for(
        lambda: (
            all(is_true(peer, "CredentialsReady") for peer in stored(sandbox, PEERS))
            and all(is_true(cert, "Ready") for cert in stored(sandbox, CERTS))
        ),
        timeout=30,
    )
    # Calls with real tokens against the server, so that the audit log and metrics have content.
    secrets = secret_values(secret_bytes(sandbox))
    assert len(secrets) >= 4, "tokens and key lines were found to search for"
    with httpx.Client(verify=False, trust_env=False) as client:  # noqa: S501 (our own loopback server)
        for token in secrets:
            client.get(local_site.endpoint + api.PING_PATH, headers={"Authorization": "Bearer " + token})
        metrics = client.get(f"http://{LOOPBACK}:{local_site.metrics_port}/metrics").text
    assert local_site.server is not None
    local_site.stop_server()  # flushes the audit log
    audit = (local_site.workdir / "eu-audit.jsonl").read_text()
    records = [json.loads(line) for line in audit.splitlines()]
    written = [record for record in records if "repeated" not in record]
    assert len(written) + sum(record.get("repeated", 0) for record in records) >= len(secrets), (
        "every call is in the audit log, written in full or counted"
    )

    texts = readable_texts(sandbox, operator_logs)
    texts.update(audit=audit, metrics=metrics)
    assert operator_logs.records, "the operator's logs were captured"
    assert_no_leaks(secrets, texts)
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
