"""SandboxAPI: an in-memory Kubernetes API server for development, tests and demos. Not a cluster.

No kube-apiserver can run on this project's machines, so the operator, kopf, the kubernetes Python
client and the real kubectl run against this emulation instead. It is built on kmock 0.8's
`KubernetesEmulator` (and served by kmock's aiohttp test server, see `server.py`), but kmock stores
objects as plain merged dicts and its request parser fails on `/api/v1/namespaces`; so this
subclass takes over request handling entirely and implements what our clients depend on:

- metadata bookkeeping: a global `resourceVersion` bumped on every write, `uid`,
  `creationTimestamp`, `generation` (1 on create, bumped when anything outside metadata and status
  changes), `generateName`, the namespace from the URL, `deletionTimestamp` + finalizers, and
  garbage collection of dependents through `ownerReferences` (background cascade);
- HTTP semantics: 201/200, `Status` errors (404 NotFound, 409 AlreadyExists/Conflict on a stale
  `resourceVersion`, 422 Invalid with `causes[]`, 400 BadRequest), PUT, PATCH in all four content
  types (JSON patch incl. `test`, merge, strategic merge, server-side apply; see `patching.py`),
  `dryRun=All`, delete preconditions and `propagationPolicy=Orphan`;
- the `status` subresource: writes through `/status` change only `.status`, writes through the
  main resource leave `.status` alone, `.status` is dropped on create;
- list (`kind: <Kind>List`, `limit`/`continue`) and watch (`resourceVersion` resume from a bounded
  history, 410 Expired when older, `timeoutSeconds`, `sendInitialEvents` + bookmark), both with
  `labelSelector` and `fieldSelector` (`metadata.name`, `metadata.namespace`, and for events,
  secrets and namespaces the fields the API server adds: `involvedObject.*`, `type`, ...);
- CustomResourceDefinitions: ours registered at start, others created through the API, served in
  discovery and validated (schema, defaults, pruning, `fieldValidation=Strict`, CEL ratcheted on update; see
  `validation.py`); deleting a CRD deletes its objects;
- namespaces: `default` exists; creating into a missing namespace is 404; deleting a namespace
  deletes its content;
- `meta.k8s.io/v1 Table` answers from `additionalPrinterColumns` (see `tables.py`), legacy discovery
  (kubectl falls back to it from aggregated discovery), `/version` 1.32; Secret `stringData` folded
  into `data`;
- `faults` (injected 500/409/429/timeouts, dropped or late watches) and `calls` (what was requested).

Where it is NOT faithful: no authentication or authorization (any token is accepted; RBAC is not
enforced, `calls` records what RBAC would need); no admission webhooks, no built-in controllers (no
Pods run, Services get no endpoints, a namespace goes once its content is gone), no schema checks of
built-in kinds; one stored version per kind with no conversion (other served versions are the same
object relabelled); strategic merge and server-side apply are merge patches (no list merge keys, no
field managers or conflicts, `managedFields` absent); foreground deletion behaves as background;
the CEL subset of `validation.py`; watch bookmarks are sent only for `sendInitialEvents`; no
protobuf/CBOR request bodies (415: `kubectl create secret|configmap|namespace` fail, `kubectl apply
-f` works), `/openapi/v3` only says which PATCH takes `fieldValidation` (so kubectl validates
server-side), no `/openapi/v2`, no aggregated discovery (kubectl falls back); everything is
lost when the process exits. Treat it as a test double with good manners, never as a store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import importlib.resources
import json
import logging
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp.web
import kmock
import yaml

from federation_devkit.sandbox import patching, resources, tables, validation
from federation_devkit.sandbox.faults import TIMEOUT, Call, Faults
from federation_devkit.sandbox.resources import ResourceType
from federation_devkit.sandbox.selectors import Selector, SelectorError

logger = logging.getLogger(__name__)

KUBERNETES_VERSION: Final = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}
DEFAULT_NAMESPACES: Final = ("default", "kube-system", "kube-public", "kube-node-lease")
DEFAULT_HISTORY: Final = 10_000
# As the API server's generateName: 5 characters from an alphabet without vowels and look-alikes.
_GENERATE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_GENERATE_ATTEMPTS: Final = 8
_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SERVER_METADATA: Final = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
)
_NAMESPACES: Final = "namespaces"
_CRDS: Final = f"customresourcedefinitions.{resources.CRD_GROUP}"
# A development checkout (editable install): <repo>/devkit/federation_devkit/sandbox/emulator.py.
_CHECKOUT_CRDS: Final = Path(__file__).resolve().parents[3] / "crds"


class ApiError(Exception):
    """An API failure, answered as a `v1 Status` with `code`."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _qualified(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def _not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(rt)} "{name}" not found',
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def _conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(rt)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def _invalid(rt: ResourceType, name: str, errors: Iterable[validation.FieldError]) -> ApiError:
    found = list(errors)
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    listed = str(found[0]) if len(found) == 1 else "[" + ", ".join(str(error) for error in found) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {listed}',
        details={
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [{"reason": e.reason, "message": e.message, "field": e.field} for e in found],
        },
    )


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What `generation` tracks: everything but metadata and status."""
    return {
        key: value for key, value in obj.items() if key not in ("metadata", "status", "apiVersion", "kind")
    }


def _fold_string_data(secret: dict[str, Any]) -> None:
    """As the API server does: `stringData` is write-only, merged into `data` as base64."""
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, Mapping) and string_data:
        data = dict(secret.get("data") or {})
        data.update(
            {key: base64.b64encode(str(value).encode()).decode() for key, value in string_data.items()}
        )
        secret["data"] = data


@dataclass(eq=False)  # identity: each watch is its own subscriber
class _Watcher:
    group_plural: str
    namespace: str | None
    selector: Selector
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    def wants(self, obj: Mapping[str, Any]) -> bool:
        namespace = obj.get("metadata", {}).get("namespace")
        return (self.namespace is None or namespace == self.namespace) and self.selector.matches(obj)


@dataclass(frozen=True)
class _Target:
    """What a resource URL names."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def bundled_crds() -> list[dict[str, Any]]:
    """Our CRDs as shipped in the package (`federation_operator/crds/*.yaml`), if present."""
    try:
        folder = importlib.resources.files("federation_operator").joinpath("crds")
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name) if folder.is_dir() else []
    except (ModuleNotFoundError, FileNotFoundError):
        return []
    return [doc for entry in entries if entry.name.endswith(".yaml") for doc in _load_yaml(entry.read_text())]


