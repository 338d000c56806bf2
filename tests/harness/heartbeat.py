"""Helpers for the heartbeat's integration tests (this module holds no tests).

`StandInRemote` is a deliberately small HTTPS server on 127.0.0.1 in its own thread: it requires
a client certificate from a given trust store, answers every request with a canned ping reply
after a configurable delay, and records each handshake (client thumbprint, whether the TLS
session was resumed). The heartbeat tests use it where the real federation server cannot
misbehave on purpose: a remote slower than `slowThreshold`, one that never answers, redirects,
or sends too much.
"""

import asyncio
import concurrent.futures
import hashlib
import json
import ssl
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from federation_devkit.localsite import ServerThread
from federation_operator.adapters.k8s.client import Kube
from federation_operator.controller.config import OperatorContext
from federation_operator.server.main import ServerConfig
from tests.harness.clock import Clock
from tests.harness.server import Keys
from tests.harness.site import Site, SiteFactory, issued_pem

CA_CONFIGMAP = "federation-ca"


def clocked_site(site_factory: SiteFactory, clock: Clock, *, metrics_port: int) -> Site:
    """Site "eu" whose operator reads `clock` (the test moves it), with /metrics on 127.0.0.1."""
    site = site_factory("eu", operator=False, metrics_port=metrics_port, metrics_host="127.0.0.1")
    site.start_operator(
        context=OperatorContext(
            config=site.config, kube=Kube.from_kubeconfig(site.kubeconfig), clock=clock.now
        )
    )
    return site


def trust_remote_ca(site: Site, keys: Keys) -> None:
    """The remotes' server CA in a ConfigMap of the site's namespace (what `pinging` trusts)."""
    site.core.create_namespaced_config_map(
        site.namespace, {"metadata": {"name": CA_CONFIGMAP}, "data": {"ca.crt": keys.ca.read_text()}}
    )


@dataclass(frozen=True)
class RemoteKeys:
    """What stand-in remotes of site "eu" share: their server keys (whose CA the site trusts) and
    the site's `eu-client` certificate, the one client they accept."""

    keys: Keys
    pem: str

    def remote(self, **options: Any) -> "StandInRemote":
        """A stand-in remote with these keys (not started); `options` as `StandInRemote`'s."""
        return StandInRemote(
            server_cert=self.keys.server_cert,
            server_key=self.keys.server_key,
            client_pems=[self.pem],
            **options,
        )


def remote_keys(site: Site, tmp_path: Path) -> RemoteKeys:
    """New server keys in `tmp_path` whose CA the site trusts (`trust_remote_ca`), and its client PEM."""
    keys = Keys.create(tmp_path)
    trust_remote_ca(site, keys)
    return RemoteKeys(keys=keys, pem=issued_pem(site, "eu-client"))


def pinging(url: str, pem: str, heartbeat: dict[str, str]) -> dict[str, Any]:
    """A FederationPeer spec that pings `url`, presenting the site's `eu-client` certificate,
    trusting the CA of `trust_remote_ca` and pinning `pem` for the remote's calls."""
    return {
        "endpoint": url,
        "remoteCertificates": [{"pem": pem}],
        "clientCertificateRef": {"name": "eu-client"},
        "heartbeat": heartbeat,
        "serverTrust": {"caBundleRef": {"kind": "ConfigMap", "name": CA_CONFIGMAP}},
    }


@dataclass
class Handshake:
    thumbprint: str | None
    resumed: bool
    authorization: str | None = None


@dataclass
class StandInRemote:
    server_cert: Path
    server_key: Path
    client_pems: list[str]
    delay: float = 0.0
    status: int = 200
    body: bytes = (
        b'{"ok": true, "site": "stand-in", "peer": {"name": "x", "namespace": "default"}, "link": {}}'
    )
    headers: dict[str, str] = field(default_factory=dict)
    handshakes: list[Handshake] = field(default_factory=list)
    port: int = 0
    # Exactly one slow reply: the next request waits `slow_delay` instead of `delay`, and
    # `on_slow_reply` (if set) runs in the remote's thread as that request arrives.
    slow_delay: float | None = None
    on_slow_reply: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="stand-in-remote", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def reply(self, *, status: int = 200, body: object = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        if body is not None:
            self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers or {}

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_verify_locations(cadata="".join(self.client_pems))
        return context

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        handshake = Handshake(
            thumbprint="sha256:" + hashlib.sha256(der).hexdigest() if der else None,
            resumed=bool(ssl_object and ssl_object.session_reused),
        )
        self.handshakes.append(handshake)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("authorization:"):
                    handshake.authorization = line.split(":", 1)[1].strip()
            delay = self.delay
            if self.slow_delay is not None:
                delay, self.slow_delay = self.slow_delay, None
                if self.on_slow_reply is not None:
                    self.on_slow_reply()
            await asyncio.sleep(delay)
            extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self.body)}\r\n{extra}Connection: close\r\n\r\n".encode()
                + self.body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self._context())
        self._ready.set_result(server.sockets[0].getsockname()[1])
        async with server:
            await self._stop.wait()
        # Closing the server stops new connections only (Python 3.11 does not wait for the open
        # ones): a connection still in its reply delay would be left pending when the loop goes,
        # and asyncio reports such a task as destroyed. End each one and wait for it here.
        handlers = asyncio.all_tasks() - {asyncio.current_task()}
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def start(self) -> Self:
        self._thread.start()
        self.port = self._ready.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


class FederationServerThread:
    """The real federation server (`run_server`: index fed by watches on a site's API, direct mTLS)
    on a fixed 127.0.0.1 port, in its own thread; it can be stopped and started again on that port."""

    def __init__(self, *, site: str, kubeconfig: Path, cert: Path, key: Path, port: int, audit: Path) -> None:
        self.port, self.audit = port, audit
        self.config = ServerConfig(
            site=site,
            kubeconfig=kubeconfig,
            host="127.0.0.1",
            port=port,
            tls_cert=cert,
            tls_key=key,
            http_port=None,
            audit_log=str(audit),
        )
        self._running: ServerThread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def audit_lines(self) -> list[dict[str, object]]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]

    def start(self) -> Self:
        self._running = ServerThread(self.config).start()
        return self

    def stop(self) -> None:
        if self._running is not None:
            self._running.stop()
            self._running = None


def scrape(port: int) -> dict[str, float]:
    """Unlabelled samples of an operator's /metrics on 127.0.0.1:`port`, by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
