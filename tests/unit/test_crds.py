"""The CRDs: valid documents, and the schema + CEL rules accept good and reject bad manifests.

Rules are evaluated by the sandbox's validator (structural schema, defaults, CEL via cel-python),
the same code that makes the sandbox answer 422 the way the API server does.
"""

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from federation_devkit.sandbox.validation import prepare_object, validate_object

ROOT = Path(__file__).resolve().parents[2]
CRDS = {path.stem: yaml.safe_load(path.read_text()) for path in (ROOT / "crds").glob("*.yaml")}
PEER_CRD, CERT_CRD = CRDS["federationpeers"], CRDS["federationcerts"]
THUMB = "sha256:" + "ab" * 32


@pytest.mark.parametrize("name", sorted(CRDS))
def test_crd_documents_are_valid_apiextensions_v1(name: str) -> None:
    kubernetes_validate.validate(CRDS[name], "1.32", strict=True)


@pytest.mark.parametrize("name", sorted(CRDS))
def test_crds_are_namespaced_with_status_short_names_and_category(name: str) -> None:
    spec = CRDS[name]["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["group"] == "federation.ampora.io"
    assert spec["names"]["categories"] == ["federation"]
    assert len(spec["names"]["shortNames"]) == 2
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert version["schema"]["openAPIV3Schema"]["properties"]["status"]["type"] == "object"


def test_printer_columns_are_the_documented_ones() -> None:
    def columns(crd: dict[str, Any]) -> list[tuple[str, int]]:
        return [
            (c["name"].upper(), c.get("priority", 0))
            for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
        ]

    assert columns(PEER_CRD) == [
        ("ENDPOINT", 0),
        ("REACHABILITY", 0),
        ("LATENCY-MS", 0),
        ("LAST-SUCCESS", 0),
        ("AGE", 0),
        ("REASON", 1),
        ("CERT", 1),
        ("IN-FP", 1),
        ("OUT-FP", 1),
    ]
    assert [name for name, priority in columns(CERT_CRD) if priority == 0] == [
        "READY",
        "THUMBPRINT",
        "NOT-AFTER",
        "AGE",
    ]
    last_success = next(
        c for c in PEER_CRD["spec"]["versions"][0]["additionalPrinterColumns"] if c["name"] == "Last-Success"
    )
    assert last_success["type"] == "date"


def peer(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "endpoint": "https://us.example.com:8443",
        "remoteCertificates": [{"thumbprint": THUMB}],
    }
    body.update(spec)
    return {
        "apiVersion": "federation.ampora.io/v1alpha1",
        "kind": "FederationPeer",
        "metadata": {"name": "us"},
        "spec": body,
    }


def cert(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "federation.ampora.io/v1alpha1",
        "kind": "FederationCert",
        "metadata": {"name": "eu"},
        "spec": spec,
    }


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda path: path.name)
def test_examples_are_valid(example: Path) -> None:
    obj = yaml.safe_load(example.read_text())
    crd = PEER_CRD if obj["kind"] == "FederationPeer" else CERT_CRD
    assert validate_object(crd, obj) == []


def test_defaults_are_applied_like_the_api_server() -> None:
    stored = prepare_object(PEER_CRD, peer()).obj["spec"]
    assert stored["heartbeat"] == {"interval": "30s", "timeout": "10s", "slowThreshold": "1s"}
    assert stored["suspend"] is False
    assert stored["credentials"] == {"handoffTTL": "1h", "rotationOverlap": "1h"}
    cert_spec = prepare_object(CERT_CRD, cert()).obj["spec"]
    assert cert_spec == {"duration": "2160h", "privateKey": {"algorithm": "ECDSA"}}