def default_crds() -> list[dict[str, Any]]:
    """Our CRDs: the package's copy, else a development checkout's `crds/` directory."""
    found = bundled_crds()
    if not found and _CHECKOUT_CRDS.is_dir():
        found = load_crds(_CHECKOUT_CRDS)
    return found


def load_crds(path: Path) -> list[dict[str, Any]]:
    """CRDs from a YAML file or a directory of them."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return [doc for file in files for doc in _load_yaml(file.read_text())]


def _load_yaml(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


class SandboxAPI(kmock.KubernetesEmulator):
    """The in-memory API server. Serve it with `server.Sandbox`; see the module docstring."""

    def __init__(
        self,
        *,
        crds: Iterable[Mapping[str, Any]] | None = None,
        history_limit: int = DEFAULT_HISTORY,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        providers: Iterable[str] = resources.DEFAULT_PROVIDERS,
    ) -> None:
        super().__init__()
        self.faults = Faults()
        self.calls: list[Call] = []
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._store: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._history: deque[tuple[int, str, str, dict[str, Any]]] = deque()
        self._history_limit = history_limit
        self._compacted = 0
        self._revision = 0
        self._watchers: set[_Watcher] = set()
        for rt in resources.BUILTIN_TYPES:
            self._register(rt)
        for namespace in namespaces:
            self._insert(
                self._type("", "v1", _NAMESPACES),
                self._fresh_object(
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": namespace},
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    },
                    namespace=None,
                ),
            )
        for crd in default_crds() if crds is None else crds:
            self.install_crd(crd)
        for crd in resources.provider_crds(providers):
            self.install_crd(crd)

    # --- public helpers for tests and the CLI ------------------------------------------------

    def install_crd(self, crd: Mapping[str, Any]) -> None:
        """Store a CRD object and serve its kinds, as if it had been created through the API."""
        rt = self._type(resources.CRD_GROUP, "v1", "customresourcedefinitions")
        obj = self._fresh_object(self._crd_with_status(crd), namespace=None)
        self._insert(rt, obj)
        self._serve_crd(obj)

    def ensure_namespace(self, name: str) -> None:
        """Create namespace `name` unless it exists (call from the sandbox's event loop)."""
        rt = self._type("", "v1", _NAMESPACES)
        if self._lookup(rt, None, name) is None:
            self._create(
                _Target(rt, None, None, None), {"metadata": {"name": name}}, dry_run=False, strict=False
            )

    @property
    def resource_version(self) -> str:
        return str(self._revision)

    def snapshot(self, plural: str, group: str = "") -> list[dict[str, Any]]:
        """Deep copies of every stored object of a kind (for assertions from the same loop)."""
        key = f"{plural}.{group}" if group else plural
        return [copy.deepcopy(obj) for obj in self._store.get(key, {}).values()]

    def close_watches(self) -> None:
        """End every open watch stream now, so that the HTTP server can stop without waiting."""
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)

    # --- registry ----------------------------------------------------------------------------

    def _register(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt
        self._store.setdefault(rt.group_plural, {})

    def _type(self, group: str, version: str, plural: str) -> ResourceType:
        return self._types[(group, version, plural)]

    def _crd_with_status(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(dict(crd))
        names = obj.get("spec", {}).get("names", {})
        stored = [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")]
        obj["status"] = {
            "acceptedNames": copy.deepcopy(names),
            "storedVersions": stored,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": _now(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": _now(),
                },
            ],
        }
        return obj

    def _serve_crd(self, crd: Mapping[str, Any]) -> None:
        self._unserve_crd(str(crd.get("metadata", {}).get("name", "")), keep_objects=True)
        for rt in resources.types_from_crd(crd):
            self._register(rt)

    def _unserve_crd(self, crd_name: str, *, keep_objects: bool) -> None:
        for key, rt in list(self._types.items()):
            if rt.crd is not None and rt.crd.get("metadata", {}).get("name") == crd_name:
                del self._types[key]
                if not keep_objects:
                    for obj in list(self._store.get(rt.group_plural, {}).values()):
                        self._remove(rt, obj)
                    self._store.pop(rt.group_plural, None)

    # --- the HTTP entry point ----------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            return await self._serve(raw_request)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code, headers=exc.headers)
        except Exception as exc:  # a bug here must reach the client as a 500, not a dropped socket
            logger.exception("sandbox API failed on %s %s", raw_request.method, raw_request.path)
            error = ApiError(500, "InternalError", f"sandbox internal error: {exc!r}")
            return aiohttp.web.json_response(error.status(), status=500)

    async def _serve(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await request.read()
        parts = [part for part in request.path.split("/") if part]
        discovery = self._discovery(parts)
        if discovery is not None:
            if request.method != "GET":
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            return aiohttp.web.json_response(discovery)
        target = self._route(parts)
        verb = self._verb(request.method, target, request.query)
        self.calls.append(
            Call(
                verb,
                target.rt.group,
                target.rt.plural,
                target.subresource or "",
                target.namespace or "",
                user_agent=request.headers.get("User-Agent", ""),
            )
        )
        await self._inject_fault(verb, target.rt)
        query = request.query
        if verb == "watch":
            return await self._watch(request, target)
        if verb in ("get", "list"):
            payload = self._get(target) if verb == "get" else self._list(target, query)
            if "as=Table" in request.headers.get("Accept", ""):
                items = [payload] if verb == "get" else payload["items"]
                payload = tables.build_table(
                    items,
                    printer_columns=target.rt.printer_columns,
                    include_object=query.get("includeObject", "Metadata"),
                    resource_version=self.resource_version,
                )
            return aiohttp.web.json_response(payload)
        data = self._decode(body, request.content_type)
        dry_run = "All" in query.getall("dryRun", [])
        strict = query.get("fieldValidation", "") == "Strict"
        if verb == "create":
            return aiohttp.web.json_response(
                self._create(target, data, dry_run=dry_run, strict=strict), status=201
            )
        if verb == "update":
            return aiohttp.web.json_response(self._update(target, data, dry_run=dry_run, strict=strict))
        if verb == "patch":
            result, created = self._patch(
                target, data, content_type=request.content_type, dry_run=dry_run, strict=strict
            )
            return aiohttp.web.json_response(result, status=201 if created else 200)
        if verb == "delete":
            return aiohttp.web.json_response(self._delete(target, data, query, dry_run=dry_run))
        return aiohttp.web.json_response(self._delete_collection(target, data, query, dry_run=dry_run))

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        types = list(self._types.values())
        match parts:
            case ["version"]:
                return dict(KUBERNETES_VERSION)
            case ["healthz" | "livez" | "readyz"]:
                return {"status": "ok"}
            case []:
                paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/livez", "/readyz"}
                paths |= {f"/apis/{rt.group}" for rt in types if rt.group}
                paths |= {f"/apis/{rt.group}/{rt.version}" for rt in types if rt.group}
                return {"paths": sorted(paths)}
            case ["api"]:
                return resources.api_versions()
            case ["apis"]:
                return resources.api_group_list(types)
            case ["api", version]:
                return self._required(resources.api_resource_list(types, "", version))
            case ["apis", group]:
                return self._required(resources.api_group(types, group))
            case ["apis", group, version]:
                return self._required(resources.api_resource_list(types, group, version))
            case ["openapi", "v3"]:
                return resources.openapi_v3_index(types)
            case ["openapi", "v3", "api", version]:
                return self._required(resources.openapi_v3_document(types, "", version))
            case ["openapi", "v3", "apis", group, version]:
                return self._required(resources.openapi_v3_document(types, group, version))
            case ["api" | "apis", *_]:
                return None
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    @staticmethod
    def _required(document: dict[str, Any] | None) -> dict[str, Any]:
        if document is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return document

    def _route(self, parts: list[str]) -> _Target:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == _NAMESPACES
            and (group, version, rest[2]) in self._types
            and self._types[(group, version, rest[2])].namespaced
        ):
            namespace, rest = rest[1], rest[2:]
        rt = self._types.get((group, version, rest[0]))
        if rt is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and (subresource != "status" or not rt.status_subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _Target(rt=rt, namespace=namespace, name=name, subresource=subresource)

    @staticmethod
    def _verb(method: str, target: _Target, query: Mapping[str, str]) -> str:
        if method == "GET":
            if query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if target.name else "list"
        verbs = {
            ("POST", False): "create",
            ("PUT", True): "update",
            ("PATCH", True): "patch",
            ("DELETE", True): "delete",
            ("DELETE", False): "deletecollection",
        }
        verb = verbs.get((method, target.name is not None))
        if verb is None or (verb == "create" and target.rt.namespaced and target.namespace is None):
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        return verb

    async def _inject_fault(self, verb: str, rt: ResourceType) -> None:
        rule = self.faults.pick(verb=verb, resource=rt.plural)
        if rule is None:
            return
        if rule.status == TIMEOUT:
            await asyncio.sleep(self.faults.hang_seconds)
            raise ApiError(504, "Timeout", "injected fault: the request timed out")
        reasons = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}
        headers = {"Retry-After": "1"} if rule.status == 429 else {}
        details = {"retryAfterSeconds": 1} if rule.status == 429 else {}
        raise ApiError(
            rule.status,
            reasons.get(rule.status, "InternalError"),
            f"injected fault: {rule.status}",
            headers=headers,
            details=details,
        )

    @staticmethod
    def _decode(body: bytes, content_type: str) -> Any:
        if not body:
            return None
        if content_type.startswith(("application/vnd.kubernetes.protobuf", "application/cbor")):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the sandbox API speaks JSON only, not {content_type} (kubectl's `create namespace`, "
                "`create secret` and `create configmap` send that): add `--dry-run=client -o yaml | "
                "kubectl apply -f -` to the same kubectl create command, or apply a manifest",
            )
        try:
            if content_type == patching.APPLY_PATCH:
                return yaml.safe_load(body)
            return json.loads(body)
        except (ValueError, yaml.YAMLError) as exc:
            raise _bad_request(f"the request body is not valid {content_type or 'JSON'}: {exc}") from None

    # --- reads -------------------------------------------------------------------------------

    def _served(self, rt: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a stored object as the API serves it, for a caller that keeps or changes it."""
        result = copy.deepcopy(dict(obj))
        result["apiVersion"] = rt.api_version
        result["kind"] = rt.kind
        return result

    @staticmethod
    def _view(rt: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A stored object as the API serves it, sharing everything below the top level with it.

        For a reply or a watch event serialized before the loop runs anything else, and for the
        patch functions, which never change their input: no deep copy per request (issue 17).
        """
        return {**obj, "apiVersion": rt.api_version, "kind": rt.kind}

    def _lookup(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._store.get(rt.group_plural, {}).get((namespace or "", name))

    def _get(self, target: _Target) -> dict[str, Any]:
        assert target.name is not None
        obj = self._lookup(target.rt, target.namespace, target.name)
        if obj is None:
            raise _not_found(target.rt, target.name)
        return self._view(target.rt, obj)

    def _selector(self, query: Mapping[str, str], rt: ResourceType) -> Selector:
        try:
            return Selector.parse(
                label_selector=query.get("labelSelector", ""),
                field_selector=query.get("fieldSelector", ""),
                # Kind-specific fields exist for core kinds only (events, secrets, namespaces).
                plural="" if rt.group else rt.plural,
            )
        except SelectorError as exc:
            raise _bad_request(str(exc)) from None

    def _matching(self, rt: ResourceType, namespace: str | None, selector: Selector) -> list[dict[str, Any]]:
        objects = self._store.get(rt.group_plural, {})
        return [
            obj
            for key, obj in sorted(objects.items())
            if (namespace is None or key[0] == namespace) and selector.matches(obj)
        ]

    def _list(self, target: _Target, query: Mapping[str, str]) -> dict[str, Any]:
        items = [
            self._view(target.rt, obj)
            for obj in self._matching(target.rt, target.namespace, self._selector(query, target.rt))
        ]
        metadata: dict[str, Any] = {"resourceVersion": self.resource_version}
        limit = int(query.get("limit", "0") or 0)
        offset = int(query.get("continue", "0") or 0)
        if limit > 0:
            if offset + limit < len(items):
                metadata["continue"] = str(offset + limit)
                metadata["remainingItemCount"] = len(items) - offset - limit
            items = items[offset : offset + limit]
        return {
            "kind": f"{target.rt.kind}List",
            "apiVersion": target.rt.api_version,
            "metadata": metadata,
            "items": items,
        }

    # --- watch -------------------------------------------------------------------------------

    async def _watch(self, request: aiohttp.web.BaseRequest, target: _Target) -> aiohttp.web.StreamResponse:
        query = request.query
        selector = self._selector(query, target.rt)
        if target.name is not None:
            by_name = ("metadata.name", True, target.name)
            selector = Selector(selector.labels, (*selector.fields, by_name), selector.plural)
        since = query.get("resourceVersion", "")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        if since.isdigit() and since != "0" and int(since) < self._compacted:
            expired = ApiError(410, "Expired", f"too old resource version: {since} ({self._compacted})")
            await response.prepare(request)
            await response.write(json.dumps({"type": "ERROR", "object": expired.status()}).encode() + b"\n")
            await response.write_eof()
            return response
        # The initial events and the subscription are taken together, without awaiting in between,
        # so that no write falls between them (the API server's "consistent" watch start).
        watcher = _Watcher(group_plural=target.rt.group_plural, namespace=target.namespace, selector=selector)
        initial = self._initial_events(target, watcher, since)
        self._watchers.add(watcher)
        try:
            await response.prepare(request)
            await self._stream(request, response, target, watcher, initial, close_after=timeout)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return response
        finally:
            self._watchers.discard(watcher)
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await response.write_eof()
        return response

    def _initial_events(self, target: _Target, watcher: _Watcher, since: str) -> list[dict[str, Any]]:
        if since in ("", "0") or not since.isdigit():
            objects = self._matching(target.rt, target.namespace, watcher.selector)
            return [{"type": "ADDED", "object": copy.deepcopy(obj)} for obj in objects]
        return [
            {"type": kind, "object": obj}
            for revision, group_plural, kind, obj in self._history
            if revision > int(since) and group_plural == target.rt.group_plural and watcher.wants(obj)
        ]

    async def _stream(
        self,
        request: aiohttp.web.BaseRequest,
        response: aiohttp.web.StreamResponse,
        target: _Target,
        watcher: _Watcher,
        initial: list[dict[str, Any]],
        *,
        close_after: float | None,
    ) -> None:
        for event in initial:
            if not await self._send(request, response, target.rt, event):
                return
        if request.query.get("sendInitialEvents") == "true":
            bookmark = {
                "kind": target.rt.kind,
                "apiVersion": target.rt.api_version,
                "metadata": {
                    "resourceVersion": self.resource_version,
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            await response.write(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(close_after):
                while True:
                    queued = await watcher.queue.get()
                    if queued is None:
                        return
                    # A late stream (faults.watch_delays): each event waits out its delay from its
                    # write; they are queued in order, so the stream stays in order.
                    delay = self.faults.watch_delay(target.rt.plural)
                    if delay > 0:
                        await asyncio.sleep(queued["written"] + delay - time.monotonic())
                    if not await self._send(request, response, target.rt, queued):
                        return

    async def _send(
        self,
        request: aiohttp.web.BaseRequest,
        response: aiohttp.web.StreamResponse,
        rt: ResourceType,
        event: Mapping[str, Any],
    ) -> bool:
        """Write one event; `False` when the stream ended (client gone or an injected drop)."""
        if self.faults.drop_watch():
            if request.transport is not None:
                request.transport.close()  # cut mid-stream, as a lost connection does
            return False
        payload = {"type": event["type"], "object": self._view(rt, event["object"])}
        try:
            await response.write(json.dumps(payload).encode() + b"\n")
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return False
        return True

    def _emit(self, rt: ResourceType, kind: str, obj: Mapping[str, Any]) -> None:
        snapshot = copy.deepcopy(dict(obj))
        self._history.append((self._revision, rt.group_plural, kind, snapshot))
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft()[0]
        written = time.monotonic()
        for watcher in list(self._watchers):
            if watcher.group_plural == rt.group_plural and watcher.wants(obj):
                watcher.queue.put_nowait({"type": kind, "object": snapshot, "written": written})

    # --- writes ------------------------------------------------------------------------------

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _fresh_object(self, body: Mapping[str, Any], *, namespace: str | None) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        metadata = obj.setdefault("metadata", {})
        for key in _SERVER_METADATA:
            metadata.pop(key, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = _now()
        metadata["generation"] = 1
        if namespace is not None:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        metadata["resourceVersion"] = self._next_revision()
        return obj

    def _insert(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        self._store.setdefault(rt.group_plural, {})[(metadata.get("namespace", ""), metadata["name"])] = obj
        self._emit(rt, "ADDED", obj)

    def _check_namespace(self, rt: ResourceType, namespace: str | None, body: Mapping[str, Any]) -> None:
        claimed = (body.get("metadata") or {}).get("namespace")
        if rt.namespaced and claimed and claimed != namespace:
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if not rt.namespaced or namespace is None:
            return
        ns = self._lookup(self._type("", "v1", _NAMESPACES), None, namespace)
        if ns is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": _NAMESPACES},
            )
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    def _check_body(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad_request("the request body must be a JSON object")
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise _bad_request(f"the kind {kind!r} does not match the resource {rt.plural!r} ({rt.kind})")
        return body

    def _validate_name(self, rt: ResourceType, name: str) -> None:
        pattern = _DNS_LABEL if rt.plural == _NAMESPACES else _DNS_SUBDOMAIN
        if len(name) <= (63 if rt.plural == _NAMESPACES else 253) and pattern.match(name):
            return
        what, chars = (
            ("RFC 1123 label", "'-'") if rt.plural == _NAMESPACES else ("RFC 1123 subdomain", "'-' or '.'")
        )
        detail = (
            f"a lowercase {what} must consist of lower case alphanumeric characters, {chars}, and must "
            f"start and end with an alphanumeric character (regex used for validation is "
            f"'{pattern.pattern[1:-1]}')"
        )
        raise _invalid(rt, name, [validation.FieldError("metadata.name", validation.INVALID, detail, name)])

    def _prepare(
        self, rt: ResourceType, obj: dict[str, Any], *, old: Mapping[str, Any] | None, strict: bool
    ) -> dict[str, Any]:
        """Defaults, pruning and validation of a custom object (built-in kinds pass as they are)."""
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if rt.group_plural == "secrets":
            _fold_string_data(obj)
        if rt.crd is None:
            return obj
        # `obj` is this request's own copy: prepared in place.
        prepared = validation.prepare_object(rt.crd, obj, old=old, in_place=True)
        name = obj.get("metadata", {}).get("name", "")
        if strict and prepared.unknown_fields:
            fields = ", ".join(f'unknown field "{path}"' for path in prepared.unknown_fields)
            raise _bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {fields}"
            )
        if prepared.errors:
            raise _invalid(rt, name, prepared.errors)
        return prepared.obj

    def _create(self, target: _Target, data: Any, *, dry_run: bool, strict: bool) -> dict[str, Any]:
        rt = target.rt
        body = self._check_body(rt, data)
        self._check_namespace(rt, target.namespace, body)
        metadata = body.setdefault("metadata", {})
        if not metadata.get("name"):
            prefix = metadata.get("generateName")
            if not prefix:
                raise _invalid(
                    rt,
                    "",
                    [
                        validation.FieldError(
                            "metadata.name", validation.REQUIRED, "name or generateName is required"
                        )
                    ],
                )
            metadata["name"] = self._generate_name(rt, target.namespace, prefix)
        name = metadata["name"]
        self._validate_name(rt, name)
        if self._lookup(rt, target.namespace, name) is not None:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{_qualified(rt)} "{name}" already exists',
                details={"name": name, "group": rt.group, "kind": rt.plural},
            )
        if rt.status_subresource:
            body.pop("status", None)
        body = self._prepare(rt, body, old=None, strict=strict)
        if rt.group_plural == _CRDS:
            body = self._crd_with_status(body)
            self._check_crd(body)
        if dry_run:
            preview = copy.deepcopy(body)
            preview["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            return self._served(rt, preview)
        obj = self._fresh_object(body, namespace=target.namespace)
        if rt.plural == _NAMESPACES and not rt.group:
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        self._insert(rt, obj)
        if rt.group_plural == _CRDS:
            self._serve_crd(obj)
        return self._view(rt, obj)

    def _generate_name(self, rt: ResourceType, namespace: str | None, prefix: str) -> str:
        """A free name for `generateName`, drawn again on a collision, as the API server does since
        Kubernetes 1.32 (RetryGenerateName: up to 8 draws; 5 characters collide at tens of
        thousands of objects, e.g. the Events of 10,000 peers)."""
        for _ in range(_GENERATE_ATTEMPTS):
            name = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))  # noqa: S311 (not a secret)
            if self._lookup(rt, namespace, name) is None:
                break
        return name  # after 8 collisions, the caller's 409 AlreadyExists, as the API server's

    @staticmethod
    def _check_crd(crd: Mapping[str, Any]) -> None:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        expected = f"{names.get('plural')}.{spec.get('group')}"
        if crd.get("metadata", {}).get("name") != expected:
            rt = ResourceType(
                group=resources.CRD_GROUP,
                version="v1",
                plural="customresourcedefinitions",
                kind="CustomResourceDefinition",
                namespaced=False,
            )
            raise _invalid(
                rt,
                str(crd.get("metadata", {}).get("name")),
                [
                    validation.FieldError(
                        "metadata.name",
                        validation.INVALID,
                        'must be spec.names.plural+"."+spec.group',
                        crd.get("metadata", {}).get("name"),
                    )
                ],
            )

    def _update(self, target: _Target, data: Any, *, dry_run: bool, strict: bool) -> dict[str, Any]:
        rt = target.rt
        assert target.name is not None
        body = self._check_body(rt, data)
        if (body.get("metadata") or {}).get("name") not in (None, target.name):
            raise _bad_request("the name of the object does not match the name on the URL")
        self._check_namespace(rt, target.namespace, {})
        old = self._lookup(rt, target.namespace, target.name)
        if old is None:
            raise _not_found(rt, target.name)
        return self._replace(target, old, body, dry_run=dry_run, strict=strict)

    def _replace(
        self, target: _Target, old: dict[str, Any], body: dict[str, Any], *, dry_run: bool, strict: bool
    ) -> dict[str, Any]:
        """Store `body` as the new state of `old`, with the server's rules for what may change."""
        rt = target.rt
        name = old["metadata"]["name"]
        claimed = (body.get("metadata") or {}).get("resourceVersion")
        if claimed and claimed != old["metadata"]["resourceVersion"]:
            raise _conflict(rt, name)
        if target.subresource == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            if rt.status_subresource:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
            metadata = new.setdefault("metadata", {})
            for key in (*_SERVER_METADATA, "name", "namespace", "resourceVersion"):
                if key in old["metadata"]:
                    metadata[key] = copy.deepcopy(old["metadata"][key])
                else:
                    metadata.pop(key, None)
            if "managedFields" in metadata:
                metadata.pop("managedFields")
        new = self._prepare(rt, new, old=old, strict=strict)
        if rt.group_plural == _CRDS:
            new["status"] = copy.deepcopy(old.get("status", {}))
        if new == old:
            return self._view(rt, old)  # a no-op write changes nothing, not even resourceVersion
        if _content(new) != _content(old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if dry_run:
            return self._served(rt, new)
        new["metadata"]["resourceVersion"] = self._next_revision()
        self._store[rt.group_plural][(old["metadata"].get("namespace", ""), name)] = new
        if rt.group_plural == _CRDS:
            self._serve_crd(new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            served = self._served(rt, new)
            self._emit(rt, "MODIFIED", new)
            self._remove(rt, new)
            return served
        self._emit(rt, "MODIFIED", new)
        return self._view(rt, new)

    def _patch(
        self, target: _Target, data: Any, *, content_type: str, dry_run: bool, strict: bool
    ) -> tuple[dict[str, Any], bool]:
        rt = target.rt
        assert target.name is not None
        if content_type not in patching.PATCH_TYPES:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - "
                f"accepted media types include: {', '.join(patching.PATCH_TYPES)}",
            )
        old = self._lookup(rt, target.namespace, target.name)
        if old is None:
            if content_type == patching.APPLY_PATCH and target.subresource is None:
                body = self._check_body(rt, data)
                body.setdefault("metadata", {})["name"] = target.name
                return self._create(target, body, dry_run=dry_run, strict=strict), True
            raise _not_found(rt, target.name)
        if content_type == patching.APPLY_PATCH:
            self._check_body(rt, data)
        try:
            patched = patching.apply_patch(self._view(rt, old), data, content_type=content_type)
        except patching.PatchError as exc:
            raise ApiError(
                422, "Invalid", str(exc), details={"name": target.name, "group": rt.group, "kind": rt.kind}
            ) from None
        if not isinstance(patched, dict):
            raise _bad_request("the patched object is not a JSON object")
        claimed = (patched.get("metadata") or {}).get("resourceVersion")
        if claimed and claimed != old["metadata"]["resourceVersion"]:
            raise _conflict(rt, target.name)
        return self._replace(target, old, patched, dry_run=dry_run, strict=strict), False

    def _delete(
        self, target: _Target, data: Any, query: Mapping[str, str], *, dry_run: bool
    ) -> dict[str, Any]:
        rt = target.rt
        assert target.name is not None
        options = data if isinstance(data, dict) else {}
        obj = self._lookup(rt, target.namespace, target.name)
        if obj is None:
            raise _not_found(rt, target.name)
        preconditions = options.get("preconditions") or {}
        for key in ("resourceVersion", "uid"):
            if preconditions.get(key) and preconditions[key] != obj["metadata"].get(key):
                raise _conflict(rt, target.name)
        if dry_run:
            return self._served(rt, obj)
        policy = options.get("propagationPolicy") or query.get("propagationPolicy") or "Background"
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        return self._delete_object(rt, obj, orphan=policy == "Orphan")

    def _delete_object(
        self, rt: ResourceType, obj: dict[str, Any], *, orphan: bool = False
    ) -> dict[str, Any]:
        metadata = obj["metadata"]
        if orphan:
            self._orphan_dependents(metadata["uid"])
        if rt.plural == _NAMESPACES and not rt.group:
            return self._delete_namespace(rt, obj)
        if metadata.get("finalizers"):
            if not metadata.get("deletionTimestamp"):
                metadata["deletionTimestamp"] = _now()
                metadata["deletionGracePeriodSeconds"] = 0
                metadata["resourceVersion"] = self._next_revision()
                self._emit(rt, "MODIFIED", obj)
            return self._served(rt, obj)
        served = self._served(rt, obj)
        self._remove(rt, obj)
        return (
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": metadata["name"],
                    "group": rt.group,
                    "kind": rt.plural,
                    "uid": metadata["uid"],
                },
            }
            if rt.crd is None
            else served
        )

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """The object is gone: DELETED event, then its dependents and, for CRDs, its kinds."""
        metadata = obj["metadata"]
        key = (metadata.get("namespace", ""), metadata["name"])
        if self._store.get(rt.group_plural, {}).get(key) is not obj:
            return
        del self._store[rt.group_plural][key]
        metadata["resourceVersion"] = self._next_revision()
        self._emit(rt, "DELETED", obj)
        self._collect_dependents(metadata["uid"])
        if rt.group_plural == _CRDS:
            self._unserve_crd(metadata["name"], keep_objects=False)
        namespace = metadata.get("namespace")
        if namespace:
            self._finish_namespace(namespace)

    def _storage_type(self, group_plural: str) -> ResourceType | None:
        for rt in self._types.values():
            if rt.group_plural == group_plural:
                return rt
        return None

    def _all_objects(self) -> list[tuple[ResourceType, dict[str, Any]]]:
        result: list[tuple[ResourceType, dict[str, Any]]] = []
        for group_plural, objects in self._store.items():
            rt = self._storage_type(group_plural)
            if rt is not None:
                result.extend((rt, obj) for obj in list(objects.values()))
        return result

    def _collect_dependents(self, owner_uid: str) -> None:
        """Background cascading deletion: dependents left without any owner are deleted."""
        for rt, obj in self._all_objects():
            refs = obj["metadata"].get("ownerReferences") or []
            remaining = [ref for ref in refs if ref.get("uid") != owner_uid]
            if len(remaining) == len(refs):
                continue
            if remaining:
                obj["metadata"]["ownerReferences"] = remaining
                obj["metadata"]["resourceVersion"] = self._next_revision()
                self._emit(rt, "MODIFIED", obj)
            else:
                self._delete_object(rt, obj)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for rt, obj in self._all_objects():
            refs = obj["metadata"].get("ownerReferences") or []
            remaining = [ref for ref in refs if ref.get("uid") != owner_uid]
            if len(remaining) != len(refs):
                if remaining:
                    obj["metadata"]["ownerReferences"] = remaining
                else:
                    obj["metadata"].pop("ownerReferences")
                obj["metadata"]["resourceVersion"] = self._next_revision()
                self._emit(rt, "MODIFIED", obj)

    def _delete_namespace(self, rt: ResourceType, ns: dict[str, Any]) -> dict[str, Any]:
        name = ns["metadata"]["name"]
        if not ns["metadata"].get("deletionTimestamp"):
            ns["metadata"]["deletionTimestamp"] = _now()
            ns["status"] = {"phase": "Terminating"}
            ns["metadata"]["resourceVersion"] = self._next_revision()
            self._emit(rt, "MODIFIED", ns)
        served = self._served(rt, ns)
        for content_rt, obj in self._all_objects():
            if content_rt.namespaced and obj["metadata"].get("namespace") == name:
                self._delete_object(content_rt, obj)
        self._finish_namespace(name)
        return served

    def _finish_namespace(self, name: str) -> None:
        rt = self._type("", "v1", _NAMESPACES)
        ns = self._lookup(rt, None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(obj["metadata"].get("namespace") == name for _, obj in self._all_objects()):
            return
        self._remove(rt, ns)

    def _delete_collection(
        self, target: _Target, data: Any, query: Mapping[str, str], *, dry_run: bool
    ) -> dict[str, Any]:
        rt = target.rt
        matching = self._matching(rt, target.namespace, self._selector(query, rt))
        items = [self._served(rt, obj) for obj in matching]
        if not dry_run:
            for obj in matching:
                self._delete_object(rt, obj)
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": self.resource_version},
            "items": items,
        }
