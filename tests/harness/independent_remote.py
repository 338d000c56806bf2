"""A federation endpoint written from docs/protocol.md alone, not from this package's server.

It stands for "another implementation of the contract" (Ampora itself, or a peer's own server):
aiohttp on 127.0.0.1 with TLS, a client certificate requested and checked against pinned PEMs by
SHA-256 thumbprint, `Authorization: Bearer <token>` checked against `sha256:<hex>` hashes in
constant time, and the documented refusals (401 + factor `Certificate` or `Secret`). What it
answers when both factors pass is up to the test: by default a bare `200 pong` in text/plain,
which a caller must take as green. Nothing here imports `federation_operator`.
"""

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from aiohttp import web

PING_PATH = "/api/federation/ping"


def sha256_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("ascii")).hexdigest()


def thumbprint(der: bytes) -> str:
    return "sha256:" + hashlib.sha256(der).hexdigest()


class IndependentRemote:
    """The contract's server side in its own thread and event loop."""

    def __init__(
        self,
        *,
        server_cert: Path,
        server_key: Path,
        pinned_pems: list[str],
        accepted_hashes: list[str],
        require_certificate: bool = False,
        request_certificate: bool = True,
    ) -> None:
        self.server_cert, self.server_key = server_cert, server_key
        self.pinned_pems = pinned_pems
        self.accepted_hashes = accepted_hashes
        # CERT_OPTIONAL (the default) lets a caller without a certificate hear a JSON refusal;
        # CERT_REQUIRED refuses it in the handshake. Both conform.
        self.require_certificate = require_certificate
        # False: a broken server that never asks for a certificate (the probe must notice).
        self.request_certificate = request_certificate
        self.green: Callable[[], web.Response] = lambda: web.Response(text="pong")
        # False makes it a broken server that lets any token in (for the conformance probe's tests).
        self.check_token = True
        self.requests = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="independent-remote", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        if not self.request_certificate:
            return context
        context.verify_mode = ssl.CERT_REQUIRED if self.require_certificate else ssl.CERT_OPTIONAL
        # Self-signed client certificates: each pinned PEM is its own trust anchor.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_verify_locations(cadata="".join(self.pinned_pems))
        return context

    def _pinned(self) -> set[str]:
        return {thumbprint(ssl.PEM_cert_to_DER_cert(pem)) for pem in self.pinned_pems}

    @staticmethod
    def _refuse(status: int, factor: str, message: str) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps({"ok": False, "factor": factor, "message": message}),
            content_type="application/json",
            headers={"X-Federation-Factor": factor},
        )

    async def _ping(self, request: web.Request) -> web.Response:
        self.requests += 1
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der or thumbprint(der) not in self._pinned():
            return self._refuse(401, "Certificate", "no pinned client certificate")
        if not self.check_token:
            return self.green()
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            return self._refuse(401, "Secret", "missing bearer token")
        presented = sha256_hash(token.strip()).encode("ascii")
        matched = False
        for accepted in self.accepted_hashes:
            matched |= hmac.compare_digest(presented, accepted.encode("ascii"))
        if not matched:
            return self._refuse(401, "Secret", "token does not match")
        return self.green()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get(PING_PATH, self._ping)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self._context())
        await site.start()
        server = site._server  # the only way aiohttp tells the bound port
        assert server is not None
        self._ready.set_result(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> Self:
        self._thread.start()
        self.port = self._ready.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
