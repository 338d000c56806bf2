"""Feed the PeerIndex from the Kubernetes API: list + watch FederationPeers, and nothing else.

The server must answer every call from memory (no API call per request) and notice a peer or
token change within seconds, on every replica. Each replica therefore runs its own list+watch
streams (plain HTTP with aiohttp, so that nothing blocks the loop) of FederationPeers,
cluster-wide or per namespace. The accepted inbound hashes are in each peer's status (the
operator publishes them there), so the internet-facing server needs no right on Secrets. A stream lists,
replaces what it fed before (objects gone from the list are deleted from the index), then watches
from the list's resourceVersion; on `410 Gone` it relists, on any other failure it reconnects
with exponential backoff. The index is marked synced once every stream has listed once.

The connection comes from `kubernetes.config` (kubeconfig file, in-cluster, or the default
kubeconfig), read once at start; the bearer token is re-read on every (re)connection so that
rotated service-account tokens keep working.
"""

import asyncio
import json
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from federation_operator.adapters.k8s.client import SERVER_AGENT, load_api_client
from federation_operator.domain import api
from federation_operator.server.index import PeerIndex

WATCH_TIMEOUT_SECONDS: Final = 290
BACKOFF_START: Final = 0.5
BACKOFF_MAX: Final = 30.0
# One watch event is one object on one line; a peer with 8 PEM pins, its status and managedFields
# can exceed aiohttp's default 64 KiB line limit.
READ_BUFFER: Final = 4 * 1024 * 1024

logger = logging.getLogger(__name__)
Obj = dict[str, Any]


@dataclass(frozen=True)
class Connection:
    """Where the API is and how to authenticate; `token` is called per connection, never logged."""

    host: str
    token: Callable[[], str | None]
    ssl_context: ssl.SSLContext | None

    def headers(self) -> dict[str, str]:
        value = self.token()
        return {"Authorization": value} if value else {}


def load_connection(kubeconfig: Path | None) -> Connection:
    """From a kubeconfig path, the in-cluster service account, or $KUBECONFIG / ~/.kube/config."""
    configuration = load_api_client(kubeconfig).configuration
    host = str(configuration.host).rstrip("/")
    context: ssl.SSLContext | None = None
    if host.startswith("https://"):
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)

    def token() -> str | None:
        value = configuration.get_api_key_with_prefix("authorization")
        return str(value) if value else None

    return Connection(host=host, token=token, ssl_context=context)


class _Feed:
    """What one stream fed into the index, so that a relist can delete what disappeared."""

    def __init__(
        self,
        *,
        upsert: Callable[[Obj], None],
        delete: Callable[[str, str], None],
    ) -> None:
        self._upsert = upsert
        self._delete = delete
        self._known: set[tuple[str, str]] = set()

    @staticmethod
    def key(obj: Mapping[str, Any]) -> tuple[str, str]:
        metadata = obj.get("metadata") or {}
        return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))

    def replace(self, items: Iterable[Obj]) -> None:
        seen: set[tuple[str, str]] = set()
        for obj in items:
            self._upsert(obj)
            seen.add(self.key(obj))
        for gone in self._known - seen:
            self._delete(*gone)
        self._known = seen

    def apply(self, kind: str, obj: Obj) -> None:
        key = self.key(obj)
        if kind == "DELETED":
            self._delete(*key)
            self._known.discard(key)
        else:
            self._upsert(obj)
            self._known.add(key)


class _Gone(Exception):
    """The resourceVersion is too old: relist."""


def _collection_paths(namespaces: list[str] | None) -> list[str]:
    """The FederationPeer collection per namespace, or cluster-wide."""
    peers = f"/apis/{api.GROUP}/{api.VERSION}"
    if not namespaces:
        return [f"{peers}/{api.PEER_PLURAL}"]
    return [f"{peers}/namespaces/{ns}/{api.PEER_PLURAL}" for ns in namespaces]


class IndexWatcher:
    """Runs the list+watch streams until cancelled."""

    def __init__(
        self, *, connection: Connection, index: PeerIndex, namespaces: list[str] | None = None
    ) -> None:
        self._connection = connection
        self._index = index
        self._namespaces = namespaces

    async def run(self) -> None:
        streams: list[tuple[str, _Feed]] = [
            (path, _Feed(upsert=self._index.upsert_peer, delete=self._delete_peer))
            for path in _collection_paths(self._namespaces)
        ]
        listed = [asyncio.Event() for _ in streams]
        connector = aiohttp.TCPConnector(ssl=self._connection.ssl_context or False)
        async with (
            aiohttp.ClientSession(
                connector=connector, read_bufsize=READ_BUFFER, headers={"User-Agent": SERVER_AGENT}
            ) as session,
            asyncio.TaskGroup() as group,
        ):
            for (path, feed), event in zip(streams, listed, strict=True):
                group.create_task(self._stream(session, path=path, feed=feed, listed=event))
            for event in listed:
                await event.wait()
            self._index.mark_synced()

    def _delete_peer(self, namespace: str, name: str) -> None:
        self._index.delete_peer(namespace, name)

    async def _stream(
        self,
        session: aiohttp.ClientSession,
        *,
        path: str,
        feed: _Feed,
        listed: asyncio.Event,
    ) -> None:
        backoff = BACKOFF_START
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list(session, path=path, feed=feed)
                    listed.set()
                version = await self._watch(session, path=path, feed=feed, version=version)
                backoff = BACKOFF_START
            except _Gone:
                version = None
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                logger.warning("watch %s failed (%s); retrying in %.1fs", path, type(error).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _list(self, session: aiohttp.ClientSession, *, path: str, feed: _Feed) -> str:
        async with session.get(
            self._connection.host + path,
            headers=self._connection.headers(),
            timeout=aiohttp.ClientTimeout(total=60),
        ) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message="list failed"
                )
            body = await response.json()
        items = body.get("items") or []
        feed.replace(items)
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    async def _watch(self, session: aiohttp.ClientSession, *, path: str, feed: _Feed, version: str) -> str:
        params = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
        }
        async with session.get(
            self._connection.host + path,
            params=params,
            headers=self._connection.headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=WATCH_TIMEOUT_SECONDS + 30),
        ) as response:
            if response.status == 410:
                raise _Gone
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message="watch failed"
                )
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone
                    raise ValueError(f"watch error {obj.get('code')}: {obj.get('reason')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    feed.apply(kind, obj)
        return version
