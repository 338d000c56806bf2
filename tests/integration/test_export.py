"""`kubectl federation export` between two sites (EU and US), each a sandbox API with its operator.

EU generates the credentials and exports a bundle; US applies it with the real `kubectl apply -f`
(the Python client stands in only where kubectl is not installed). The swap is right when each
side's outbound fingerprint is the other side's inbound fingerprint.
"""

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation_operator.domain import api
from federation_operator.plugin import cli
from tests.harness.site import Site, SiteFactory, apply, export, fingerprints, issued_pem
from tests.harness.waiting import wait_for

PEERS, CERTS = api.PEER_PLURAL, api.CERT_PLURAL
CHECK = {"peer_check_interval": 0.3}
EU_ENDPOINT = "https://eu.federation.example:8443"
US_ENDPOINT = "https://us.federation.example:8443"


@pytest.fixture
def linked(
    site_factory: SiteFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> tuple[Site, Site, str]:
    eu = site_factory("eu", **CHECK)
    us = site_factory("us", **CHECK)
    us_pem = issued_pem(us, "us-client")
    issued_pem(eu, "eu-client")
    eu.create(
        PEERS,
        "us",
        {
            "endpoint": US_ENDPOINT,
            "remoteCertificates": [{"pem": us_pem}],
            "clientCertificateRef": {"name": "eu-client"},
        },
    )
    fingerprints(eu, "us")
    code, bundle, err = export(
        eu, capsys, "us", "--name", "eu", "--endpoint", EU_ENDPOINT, "--client-certificate", "us-client"
    )
    assert code == 0, err
    apply(us, bundle, tmp_path)
    return eu, us, bundle


def test_export_then_apply_links_the_sites_with_swapped_tokens(linked: tuple[Site, Site, str]) -> None:
    eu, us, bundle = linked
    eu_in, eu_out = fingerprints(eu, "us")
    us_in, us_out = fingerprints(us, "eu")
    assert eu_out == us_in
    assert eu_in == us_out
    peer = us.get(PEERS, "eu")
    assert peer is not None
    assert peer["spec"]["endpoint"] == EU_ENDPOINT
    assert peer["spec"]["remoteCertificates"] == [
        {"pem": eu.get(CERTS, "eu-client")["status"]["certificate"]}  # type: ignore[index]
    ]
    assert peer["spec"]["clientCertificateRef"] == {"name": "us-client"}
    assert peer["status"]["inbound"]["source"] == "SecretRef"
    documents = list(yaml.safe_load_all(bundle))
    assert [document["kind"] for document in documents] == ["Secret", api.PEER_KIND]


def test_export_consumes_the_handoff_and_a_second_export_says_how_to_rotate(
    linked: tuple[Site, Site, str], capsys: pytest.CaptureFixture[str]
) -> None:
    eu, _, _ = linked
    assert eu.secret("us-handoff") is None
    wait_for(lambda: "handoff" not in eu.get(PEERS, "us")["status"], message="status.handoff cleared")  # type: ignore[index]
    wait_for(lambda: "HandoffConsumed" in {event.reason for event in eu.events()}, message="HandoffConsumed")
    code, out, err = export(
        eu, capsys, "us", "--name", "eu", "--endpoint", EU_ENDPOINT, "--client-certificate", "us-client"
    )
    assert code == 1
    assert out == ""
    assert "already consumed" in err
    assert "kubectl federation rotate us --inbound" in err


def test_inbound_rotation_exported_again_relinks_the_sites(
    linked: tuple[Site, Site, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    eu, us, _ = linked
    assert cli.main(["rotate", "us", "--inbound", "--kubeconfig", str(eu.kubeconfig), "--wait"]) == 0
    capsys.readouterr()
    wait_for(lambda: eu.secret("us-handoff"), message="new handoff")
    code, bundle, err = export(
        eu, capsys, "us", "--name", "eu", "--endpoint", EU_ENDPOINT, "--client-certificate", "us-client"
    )
    assert code == 0, err
    apply(us, bundle, tmp_path)
    eu_in, eu_out = fingerprints(eu, "us")
    wait_for(lambda: fingerprints(us, "eu") == (eu_out, eu_in), message="US follows the rotated tokens")


def test_no_token_plaintext_in_logs_events_status_or_annotations(
    site_factory: SiteFactory,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    eu = site_factory("eu", **CHECK)
    us = site_factory("us", **CHECK)
    us_pem = issued_pem(us, "us-client")
    issued_pem(eu, "eu-client")
    spec = {
        "endpoint": US_ENDPOINT,
        "remoteCertificates": [{"pem": us_pem}],
        "clientCertificateRef": {"name": "eu-client"},
    }
    eu.create(PEERS, "us", spec)
    fingerprints(eu, "us")
    seen: set[str] = set()

    def remember_tokens() -> None:
        for name in ("us-handoff", "us-outbound"):
            secret = eu.secret(name)
            for value in (secret.data or {}).values() if secret else ():
                seen.add(base64.b64decode(value).decode())

    remember_tokens()
    code, bundle, _ = export(
        eu, capsys, "us", "--name", "eu", "--endpoint", EU_ENDPOINT, "--client-certificate", "us-client"
    )
    assert code == 0
    apply(us, bundle, tmp_path)
    fingerprints(us, "eu")
    for name in ("inbound", "outbound"):
        assert cli.main(["rotate", "us", f"--{name}", "--kubeconfig", str(eu.kubeconfig), "--wait"]) == 0
        wait_for(lambda: eu.secret("us-handoff"), message="new handoff")
        remember_tokens()
    eu.delete(PEERS, "us")
    wait_for(lambda: eu.get(PEERS, "us") is None, message="peer deleted")
    tokens_seen = {value for value in seen if len(value) == 43}
    assert len(tokens_seen) >= 4

    haystacks = {"logs": caplog.text, "stdout/stderr of rotate": capsys.readouterr().err}
    for site in (eu, us):
        haystacks[f"{site.name} events"] = json.dumps(
            [site.api_client.sanitize_for_serialization(event) for event in site.events()]
        )
        for plural in (PEERS, CERTS):
            listed: dict[str, Any] = site.custom.list_namespaced_custom_object(
                api.GROUP, api.VERSION, site.namespace, plural
            )
            haystacks[f"{site.name} {plural} status+annotations"] = json.dumps(
                [[item.get("status"), item["metadata"].get("annotations")] for item in listed["items"]]
            )
    for where, text in haystacks.items():
        leaked = [token[:6] + "..." for token in tokens_seen if token in text]
        assert not leaked, f"token plaintext found in {where}: {leaked}"


def test_export_reads_a_handoff_whose_expiry_annotation_was_mangled(
    site_factory: SiteFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The handoff's one reader falls back to status.handoff.expiresAt; export neither crashes nor
    loses the tokens to a hand edit."""
    eu = site_factory("eu", **CHECK)
    us_pem = issued_pem(eu, "us-client")
    issued_pem(eu, "eu-client")
    eu.create(
        PEERS,
        "us",
        {
            "endpoint": US_ENDPOINT,
            "remoteCertificates": [{"pem": us_pem}],
            "clientCertificateRef": {"name": "eu-client"},
        },
    )
    fingerprints(eu, "us")
    eu.core.patch_namespaced_secret(
        "us-handoff", eu.namespace, {"metadata": {"annotations": {f"{api.GROUP}/expires-at": "next tuesday"}}}
    )
    code, bundle, err = export(
        eu, capsys, "us", "--name", "eu", "--endpoint", EU_ENDPOINT, "--client-certificate", "us-client"
    )
    assert code == 0, err
    assert [document["kind"] for document in yaml.safe_load_all(bundle)] == ["Secret", api.PEER_KIND]
