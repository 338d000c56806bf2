"""The export bundle, built purely: the swap and the no-inbound-token case."""

import base64

import pytest

from federation_operator.domain import api, tokens
from federation_operator.domain.tokens import SecretText
from federation_operator.plugin import cli
from federation_operator.plugin.export import Handover, build_bundle

OUR_INBOUND = SecretText("I" * 43)
OUR_OUTBOUND = SecretText("O" * 43)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_the_bundle_swaps_inbound_and_outbound_and_pins_our_certificate() -> None:
    secret, peer = build_bundle(
        remote_name="eu",
        endpoint="https://eu.example",
        handover=Handover(certificate_pem=PEM, remote_inbound=OUR_OUTBOUND, remote_outbound=OUR_INBOUND),
        client_certificate="us-client",
    )
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert secret["metadata"] == {"name": "eu-credentials"}
    assert data == {"outbound": OUR_INBOUND.reveal(), "inbound": OUR_OUTBOUND.reveal()}
    assert peer["kind"] == api.PEER_KIND
    assert peer["spec"] == {
        "endpoint": "https://eu.example",
        "remoteCertificates": [{"pem": PEM}],
        "outbound": {"secretRef": {"name": "eu-credentials", "key": "outbound"}},
        "clientCertificateRef": {"name": "us-client"},
        "inbound": {"secretRef": {"name": "eu-credentials", "key": "inbound"}},
    }


def test_without_our_inbound_token_the_remote_keeps_its_secret_and_learns_a_hash() -> None:
    (peer,) = build_bundle(
        remote_name="eu",
        endpoint="https://eu.example",
        handover=Handover(certificate_pem=PEM, remote_inbound=OUR_OUTBOUND),
        remote_namespace="fed",
    )
    assert peer["metadata"] == {"name": "eu", "namespace": "fed"}
    assert peer["spec"]["inbound"] == {"secretHash": tokens.hash_token(OUR_OUTBOUND)}
    assert peer["spec"]["outbound"] == {"secretRef": {"name": "eu-credentials", "key": "outbound"}}
    assert OUR_OUTBOUND.reveal() not in str(peer)


def test_with_our_server_ca_the_bundle_carries_it_and_the_remote_trusts_it() -> None:
    config_map, _, peer = build_bundle(
        remote_name="eu",
        endpoint="https://eu.example",
        handover=Handover(certificate_pem=PEM, remote_inbound=OUR_OUTBOUND, remote_outbound=OUR_INBOUND),
        client_certificate="us-client",
        server_ca_pem=PEM,
        remote_namespace="fed",
    )
    assert config_map == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "eu-server-ca", "namespace": "fed"},
        "data": {"ca.crt": PEM},
    }
    assert peer["spec"]["serverTrust"] == {
        "caBundleRef": {"kind": "ConfigMap", "name": "eu-server-ca", "key": "ca.crt"}
    }


def test_export_asks_which_certificate_the_remote_presents(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["export", "us", "--name", "eu", "--endpoint", "https://eu.example"])
    assert exit_info.value.code == 2
    assert "--client-certificate" in capsys.readouterr().err
