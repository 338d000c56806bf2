"""The sandbox's CRD validation: the API server's pruning, defaulting, schema checks and CEL rules."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from federation_devkit.sandbox.validation import (
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_MANY,
    TYPE_INVALID,
    UNKNOWN_FIELD,
    prepare_object,
    validate_object,
)

CRDS = Path(__file__).resolve().parents[2] / "crds"
THUMB = "sha256:" + "a" * 64


def crd_for(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Thing", "plural": "things"},
            "scope": "Namespaced",
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
            ],
        },
    }


def thing(spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": spec}


def spec_schema(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return crd_for(
        {
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": properties, **extra}},
        }
    )


def test_type_mismatch_is_reported_with_the_servers_wording() -> None:
    errors = validate_object(spec_schema({"n": {"type": "integer"}}), thing({"n": "x"}))
    assert [(e.field, e.reason) for e in errors] == [("spec.n", TYPE_INVALID)]
    assert (
        str(errors[0]) == 'spec.n: Invalid value: "string": spec.n in body must be of type integer: "string"'
    )


def test_required_enum_pattern_and_bounds() -> None:
    crd = spec_schema(
        {
            "name": {"type": "string"},
            "algo": {"type": "string", "enum": ["ECDSA", "RSA"]},
            "hex": {"type": "string", "pattern": "^[0-9a-f]+$", "maxLength": 4},
            "count": {"type": "integer", "minimum": 1, "maximum": 3},
            "items": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
        },
        required=["name"],
    )
    obj = thing({"algo": "DSA", "hex": "XYZ12", "count": 0, "items": ["a", "b"]})
    found = {(e.field, e.reason) for e in validate_object(crd, obj)}
    assert found == {
        ("spec.name", REQUIRED),
        ("spec.algo", NOT_SUPPORTED),
        ("spec.hex", INVALID),
        ("spec.hex", "FieldValueTooLong"),
        ("spec.count", INVALID),
        ("spec.items", TOO_MANY),
    }


def test_formats_are_checked_where_cheap() -> None:
    crd = spec_schema({"at": {"type": "string", "format": "date-time"}})
    assert validate_object(crd, thing({"at": "2025-01-01T00:00:00Z"})) == []
    assert [e.field for e in validate_object(crd, thing({"at": "yesterday"}))] == ["spec.at"]


def test_defaults_fill_absent_fields_inside_existing_objects_only() -> None:
    crd = spec_schema(
        {
            "duration": {"type": "string", "default": "2160h"},
            "key": {"type": "object", "properties": {"algorithm": {"type": "string", "default": "ECDSA"}}},
            "absent": {"type": "object", "properties": {"x": {"type": "string", "default": "y"}}},
        }
    )
    prepared = prepare_object(crd, thing({"key": {}}))
    assert prepared.obj["spec"] == {"duration": "2160h", "key": {"algorithm": "ECDSA"}}


def test_unknown_fields_are_pruned_and_reported_for_strict_mode() -> None:
    crd = spec_schema(
        {
            "known": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        }
    )
    obj = thing({"known": "a", "typo": 1, "free": {"anything": 2}})
    obj["extra"] = True
    prepared = prepare_object(crd, obj)
    assert prepared.obj["spec"] == {"known": "a", "free": {"anything": 2}}
    assert "extra" not in prepared.obj
    assert sorted(prepared.unknown_fields) == ["extra", "spec.typo"]
    assert {e.reason for e in validate_object(crd, obj)} == {UNKNOWN_FIELD}
    assert validate_object(crd, obj, strict=False) == []


def test_nulls_of_non_nullable_fields_are_dropped() -> None:
    crd = spec_schema({"a": {"type": "string"}, "b": {"type": "string", "nullable": True}})
    assert prepare_object(crd, thing({"a": None, "b": None})).obj["spec"] == {"b": None}


def test_cel_rule_message_and_node_path() -> None:
    crd = spec_schema(
        {
            "endpoint": {
                "type": "string",
                "x-kubernetes-validations": [
                    {"rule": "self.startsWith('https://')", "message": "must be https"}
                ],
            }
        }
    )
    (error,) = validate_object(crd, thing({"endpoint": "http://x"}))
    assert str(error) == 'spec.endpoint: Invalid value: "string": must be https'
    assert validate_object(crd, thing({"endpoint": "https://x"})) == []


def test_cel_rules_run_for_every_list_item_with_its_index() -> None:
    crd = spec_schema(
        {
            "pins": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"pem": {"type": "string"}, "thumbprint": {"type": "string"}},
                    "x-kubernetes-validations": [
                        {"rule": "has(self.pem) != has(self.thumbprint)", "message": "one of"}
                    ],
                },
            }
        }
    )
    errors = validate_object(crd, thing({"pins": [{"pem": "p"}, {"pem": "p", "thumbprint": "t"}, {}]}))
    assert [e.field for e in errors] == ["spec.pins[1]", "spec.pins[2]"]


def test_cel_field_path_message_expression_and_reason() -> None:
    crd = spec_schema(
        {"interval": {"type": "integer"}, "timeout": {"type": "integer"}},
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "self.timeout < self.interval",
                    "messageExpression": (
                        "'timeout ' + string(self.timeout) + ' not below ' + string(self.interval)"
                    ),
                    "fieldPath": ".timeout",
                    "reason": "FieldValueForbidden",
                }
            ]
        },
    )
    (error,) = validate_object(crd, thing({"interval": 5, "timeout": 10}))
    assert (error.field, error.reason, error.detail) == (
        "spec.timeout",
        "FieldValueForbidden",
        "timeout 10 not below 5",
    )


def test_cel_without_message_names_the_rule() -> None:
    crd = spec_schema({}, **{"x-kubernetes-validations": [{"rule": "size(self) > 0"}]})
    (error,) = validate_object(crd, thing({}))
    assert error.detail == "failed rule: size(self) > 0"


def test_transition_rules_only_on_update_with_an_old_value() -> None:
    crd = spec_schema(
        {
            "secretName": {
                "type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}],
            }
        }
    )
    assert validate_object(crd, thing({"secretName": "a"})) == []
    assert validate_object(crd, thing({"secretName": "b"}), old=thing({"secretName": "b"})) == []
    (error,) = validate_object(crd, thing({"secretName": "b"}), old=thing({"secretName": "a"}))
    assert (error.field, error.detail) == ("spec.secretName", "immutable")


def test_cel_rules_are_ratcheted_on_fields_an_update_leaves_as_they_were() -> None:
    # A rule tightened after objects were stored (Kubernetes 1.30+ ratcheting): an update that
    # leaves the field as it is passes, one that changes it to another invalid value does not.
    crd = spec_schema(
        {
            "name": {"type": "string", "x-kubernetes-validations": [{"rule": "size(self) < 3"}]},
            "other": {"type": "string"},
        },
        **{"x-kubernetes-validations": [{"rule": "!has(self.other) || self.other != 'no'"}]},
    )
    stored = thing({"name": "long"})
    assert [e.field for e in validate_object(crd, thing({"name": "long"}))] == ["spec.name"]
    assert validate_object(crd, thing({"name": "long", "other": "x"}), old=stored) == []
    (error,) = validate_object(crd, thing({"name": "longer"}), old=stored)
    assert error.field == "spec.name"
    # `spec` itself changed: its own rule runs, and `spec.name` (unchanged) stays ratcheted.
    (error,) = validate_object(crd, thing({"name": "long", "other": "no"}), old=stored)
    assert error.field == "spec"
    # Types count: `1` is not the `1.0` that was stored, so the rule runs again.
    numbers = spec_schema({"n": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.0"}]}})
    assert validate_object(numbers, thing({"n": 1.0}), old=thing({"n": 1.0})) == []
    assert [e.field for e in validate_object(numbers, thing({"n": 1}), old=thing({"n": 1.0}))] == ["spec.n"]


def test_transition_rules_are_never_ratcheted() -> None:
    crd = spec_schema(
        {"counter": {"type": "integer", "x-kubernetes-validations": [{"rule": "self != oldSelf"}]}}
    )
    (error,) = validate_object(crd, thing({"counter": 1}), old=thing({"counter": 1}))
    assert error.field == "spec.counter"
    assert validate_object(crd, thing({"counter": 2}), old=thing({"counter": 1})) == []


def test_cel_evaluation_errors_are_field_errors_not_crashes() -> None:
    crd = spec_schema({}, **{"x-kubernetes-validations": [{"rule": "self.missing == 1"}]})
    (error,) = validate_object(crd, thing({}))
    assert error.field == "spec"
    assert "evaluating rule" in error.detail


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"endpoint": "http://x", "remoteCertificates": [{"thumbprint": THUMB}]},
            "spec.endpoint",
            "endpoint must be an https:// URL",
        ),
        (
            {"endpoint": "https://x", "remoteCertificates": [{"thumbprint": "sha256:AB"}]},
            "spec.remoteCertificates[0].thumbprint",
            "thumbprint must match ^sha256:[0-9a-f]{64}$",
        ),
        (
            {"endpoint": "https://x", "remoteCertificates": [{}]},
            "spec.remoteCertificates[0]",
            "a pin has exactly one of pem or thumbprint",
        ),
        (
            {
                "endpoint": "https://x",
                "remoteCertificates": [{"thumbprint": THUMB}],
                "heartbeat": {"interval": "5s", "timeout": "10s"},
            },
            "spec.heartbeat.timeout",
            "heartbeat timeout must be shorter than the interval",
        ),
    ],
)
def test_our_federation_peer_crd_rules(spec: dict[str, Any], field: str, message: str) -> None:
    crd = yaml.safe_load((CRDS / "federationpeers.yaml").read_text())
    obj = {
        "apiVersion": "federation.ampora.io/v1alpha1",
        "kind": "FederationPeer",
        "metadata": {"name": "p"},
        "spec": spec,
    }
    assert (field, message) in {(e.field, e.detail) for e in validate_object(crd, obj)}
