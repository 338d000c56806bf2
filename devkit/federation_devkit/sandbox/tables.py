"""`meta.k8s.io/v1 Table` responses, so that the real `kubectl get` prints a CRD's printer columns.

kubectl asks the server for a Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) and
prints what comes back; the columns of `kubectl get federationpeers` and `-o wide` are therefore the
server's work. This module does that work from `additionalPrinterColumns`, as the apiextensions
server's table convertor does: the simple JSONPath subset CRDs use (`.a.b`, `.a[0]`, `.a[*].b`,
`.a[?(@.k=="v")].b`), cells typed by column (`date` becomes an age like `5m`), and the first column
`Name`. Kinds without printer columns get NAME and AGE. Pure: no I/O.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from federation_operator.domain.times import human_duration

_SEGMENT: Final = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-]+)
      | \[(?P<index>\d+|\*)\]
      | \[\?\(@\.(?P<key>[A-Za-z0-9_\-.]+)\s*==\s*(?P<quote>["'])(?P<value>.*?)(?P=quote)\)\]
      | \['(?P<quoted>[^']+)'\]""",
    re.VERBOSE,
)

NAME_COLUMN: Final[Mapping[str, Any]] = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
AGE_COLUMN: Final[Mapping[str, Any]] = {
    "name": "Age",
    "type": "date",
    "format": "",
    "description": (
        "CreationTimestamp is a timestamp representing the server time when this object was created."
    ),
    "priority": 0,
    "jsonPath": ".metadata.creationTimestamp",
}


def find(obj: Any, expression: str) -> list[Any]:
    """Evaluate a simple JSONPath (`{...}` braces optional) against `obj`; all matches, in order."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    current: list[Any] = [obj]
    position = 0
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {expression!r} at {text[position:]!r}")
        position = match.end()
        current = [found for item in current for found in _step(item, match)]
    return current


def _step(item: Any, match: re.Match[str]) -> list[Any]:
    name = match.group("field") or match.group("quoted")
    if name is not None:
        return [item[name]] if isinstance(item, Mapping) and name in item else []
    index = match.group("index")
    if index is not None:
        if not isinstance(item, list):
            return []
        if index == "*":
            return list(item)
        return [item[int(index)]] if int(index) < len(item) else []
    key, value = match.group("key"), match.group("value")
    if not isinstance(item, list):
        return []
    return [element for element in item if _lookup(element, key) == value]


def _lookup(element: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(element, Mapping):
            return None
        element = element.get(part)
    return element if not isinstance(element, bool) else str(element).lower()


def cell(column_type: str, value: Any, *, now: datetime.datetime) -> Any:
    """One cell as the apiextensions table convertor renders it (`None` prints as `<none>`)."""
    if value is None:
        return None
    if column_type == "date":
        try:
            stamp = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
        return human_duration((now - stamp).total_seconds())
    if column_type == "integer":
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column_type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def column_definitions(printer_columns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `columnDefinitions` of a Table: Name first, then the printer columns (or Age)."""
    columns = list(printer_columns) or [AGE_COLUMN]
    return [dict(NAME_COLUMN)] + [
        {
            "name": column["name"],
            "type": column.get("type", "string"),
            "format": column.get("format", ""),
            "description": column.get("description", column["name"]),
            "priority": int(column.get("priority", 0)),
        }
        for column in columns
    ]


def build_table(
    objects: Sequence[Mapping[str, Any]],
    *,
    printer_columns: Sequence[Mapping[str, Any]],
    include_object: str = "Metadata",
    resource_version: str = "",
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """A `meta.k8s.io/v1` Table of `objects`; rows carry PartialObjectMetadata, the object or nothing."""
    moment = now or datetime.datetime.now(tz=datetime.UTC)
    columns = list(printer_columns) or [AGE_COLUMN]
    rows = []
    for obj in objects:
        cells: list[Any] = [obj.get("metadata", {}).get("name", "")]
        for column in columns:
            try:
                found = find(obj, str(column.get("jsonPath", "")))
            except ValueError:
                found = []
            cells.append(cell(str(column.get("type", "string")), found[0] if found else None, now=moment))
        row: dict[str, Any] = {"cells": cells}
        if include_object == "Object":
            row["object"] = dict(obj)
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": dict(obj.get("metadata", {})),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions(columns),
        "rows": rows,
    }
