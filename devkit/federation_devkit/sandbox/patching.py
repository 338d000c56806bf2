"""The PATCH bodies the API server accepts, applied to plain JSON documents.

kopf sends merge patches and JSON patches (its finalizer patch starts with a `test` of
`/metadata/resourceVersion` and relies on that failing), kubectl sends strategic merge patches
(`apply`, `label`, `annotate`) and server-side apply bodies. The sandbox applies all four here.

Simplifications, stated: a strategic merge patch is applied as a JSON merge patch (lists are
replaced as a whole, no `$patch`/`$retainKeys` directives, except that `$patch: delete` in a map
removes it); a server-side apply body is merged into the live object like a merge patch (no field
managers, no conflicts, fields dropped from the applied config are not removed). Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"
PATCH_TYPES: Final = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


class PatchError(ValueError):
    """The patch is malformed or cannot apply (a failed `test`, a missing path)."""


class PatchTestFailed(PatchError):
    """A JSON-patch `test` operation did not match: the server answers 422."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, `null` removes a key, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch, applied as a merge patch; `$patch: delete` removes a map."""
    if isinstance(patch, Mapping):
        if patch.get("$patch") == "delete":
            return None
        result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                result.pop(key, None)
                continue
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        return result
    return copy.deepcopy(patch)


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test; all or nothing (works on a copy)."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, Mapping) or "op" not in operation or "path" not in operation:
            raise PatchError(f"malformed JSON patch operation: {operation!r}")
        result = _apply_operation(result, operation)
    return result


def _apply_operation(document: Any, operation: Mapping[str, Any]) -> Any:
    op = operation["op"]
    path = _pointer(str(operation["path"]))
    if op == "test":
        actual = _get(document, path)
        if actual != operation.get("value"):
            raise PatchTestFailed(
                f"the server rejected our request due to an error in our request: testing value "
                f"{operation['path']} failed: expected {operation.get('value')!r}, found {actual!r}"
            )
        return document
    if op == "add":
        return _add(document, path, copy.deepcopy(operation.get("value")))
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        _get(document, path)  # replace requires an existing target
        return _add(_remove(document, path)[0], path, copy.deepcopy(operation.get("value")))
    if op in ("move", "copy"):
        source = _pointer(str(operation.get("from", "")))
        if op == "move":
            if path[: len(source)] == source and len(path) > len(source):
                raise PatchError("cannot move a value into one of its children")
            document, value = _remove(document, source)
        else:
            value = copy.deepcopy(_get(document, source))
        return _add(document, path, value)
    raise PatchError(f"unknown JSON patch operation {op!r}")


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f"a JSON pointer must start with '/': {text!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in text[1:].split("/")]


def _get(document: Any, path: list[str]) -> Any:
    current = document
    for part in path:
        if isinstance(current, dict):
            if part not in current:
                raise PatchError(f"path not found: /{'/'.join(path)}")
            current = current[part]
        elif isinstance(current, list):
            current = current[_index(current, part, path, allow_end=False)]
        else:
            raise PatchError(f"path not found: /{'/'.join(path)}")
    return current


def _index(items: list[Any], part: str, path: list[str], *, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(items)
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise PatchError(f"invalid array index {part!r} in /{'/'.join(path)}")
    index = int(part)
    if index > len(items) or (index == len(items) and not allow_end):
        raise PatchError(f"array index out of range in /{'/'.join(path)}")
    return index


def _add(document: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(document, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchError(f"cannot add to a scalar at /{'/'.join(path)}")
    return document


def _remove(document: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        return None, document
    parent = _get(document, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path not found: /{'/'.join(path)}")
        return document, parent.pop(last)
    if isinstance(parent, list):
        return document, parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchError(f"path not found: /{'/'.join(path)}")


def apply_patch(document: Any, patch: Any, *, content_type: str) -> Any:
    """Apply a PATCH body by its Content-Type (one of `PATCH_TYPES`)."""
    if content_type == JSON_PATCH:
        return json_patch(document, patch)
    if content_type == MERGE_PATCH:
        return merge_patch(document, patch)
    if content_type in (STRATEGIC_MERGE_PATCH, APPLY_PATCH):
        return strategic_merge_patch(document, patch)
    raise PatchError(f"unsupported patch type {content_type!r}")
