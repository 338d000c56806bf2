"""Status writes that never clobber another writer's part.

The credentials handler, the heartbeat and the ingress reconciler all write parts of one
FederationPeer's status. Every write carries the `resourceVersion` it was computed from; on a
409 the writer re-reads and recomputes its patch from the fresh status, so nothing another
handler wrote in between is lost.
"""

from collections.abc import Callable, Mapping
from typing import Any

from federation_operator.adapters.k8s.client import Conflict, Kube, NotFound, Obj
from federation_operator.adapters.k8s.resources import Resource

DEFAULT_ATTEMPTS = 5


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
