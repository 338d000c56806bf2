"""Label and field selectors, parsed and matched as the API server does on list and watch.

The federation server's watches and kopf's list/watch calls filter by labels; a sandbox that ignored
selectors would hand them objects a real cluster never would. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

_TOKEN: Final = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),!=]+)")
_SET_OPERATORS: Final = ("in", "notin")


class SelectorError(ValueError):
    """The selector text does not parse: the server answers 400."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the label too, as on the server.
        return not present or value not in self.values


def parse_label_selector(text: str) -> list[Requirement]:
    """`a=b,c!=d,e in (f,g),h notin (i),j,!k` into requirements (all must match)."""
    tokens: list[str] = _TOKEN.findall(text or "")
    requirements: list[Requirement] = []
    position = 0

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise SelectorError(f"unexpected end of label selector {text!r}")
        token = tokens[position]
        position += 1
        return token

    while position < len(tokens):
        token = take()
        if token == "!":
            requirements.append(Requirement(take(), "!"))
        else:
            key = token
            nxt = tokens[position] if position < len(tokens) else ","
            if nxt == ",":
                requirements.append(Requirement(key, "exists"))
            elif nxt in ("=", "==", "!="):
                take()
                operator = "!=" if nxt == "!=" else "="
                value = tokens[position] if position < len(tokens) and tokens[position] != "," else ""
                if value:
                    take()
                requirements.append(Requirement(key, operator, frozenset({value})))
            elif nxt in _SET_OPERATORS:
                take()
                if take() != "(":
                    raise SelectorError(f"expected '(' after {nxt!r} in {text!r}")
                values: set[str] = set()
                while (item := take()) != ")":
                    if item != ",":
                        values.add(item)
                requirements.append(Requirement(key, nxt, frozenset(values)))
            else:
                raise SelectorError(f"unable to parse requirement {key!r} {nxt!r} in {text!r}")
        if position < len(tokens):
            if tokens[position] != ",":
                raise SelectorError(f"expected ',' in label selector {text!r}")
            position += 1
    return requirements


FieldGetter = Callable[[Mapping[str, Any]], str]


def _path(*keys: str) -> FieldGetter:
    def get(obj: Mapping[str, Any]) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        return "" if value is None else str(value)

    return get


# Fields every kind supports in a fieldSelector.
FIELD_GETTERS: Final[Mapping[str, FieldGetter]] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}
# The extra fields the API server supports for some built-in kinds, by `plural` (core group).
# Events matter most: `kubectl describe` finds an object's events with
# `involvedObject.name=...,involvedObject.namespace=...,involvedObject.kind=...,involvedObject.uid=...`.
KIND_FIELD_GETTERS: Final[Mapping[str, Mapping[str, FieldGetter]]] = {
    "events": {
        **{
            f"involvedObject.{key}": _path("involvedObject", key)
            for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        },
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    "secrets": {"type": _path("type")},
    "namespaces": {"status.phase": _path("status", "phase")},
}


def field_getters(plural: str = "") -> Mapping[str, FieldGetter]:
    """The fields a fieldSelector may name for objects of `plural` (core group)."""
    return {**FIELD_GETTERS, **KIND_FIELD_GETTERS.get(plural, {})}


def parse_field_selector(text: str, plural: str = "") -> list[tuple[str, bool, str]]:
    """`metadata.name=x,metadata.namespace!=y` into `(field, equal, value)` triples."""
    getters = field_getters(plural)
    result: list[tuple[str, bool, str]] = []
    for part in filter(None, (part.strip() for part in (text or "").split(","))):
        match = re.fullmatch(r"([^=!]+)(==|=|!=)(.*)", part)
        if match is None:
            raise SelectorError(f"invalid field selector {part!r}")
        name, operator, value = match.groups()
        if name not in getters:
            raise SelectorError(f"field label not supported: {name}")
        result.append((name, operator != "!=", value))
    return result


@dataclass(frozen=True)
class Selector:
    """A parsed `labelSelector` + `fieldSelector` pair."""

    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, bool, str], ...] = ()
    plural: str = ""

    @classmethod
    def parse(cls, *, label_selector: str = "", field_selector: str = "", plural: str = "") -> Selector:
        return cls(
            tuple(parse_label_selector(label_selector)),
            tuple(parse_field_selector(field_selector, plural)),
            plural,
        )

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        if not all(requirement.matches(labels) for requirement in self.labels):
            return False
        getters = field_getters(self.plural)
        return all((getters[name](obj) == value) == equal for name, equal, value in self.fields)
