"""A federation endpoint written from docs/protocol.md alone, not from this package's server.

It stands for "another implementation of the contract" (Ampora itself, or a peer's own server):
aiohttp on 127.0.0.1 with TLS, a client certificate requested and checked against pinned PEMs by
SHA-256 thumbprint, `Authorization: Bearer <token>` checked against `sha256:<hex>` hashes in
constant time, and the documented refusals (401 + factor `Certificate` or `Secret`). What it
answers when both factors pass is up to its user: by default a bare `200 pong` in text/plain,
which a caller must take as green. Nothing here imports `federation_operator`: the tests and
`hack/bench_scale.py --remote local` use it as the other side of the protocol, so it must not
share our server's code (a bug in both would pass unseen).

One instance can stand for many remote sites (the scale benchmark's 10,000): a site is a path
prefix of the endpoint, `https://127.0.0.1:PORT/sites/<site>`, and holds the inbound hashes of the
one peer that calls it, so a token is checked against its own site's hashes only ("the same
peer", docs/protocol.md section 3). The endpoint without a prefix is the site named "".

Two ways to run it:
- `IndependentRemote(...).start()`: its own thread and event loop, configured in place (tests);
- `python -m federation_devkit.independent_remote --port P --cert C --key K --control-port Q
  [--reuse-port]`: one process; several share port P with `--reuse-port` (the kernel spreads the
  connections), each told the pins and the sites' hashes over its plain-HTTP control port on
  loopback (`POST /pins`, `POST /sites`, `GET /stats`). The benchmark runs it apart from itself so
  that the remote's CPU is measured apart from the operator's and the sandbox's.
"""

import argparse
import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Self

from aiohttp import web

PING_PATH = "/api/federation/ping"
SITE_PREFIX = "/sites/"
LOOPBACK = "127.0.0.1"


def sha256_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("ascii")).hexdigest()


def thumbprint(der: bytes) -> str:
    return "sha256:" + hashlib.sha256(der).hexdigest()


