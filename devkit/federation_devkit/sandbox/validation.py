"""Validate custom objects against a CRD the way the Kubernetes API server does, without a server.

The sandbox must reject what a real API server rejects, or tests pass here and fail on a cluster;
and tests want to check example manifests offline with the same rules. So this module reproduces
the API server's pipeline for a structural `openAPIV3Schema`, in the server's order:

1. prune: drop fields the schema does not declare (unless `x-kubernetes-preserve-unknown-fields`),
   and nulls for non-nullable fields; report the dropped paths (for `fieldValidation=Strict`);
2. default: fill `default`s of absent fields, inside objects that exist;
3. validate: types, `required`, `enum`, `pattern`, bounds on numbers, lengths, items, properties,
   cheap `format`s, list-type set/map uniqueness, `allOf`/`anyOf`/`oneOf`/`not`;
4. CEL: `x-kubernetes-validations` at the node that declares them, for every list item and map
   value on the way, with `self` (and `oldSelf` for transition rules on updates), `message` or
   `messageExpression`, `fieldPath` and `reason`, evaluated by cel-python.

Errors are `FieldError`s whose text matches the API server's (`spec.endpoint: Invalid value:
"string": <message>`). Pure: no I/O; cel-python is the only third-party import.

On an update, CEL rules are ratcheted as by Kubernetes 1.30+ (`CRDValidationRatcheting`, on by
default): a rule that does not use `oldSelf` is not enforced on a node whose value equals its
correlated old value (through object properties, map values and `map` list items, as the server
correlates them); transition rules always run. The OpenAPI checks of step 3 are not ratcheted.

Known simplifications: CEL rules on a subtree that already failed schema validation are skipped
(the server would evaluate some of them); strings with `format: date-time`/`duration` reach CEL as
strings, not timestamps/durations; Kubernetes' CEL library extensions (`url()`, `quantity()`,
`isSorted()`, ...) and the cost budget are not available; `optionalOldSelf` is not supported.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
import functools
import ipaddress
import json
import math
import operator
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

# Reasons as the API server names them in `Status.details.causes[].reason`.
INVALID: Final = "FieldValueInvalid"
REQUIRED: Final = "FieldValueRequired"
NOT_SUPPORTED: Final = "FieldValueNotSupported"
FORBIDDEN: Final = "FieldValueForbidden"
TOO_LONG: Final = "FieldValueTooLong"
TOO_MANY: Final = "FieldValueTooMany"
DUPLICATE: Final = "FieldValueDuplicate"
TYPE_INVALID: Final = "FieldValueTypeInvalid"
# Not a server reason: an unknown field only fails under `fieldValidation=Strict`.
UNKNOWN_FIELD: Final = "FieldValueUnknown"

_LABELS: Final[Mapping[str, str]] = {
    INVALID: "Invalid value",
    TYPE_INVALID: "Invalid value",
    REQUIRED: "Required value",
    NOT_SUPPORTED: "Unsupported value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    DUPLICATE: "Duplicate value",
    UNKNOWN_FIELD: "Unknown field",
}
# The error kinds whose text carries the offending value, as in k8s.io/apimachinery field.Error.
_SHOWS_VALUE: Final = frozenset({INVALID, TYPE_INVALID, NOT_SUPPORTED, DUPLICATE, TOO_MANY})
_NO_VALUE: Final = object()
# Root-level fields the API server owns; the schema never prunes or validates them.
_ROOT_RESERVED: Final = frozenset({"apiVersion", "kind", "metadata"})


@dataclass(frozen=True)
class FieldError:
    """One invalid field, as `Status.details.causes[]` reports it."""

    field: str
    reason: str
    detail: str = ""
    value: Any = dataclasses.field(default=_NO_VALUE, compare=False)

    @property
    def message(self) -> str:
        """The text after the field path, e.g. `Invalid value: "string": must be https`."""
        parts = [_LABELS.get(self.reason, "Invalid value")]
        if self.reason in _SHOWS_VALUE and self.value is not _NO_VALUE:
            parts.append(_render_value(self.value))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)

    def __str__(self) -> str:
        return f"{self.field or '<nil>'}: {self.message}"


@dataclass(frozen=True)
class Prepared:
    """The object as the server would store it, with what was pruned and what is invalid."""

    obj: dict[str, Any]
    unknown_fields: list[str]
    errors: list[FieldError]


def version_schema(crd: Mapping[str, Any], version: str | None = None) -> Mapping[str, Any] | None:
    """The `openAPIV3Schema` of one served version (the storage version when not named)."""
    versions = crd.get("spec", {}).get("versions", [])
    for entry in versions:
        if (version is None and entry.get("storage")) or entry.get("name") == version:
            schema = entry.get("schema", {}).get("openAPIV3Schema")
            return schema if isinstance(schema, Mapping) else None
    return None


def prepare_object(
    crd: Mapping[str, Any],
    obj: Mapping[str, Any],
    *,
    old: Mapping[str, Any] | None = None,
    in_place: bool = False,
) -> Prepared:
    """Prune, default and validate `obj` (a full custom object) as the API server does on a write.

    `in_place`: prune and default `obj` itself (a copy the caller owns) instead of a copy of it.
    """
    version = str(obj.get("apiVersion", "")).rpartition("/")[2] or None
    schema = version_schema(crd, version)
    result: dict[str, Any] = obj if in_place and isinstance(obj, dict) else copy.deepcopy(dict(obj))
    if schema is None:
        return Prepared(obj=result, unknown_fields=[], errors=[])
    unknown = _prune_root(schema, result)
    _default(schema, result, root=True)
    errors: list[FieldError] = []
    _check(schema, result, path="", errors=errors, root=True)
    bad_paths = {error.field for error in errors}
    old_root = dict(old) if old is not None else None
    _check_rules(
        schema,
        _rule_view(result),
        old=_rule_view(old_root) if old_root is not None else None,
        path="",
        errors=errors,
        skip=bad_paths,
    )
    return Prepared(obj=result, unknown_fields=unknown, errors=errors)


def validate_object(
    crd: Mapping[str, Any],
    obj: Mapping[str, Any],
    *,
    old: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> list[FieldError]:
    """Everything wrong with `obj` under `crd`; with `strict`, unknown fields count (as kubectl's default)."""
    prepared = prepare_object(crd, obj, old=old)
    unknown = [
        FieldError(field=path, reason=UNKNOWN_FIELD, detail=f'unknown field "{path}"')
        for path in (prepared.unknown_fields if strict else [])
    ]
    return unknown + prepared.errors


# --- pruning -----------------------------------------------------------------------------------


def _prune_root(schema: Mapping[str, Any], obj: dict[str, Any]) -> list[str]:
    unknown: list[str] = []
    properties = schema.get("properties", {})
    for key in list(obj):
        if key in _ROOT_RESERVED:
            continue
        if key not in properties and not schema.get("x-kubernetes-preserve-unknown-fields"):
            del obj[key]
            unknown.append(key)
        elif obj[key] is None and not properties.get(key, {}).get("nullable"):
            del obj[key]
        elif key in properties:
            obj[key] = _prune(properties[key], obj[key], path=key, unknown=unknown)
    return unknown


def _prune(schema: Mapping[str, Any], value: Any, *, path: str, unknown: list[str]) -> Any:
    if schema.get("x-kubernetes-embedded-resource") or schema.get("x-kubernetes-int-or-string"):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key in list(value):
            child_schema: Mapping[str, Any]
            if properties is not None and key in properties:
                child_schema, child_path = properties[key], _child(path, key)
            elif isinstance(additional, Mapping):
                child_schema, child_path = additional, _key(path, key)
            elif preserve or additional is True:
                continue
            else:
                del value[key]
                unknown.append(_child(path, key))
                continue
            if value[key] is None and not child_schema.get("nullable"):
                del value[key]
            else:
                value[key] = _prune(child_schema, value[key], path=child_path, unknown=unknown)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            value[index] = _prune(schema["items"], item, path=f"{path}[{index}]", unknown=unknown)
    return value


# --- defaulting --------------------------------------------------------------------------------


def _default(schema: Mapping[str, Any], value: Any, *, root: bool = False) -> None:
    if isinstance(value, dict):
        for key, child in schema.get("properties", {}).items():
            if root and key in _ROOT_RESERVED:
                continue
            if key not in value and "default" in child:
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                _default(child, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for key in value:
                if key not in schema.get("properties", {}):
                    _default(additional, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _default(schema["items"], item)


# --- schema validation -------------------------------------------------------------------------

_TYPE_NAMES: Final[Mapping[type, str]] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) and value.is_integer():
        return "integer"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _type_ok(expected: str, value: Any) -> bool:
    actual = _json_type(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _check(
    schema: Mapping[str, Any],
    value: Any,
    *,
    path: str,
    errors: list[FieldError],
    root: bool = False,
) -> None:
    if value is None:
        if not schema.get("nullable") and "type" in schema:
            errors.append(_type_error(path, schema["type"], value))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if _json_type(value) not in ("integer", "string"):
            errors.append(_type_error(path, "integer or string", value))
            return
    elif "type" in schema and not _type_ok(schema["type"], value):
        errors.append(_type_error(path, schema["type"], value))
        return
    _check_value(schema, value, path=path, errors=errors)
    for keyword in ("allOf", "anyOf", "oneOf", "not"):
        if keyword in schema:
            _check_combinator(keyword, schema[keyword], value, path=path, errors=errors)
    if isinstance(value, dict):
        _check_object(schema, value, path=path, errors=errors, root=root)
    elif isinstance(value, list):
        _check_array(schema, value, path=path, errors=errors)


def _type_error(path: str, expected: str, value: Any) -> FieldError:
    actual = _json_type(value)
    return FieldError(
        field=path,
        reason=TYPE_INVALID,
        value=actual,
        detail=f'{path or "body"} in body must be of type {expected}: "{actual}"',
    )


def _check_value(schema: Mapping[str, Any], value: Any, *, path: str, errors: list[FieldError]) -> None:
    where = f"{path} in body"
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_render_value(option) for option in schema["enum"])
        errors.append(FieldError(path, NOT_SUPPORTED, f"supported values: {supported}", value))
    if isinstance(value, str):
        _check_string(schema, value, path=path, errors=errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        for keyword, exclusive, relation, compare in (
            ("minimum", "exclusiveMinimum", "greater than", operator.ge),
            ("maximum", "exclusiveMaximum", "less than", operator.le),
        ):
            if keyword not in schema:
                continue
            bound = schema[keyword]
            strict = bool(schema.get(exclusive))
            ok = compare(value, bound) and not (strict and value == bound)
            if not ok:
                phrase = relation if strict else f"{relation} or equal to"
                errors.append(FieldError(path, INVALID, f"{where} should be {phrase} {bound}", value))
        multiple = schema.get("multipleOf")
        if multiple and not math.isclose(value / multiple, round(value / multiple)):
            errors.append(FieldError(path, INVALID, f"{where} should be a multiple of {multiple}", value))


def _check_string(schema: Mapping[str, Any], value: str, *, path: str, errors: list[FieldError]) -> None:
    where = f"{path} in body"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(FieldError(path, TOO_LONG, f"may not be longer than {schema['maxLength']}", value))
    if "minLength" in schema and len(value) < schema["minLength"]:
        detail = f"{where} should be at least {schema['minLength']} chars long"
        errors.append(FieldError(path, INVALID, detail, value))
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        errors.append(FieldError(path, INVALID, f"{where} should match '{schema['pattern']}'", value))
    checker = _FORMATS.get(str(schema.get("format", "")))
    if checker is not None and not checker(value):
        errors.append(FieldError(path, INVALID, f"{where} must be of type {schema['format']}", value))


def _check_object(
    schema: Mapping[str, Any],
    value: dict[str, Any],
    *,
    path: str,
    errors: list[FieldError],
    root: bool,
) -> None:
    for key in schema.get("required", []):
        if key not in value:
            errors.append(FieldError(_child(path, key), REQUIRED))
    count = len(value)
    if "maxProperties" in schema and count > schema["maxProperties"]:
        detail = f"must have at most {schema['maxProperties']} items"
        errors.append(FieldError(path, TOO_MANY, detail, count))
    if "minProperties" in schema and count < schema["minProperties"]:
        detail = f"{path} in body should have at least {schema['minProperties']} properties"
        errors.append(FieldError(path, INVALID, detail, count))
    properties = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    for key, child in value.items():
        if root and key in _ROOT_RESERVED:
            continue
        if key in properties:
            _check(properties[key], child, path=_child(path, key), errors=errors)
        elif isinstance(additional, Mapping):
            _check(additional, child, path=_key(path, key), errors=errors)


def _check_array(schema: Mapping[str, Any], value: list[Any], *, path: str, errors: list[FieldError]) -> None:
    count = len(value)
    if "maxItems" in schema and count > schema["maxItems"]:
        errors.append(FieldError(path, TOO_MANY, f"must have at most {schema['maxItems']} items", count))
    if "minItems" in schema and count < schema["minItems"]:
        detail = f"{path} in body should have at least {schema['minItems']} items"
        errors.append(FieldError(path, INVALID, detail, count))
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            _check(items, item, path=f"{path}[{index}]", errors=errors)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type in ("set", "map") or schema.get("uniqueItems"):
        map_keys: list[str] = list(schema.get("x-kubernetes-list-map-keys", [])) if list_type == "map" else []
        seen: set[str] = set()
        for index, item in enumerate(value):
            identity = (
                {key: item.get(key) for key in map_keys} if map_keys and isinstance(item, dict) else item
            )
            marker = json.dumps(identity, sort_keys=True)
            if marker in seen:
                errors.append(FieldError(f"{path}[{index}]", DUPLICATE, "", identity))
            seen.add(marker)


def _check_combinator(keyword: str, option: Any, value: Any, *, path: str, errors: list[FieldError]) -> None:
    def failures(sub: Mapping[str, Any]) -> list[FieldError]:
        found: list[FieldError] = []
        _check(sub, value, path=path, errors=found)
        return found

    where = f"{path or 'body'} in body"
    if keyword == "not":
        if not failures(option):
            errors.append(FieldError(path, INVALID, f"{where} must not validate the schema (not)", value))
        return
    passed = [not failures(sub) for sub in option]
    if keyword == "allOf":
        for sub in option:
            errors.extend(failures(sub))
    elif keyword == "anyOf" and not any(passed):
        errors.append(FieldError(path, INVALID, f"{where} must validate at least one schema (anyOf)", value))
    elif keyword == "oneOf" and sum(passed) != 1:
        errors.append(
            FieldError(path, INVALID, f"{where} must validate one and only one schema (oneOf)", value)
        )


def _is_date_time(value: str) -> bool:
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value or " " in value


def _is_date(value: str) -> bool:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_ip(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


def _is_byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


_GO_DURATION: Final = re.compile(r"^[-+]?(0|(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_FORMATS: Final[Mapping[str, Callable[[str], bool]]] = {
    "date-time": _is_date_time,
    "date": _is_date,
    "uuid": _is_uuid,
    "ipv4": lambda value: _is_ip(value, 4),
    "ipv6": lambda value: _is_ip(value, 6),
    "byte": _is_byte,
    "duration": lambda value: _GO_DURATION.match(value) is not None,
}


# --- CEL rules ---------------------------------------------------------------------------------


def _rule_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What `self` is at the root: the object with only name/generateName left of its metadata."""
    view = dict(obj)
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        view["metadata"] = {key: metadata[key] for key in ("name", "generateName") if key in metadata}
    return view


def _check_rules(
    schema: Mapping[str, Any],
    value: Any,
    *,
    old: Any,
    path: str,
    errors: list[FieldError],
    skip: set[str],
) -> None:
    if value is None or any(_within(bad, path) for bad in skip):
        return
    # Validation ratcheting (Kubernetes 1.30+, on by default): on an update, a rule that does not
    # use `oldSelf` is not enforced on a node equal to its correlated old value. Not evaluating it
    # gives the server's answer, and spares every status or metadata write the spec's rules.
    unchanged = old is not None and _identical(value, old)
    if unchanged and not _holds_transition_rules(schema):
        return
    for rule in schema.get("x-kubernetes-validations", []):
        if unchanged and not _is_transition(rule):
            continue
        error = _evaluate_rule(rule, value, old=old, path=path)
        if error is not None:
            errors.append(error)
    for child_schema, child_value, child_old, child_path in _children(schema, value, old, path):
        _check_rules(child_schema, child_value, old=child_old, path=child_path, errors=errors, skip=skip)


def _children(
    schema: Mapping[str, Any], value: Any, old: Any, path: str
) -> Iterator[tuple[Mapping[str, Any], Any, Any, str]]:
    """Child nodes with their schema, value, correlated old value (`None` if none) and path."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, child in value.items():
            if path == "" and key in _ROOT_RESERVED:
                continue
            if key in properties:
                yield properties[key], child, old_map.get(key), _child(path, key)
            elif isinstance(additional, Mapping):
                yield additional, child, old_map.get(key), _key(path, key)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        # Only map-lists correlate items with the old object (by their keys), as on the server.
        map_keys = (
            schema.get("x-kubernetes-list-map-keys", [])
            if schema.get("x-kubernetes-list-type") == "map"
            else []
        )
        olds: dict[str, Any] = {}
        if map_keys and isinstance(old, list):
            olds = {_identity(item, map_keys): item for item in old if isinstance(item, dict)}
        for index, item in enumerate(value):
            old_item = olds.get(_identity(item, map_keys)) if map_keys and isinstance(item, dict) else None
            yield schema["items"], item, old_item, f"{path}[{index}]"


def _identical(value: Any, old: Any) -> bool:
    """Equal as JSON values, types included (`true` is not `1`, `1.0` is not `1`)."""
    if type(value) is not type(old):
        return False
    if isinstance(value, dict):
        return value.keys() == old.keys() and all(_identical(item, old[key]) for key, item in value.items())
    if isinstance(value, list):
        return len(value) == len(old) and all(map(_identical, value, old))
    return bool(value == old)


def _is_transition(rule: Mapping[str, Any]) -> bool:
    """A transition rule uses `oldSelf`: it runs only on updates, and is never ratcheted."""
    return _uses_old_self(str(rule.get("rule", "")))


@functools.cache
def _uses_old_self(expression: str) -> bool:
    return re.search(r"\boldSelf\b", expression) is not None


# Per schema node (by identity; the node is kept with its answer so that its id is not reused):
# whether a transition rule lies in or under it. Asked on every write for each unchanged node, it
# would otherwise walk the status schema's subtrees again on every status write. Bounded: schemas
# come and go with each sandbox's CRDs.
_TRANSITIONS: dict[int, tuple[Mapping[str, Any], bool]] = {}
_TRANSITIONS_KEPT: Final = 4096


def _holds_transition_rules(schema: Mapping[str, Any]) -> bool:
    """Whether this node or a node under it has a transition rule (what `_children` descends into)."""
    known = _TRANSITIONS.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    children = list((schema.get("properties") or {}).values())
    children += [
        schema[key] for key in ("additionalProperties", "items") if isinstance(schema.get(key), Mapping)
    ]
    found = any(_is_transition(rule) for rule in schema.get("x-kubernetes-validations", [])) or any(
        _holds_transition_rules(child) for child in children
    )
    if len(_TRANSITIONS) >= _TRANSITIONS_KEPT:
        _TRANSITIONS.clear()
    _TRANSITIONS[id(schema)] = (schema, found)
    return found


def _identity(item: Mapping[str, Any], keys: list[str]) -> str:
    return json.dumps([item.get(key) for key in keys])


def _evaluate_rule(rule: Mapping[str, Any], value: Any, *, old: Any, path: str) -> FieldError | None:
    expression = str(rule.get("rule", ""))
    transition = _is_transition(rule)
    if transition and old is None:
        return None
    field_path = path + _field_path(str(rule.get("fieldPath", "")))
    reason = str(rule.get("reason", INVALID))
    shown = "object" if isinstance(value, dict) else _json_type(value)
    activation: dict[str, Any] = {}
    try:
        # Conversion too: an integer beyond int64 anywhere under `self` raises here, and must
        # be a 422 like the API server's, not a 500.
        activation["self"] = json_to_cel(value)
        if transition:
            activation["oldSelf"] = json_to_cel(old)
        result = _program(expression).evaluate(activation)
    except (CELEvalError, TypeError, ValueError, KeyError) as exc:
        detail = f"{_eval_message(exc)} evaluating rule: {expression}"
        return FieldError(field_path, INVALID, detail, shown)
    if bool(result):
        return None
    return FieldError(field_path, reason, _rule_message(rule, activation), shown)


def _rule_message(rule: Mapping[str, Any], activation: Mapping[str, Any]) -> str:
    expression = rule.get("messageExpression")
    if expression:
        try:
            text = _program(str(expression)).evaluate(dict(activation))
        except (CELEvalError, TypeError, ValueError, KeyError):
            text = None
        if isinstance(text, str | celtypes.StringType) and str(text).strip():
            return str(text)
    message = rule.get("message")
    if message:
        return str(message)
    return f"failed rule: {rule.get('rule', '')}"


def _eval_message(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _field_path(relative: str) -> str:
    """`.spec.x['k']` (CEL fieldPath syntax) in the server's error path syntax: `.spec.x[k]`."""
    return re.sub(r"\['([^']*)'\]", r"[\1]", relative)


@functools.cache
def _environment() -> celpy.Environment:
    # Built once: loading cel-python's grammar costs ~0.1 s, far more than compiling a rule.
    return celpy.Environment()


@functools.cache
def _program(expression: str) -> celpy.Runner:
    environment = _environment()
    return environment.program(environment.compile(expression))


# --- paths and values --------------------------------------------------------------------------


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _within(bad: str, path: str) -> bool:
    """Whether `path` is the failed node `bad` or lies under it."""
    return path == bad or path.startswith((f"{bad}.", f"{bad}["))


def _render_value(value: Any) -> str:
    """A value as Go's `%#v`-ish rendering in field errors: strings quoted, the rest as JSON."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
