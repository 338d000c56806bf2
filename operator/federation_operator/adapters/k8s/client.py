"""Typed, async calls to the Kubernetes API for what kopf does not do for us.

The official client is synchronous; calls run in a small thread pool of their own so that they
never block the event loop and never starve the loop's default executor. Errors become `ApiError`
subclasses whose messages come from the server's Status, never from request bodies: a failed
Secret write cannot leak the Secret into a log line.
"""

import asyncio
import copy
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from federation_operator import __version__
from federation_operator.adapters.k8s.call_threads import CallThreads, PoolClosed
from federation_operator.adapters.k8s.resources import Resource

Obj = dict[str, Any]
OPERATOR_AGENT = f"federation-operator/{__version__}"
PLUGIN_AGENT = f"kubectl-federation/{__version__}"
SERVER_AGENT = f"federation-server/{__version__}"
PatchKind = Literal["merge", "json", "strategic"]
_CONTENT_TYPES: dict[PatchKind, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
# An API server that restarts, sheds load or times out answers 5xx/429 for a moment. Without a
# retry here every such answer fails the whole handler, and kopf retries a failed handler only
# after a minute. A repeated write is safe: callers already judge a 409 (AlreadyExists, stale
# resourceVersion) or 404 by re-reading, so a write that landed before its answer was lost is
# adopted, never duplicated.
TRANSIENT_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
RETRY_DELAYS: Final = (0.2, 0.5, 1.0)
MAX_RETRY_AFTER: Final = 5.0


class ApiError(Exception):
    def __init__(self, *, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Stopped(ApiError):
    """The connection was closed (the operator is stopping): the call was never sent."""

    def __init__(self) -> None:
        super().__init__(status=0, reason="Stopped", message="the client is closed; the call was not sent")


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: AlreadyExists on create, Conflict on a stale resourceVersion or failed precondition."""


class Invalid(ApiError):
    """422: rejected by validation (or a failed JSON-patch test)."""


def _error(status: int, body: bytes | str | None) -> ApiError:
    reason, message = "", ""
    try:
        payload = json.loads(body or b"{}")
        reason = str(payload.get("reason", ""))
        message = str(payload.get("message", ""))
    except (ValueError, AttributeError):
        message = "unparseable error response"
    cls = {404: NotFound, 409: Conflict, 422: Invalid}.get(status, ApiError)
    return cls(status=status, reason=reason, message=message[:500])


def _retry_delay(delay: float, retry_after: str | None) -> float:
    """Our backoff, or the server's Retry-After when it asks for longer (capped)."""
    try:
        asked = float(retry_after) if retry_after else 0.0
    except ValueError:
        asked = 0.0
    return min(max(delay, asked), MAX_RETRY_AFTER)


def load_api_client(kubeconfig: Path | None) -> k8s_client.ApiClient:
    """An ApiClient for a kubeconfig file, in-cluster config, or the default kubeconfig."""
    configuration = k8s_client.Configuration()
    if kubeconfig is not None:
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        k8s_config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = 32
    return k8s_client.ApiClient(configuration=configuration)


@dataclass
class _Tally:
    count: int = 0  # only ever changed on the event loop


class Kube:
    """One cluster connection. Counts its writes so that tests and benchmarks can see them."""

    def __init__(
        self, api_client: k8s_client.ApiClient, *, workers: int = 16, user_agent: str = OPERATOR_AGENT
    ) -> None:
        # Our own User-Agent: audit logs (and the RBAC proof) can tell the operator's calls apart.
        api_client.user_agent = user_agent
        self._api = api_client
        self._pool = CallThreads(workers=workers, name="kube")
        self._tally = _Tally()
        self._owns_connection = True
        self._lanes: list[Kube] = []  # shared with every lane: closing the connection closes them

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None, *, user_agent: str = OPERATOR_AGENT) -> "Kube":
        return cls(load_api_client(kubeconfig), user_agent=user_agent)

    @property
    def writes(self) -> int:
        """Non-GET calls made through this connection and all its lanes."""
        return self._tally.count

    def lane(self, name: str, *, workers: int) -> "Kube":
        """The same connection with worker threads of its own. Calls are queued first come first
        served per pool, so a caller that must stay timely (the heartbeat) gets a lane: it never
        waits behind a burst of other calls (thousands of reconciles after a restart) for a thread.
        Writes are counted with this connection's; closing the lane leaves the connection open."""
        lane = copy.copy(self)  # the same class (a subclass's overrides too), client, tally and lanes
        lane._pool = CallThreads(workers=workers, name=f"kube-{name}")
        lane._owns_connection = False
        self._lanes.append(lane)
        return lane

    @property
    def closed(self) -> bool:
        return self._pool.closed

    def close(self) -> None:
        """Refuse new calls (`Stopped`) and fail the queued ones; a call on the wire is abandoned
        when the process exits (see `call_threads`). The connection closes its lanes too."""
        self._pool.close()
        if self._owns_connection:
            for lane in self._lanes:
                lane.close()
            self._api.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Obj:
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Accept": accept, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        _, url, headers, payload, _ = serialized
        for delay in (*RETRY_DELAYS, None):
            response = self._api.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=30
            )
            data = response.read()
            # Once closed, an answer is final: a stopping operator retries nothing.
            if response.status not in TRANSIENT_STATUSES or delay is None or self._pool.closed:
                break
            # Runs in our own worker thread, never on the event loop.
            time.sleep(_retry_delay(delay, response.headers.get("Retry-After")))
        if response.status >= 400:
            raise _error(response.status, data)
        return cast(Obj, json.loads(data or b"{}"))

    async def _run(self, method: str, path: str, **kwargs: Any) -> Obj:
        if method != "GET":
            self._tally.count += 1
        try:
            return await asyncio.wrap_future(self._pool.submit(lambda: self._call(method, path, **kwargs)))
        except PoolClosed:
            raise Stopped() from None

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        try:
            return await self._run("GET", resource.path(namespace, name))
        except NotFound:
            return None

    async def served(self, resource: Resource) -> bool:
        """Whether the API server serves `resource` now (discovery, as `kubectl api-resources` reads
        it): a kind from a CRD that is not installed is not, and every request for it answers 404."""
        path = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
        try:
            listing = await self._run("GET", path)
        except NotFound:
            return False
        return any(entry.get("name") == resource.plural for entry in listing.get("resources") or [])

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else None
        result = await self._run("GET", resource.path(namespace), query=query)
        return cast(list[Obj], result.get("items", []))

    async def table(self, resource: Resource, namespace: str | None = None) -> Obj:
        """The server-side table `kubectl get` prints (meta.k8s.io/v1 Table, printer columns)."""
        return await self._run(
            "GET", resource.path(namespace), accept="application/json;as=Table;v=v1;g=meta.k8s.io"
        )

    async def create(self, resource: Resource, namespace: str | None, body: Mapping[str, Any]) -> Obj:
        return await self._run("POST", resource.path(namespace), body=dict(body))

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: object,
        *,
        kind: PatchKind = "merge",
        subresource: str | None = None,
    ) -> Obj:
        return await self._run(
            "PATCH", resource.path(namespace, name, subresource), body=body, content_type=_CONTENT_TYPES[kind]
        )

    async def replace(
        self, resource: Resource, namespace: str | None, name: str, body: Mapping[str, Any]
    ) -> Obj:
        return await self._run("PUT", resource.path(namespace, name), body=dict(body))

    async def delete(
        self, resource: Resource, namespace: str | None, name: str, *, uid: str | None = None
    ) -> bool:
        """Delete; with `uid`, only that incarnation (never a same-named object made since)."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}  # type: ignore[assignment]
        try:
            await self._run("DELETE", resource.path(namespace, name), body=body)
        except NotFound:
            return False
        return True
