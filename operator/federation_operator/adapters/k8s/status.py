"""Status writes that never clobber another writer's part.

The credentials handler, the heartbeat and the ingress reconciler all write parts of one
FederationPeer's status. Every write is conditional on what it was computed from; when that
has changed the writer re-reads and recomputes its patch from the fresh status, so nothing
another handler wrote in between is lost. Two kinds of precondition:
- `patch_status`: the `resourceVersion` (a 409 when anything in the object moved);
- `status_guarded_patch`: a JSON patch whose `test` is the whole status (a 422 when the status
  moved). What moves a peer's version outside its status (kopf's finalizer and annotations,
  labels) does not fail it: while kopf handles a new peer, its patches land between the
  credentials' write and the first heartbeat's, and failed two in three of those writes under a
  bulk apply, each retried with a GET and a PATCH (docs/benchmarks.md).
"""

from collections.abc import Callable, Mapping
from typing import Any

from federation_operator.adapters.k8s.client import Conflict, Kube, NotFound, Obj, PatchKind
from federation_operator.adapters.k8s.resources import Resource

DEFAULT_ATTEMPTS = 5


def merged(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386: `patch` merged into `target` (a null removes the key); neither is changed."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            old = result.get(key)
            result[key] = merged(old if isinstance(old, Mapping) else {}, value)
        else:
            result[key] = _plain(value)
    return result


def status_guarded_patch(status: Mapping[str, Any], patch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch that merge-patches `patch` into the status on condition it is still `status`.

    `status` must not be empty: a `test` of an absent status fails, so an object without one is
    written with `patch_status`'s kind of precondition.
    """
    return [
        {"op": "test", "path": "/status", "value": _plain(status)},
        {"op": "replace", "path": "/status", "value": merged(status, patch)},
    ]


def guarded_status_write(
    status: Mapping[str, Any], resource_version: str | None, patch: Mapping[str, Any]
) -> tuple[object, PatchKind]:
    """The body and patch kind that write `patch` into a status known to be `status`: guarded by
    that status (`status_guarded_patch`), or, for an empty status (it cannot be tested), a merge
    patch guarded by `resource_version`."""
    if status:
        return status_guarded_patch(status, patch), "json"
    body: dict[str, Any] = {"status": dict(patch)}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    return body, "merge"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class StatusContention(Exception):
    """The object kept changing under us; the caller's next pass will try again."""


async def patch_status(
    kube: Kube,
    resource: Resource,
    obj: Mapping[str, Any],
    compute: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
) -> Obj | None:
    """Merge-patch `compute(status)` with optimistic concurrency; None when nothing was written.

    `compute` gets the freshest status known and returns a merge patch for it (empty: no write).
    """
    current: Mapping[str, Any] | None = obj
    for _ in range(attempts):
        if current is None:
            return None
        meta = current["metadata"]
        patch = compute(current.get("status") or {})
        if not patch:
            return None
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": dict(patch)}
        try:
            return await kube.patch(resource, meta["namespace"], meta["name"], body, subresource="status")
        except NotFound:
            return None
        except Conflict:
            current = await kube.get(resource, meta["namespace"], meta["name"])
    raise StatusContention(f"{resource.kind} {obj['metadata']['name']} kept changing while writing status")
