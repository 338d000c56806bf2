"""`kubectl federation pin`: what it accepts as the remote's certificate and how it edits the pins."""

import datetime

import pytest
import yaml

from federation_operator.domain import api, certs
from federation_operator.plugin.connection import PluginError
from federation_operator.plugin.pin import (
    MAX_PINS,
    NotACertificate,
    add_pem_pin,
    certificate_from_text,
    new_peer,
)

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


def pem(subject: str) -> str:
    return certs.issue_certificate(subject=subject, validity=datetime.timedelta(days=90), now=NOW).info.pem


US = pem("us")


def test_a_pem_file_is_read_as_is() -> None:
    assert certs.describe_pem(certificate_from_text(US)).thumbprint == certs.describe_pem(US).thumbprint


def test_a_federationcert_as_kubectl_get_prints_it_gives_its_status_certificate() -> None:
    obj = {"apiVersion": api.API_VERSION, "kind": api.CERT_KIND, "metadata": {"name": "us-client"}}
    text = yaml.safe_dump({**obj, "status": {"certificate": US}})
    assert certificate_from_text(text).strip() == US.strip()


def test_a_federationcert_not_yet_issued_is_refused_with_the_reason() -> None:
    text = yaml.safe_dump({"kind": api.CERT_KIND, "metadata": {"name": "us-client"}, "spec": {}})
    with pytest.raises(NotACertificate, match=r"us-client has no status\.certificate yet"):
        certificate_from_text(text)


@pytest.mark.parametrize("text", ["", "hello", "kind: Secret\n", "-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(NotACertificate):
        certificate_from_text(text)


def test_pinning_adds_the_pem_and_keeps_the_other_pins() -> None:
    other = {"pem": pem("old")}
    result = add_pem_pin([other], US)
    assert result.changed
    assert result.pins == [other, {"pem": US}]


def test_a_thumbprint_pin_of_the_same_certificate_becomes_the_pem_pin() -> None:
    result = add_pem_pin([{"thumbprint": certs.describe_pem(US).thumbprint}], US)
    assert result.changed
    assert result.pins == [{"pem": US}]


def test_pinning_a_certificate_already_pinned_by_pem_changes_nothing() -> None:
    result = add_pem_pin([{"pem": US}], US)
    assert not result.changed
    assert result.pins == [{"pem": US}]


def test_a_full_peer_is_refused_with_what_to_do() -> None:
    full = [{"pem": pem(f"r{index}")} for index in range(MAX_PINS)]
    with pytest.raises(PluginError, match="at most 8 pins"):
        add_pem_pin(full, US)


def test_a_new_peer_needs_the_endpoint_and_our_certificate() -> None:
    with pytest.raises(PluginError, match=r"--endpoint .* and --client-certificate"):
        new_peer(name="us-region", pem=US, endpoint="https://us.example.com", client_certificate=None)
    peer = new_peer(name="us-region", pem=US, endpoint="https://us.example.com", client_certificate="fc")
    assert peer["spec"] == {
        "endpoint": "https://us.example.com",
        "remoteCertificates": [{"pem": US}],
        "clientCertificateRef": {"name": "fc"},
    }
