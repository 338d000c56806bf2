"""Test support for the ingress tests: client certificates and offline schema validation.

Certificates are shaped like the ones FederationCert issues (self-signed ECDSA P-256, CA:FALSE,
KeyUsage digitalSignature, EKU clientAuth), with free validity so expired ones can be made.
Schema validation uses the upstream CRD schemas copied into tests/schemas/ (versions and licences
in its README), made strict (`additionalProperties: false`) so a misspelt field fails the test.
"""

import datetime
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jsonschema import Draft202012Validator

from federation_operator.domain import certs

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

CRD_FILES = {
    "Gateway": "gateway-api/standard/gateway.networking.k8s.io_gateways.yaml",
    "HTTPRoute": "gateway-api/standard/gateway.networking.k8s.io_httproutes.yaml",
    "ClientTrafficPolicy": "envoy-gateway/gateway.envoyproxy.io_clienttrafficpolicies.yaml",
    "SecurityPolicy": "envoy-gateway/gateway.envoyproxy.io_securitypolicies.yaml",
}


@dataclass(frozen=True)
class ClientCert:
    pem: str
    key_pem: str
    der: bytes

    @property
    def pin(self) -> dict[str, str]:
        return {"pem": self.pem}


def make_client_cert(
    common_name: str, *, not_before: datetime.datetime, not_after: datetime.datetime
) -> ClientCert:
    """A client certificate exactly as the operator issues one, valid over the given window."""
    now = not_before + certs.BACKDATE
    issued = certs.issue_certificate(subject=common_name, validity=not_after - now, now=now)
    return ClientCert(
        pem=issued.info.pem,
        key_pem=issued.key_pem.reveal().decode("ascii"),
        der=x509.load_pem_x509_certificate(issued.info.pem.encode()).public_bytes(serialization.Encoding.DER),
    )


def _strict(schema: Any) -> Any:
    # Reject unknown fields (upstream schemas accept them, the API server would prune them), but leave
    # combinators and preserve-unknown-fields objects alone.
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: (
            value
            if key in ("anyOf", "allOf", "oneOf", "not", "default", "enum", "x-kubernetes-validations")
            else {name: _strict(sub) for name, sub in value.items()}
            if key == "properties"
            else _strict(value)
        )
        for key, value in schema.items()
    }
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _validator(kind: str, api_version: str) -> Draft202012Validator:
    version = api_version.split("/")[-1]
    with (SCHEMAS / CRD_FILES[kind]).open() as handle:
        crd = yaml.safe_load(handle)
    entry = next(v for v in crd["spec"]["versions"] if v["name"] == version and v["served"])
    return Draft202012Validator(_strict(entry["schema"]["openAPIV3Schema"]))


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Errors of `obj` against its upstream CRD schema, made strict; empty when valid."""
    validator = _validator(obj["kind"], obj["apiVersion"])
    return sorted(
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(obj)
    )
