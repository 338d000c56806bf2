"""PATCH bodies as the sandbox applies them: RFC 6902 JSON patch, RFC 7386 merge patch, SMP subset."""

import pytest

from federation_devkit.sandbox.patching import (
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    PatchTestFailed,
    apply_patch,
    json_patch,
    merge_patch,
)


def test_json_patch_operations() -> None:
    doc = {"metadata": {"finalizers": ["a"]}, "spec": {"x": 1, "list": [1, 2]}}
    result = json_patch(
        doc,
        [
            {"op": "test", "path": "/spec/x", "value": 1},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "b"},
            {"op": "replace", "path": "/spec/x", "value": 2},
            {"op": "remove", "path": "/spec/list/0"},
            {"op": "copy", "from": "/spec/x", "path": "/spec/y"},
            {"op": "move", "from": "/spec/y", "path": "/spec/z"},
            {"op": "add", "path": "/spec/a~1b", "value": True},
        ],
    )
    assert result == {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {"x": 2, "list": [2], "z": 2, "a/b": True},
    }
    assert doc["spec"]["x"] == 1, "the input is not modified"


def test_json_patch_failed_test_is_its_own_error_and_applies_nothing() -> None:
    doc = {"metadata": {"resourceVersion": "5"}}
    with pytest.raises(PatchTestFailed):
        json_patch(
            doc,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "4"},
                {"op": "add", "path": "/metadata/x", "value": 1},
            ],
        )


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "/missing"},
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "add", "path": "/list/9", "value": 1},
        {"op": "unknown", "path": "/x"},
        {"path": "/x"},
    ],
)
def test_json_patch_rejects_impossible_operations(operation: dict[str, object]) -> None:
    with pytest.raises(PatchError):
        json_patch({"list": []}, [operation])


def test_merge_patch_merges_maps_replaces_lists_and_null_deletes() -> None:
    doc = {"a": {"b": 1, "c": 2}, "list": [1, 2], "gone": 1}
    assert merge_patch(doc, {"a": {"b": 9}, "list": [3], "gone": None, "new": {"x": None}}) == {
        "a": {"b": 9, "c": 2},
        "list": [3],
        "new": {},
    }


def test_strategic_merge_patch_is_a_merge_patch_with_delete_directive() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"drop": {"x": 1}, "keep": 1}}
    patch = {"metadata": {"labels": {"b": "2"}}, "spec": {"drop": {"$patch": "delete"}}}
    assert apply_patch(doc, patch, content_type=STRATEGIC_MERGE_PATCH) == {
        "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {"keep": 1},
    }
    assert apply_patch(doc, {"spec": None}, content_type=MERGE_PATCH) == {"metadata": {"labels": {"a": "1"}}}


def test_unknown_patch_type_is_an_error() -> None:
    with pytest.raises(PatchError):
        apply_patch({}, {}, content_type="text/plain")
