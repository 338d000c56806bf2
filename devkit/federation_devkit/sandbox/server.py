"""Serving the sandbox API on loopback: an async context manager, a thread, and a kubeconfig.

Tests, the `sandbox` command and the demo all need the same three things: a SandboxAPI listening on
127.0.0.1, a kubeconfig that points kubectl / kopf / the kubernetes client at it, and a clean stop.
`Sandbox` does it inside a running event loop; `SandboxThread` runs one in its own thread and loop,
for synchronous tests and for running beside kopf (which wants its own loop too).

The HTTP server is kmock's `Server` (aiohttp's raw test server) minus its DNS interceptor: that
interceptor patches aiohttp's resolver process-wide and must be exited in LIFO order, which two
sandboxes stopped in any order (the demo runs two) would break; the sandbox's URL is an IP anyway.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import kmock
import yaml

from federation_devkit.sandbox.emulator import DEFAULT_HISTORY, SandboxAPI
from federation_devkit.sandbox.resources import DEFAULT_PROVIDERS

LOOPBACK = "127.0.0.1"
# The kubeconfig's user: the sandbox accepts any token; clients insist on having one.
DUMMY_TOKEN = "sandbox-token-not-a-secret"


class _LoopbackServer(kmock.Server):
    """kmock's Server without the process-wide DNS interceptor and the client session."""

    async def __aenter__(self) -> Self:
        server = self._server_cls(self.handler, host=self._host, port=self._port)
        self._managed_server = server
        await server.__aenter__()
        self.handler.servers.append(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.handler.servers.remove(self)
        server = self._managed_server
        self._managed_server = None
        if server is not None:
            await server.__aexit__(exc_type, exc_value, traceback)


def kubeconfig(url: str, *, namespace: str = "default", token: str = DUMMY_TOKEN) -> dict[str, Any]:
    """A kubeconfig document for a plain-HTTP server with a dummy token user."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {"server": url}}],
        "users": [{"name": "sandbox", "user": {"token": token}}],
        "contexts": [
            {"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox", "namespace": namespace}}
        ],
        "current-context": "sandbox",
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str, *, namespace: str = "default") -> Path:
    """Write it whole or not at all: a script waiting for the file to exist never reads it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(yaml.safe_dump(kubeconfig(url, namespace=namespace), sort_keys=False))
    partial.chmod(0o600)
    partial.replace(path)
    return path


class Sandbox:
    """`async with Sandbox() as sandbox:` serves a fresh SandboxAPI on 127.0.0.1 (`port=0`: any free one)."""

    def __init__(
        self,
        *,
        port: int = 0,
        crds: Iterable[Mapping[str, Any]] | None = None,
        history_limit: int = DEFAULT_HISTORY,
        providers: Iterable[str] = DEFAULT_PROVIDERS,
    ) -> None:
        self.api = SandboxAPI(crds=crds, history_limit=history_limit, providers=providers)
        self._server = _LoopbackServer(self.api, host=LOOPBACK, port=port or None)

    @property
    def url(self) -> str:
        return str(self._server.url).rstrip("/")

    @property
    def port(self) -> int:
        port: int = self._server.port
        return port

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        return write_kubeconfig(path, self.url, namespace=namespace)

    async def __aenter__(self) -> Self:
        await self.api.__aenter__()
        await self._server.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.api.close_watches()
        try:
            await self._server.__aexit__(exc_type, exc_value, traceback)
        finally:
            await self.api.__aexit__(exc_type, exc_value, traceback)


class SandboxThread:
    """A Sandbox in its own thread and event loop: `start()` returns once it listens, `stop()` joins."""

    def __init__(
        self,
        *,
        port: int = 0,
        crds: Iterable[Mapping[str, Any]] | None = None,
        history_limit: int = DEFAULT_HISTORY,
        providers: Iterable[str] = DEFAULT_PROVIDERS,
    ) -> None:
        self._options: dict[str, Any] = {
            "port": port,
            "crds": crds,
            "history_limit": history_limit,
            "providers": providers,
        }
        self._ready: concurrent.futures.Future[Sandbox] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="sandbox-api", daemon=True)

    @property
    def sandbox(self) -> Sandbox:
        return self._ready.result()

    @property
    def api(self) -> SandboxAPI:
        return self.sandbox.api

    @property
    def url(self) -> str:
        return self.sandbox.url

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        return self.sandbox.write_kubeconfig(path, namespace=namespace)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` in the sandbox's loop (for reading or changing its state safely)."""
        assert self._loop is not None

        async def invoke() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result()

    def start(self, *, timeout: float = 10.0) -> Self:
        self._thread.start()
        self._ready.result(timeout=timeout)
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with Sandbox(**self._options) as sandbox:
            self._ready.set_result(sandbox)
            await self._stop.wait()
