"""FederationCert end to end: a real kopf operator against the sandbox API."""

import base64
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from federation_operator.domain import api
from tests.harness.kopf_state import change_spec_behind_kopfs_back
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

CERTS = api.CERT_PLURAL


def issued(site: Site, name: str = "eu-client", spec: dict[str, Any] | None = None) -> dict[str, Any]:
    site.create(CERTS, name, spec or {"subject": "ampora-eu"})
    site.wait_condition(CERTS, name, "Ready", "True")
    cert = site.get(CERTS, name)
    assert cert is not None
    return cert


def secret_bytes(site: Site, name: str) -> dict[str, bytes]:
    secret = site.secret(name)
    assert secret is not None
    return {key: base64.b64decode(value) for key, value in secret.data.items()}


def test_issues_a_tls_secret_owned_by_the_cert_and_publishes_public_facts(site: Site) -> None:
    cert = issued(site)
    status = cert["status"]
    secret = site.secret("eu-client-tls")
    assert secret is not None
    assert secret.type == "kubernetes.io/tls"
    assert secret.metadata.owner_references[0].uid == cert["metadata"]["uid"]
    assert secret.metadata.labels[api.LABEL_ROLE] == api.ROLE_CLIENT_CERT
    assert status["thumbprint"].startswith("sha256:")
    assert status["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert {"spkiSha256", "notBefore", "notAfter", "renewalTime"} <= status.keys()
    assert status["observedGeneration"] == cert["metadata"]["generation"]
    assert "PRIVATE KEY" not in str(cert)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_status_thumbprint_is_what_openssl_prints(site: Site, tmp_path: Path) -> None:
    status = issued(site)["status"]
    pem = tmp_path / "cert.pem"
    pem.write_text(status["certificate"])
    printed = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert status["thumbprint"] == "sha256:" + printed.split("=", 1)[1].replace(":", "").lower()


def test_restarts_and_unrelated_edits_never_reissue(site: Site) -> None:
    issued(site)
    before = secret_bytes(site, "eu-client-tls")
    site.stop_operator()
    site.start_operator()
    site.patch(CERTS, "eu-client", {"metadata": {"labels": {"team": "a"}, "annotations": {"note": "b"}}})
    site.patch(CERTS, "eu-client", {"spec": {"duration": "4000h", "subject": "renamed"}})
    # The operator has seen the edits once it reports the new generation; nothing was re-issued.
    generation = site.get(CERTS, "eu-client")["metadata"]["generation"]  # type: ignore[index]
    wait_for(
        lambda: (site.get(CERTS, "eu-client") or {}).get("status", {}).get("observedGeneration") == generation
    )
    site.stop_operator()
    site.start_operator()
    wait_for(lambda: site.condition(CERTS, "eu-client", "Ready"))
    assert secret_bytes(site, "eu-client-tls") == before


def test_a_deleted_secret_is_reported_and_reissued_only_on_request(site: Site) -> None:
    first = issued(site)["status"]["thumbprint"]
    site.core.delete_namespaced_secret("eu-client-tls", site.namespace)
    condition = site.wait_condition(CERTS, "eu-client", "Ready", "False", reason="SecretMissing")
    assert api.ANNOTATION_REISSUE in condition["message"]
    assert site.secret("eu-client-tls") is None
    site.patch(CERTS, "eu-client", {"metadata": {"annotations": {api.ANNOTATION_REISSUE: "true"}}})
    site.wait_condition(CERTS, "eu-client", "Ready", "True")
    cert = site.get(CERTS, "eu-client")
    assert cert is not None
    assert cert["status"]["thumbprint"] != first
    assert api.ANNOTATION_REISSUE not in (cert["metadata"].get("annotations") or {})
    assert site.secret("eu-client-tls") is not None


def test_a_tampered_secret_is_reported_not_overwritten(site: Site) -> None:
    issued(site)
    other = issued(site, "other")
    foreign_key = secret_bytes(site, "other-tls")["tls.key"]
    site.core.patch_namespaced_secret(
        "eu-client-tls", site.namespace, {"data": {"tls.key": base64.b64encode(foreign_key).decode()}}
    )
    condition = site.wait_condition(CERTS, "eu-client", "Ready", "False", reason="SecretTampered")
    assert "does not belong" in condition["message"]
    assert secret_bytes(site, "eu-client-tls")["tls.key"] == foreign_key
    assert other["status"]["thumbprint"]


def test_a_foreign_secret_with_the_same_name_is_left_alone(site: Site) -> None:
    site.core.create_namespaced_secret(
        site.namespace, {"metadata": {"name": "eu-client-tls"}, "stringData": {"x": "y"}}
    )
    site.create(CERTS, "eu-client", {})
    site.wait_condition(CERTS, "eu-client", "Ready", "False", reason="SecretConflict")
    assert secret_bytes(site, "eu-client-tls") == {"x": b"y"}


@pytest.mark.parametrize(("algorithm", "marker"), [("RSA", b"RSA"), ("Ed25519", b"")])
def test_algorithms_are_honoured(site: Site, algorithm: str, marker: bytes) -> None:
    from cryptography.hazmat.primitives import serialization

    issued(site, "alg", {"privateKey": {"algorithm": algorithm}})
    key = serialization.load_pem_private_key(secret_bytes(site, "alg-tls")["tls.key"], password=None)
    assert type(key).__name__.lower().startswith(algorithm.lower()[:3])
    if algorithm == "Ed25519":
        wait_for(lambda: "AlgorithmWarning" in {event.reason for event in site.events()}, message="warning")


def test_deleting_the_cert_leaves_nothing_behind(site: Site) -> None:
    issued(site)
    site.delete(CERTS, "eu-client")
    wait_for(lambda: site.get(CERTS, "eu-client") is None and site.secret("eu-client-tls") is None)


def test_expiring_condition_and_event_once_renewal_time_passes(site_factory: SiteFactory) -> None:
    site = site_factory("eu")
    # renewBefore three seconds under the duration: renewal is due three seconds after issuance.
    issued(site, "short", {"duration": "1h", "renewBefore": "59m57s"})
    assert site.condition(CERTS, "short", "Expiring")["status"] == "False"  # type: ignore[index]
    site.wait_condition(CERTS, "short", "Expiring", "True")
    wait_for(lambda: [e for e in site.events() if e.reason == "Expiring"], message="Expiring event")


def test_no_private_key_in_logs_events_status_or_annotations(
    site: Site, captured_logs: pytest.LogCaptureFixture
) -> None:
    issued(site)
    site.stop_operator()
    site.start_operator()
    site.patch(CERTS, "eu-client", {"metadata": {"labels": {"x": "1"}}})
    key = secret_bytes(site, "eu-client-tls")["tls.key"]
    key_body = "".join(key.decode().splitlines()[1:-1])
    cert = site.get(CERTS, "eu-client")
    haystacks = [
        captured_logs.text,
        str(cert),
        str([(event.reason, event.message) for event in site.events()]),
    ]
    for haystack in haystacks:
        assert "PRIVATE KEY" not in haystack
        assert key_body[:40] not in haystack.replace("\n", "")


def test_a_spec_change_kopf_believes_handled_reaches_the_status_within_the_check_interval(
    site_factory: SiteFactory,
) -> None:
    """kopf drops a change that returns to the last handled spec while its handlers are in progress
    (A -> B -> A), so the update handler may never run for the spec the cert ends with. The
    cert-check timer (`cert_check_interval`) judges the cert as it is, whatever kopf handled. Made
    here at once: the spec changes together with kopf's diff-base, so kopf runs no change handler."""
    site = site_factory("eu")
    interval = site.config.cert_check_interval  # the harness's 1 s
    before = issued(site, "eu-client", {"subject": "ampora-eu", "duration": "1000h"})["status"]
    changed = change_spec_behind_kopfs_back(site, CERTS, "eu-client", {"renewBefore": "100h"})
    generation = changed["metadata"]["generation"]
    renewal = datetime.fromisoformat(before["notAfter"]) - timedelta(hours=100)

    def judged() -> dict[str, Any] | None:
        status = dict((site.get(CERTS, "eu-client") or {}).get("status") or {})
        return status if status.get("observedGeneration") == generation else None

    # Far inside the default interval (60 s): only the configured one can have done it.
    after = wait_for(judged, timeout=20 * interval, message="the cert judged for its new generation")
    assert datetime.fromisoformat(after["renewalTime"]) == renewal
    assert after["thumbprint"] == before["thumbprint"], "a spec edit never re-issues"
