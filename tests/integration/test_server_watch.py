"""The index follows the API: list+watch from the sandbox API, changes honoured within 2 seconds.

One test drives the real sandbox API with the official Kubernetes client (what users' tools
speak); one uses a tiny fake API to prove that `410 Gone` triggers a relist that also deletes
what disappeared meanwhile.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from federation_devkit.sandbox.server import SandboxThread
from federation_operator.domain import api, tokens
from federation_operator.server.index import PeerIndex
from federation_operator.server.watch import Connection, IndexWatcher, load_connection
from tests.harness.server import Identity, Keys, peer_object
from tests.harness.waiting import async_wait_for

HONOURED_WITHIN = 2.0


@pytest.fixture
def ids(keys: Keys) -> dict[str, Identity]:
    return {name: keys.identity(name) for name in ("a", "rotated")}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[SandboxThread, Path]]:
    thread = SandboxThread().start()
    yield thread, thread.write_kubeconfig(tmp_path / "kubeconfig")
    thread.stop()


@contextlib.asynccontextmanager
async def watching(
    index: PeerIndex, connection: Connection, namespaces: list[str] | None = None
) -> AsyncIterator[None]:
    task = asyncio.create_task(IndexWatcher(connection=connection, index=index, namespaces=namespaces).run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def factor(index: PeerIndex, identity: Identity, token: Identity) -> str | None:
    result = index.authenticate(thumbprint=identity.thumbprint, token=token.token, now=datetime.now(tz=UTC))
    return "ok" if result.ok else result.factor


async def becomes(index: PeerIndex, identity: Identity, token: Identity, expected: str) -> None:
    async def probe() -> bool:
        return factor(index, identity, token) == expected

    await async_wait_for(probe, timeout=HONOURED_WITHIN, message=f"factor {expected}")


def _strip_status(body: dict[str, Any]) -> dict[str, Any]:
    """The peer as a user would create it: no status."""
    return {key: value for key, value in body.items() if key != "status"}


def _accept(custom: k8s_client.CustomObjectsApi, name: str, identity: Identity) -> None:
    """What the operator does: publish the accepted inbound hash in the peer's status."""
    status = {"inbound": {"acceptedHashes": [{"hash": tokens.hash_token(identity.token)}]}}
    custom.patch_namespaced_custom_object_status(
        api.GROUP, api.VERSION, "default", api.PEER_PLURAL, name, {"status": status}
    )


async def test_index_follows_the_sandbox_api_within_two_seconds(
    sandbox: tuple[SandboxThread, Path], ids: dict[str, Identity]
) -> None:
    _, kubeconfig = sandbox
    kube = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    custom = k8s_client.CustomObjectsApi(kube)
    a = ids["a"]
    await asyncio.to_thread(
        custom.create_namespaced_custom_object,
        api.GROUP,
        api.VERSION,
        "default",
        api.PEER_PLURAL,
        _strip_status(peer_object(a)),
    )
    await asyncio.to_thread(_accept, custom, "a", a)

    index = PeerIndex()
    async with watching(index, load_connection(kubeconfig)):
        await async_wait_for(lambda: _true_when(index.synced), timeout=5, message="index synced")
        assert factor(index, a, a) == "ok"

        await asyncio.to_thread(
            custom.patch_namespaced_custom_object,
            api.GROUP,
            api.VERSION,
            "default",
            api.PEER_PLURAL,
            "a",
            {"spec": {"suspend": True}},
        )
        await becomes(index, a, a, "Suspended")
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object,
            api.GROUP,
            api.VERSION,
            "default",
            api.PEER_PLURAL,
            "a",
            {"spec": {"suspend": False}},
        )
        await becomes(index, a, a, "ok")

        await asyncio.to_thread(_accept, custom, "a", ids["rotated"])
        await becomes(index, a, a, "Secret")
        assert factor(index, a, ids["rotated"]) == "ok"

        await asyncio.to_thread(
            custom.delete_namespaced_custom_object, api.GROUP, api.VERSION, "default", api.PEER_PLURAL, "a"
        )
        await becomes(index, a, ids["rotated"], "UnknownPeer")


async def _true_when(value: bool) -> bool:
    return value


class FakeAPI:
    """Serves list + watch for both collections; the first peer watch ends with 410 Gone on `expire`."""

    def __init__(self, peers: list[dict[str, Any]]) -> None:
        self.peers = peers
        self.version = 1
        self.peer_lists = 0
        self.gone_sent = asyncio.Event()
        self.expire = asyncio.Event()

    async def collection(self, request: web.Request) -> web.StreamResponse:
        is_peers = api.PEER_PLURAL in request.path
        if request.query.get("watch") != "true":
            self.peer_lists += is_peers
            items = self.peers if is_peers else []
            return web.json_response({"metadata": {"resourceVersion": str(self.version)}, "items": items})
        response = web.StreamResponse()
        await response.prepare(request)
        if is_peers and not self.gone_sent.is_set():
            self.gone_sent.set()
            await self.expire.wait()
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
            await response.write(json.dumps(gone).encode() + b"\n")
            return response
        await asyncio.Event().wait()  # keep the watch open until the client goes away
        return response


async def test_410_gone_relists_and_deletes_what_disappeared(ids: dict[str, Identity]) -> None:
    a = ids["a"]
    fake = FakeAPI([peer_object(a)])
    app = web.Application()
    app.router.add_get("/apis/{group}/{version}/{plural}", fake.collection)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # the open watch would hold cleanup 60 s
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    index = PeerIndex()
    try:
        async with watching(
            index, Connection(host=f"http://127.0.0.1:{port}", token=lambda: "Bearer dummy", ssl_context=None)
        ):
            await async_wait_for(lambda: _true_when(index.synced), timeout=5, message="synced")
            assert index.peer_keys() == {("default", "a")}
            fake.peers = []  # deleted while our watch was expiring: only a relist can tell
            fake.expire.set()
            await async_wait_for(lambda: _true_when(fake.peer_lists >= 2), timeout=5, message="relist")
            await becomes(index, a, a, "UnknownPeer")
    finally:
        await runner.cleanup()
