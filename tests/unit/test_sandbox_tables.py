"""Table responses from printer columns, as kubectl receives them from a real API server."""

import datetime

import pytest

from federation_devkit.sandbox.tables import build_table, find
from federation_operator.domain.times import human_duration

NOW = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
PEER = {
    "metadata": {"name": "us", "namespace": "default", "creationTimestamp": "2025-01-01T11:55:00Z"},
    "spec": {"endpoint": "https://us", "pins": [{"t": "a"}, {"t": "b"}]},
    "status": {
        "latencyMilliseconds": 12,
        "conditions": [
            {"type": "Reachable", "status": "False", "reason": "Timeout"},
            {"type": "Ready", "status": "True", "reason": "Linked"},
        ],
    },
}
COLUMNS = [
    {"name": "Endpoint", "type": "string", "jsonPath": ".spec.endpoint"},
    {"name": "Latency", "type": "integer", "jsonPath": ".status.latencyMilliseconds"},
    {"name": "Missing", "type": "string", "jsonPath": ".status.reachability"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.endpoint", ["https://us"]),
        ("{.spec.pins[1].t}", ["b"]),
        (".spec.pins[*].t", ["a", "b"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type=='Reachable')].reason", ["Timeout"]),
        (".spec.nothing.here", []),
    ],
)
def test_jsonpath_subset(path: str, expected: list[object]) -> None:
    assert find(PEER, path) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (300, "5m"),
        (330, "5m30s"),
        (3600, "60m"),
        (4 * 3600 + 60, "4h1m"),
        (30 * 3600, "30h"),
        (3 * 86400, "3d"),
        (400 * 86400, "400d"),
        (-5, "<invalid>"),
    ],
)
def test_ages_print_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_table_has_name_column_typed_cells_and_partial_metadata() -> None:
    table = build_table([PEER], printer_columns=COLUMNS, resource_version="7", now=NOW)
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Endpoint",
        "Latency",
        "Missing",
        "Age",
        "Reason",
    ]
    assert table["columnDefinitions"][-1]["priority"] == 1
    (row,) = table["rows"]
    assert row["cells"] == ["us", "https://us", 12, None, "5m", "Linked"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "us"


def test_kinds_without_printer_columns_get_name_and_age() -> None:
    table = build_table([PEER], printer_columns=[], include_object="None", now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"] == [{"cells": ["us", "5m"]}]