GOOD_PEERS = {
    "pem pin": peer(
        remoteCertificates=[{"pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}]
    ),
    "eight pins": peer(remoteCertificates=[{"thumbprint": THUMB}] * 8),
    "secretHash": peer(inbound={"secretHash": THUMB}),
    "secretRef": peer(
        inbound={"secretRef": {"name": "s"}}, outbound={"secretRef": {"name": "o", "key": "k"}}
    ),
    "path endpoint": peer(endpoint="https://us.example.com/ampora"),
    "tight heartbeat": peer(heartbeat={"interval": "2s", "timeout": "1s", "slowThreshold": "500ms"}),
}

BAD_PEERS = {
    "http endpoint": (
        peer(endpoint="http://us.example.com"),
        "spec.endpoint",
        "endpoint must be an https:// URL",
    ),
    "query in endpoint": (peer(endpoint="https://us.example.com/?x=1"), "spec.endpoint", "without query"),
    "bad thumbprint": (
        peer(remoteCertificates=[{"thumbprint": "sha256:ABC"}]),
        "spec.remoteCertificates[0].thumbprint",
        "^sha256:[0-9a-f]{64}$",
    ),
    "both pem and thumbprint": (
        peer(remoteCertificates=[{"thumbprint": THUMB, "pem": "-----BEGIN CERTIFICATE-----"}]),
        "spec.remoteCertificates[0]",
        "exactly one of pem or thumbprint",
    ),
    "neither pem nor thumbprint": (
        peer(remoteCertificates=[{}]),
        "spec.remoteCertificates[0]",
        "exactly one",
    ),
    "no pins": (peer(remoteCertificates=[]), "spec.remoteCertificates", ""),
    "nine pins": (peer(remoteCertificates=[{"thumbprint": THUMB}] * 9), "spec.remoteCertificates", ""),
    "hash and ref": (
        peer(inbound={"secretHash": THUMB, "secretRef": {"name": "s"}}),
        "spec.inbound",
        "secretHash or secretRef, not both",
    ),
    "zero interval": (
        peer(heartbeat={"interval": "0s", "timeout": "0s"}),
        "spec.heartbeat.interval",
        "positive",
    ),
    "timeout not shorter": (
        peer(heartbeat={"interval": "10s", "timeout": "10s", "slowThreshold": "1s"}),
        "spec.heartbeat.timeout",
        "timeout must be shorter than the interval",
    ),
    "nonsense duration": (peer(heartbeat={"interval": "soon"}), "spec.heartbeat.interval", ""),
    "no endpoint": (peer(endpoint=None), "spec.endpoint", ""),
}


@pytest.mark.parametrize("name", sorted(GOOD_PEERS))
def test_good_peers_are_accepted(name: str) -> None:
    assert validate_object(PEER_CRD, GOOD_PEERS[name]) == []


@pytest.mark.parametrize("name", sorted(BAD_PEERS))
def test_bad_peers_are_rejected_with_the_field_and_the_rule_message(name: str) -> None:
    obj, field, message = BAD_PEERS[name]
    if obj["spec"].get("endpoint") is None:
        obj = copy.deepcopy(obj)
        del obj["spec"]["endpoint"]
    errors = validate_object(PEER_CRD, obj)
    assert errors, name
    assert any(error.field == field and message in str(error) for error in errors), [str(e) for e in errors]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"duration": "30m"}, "spec.duration", "at least 1h"),
        ({"duration": "100000h"}, "spec.duration", "at most"),
        ({"duration": "2160h", "renewBefore": "3000h"}, "spec.renewBefore", "shorter than duration"),
        ({"privateKey": {"algorithm": "DSA"}}, "spec.privateKey.algorithm", "Unsupported value"),
        ({"duration": "90 days"}, "spec.duration", ""),
    ],
)
def test_bad_certs_are_rejected(spec: dict[str, Any], field: str, message: str) -> None:
    errors = validate_object(CERT_CRD, cert(**spec))
    assert any(error.field == field and message in str(error) for error in errors), [str(e) for e in errors]


def test_cert_secret_name_is_immutable_but_other_fields_are_not() -> None:
    old = prepare_object(CERT_CRD, cert(secretName="a")).obj
    errors = validate_object(CERT_CRD, cert(secretName="b"), old=old)
    assert any("immutable" in str(error) for error in errors)
    assert validate_object(CERT_CRD, cert(secretName="a", duration="100h"), old=old) == []
