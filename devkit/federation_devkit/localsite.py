"""A whole site on loopback: sandbox API, operator, and federation server with real TLS.

The demo runs two of these (EU and US), `federation-operator sandbox` runs one, and the
end-to-end tests run several. Each part runs in its own thread and event loop, so that one site's
federation server can be stopped and started (an outage) while its API and operator keep running.
The federation server keeps its port across restarts: the remote's FederationPeer points at it.
"""

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from federation_devkit.sandbox.server import SandboxThread
from federation_operator.adapters.k8s.client import Kube
from federation_operator.controller.config import OperatorConfig, OperatorContext
from federation_operator.controller.threads import LoopThread, OperatorThread
from federation_operator.domain import certs
from federation_operator.server.main import ServerConfig, run_server

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def write_server_identity(directory: Path, name: str) -> Path:
    """A throwaway CA and server certificate for 127.0.0.1; returns the CA file (public)."""
    identity = certs.issue_server_identity(
        common_name=f"{name} federation server",
        hosts=[LOOPBACK, "localhost"],
        validity=timedelta(days=30),
        now=certs.utcnow(),
    )
    ca_file = directory / f"{name}-federation-ca.crt"
    ca_file.write_text(identity.ca_pem)
    (directory / f"{name}-federation-tls.crt").write_text(identity.cert_pem)
    key_file = directory / f"{name}-federation-tls.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(identity.key_pem.reveal())
    return ca_file


def local_server_config(
    *, name: str, directory: Path, kubeconfig: Path, port: int, metrics_port: int | None = None
) -> ServerConfig:
    """The federation server of a local site: direct mTLS on loopback, audit log in `directory`,
    metrics and readiness on `metrics_port` (plain HTTP) if given."""
    return ServerConfig(
        site=name,
        kubeconfig=kubeconfig,
        host=LOOPBACK,
        port=port,
        tls_cert=directory / f"{name}-federation-tls.crt",
        tls_key=directory / f"{name}-federation-tls.key",
        http_port=None,
        metrics_port=metrics_port,
        audit_log=str(directory / f"{name}-audit.jsonl"),
    )


class ServerThread(LoopThread):
    """The federation server in its own thread and loop; `start()` returns once it listens."""

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(name=f"federation-server-{config.site}")
        self.config = config

    async def main(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        await run_server(config=self.config, stop=stop, ready=ready)


@dataclass
class LocalSite:
    """One site. `start()` brings up API, operator and server; `close()` stops all three."""

    name: str
    workdir: Path
    api_port: int = 0
    federation_port: int = 0
    metrics_port: int = 0  # the federation server's /metrics and /readyz (plain HTTP)
    operator_overrides: dict[str, Any] = field(default_factory=dict)
    # A clock the caller can move (the demo compresses time); None: the wall clock.
    clock: Callable[[], datetime] | None = None
    sandbox: SandboxThread | None = None
    operator: OperatorThread | None = None
    server: ServerThread | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / f"{self.name}.kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The CA of this site's federation server certificate, next to the kubeconfig."""
        return self.workdir / f"{self.name}-federation-ca.crt"

    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.federation_port}"

    def start(self, *, operator: bool = True) -> "LocalSite":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sandbox = SandboxThread(port=self.api_port).start()
        self.sandbox.write_kubeconfig(self.kubeconfig)
        self._write_server_identity()
        self.federation_port = self.federation_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.start_server()
        if operator:
            self.start_operator()
        return self

    def _write_server_identity(self) -> None:
        write_server_identity(self.workdir, self.name)

    def server_config(self) -> ServerConfig:
        return local_server_config(
            name=self.name,
            directory=self.workdir,
            kubeconfig=self.kubeconfig,
            port=self.federation_port,
            metrics_port=self.metrics_port,
        )

    def start_server(self) -> None:
        assert self.server is None, "federation server already running"
        self.server = ServerThread(self.server_config()).start()

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def operator_config(self) -> OperatorConfig:
        return dataclasses.replace(
            OperatorConfig(kubeconfig=self.kubeconfig, site=self.name), **self.operator_overrides
        )

    def start_operator(self) -> None:
        assert self.operator is None, "operator already running"
        config = self.operator_config()
        context = None
        if self.clock is not None:
            context = OperatorContext(
                config=config, kube=Kube.from_kubeconfig(self.kubeconfig), clock=self.clock
            )
        self.operator = OperatorThread(config, context=context).start()

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            if self.operator.context is not None:
                self.operator.context.kube.close()
            self.operator = None

    def close(self) -> None:
        self.stop_operator()
        self.stop_server()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