class IndependentRemote:
    """The contract's server side, in its own thread (`start`) or in the caller's loop (`serve`)."""

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
        # The hashes of the site "" (the endpoint without a prefix); `sites` holds the others.
        self.accepted_hashes = accepted_hashes
        self.sites: dict[str, list[str]] = {}
        # CERT_OPTIONAL (the default) lets a caller without a certificate hear a JSON refusal;
        # CERT_REQUIRED refuses it in the handshake. Both conform.
        self.require_certificate = require_certificate
        # False: a broken server that never asks for a certificate (the probe must notice).
        self.request_certificate = request_certificate
        self.green: Callable[[], web.Response] = lambda: web.Response(text="pong")
        # False makes it a broken server that lets any token in (for the conformance probe's tests).
        self.check_token = True
        self.requests = 0
        self.outcomes: Counter[str] = Counter()  # "ok" or the refused factor
        self.port = 0
        self._context: ssl.SSLContext | None = None
        self._pinned: frozenset[str] = frozenset()
        self._pinned_from: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="independent-remote", daemon=True)

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    def site_url(self, site: str) -> str:
        return f"{self.url}{SITE_PREFIX}{site}"

    def add_pins(self, pems: Iterable[str]) -> None:
        """Pin more client certificates, for the handshakes that follow (the TLS trust store is live)."""
        new = [pem for pem in pems if pem not in self.pinned_pems]
        self.pinned_pems.extend(new)
        if new and self._context is not None and self.request_certificate:
            self._context.load_verify_locations(cadata="".join(new))

    def _tls(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        if not self.request_certificate:
            return context
        context.verify_mode = ssl.CERT_REQUIRED if self.require_certificate else ssl.CERT_OPTIONAL
        # Self-signed client certificates: each pinned PEM is its own trust anchor.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if self.pinned_pems:
            context.load_verify_locations(cadata="".join(self.pinned_pems))
        return context

    def _is_pinned(self, der: bytes) -> bool:
        if self._pinned_from != self.pinned_pems:  # a test may replace or extend the list in place
            self._pinned_from = list(self.pinned_pems)
            self._pinned = frozenset(thumbprint(ssl.PEM_cert_to_DER_cert(pem)) for pem in self.pinned_pems)
        return thumbprint(der) in self._pinned

    def _refuse(self, status: int, factor: str, message: str) -> web.Response:
        self.outcomes[factor] += 1
        headers = {"X-Federation-Factor": factor}
        if factor == "Secret":
            headers["WWW-Authenticate"] = "Bearer"
        return web.Response(
            status=status,
            text=json.dumps({"ok": False, "factor": factor, "message": message}),
            content_type="application/json",
            headers=headers,
        )

    async def _ping(self, request: web.Request) -> web.Response:
        self.requests += 1
        site = request.match_info.get("site", "")
        accepted = self.accepted_hashes if site == "" else self.sites.get(site)
        if accepted is None:  # a site this remote does not stand for: no peer pins anything there
            return self._refuse(401, "Certificate", "no such site")
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der or not self._is_pinned(der):
            return self._refuse(401, "Certificate", "no pinned client certificate")
        if not self.check_token:
            self.outcomes["ok"] += 1
            return self.green()
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            return self._refuse(401, "Secret", "missing bearer token")
        presented = sha256_hash(token.strip()).encode("ascii")
        matched = False
        for hash_ in accepted:
            matched |= hmac.compare_digest(presented, hash_.encode("ascii"))
        if not matched:
            return self._refuse(401, "Secret", "token does not match")
        self.outcomes["ok"] += 1
        return self.green()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PING_PATH, self._ping)
        app.router.add_get(SITE_PREFIX + "{site}" + PING_PATH, self._ping)
        return app

    async def _control_pins(self, request: web.Request) -> web.Response:
        self.add_pins(list((await request.json())["pems"]))
        return web.json_response({"pinned": len(self.pinned_pems)})

    async def _control_sites(self, request: web.Request) -> web.Response:
        """`{"<site>": ["sha256:<hex>", ...]}`: each named site's accepted hashes, replaced."""
        self.sites.update({str(site): list(hashes) for site, hashes in (await request.json()).items()})
        return web.json_response({"sites": len(self.sites)})

    async def _control_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"pings": self.requests, "outcomes": dict(self.outcomes), "cpu_seconds": time.process_time()}
        )

    def _control_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/pins", self._control_pins)
        app.router.add_post("/sites", self._control_sites)
        app.router.add_get("/stats", self._control_stats)
        return app

    async def serve(self, *, reuse_port: bool = False, control_port: int | None = None) -> None:
        """Serve until `stop`; `port` is known once `_ready` is set."""
        self._stop = asyncio.Event()
        self._context = self._tls()
        runners = [web.AppRunner(self._app(), access_log=None)]
        await runners[0].setup()
        site = web.TCPSite(runners[0], LOOPBACK, self.port, ssl_context=self._context, reuse_port=reuse_port)
        await site.start()
        server = site._server  # the only way aiohttp tells the bound port
        assert server is not None
        port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        if control_port is not None:
            runners.append(web.AppRunner(self._control_app(), access_log=None))
            await runners[1].setup()
            await web.TCPSite(runners[1], LOOPBACK, control_port).start()
        self._ready.set_result(port)
        try:
            await self._stop.wait()
        finally:
            for runner in runners:
                await runner.cleanup()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.serve())

    def start(self) -> Self:
        self._thread.start()
        self.port = self._ready.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A federation endpoint written from docs/protocol.md.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True, help="the server's certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="the server's private key (PEM)")
    parser.add_argument("--control-port", type=int, required=True, help="plain HTTP on loopback")
    parser.add_argument("--reuse-port", action="store_true", help="share --port with other processes")
    args = parser.parse_args(argv)
    remote = IndependentRemote(server_cert=args.cert, server_key=args.key, pinned_pems=[], accepted_hashes=[])
    remote.port = args.port
    asyncio.run(remote.serve(reuse_port=args.reuse_port, control_port=args.control_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
